"""Dataset import jobs: CSV objects in, typed Parquet files out, published all at once.

The CSV is streamed with pyarrow's reader one block (``import_block_bytes``) at a time, every
column as text; each block is checked and converted column by column with Arrow compute
functions, then handed to a background Parquet writer. Memory therefore follows the block size,
not the file.

Rules (``docs/data.md`` has the full table):

* Header names match schema fields case-insensitively, in any order. A schema field missing from
  the header fails the job (``Input CSV is missing the following columns: [...]``); a column that
  is not in the schema (such as pandas' unnamed index column) is ignored and reported.
* The identity and time fields (USER_ID, ITEM_ID, ACTION_ID, TIMESTAMP, and EVENT_TYPE where the
  dataset type has it) are strict: an empty or invalid value fails the job with the file, the line
  (the header is line 1), the column and the rule.
* Other fields are lenient, as AWS is: an empty value in a non-nullable field, or a value that does
  not parse as the field's type, is stored as null and counted per column in the job's report.
* Limits: IDs up to 256 characters; categorical and other strings up to 1000 (the job fails);
  textual fields are truncated to 20,000 characters (reported). Timestamps are epoch seconds: a
  TIMESTAMP above 10^11 looks like milliseconds and fails the job.
* ``FULL`` replaces the bulk rows (real-time records stay); ``INCREMENTAL`` appends, and for Items,
  Users and Actions a row replaces the bulk rows with the same ID.
* Nothing changes until the end: the new files are published with one compare-and-set of the
  dataset's file list, so a failed job leaves the dataset exactly as it was.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import re
import time
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from ..errors import InvalidInputException
from ..attribution import publish_import
from ..jobs.contract import job_body
from ..jobs.contract import JobContext, JobFailed
from ..store.files import ObjectInfo, storage
from .rows import Dataset, PartWriter, job_part_token, remove_unpublished_parts, rewrite_part_without, sweep_parts
from .schemas import Field

log = logging.getLogger("openpersonalize.import")

STRICT = {"USER_ID", "ITEM_ID", "ACTION_ID", "TIMESTAMP", "EVENT_TYPE"}
ID_FIELDS = {"USER_ID", "ITEM_ID", "ACTION_ID"}
ID_MAX, STRING_MAX, TEXTUAL_MAX = 256, 1000, 20000
MILLIS = 10 ** 11
INT32 = (-(2 ** 31), 2 ** 31 - 1)
_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_TYPE_WORD = {"int": "an int", "long": "a long", "float": "a float", "double": "a double",
              "boolean": "a boolean (true or false, lower-case)"}


class BadValue(Exception):
    """A strict field holds a value that breaks a rule; ``index`` is the row in the block."""

    def __init__(self, index: int, value, rule: str):
        super().__init__(rule)
        self.index, self.value, self.rule = index, value, rule


@dataclass
class ColumnReport:
    """What a lenient column stored as null (or truncated), by rule, with the first example."""

    nulled: int = 0
    truncated: int = 0
    rules: dict[str, int] = field(default_factory=dict)
    first: dict | None = None

    def add(self, rule: str, count: int, where: dict, truncated: bool = False) -> None:
        if truncated:
            self.truncated += count
        else:
            self.nulled += count
        self.rules[rule] = self.rules.get(rule, 0) + count
        if self.first is None:
            self.first = where


@dataclass
class Converter:
    """Checks and converts one text column into its schema field's Arrow type."""

    field: Field
    strict: bool
    report: ColumnReport = field(default_factory=ColumnReport)

    def __call__(self, arr: pa.Array, where) -> pa.Array:
        f = self.field
        if arr.null_count:  # the reader yields no nulls; be safe if it ever does
            arr = arr.fill_null("")
        empty = pc.equal(pc.binary_length(arr), 0)
        n_empty = pc.sum(empty).as_py() or 0
        if n_empty:
            if self.strict:
                idx = _first_true(empty)
                raise BadValue(idx, "", f"is empty; {f.name} is required")
            if not f.nullable:
                self.report.add("empty value in a non-nullable field", n_empty, where(_first_true(empty), ""))
            arr = pc.if_else(empty, pa.scalar(None, pa.string()), arr)
        if f.type == "string":
            return self._string(arr, where)
        if f.type in ("int", "long"):
            return self._integer(arr, where)
        if f.type in ("float", "double"):
            return self._float(arr, where)
        return self._boolean(arr, where)

    # -- per type ---------------------------------------------------------------------------

    def _string(self, arr: pa.Array, where) -> pa.Array:
        f = self.field
        limit = ID_MAX if f.name.upper() in ID_FIELDS else TEXTUAL_MAX if f.textual else STRING_MAX
        longest = pc.max(pc.binary_length(arr)).as_py() or 0
        if longest <= limit:  # bytes bound characters: most blocks stop here
            return arr
        too_long = pc.greater(pc.utf8_length(arr), limit)
        if not pc.any(too_long).as_py():
            return arr
        idx = _first_true(too_long)
        if f.textual:
            self.report.add(f"longer than {limit} characters, truncated", pc.sum(too_long).as_py(),
                            where(idx, _clip(arr[idx].as_py())), truncated=True)
            return pc.utf8_slice_codeunits(arr, 0, limit)
        kind = "an ID" if limit == ID_MAX else "a categorical value" if f.categorical else "a string value"
        raise BadValue(idx, arr[idx].as_py(), f"is longer than {limit} characters, the limit for {kind}")

    def _integer(self, arr: pa.Array, where) -> pa.Array:
        f = self.field
        rule = f"is not {_TYPE_WORD[f.type]}"
        try:
            out = pc.cast(arr, pa.int64())
            bad = None
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values, bad = [], []
            for i, text in enumerate(arr.to_pylist()):
                if text is not None and _INT_TEXT.fullmatch(text.strip()) and abs(int(text)) < 2 ** 63:
                    values.append(int(text))
                else:
                    values.append(None)
                    if text is not None:
                        bad.append(i)
            out = pa.array(values, pa.int64())
        if bad:
            out = self._lenient(out, bad, arr, rule, where)
        if f.type == "int":
            out = self._range_check(out, arr, pc.or_(pc.less(out, INT32[0]), pc.greater(out, INT32[1])),
                                    rule + " (it is outside the 32-bit range)", where)
        if f.name.upper() in ("TIMESTAMP", "CREATION_TIMESTAMP"):
            out = self._range_check(out, arr, pc.greater(out, MILLIS),
                                    f"looks like milliseconds; {f.name} is in epoch seconds", where)
        return out

    def _float(self, arr: pa.Array, where) -> pa.Array:
        rule = f"is not {_TYPE_WORD[self.field.type]}"
        try:
            out = pc.cast(arr, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values, bad = [], []
            for i, text in enumerate(arr.to_pylist()):
                try:
                    values.append(None if text is None else float(text))
                except ValueError:
                    values.append(None)
                    bad.append(i)
            out = self._lenient(pa.array(values, pa.float64()), bad, arr, rule, where)
        return self._range_check(out, arr, pc.invert(pc.is_finite(out)), rule + " (not finite)", where)

    def _boolean(self, arr: pa.Array, where) -> pa.Array:
        ok = pc.is_in(arr, value_set=pa.array(["true", "false"]))
        bad_mask = pc.invert(pc.fill_null(ok, True))
        out = pc.equal(arr, "true")
        return self._range_check(out, arr, bad_mask, "is not a boolean (true or false, lower-case)", where)

    # -- shared -----------------------------------------------------------------------------

    def _range_check(self, out: pa.Array, text: pa.Array, bad_mask: pa.Array, rule: str, where) -> pa.Array:
        bad_mask = pc.fill_null(bad_mask, False)
        if not pc.any(bad_mask).as_py():
            return out
        bad = pc.indices_nonzero(bad_mask).to_pylist()
        return self._lenient(out, bad, text, rule, where, mask=bad_mask)

    def _lenient(self, out: pa.Array, bad: list[int], text: pa.Array, rule: str, where, mask=None) -> pa.Array:
        if self.strict:
            raise BadValue(bad[0], text[bad[0]].as_py(), rule)
        self.report.add(rule, len(bad), where(bad[0], _clip(text[bad[0]].as_py())))
        if mask is None:
            return out  # already null where the text did not parse
        return pc.if_else(mask, pa.scalar(None, out.type), out)


def _first_true(mask: pa.Array) -> int:
    return pc.indices_nonzero(mask)[0].as_py()


def _clip(value, n: int = 80):
    return value if not isinstance(value, str) or len(value) <= n else value[:n] + "..."


def _quote(value) -> str:
    text = "" if value is None else str(value)
    return json.dumps(_clip(text), ensure_ascii=False)


# -- reading one CSV object --------------------------------------------------------------------

PARSE = pcsv.ParseOptions(delimiter=",", quote_char='"', double_quote=True, escape_char="\\",
                          newlines_in_values=True)


def read_header(raw: bytes) -> list[str] | None:
    """The header names of a CSV whose first bytes are ``raw`` (None if there is no header)."""
    text = raw.decode("utf-8", errors="replace").lstrip("\ufeff")
    if not text.strip():
        return None
    reader = csv.reader(io.StringIO(text), doublequote=True, escapechar="\\")
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        return None
    return [h.strip() for h in header]


class _Records:
    """The records of a CSV file object with the line each starts at (a quoted value may span
    lines), decoded as UTF-8; ``error`` says where decoding failed, if it did."""

    def __init__(self, fh, name: str):
        self.fh, self.name, self.line, self.error = fh, name, 0, None

    def _lines(self):
        decoder = codecs.getincrementaldecoder("utf-8")()
        for raw in self.fh:
            self.line += 1
            try:
                yield decoder.decode(raw)
            except UnicodeDecodeError as exc:
                self.error = (f"{self.name} line {self.line}: the data is not valid UTF-8 "
                              f"(byte 0x{raw[exc.start]:02x} at column {exc.start + 1}).")
                return

    def __iter__(self):
        """(start line, values) of each record after the header; blank lines are skipped, as the
        bulk reader skips them."""
        reader = csv.reader(self._lines(), doublequote=True, escapechar="\\", strict=False)
        header = True
        while True:
            start = reader.line_num + 1
            try:
                record = next(reader)
            except StopIteration:
                return
            if header:
                header = False
            elif record:
                yield start, record


def diagnose(fh, columns: int, name: str) -> str | None:
    """Find the first record a CSV cannot be read at, and say why, naming the line it starts at
    (the slow, exact path)."""
    records = _Records(fh, name)
    try:
        for start, record in records:
            if len(record) != columns:
                return (f"{name} line {start}: found {len(record)} values, but the header "
                        f"has {columns} columns.")
    except csv.Error as exc:
        return f"{name} line {records.line}: the CSV cannot be parsed ({exc})."
    return records.error


def record_line(fh, index: int, name: str) -> int | None:
    """The line record ``index`` (0 for the first after the header) starts at."""
    for k, (start, _) in enumerate(_Records(fh, name)):
        if k == index:
            return start
    return None


# -- the job -------------------------------------------------------------------------------------


class CsvImport:
    """One import job's work: files in, parts written, counts and reports kept."""

    def __init__(self, ds: Dataset, job: JobContext):
        self.ds, self.job = ds, job
        self.settings = job.settings
        self.rows = 0
        self.header: list[str] | None = None
        self.first_name = ""
        self.ignored: list[str] = []
        self.converters: dict[str, Converter] = {}
        self.writer = PartWriter(ds.root, ds.dir, ds.arrow_schema, token=job_part_token(job.arn, job.attempt),
                                 compression=self.settings.parquet_compression)
        self.new_ids: list[pa.Array] = []
        for f in ds.schema.fields:
            strict = f.name.upper() in STRICT
            self.converters[f.name] = Converter(f, strict)

    def _match_header(self, header: list[str], name: str) -> list[tuple[int, str]]:
        """``(csv column index, schema field)`` pairs; fails on missing or repeated columns."""
        matched: dict[str, int] = {}
        ignored = []
        for i, h in enumerate(header):
            f = self.ds.schema.field(h) if h else None
            if f is None:
                ignored.append(h or f"(unnamed column {i + 1})")
                continue
            if f.name in matched:
                raise JobFailed(f"{name} line 1: the header names column {f.name} twice (columns "
                                f"{matched[f.name] + 1} and {i + 1}).")
            matched[f.name] = i
        missing = [f.name for f in self.ds.schema.fields if f.name not in matched]
        if missing:
            raise JobFailed(f"Input CSV is missing the following columns: [{', '.join(missing)}] "
                            f"({name} line 1 is: {_clip(','.join(header), 200)}).")
        if self.header is None:
            self.header, self.first_name, self.ignored = header, name, ignored
        elif [h.upper() for h in header] != [h.upper() for h in self.header]:
            raise JobFailed(f"{name} line 1: the header differs from the header of {self.first_name}; "
                            "all files of an import must share the same header.")
        return sorted(((i, n) for n, i in matched.items()), key=lambda p: p[0])

    def add_file(self, obj: ObjectInfo, name: str, done_bytes: int, total_bytes: int) -> None:
        st = storage(self.settings)
        with st.open_input(obj) as fh:
            head = fh.read(1 << 20)
        header = read_header(head)
        if header is None:
            raise JobFailed(f"{name} is empty: an import file needs a header line with the schema's "
                            "field names and at least one record.")
        pairs = self._match_header(header, name)
        names = [f"c{i}" for i in range(len(header))]
        keep = [names[i] for i, _ in pairs]
        read = pcsv.ReadOptions(column_names=names, skip_rows=1,
                                block_size=self.settings.import_block_bytes, use_threads=True)
        convert = pcsv.ConvertOptions(column_types={c: pa.string() for c in keep}, include_columns=keep,
                                      strings_can_be_null=False, quoted_strings_can_be_null=False)
        before = self.rows
        with st.open_input(obj) as fh:
            try:
                reader = pcsv.open_csv(fh, read_options=read, parse_options=PARSE, convert_options=convert)
                for batch in reader:
                    self._block(batch, pairs, name, obj, self.rows - before)
                    self.job.progress(done_bytes + min(fh.tell(), obj.size), total_bytes)
            except pa.ArrowInvalid as exc:
                if "Empty CSV" in str(exc):
                    return  # a header and no records
                raise JobFailed(self._explain(obj, len(header), name, exc)) from None
        log.info("import %s: %s gave %d rows", self.job.arn, name, self.rows - before)

    def _explain(self, obj: ObjectInfo, columns: int, name: str, exc: Exception) -> str:
        with storage(self.settings).open_input(obj) as fh:
            found = diagnose(fh, columns, name)
        if found:
            return found
        return (f"{name}: the CSV cannot be read after record {self.rows} "
                f"({str(exc).splitlines()[0]}).")

    def _line_of(self, obj: ObjectInfo, index: int, name: str) -> int:
        """The line data record ``index`` starts at: counted again from the file (only for the
        message of a failing import), since a quoted value may span lines."""
        with storage(self.settings).open_input(obj) as fh:
            found = record_line(fh, index, name)
        return found if found is not None else index + 2

    def _block(self, batch: pa.RecordBatch, pairs: list[tuple[int, str]], name: str, obj: ObjectInfo,
               base: int) -> None:
        """One block of records, ``base`` of this file's records before it."""
        arrays = {}
        for pos, (_, field_name) in enumerate(pairs):
            def where(i, value, _base=base):
                return {"file": name, "line": _base + i + 2, "value": value}
            try:
                arrays[field_name] = self.converters[field_name](batch.column(pos), where)
            except BadValue as bad:
                raise JobFailed(f"{name} line {self._line_of(obj, base + bad.index, name)}: {field_name} "
                                f"{_quote(bad.value)} {bad.rule}.") from None
        out = pa.record_batch([arrays[f.name] for f in self.ds.arrow_schema], schema=self.ds.arrow_schema)
        if self.ds.id_column and self.job.doc.get("importMode") == "INCREMENTAL":
            self.new_ids.append(pc.unique(out.column(self.ds.id_column)))
        self.writer.write(out)
        self.rows += out.num_rows

    def report(self) -> dict:
        columns = {}
        for name, conv in self.converters.items():
            r = conv.report
            if r.nulled or r.truncated:
                columns[name] = {"nulled": r.nulled, "truncated": r.truncated, "rules": r.rules,
                                 "first": r.first}
        return {"rows": self.rows, "ignoredColumns": self.ignored, "columns": columns}


def _display_name(obj: ObjectInfo, location: str) -> str:
    """The object's name relative to the folder of the data location (``interactions.csv``)."""
    folder = location.rsplit("/", 1)[0] + "/"
    return obj.uri[len(folder):] if obj.uri.startswith(folder) else obj.uri


def csv_objects(job: JobContext, location: str) -> list:
    """The CSV objects a ``dataSource.dataLocation`` names: the object itself, or every ``.csv``
    object under the prefix; none is a job failure with AWS's reason."""
    try:
        objects = storage(job.settings).list_objects(location, "dataSource.dataLocation")
    except InvalidInputException as exc:
        raise JobFailed(exc.message) from None
    exact = [o for o in objects if o.uri == location]
    objects = exact or [o for o in objects if o.uri.lower().endswith(".csv")]
    if not objects:
        raise JobFailed(f"Invalid Data location. {location} names no object, and no .csv object "
                        "starts with it.")
    return objects


def discard_unpublished(job: JobContext) -> None:
    """The cleanup of an import that did not succeed: the files its attempts wrote and never
    published go (published ones belong to the dataset now)."""
    remove_unpublished_parts(Dataset(job.store, job.settings, job.doc["datasetArn"]), job.arn)


@job_body("dataset-import-job", cleanup=discard_unpublished)
def run_import(job: JobContext) -> dict:
    doc = job.doc
    ds = Dataset(job.store, job.settings, doc["datasetArn"])
    if job.attempt > 1:  # an earlier attempt died: what it wrote and did not publish goes
        remove_unpublished_parts(ds, job.arn)
    # An earlier attempt that died after publishing has added the rows already: this one reads
    # the files again for the report only, so that an INCREMENTAL import never adds them twice.
    published = job.attempt > 1 and any(p.get("job") == doc["jobName"] for p in ds.bulk_state().parts)
    location = doc["dataSource"]["dataLocation"]
    objects = csv_objects(job, location)
    total = sum(o.size for o in objects)
    work = CsvImport(ds, job)
    done = 0
    try:
        for obj in objects:
            work.add_file(obj, _display_name(obj, location), done, total)
            done += obj.size
            job.reached("reading")
        parts = work.writer.close()
    except BaseException:
        work.writer.abort()
        raise
    job.reached("written")
    try:
        _check_counts(ds, work, job)
        if published:
            raise _AlreadyPublished()
        job.check_cancelled()  # a worker that lost its lease (another took the job over) stops here
        mode = doc.get("importMode") or "FULL"
        _publish(ds, work, parts, mode, doc["jobName"], job_part_token(job.arn, job.attempt))
    except _AlreadyPublished:
        for part in parts:
            ds.root.remove(part["file"])
    except BaseException:
        for part in parts:
            ds.root.remove(part["file"])
        raise
    job.reached("published")
    report = work.report()
    _write_report(ds, doc, report)
    if doc.get("publishAttributionMetricsToS3") and ds.type == "INTERACTIONS" and not published:
        try:
            uri = publish_import(job.store, job.settings, ds.row.group_arn, ds, parts)
        except Exception as exc:  # the data is in; the report is an extra, its failure is logged
            log.warning("import %s: attribution metrics not published: %s", job.arn, exc)
        else:
            if uri:
                report["attributionMetrics"] = uri
    return {"_report": report}


class _AlreadyPublished(Exception):
    """This import's rows are in the dataset already (published by an attempt that died)."""


def _check_counts(ds: Dataset, work: CsvImport, job: JobContext) -> None:
    minimum = job.settings.min_import_interactions
    if ds.type == "INTERACTIONS" and work.rows < minimum:
        raise JobFailed(f"Dataset import job must contain at least {minimum} interactions records "
                        f"(it has {work.rows}).")
    if work.rows == 0:
        raise JobFailed("The import has a header but no records.")


def _publish(ds: Dataset, work: CsvImport, parts: list[dict], mode: str, job_name: str, token: str) -> None:
    now = time.time()
    for part in parts:
        part.update(time=now, job=job_name)
    replaced_ids = pc.unique(pa.chunked_array(work.new_ids, pa.string()).combine_chunks()) \
        if work.new_ids else None
    for _attempt in range(10):
        state = ds.bulk_state()
        if mode == "FULL":
            new_parts = list(parts)
        else:
            kept = _drop_replaced(ds, state.parts, replaced_ids, token) if replaced_ids is not None else state.parts
            new_parts = kept + parts
        if ds.records.publish(ds.arn, state.generation, new_parts):
            sweep_parts(ds, new_parts, ds.settings.file_grace_seconds)
            return
    raise JobFailed("The dataset changed under the import ten times in a row; run the import again.")


def _drop_replaced(ds: Dataset, parts: list[dict], ids: pa.Array, token: str) -> list[dict]:
    """Older bulk files without the rows whose ID the new import brings (INCREMENTAL entities)."""
    out = []
    for part in parts:
        out.extend(rewrite_part_without(ds, part, ds.id_column, ids, token)[0])
    return out


def _write_report(ds: Dataset, doc: dict, report: dict) -> None:
    """The import report beside the data, and in the log when something was ignored or nulled."""
    body = {"datasetImportJobArn": doc["datasetImportJobArn"], "dataLocation": doc["dataSource"]["dataLocation"],
            **report}
    with ds.root.open(f"{ds.dir}/reports/{doc['jobName']}.json", "wb") as fh:
        fh.write(json.dumps(body, indent=2).encode())
    if report["ignoredColumns"] or report["columns"]:
        log.warning("import %s: ignored columns %s; nulled or truncated values %s",
                    doc["datasetImportJobArn"], report["ignoredColumns"],
                    {k: v["rules"] for k, v in report["columns"].items()})
