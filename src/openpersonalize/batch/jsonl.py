"""Streaming JSON Lines input and all-or-nothing output for batch jobs.

Outputs are written under ``<output>/_temporary/<job name>-<attempt>/`` and moved to their final
names when every file is complete. Whatever way a job ends (ACTIVE, failed, stopped, or started
again after its process died), every attempt's temporary folder goes, and ``_temporary/`` itself
once no other job is using it: a reader listing the output prefix finds only whole outputs.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

from ..jobs.contract import JobContext, JobFailed
from ..store.files import ObjectInfo, Storage

MAX_FILES = 1000
MAX_TOTAL_BYTES = 1024 ** 3
CHUNK_LINES = 4096
TEMPORARY = "_temporary"
OUTPUT_MEMBER = "jobOutput.s3DataDestination.path"


@dataclass
class Record:
    """One non-blank input line: its number, its parsed object (or None) and the raw text."""

    line: int
    raw: str
    obj: dict | None
    error: str | None = None


@dataclass
class Planned:
    source: ObjectInfo
    final_uri: str
    temp_uri: str
    temp_root: str  # this job attempt's temporary folder
    kms_key_arn: str | None = None  # SSE-KMS key for the output, where the store supports it


def active_version(job: JobContext):
    """The job's solution version, which must still be ACTIVE when the job runs."""
    version = job.store.get(job.doc["solutionVersionArn"])
    if version is None or version.status != "ACTIVE":
        raise JobFailed(f"Solution version {job.doc['solutionVersionArn']} is not ACTIVE.")
    return version


def plan(storage: Storage, input_uri: str, output_uri: str, job_name: str, attempt: int,
         kms_key_arn: str | None = None) -> list[Planned]:
    """The input objects and, for each, where its ``.out`` goes (temporary, then final)."""
    try:
        objects = storage.list_objects(input_uri, "jobInput.s3DataSource.path")
    except FileNotFoundError:
        objects = []
    except OSError as exc:
        raise JobFailed(f"Invalid S3 input path: {input_uri} cannot be read ({exc}).") from None
    if not objects:
        raise JobFailed(f"Input data location is empty: no object at {input_uri}.")
    if len(objects) > MAX_FILES:
        raise JobFailed(f"The input location holds {len(objects)} files; a batch job reads at most {MAX_FILES}.")
    total = sum(o.size for o in objects)
    if total > MAX_TOTAL_BYTES:
        raise JobFailed(f"The input files total {total} bytes; a batch job reads at most 1 GB.")
    out_prefix = output_folder(output_uri)
    folder = input_uri.rsplit("/", 1)[0] + "/"
    temp_prefix = f"{temporary_folder(output_uri)}{job_name}-{attempt}/"
    kms = storage.kms_for(out_prefix, kms_key_arn, OUTPUT_MEMBER)
    planned = []
    for o in objects:
        relative = o.uri[len(folder):] if o.uri.startswith(folder) else o.uri.rsplit("/", 1)[1]
        planned.append(Planned(o, f"{out_prefix}{relative}.out", f"{temp_prefix}{relative}.out", temp_prefix, kms))
    return planned


TOO_LONG = b"\x00openpersonalize: line too long "  # stands for a line not read whole (bounded_lines)


def bounded_lines(f, limit: int) -> Iterator[bytes]:
    """The lines of a binary file, each held in memory only up to ``limit`` bytes: a longer one
    is read past and stands as ``TOO_LONG`` + its length and the limit, which
    :func:`parse_line` turns into that line's error."""
    reader = f if isinstance(f, io.BufferedReader) else io.BufferedReader(f, 1 << 20)
    while True:
        line = reader.readline(limit + 1)
        if not line:
            return
        if len(line) <= limit or line.endswith(b"\n"):
            yield line
            continue
        size = len(line)
        while not line.endswith(b"\n"):
            line = reader.readline(1 << 20)
            if not line:
                break
            size += len(line)
        yield TOO_LONG + f"{size} {limit}\n".encode()


