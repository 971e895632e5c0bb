"""Dataset export jobs: a dataset's rows out as CSV, in the import format.

Output: ``{path}{jobName}/part-00000.csv``, ``part-00001.csv``, ... (at most ``PART_BYTES`` each,
a header row of the schema's field names in schema order in every part). Values are written as the
importer reads them: epoch seconds, ``|``-joined multi-values, empty for null, and values holding a
comma, quote, backslash or newline in double quotes (``""`` for a quote, ``\\\\`` for a backslash).

``ingestionMode``: ``BULK`` (import jobs), ``PUT`` (real-time records, the default) or ``ALL``.
Records identical in every field are written once. With ``ALL``, Items and Users keep only the
newest record per ID. Duplicates are found through a 64-bit hash per line, kept as sorted numpy
arrays (8 bytes per exported row).

Whole or not at all: on the embedded store each part is written under a temporary name and
renamed when every part is complete; on S3 an object only appears when its upload completes, and
parts already written are deleted if a later one fails. The output folder is the job's own, so a
job started again after its process died first removes what the dead attempt left there
(temporaries, and parts it had written or published); a failed job leaves no empty folder.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InvalidInputException
from ..jobs.contract import job_body
from ..jobs.contract import JobContext, JobFailed
from ..store.files import storage
from .rows import Dataset

log = logging.getLogger("openpersonalize.export")

PART_BYTES = 1 << 30
MEMBER = "jobOutput.s3DataDestination.path"
_TEMPORARY = re.compile(r"\.part-[0-9]{5}\.csv\.[0-9a-f]{8}\.tmp")
_PART = re.compile(r"part-[0-9]{5}\.csv")
_NEEDS_QUOTES = r'[,"\\\n\r]'


def csv_text(batch: pa.RecordBatch) -> pa.Array:
    """One CSV line per row (with its newline), in the import format."""
    columns = []
    for col in batch.columns:
        if col.type == pa.bool_():
            text = pc.if_else(col, "true", "false")
        elif col.type == pa.string():
            text = col
        else:
            text = pc.cast(col, pa.string())
        if col.type == pa.string() and len(text):
            quote = pc.fill_null(pc.match_substring_regex(text, _NEEDS_QUOTES), False)
            if pc.any(quote).as_py():
                escaped = pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"), '"', '""')
                quoted = pc.binary_join_element_wise('"', escaped, '"', "")
                text = pc.if_else(quote, quoted, text)
        columns.append(pc.fill_null(text, ""))
    line = pc.binary_join_element_wise(*columns, ",")
    return pc.binary_join_element_wise(line, "", "\n")


def _line_bytes(lines: pa.Array) -> bytes:
    lines = pa.concat_arrays([lines]) if lines.offset else lines
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32, count=len(lines) + 1)
    return lines.buffers()[2].to_pybytes()[offsets[0]:offsets[-1]] if len(lines) else b""


class Deduplicator:
    """Remembers line hashes: ``new(lines)`` is the mask of lines not seen before."""

    def __init__(self):
        self.runs: list[np.ndarray] = []

    def new(self, lines: pa.Array) -> np.ndarray:
        hashes = np.fromiter((hash(s) for s in lines.to_pylist()), dtype=np.int64, count=len(lines))
        _, first = np.unique(hashes, return_index=True)
        keep = np.zeros(len(hashes), dtype=bool)
        keep[first] = True
        for run in self.runs:
            pos = np.searchsorted(run, hashes)
            pos[pos == len(run)] = 0
            keep &= run[pos] != hashes if len(run) else True
        kept = np.sort(hashes[keep])
        if len(kept):
            self.runs.append(kept)
        if len(self.runs) > 8:  # merge small runs so lookups stay few
            self.runs = [np.sort(np.concatenate(self.runs))]
        return keep


class PartFiles:
    """CSV parts under the output folder, published all together at the end."""

    def __init__(self, job: JobContext, folder: str, header: bytes, kms_key_arn: str | None):
        self.st = storage(job.settings)
        self.folder, self.header, self.kms = folder, header, kms_key_arn
        self.token = uuid.uuid4().hex[:8]
        self.written: list[tuple[str, str]] = []  # (temporary uri, final uri)
        self.fh = None
        self.size = 0

    def _open(self) -> None:
        final = f"{self.folder}part-{len(self.written):05d}.csv"
        temp = final if self.st.uses_s3 else f"{self.folder}.part-{len(self.written):05d}.csv.{self.token}.tmp"
        self.fh = self.st.write_object(temp, MEMBER, kms_key_arn=self.kms)
        self.written.append((temp, final))
        self.fh.write(self.header)
        self.size = len(self.header)

    def write(self, data: bytes) -> None:
        if self.fh is None or (self.size + len(data) > PART_BYTES and self.size > len(self.header)):
            self.close_part()
            self._open()
        self.fh.write(data)
        self.size += len(data)

    def close_part(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None

    def publish(self) -> int:
        if not self.written:
            self._open()  # an empty export is one part with the header only
        self.close_part()
        for temp, final in self.written:
            if temp != final:
                self.st.move(temp, final, MEMBER)
        return len(self.written)

    def discard(self) -> None:
        """Remove every part this attempt wrote or published, and the job's folder if that leaves
        it empty. Never raises: the job has failed already, with its own reason."""
        try:
            self.close_part()
        except Exception:
            pass
        try:
            for temp, final in self.written:  # a failure while publishing leaves parts of both
                self.st.remove(temp, MEMBER)
                if final != temp:
                    self.st.remove(final, MEMBER)
            self.st.remove_empty_folder(self.folder, MEMBER)
        except Exception as exc:
            log.warning("export: parts under %s could not be removed: %s", self.folder, exc)


def clear_earlier_attempts(st, folder: str, attempt: int) -> None:
    """Remove what an earlier attempt of this job left in its folder: temporary parts (and, when
    this is not the first attempt, the parts it wrote or published, which this attempt writes
    again). The folder is named after the job, so nothing in it belongs to anyone else."""
    stale = [n for n in st.children(folder, MEMBER)
             if _TEMPORARY.fullmatch(n) or (attempt > 1 and _PART.fullmatch(n))]
    for name in stale:
        st.remove(folder + name, MEMBER)


def discard_attempts(job: JobContext) -> None:
    """Remove what every attempt of the export job wrote, without running it: the cleanup of a
    job that ends without succeeding (its body may never have run again after a crash)."""
    path = job.doc["jobOutput"]["s3DataDestination"]["path"]
    folder = (path if path.endswith("/") else path + "/") + job.doc["jobName"] + "/"
    st = storage(job.settings)
    try:
        clear_earlier_attempts(st, folder, attempt=2)
        st.remove_empty_folder(folder, MEMBER)
    except Exception as exc:
        log.warning("export: parts under %s could not be removed: %s", folder, exc)


def _newest_entities(ds: Dataset) -> tuple[dict, dict]:
    """For ALL on Items/Users: which bulk row and which real-time record hold the newest value
    per ID. Returns ``(bulk: id -> (part, row), put: id -> record position)``."""
    bulk: dict[str, tuple[float, int, int]] = {}
    for p_index, part in enumerate(ds.bulk_state().parts):
        row = 0
        for batch in ds.iter_part(part):
            for i, key in enumerate(batch.column(ds.id_column).to_pylist()):
                bulk[key] = (part.get("time", 0.0), p_index, row + i)
            row += batch.num_rows
    put: dict[str, tuple[float, int]] = {}
    position = 0
    for batch in ds.iter_put():
        for key, created in zip(batch.column(ds.id_column).to_pylist(), batch.column("_created").to_pylist()):
            put[key] = (created, position)
            position += 1
    bulk_win = {k: (p, r) for k, (t, p, r) in bulk.items() if k not in put or put[k][0] < t}
    put_win = {k: pos for k, (t, pos) in put.items() if k not in bulk or bulk[k][0] <= t}
    return bulk_win, put_win


def _rows(ds: Dataset, mode: str) -> Iterator[pa.RecordBatch]:
    newest = mode == "ALL" and ds.type in ("ITEMS", "USERS") and ds.id_column is not None
    bulk_win, put_win = _newest_entities(ds) if newest else ({}, {})
    names = [f.name for f in ds.arrow_schema]
    if mode in ("BULK", "ALL"):
        for p_index, part in enumerate(ds.bulk_state().parts):
            row = 0
            for batch in ds.iter_part(part):
                if newest:
                    keys = batch.column(ds.id_column).to_pylist()
                    mask = [bulk_win.get(k) == (p_index, row + i) for i, k in enumerate(keys)]
                    batch = batch.filter(pa.array(mask))
                row += len(batch) if not newest else len(keys)
                yield batch
    if mode in ("PUT", "ALL"):
        position = 0
        for batch in ds.iter_put():
            if newest:
                keys = batch.column(ds.id_column).to_pylist()
                mask = [put_win.get(k) == position + i for i, k in enumerate(keys)]
                position += len(keys)
                batch = batch.filter(pa.array(mask))
            yield batch.select(names)


@job_body("dataset-export-job", cleanup=discard_attempts)
def run_export(job: JobContext) -> dict:
    doc = job.doc
    ds = Dataset(job.store, job.settings, doc["datasetArn"])
    destination = doc["jobOutput"]["s3DataDestination"]
    path = destination["path"]
    folder = (path if path.endswith("/") else path + "/") + doc["jobName"] + "/"
    st = storage(job.settings)
    try:
        st.check_bucket(folder, MEMBER)
        clear_earlier_attempts(st, folder, job.attempt)
    except InvalidInputException as exc:
        raise JobFailed(exc.message) from None
    header = (",".join(f.name for f in ds.arrow_schema) + "\n").encode()
    kms = destination.get("kmsKeyArn")
    if kms and st.uses_s3 and not st.kms_for(folder, kms, MEMBER):
        log.warning("export %s: the S3 store refused SSE-KMS with %s; writing without it",
                    doc["datasetExportJobArn"], kms)
        kms = None
    parts = PartFiles(job, folder, header, kms)
    dedupe = Deduplicator()
    rows = 0
    try:
        for batch in _rows(ds, doc.get("ingestionMode") or "PUT"):
            if not batch.num_rows:
                continue
            lines = csv_text(batch)
            keep = dedupe.new(lines)
            if not keep.all():
                lines = lines.filter(pa.array(keep))
            parts.write(_line_bytes(lines))
            rows += len(lines)
            job.progress(rows)
            job.reached("writing")
        job.reached("written")
        count = parts.publish()
        job.reached("published")
    except InvalidInputException as exc:
        parts.discard()
        raise JobFailed(exc.message) from None
    except BaseException:
        parts.discard()
        raise
    log.info("export %s: %d rows in %d part(s) under %s", doc["datasetExportJobArn"], rows, count, folder)
    return {"_rows": rows, "_kmsApplied": bool(kms)}