def parse_line(number: int, raw_bytes: bytes) -> Record | None:
    """The record of input line ``number`` (None for a blank line).

    A line that is not valid UTF-8 JSON, or not a JSON object, or too long, becomes a record
    with ``error``."""
    if not raw_bytes.strip():
        return None
    if raw_bytes.startswith(TOO_LONG):
        size, limit = raw_bytes[len(TOO_LONG):].split()
        return Record(number, "", None, f"Line {number} has {int(size):,} bytes, more than the limit of "
                                        f"{int(limit):,} bytes (batch_max_line_bytes); it was not read.")
    try:
        raw = raw_bytes.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raw = raw_bytes.decode("utf-8", errors="replace").rstrip("\r\n")
        return Record(number, raw, None, f"Line {number} is not valid UTF-8.")
    try:
        obj_ = json.loads(raw)
    except json.JSONDecodeError as exc:
        return Record(number, raw, None, f"Line {number} is not valid JSON: {exc.msg} at column {exc.colno}.")
    except RecursionError:
        return Record(number, raw, None, f"Line {number} nests arrays or objects too deeply to be read.")
    if isinstance(obj_, dict):
        return Record(number, raw, obj_)
    return Record(number, raw, None, f"Line {number} is not a JSON object.")


def error_line(record: Record, message: str, *, wrap_input: bool = True) -> str:
    payload = record.obj if record.obj is not None else record.raw
    if wrap_input:
        return json.dumps({"input": payload, "output": None, "error": message}, ensure_ascii=False)
    return json.dumps({**(record.obj or {"input": record.raw}), "output": None, "error": message},
                      ensure_ascii=False)


def output_folder(output_uri: str) -> str:
    return output_uri if output_uri.endswith("/") else output_uri + "/"


def temporary_folder(output_uri: str) -> str:
    """The folder under the output where every batch job writing there keeps its temporaries."""
    return f"{output_folder(output_uri)}{TEMPORARY}/"


def check_destinations(storage: Storage, planned: list[Planned]) -> None:
    """Refuse, before anything is written, outputs whose final or temporary location passes
    through a symbolic link (the moves check again when they publish)."""
    for p in planned:
        storage.check_confined(p.final_uri, OUTPUT_MEMBER)
        storage.check_confined(p.temp_uri, OUTPUT_MEMBER)


def publish(storage: Storage, planned: list[Planned]) -> None:
    """Move every finished temporary output to its final name (``clear_temporaries`` then
    removes what is left of the temporary folders). If one cannot be published, the ones
    already published are removed again: the output appears whole or not at all."""
    check_destinations(storage, planned)
    done: list[Planned] = []
    try:
        for p in planned:
            storage.move(p.temp_uri, p.final_uri, OUTPUT_MEMBER)
            done.append(p)
    except BaseException:
        for p in done:
            try:
                storage.remove(p.final_uri, OUTPUT_MEMBER)
            except Exception:  # the job fails with the first error; this one would hide it
                pass
        raise


def clear_temporaries(storage: Storage, output_uri: str, job_name: str) -> None:
    """Remove every attempt's temporary folder of this job, and ``_temporary/`` once empty.

    Other jobs writing to the same output keep theirs: only ``<job name>-<attempt>`` folders are
    removed (job names are unique, and a name followed by ``-<digits>`` cannot be another job's
    attempt folder, whose name would end in ``-<digits>-<digits>``). A symbolic link on the way
    is refused, and nothing beyond it is touched.
    """
    folder = temporary_folder(output_uri)
    attempt_folder = re.compile(re.escape(job_name) + r"-[0-9]+")
    for name in storage.children(folder, OUTPUT_MEMBER):
        if attempt_folder.fullmatch(name):
            storage.remove(f"{folder}{name}/", OUTPUT_MEMBER)
    storage.remove_empty_folder(folder, OUTPUT_MEMBER)
