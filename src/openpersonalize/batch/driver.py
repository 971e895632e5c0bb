"""The batch driver: one way to run a batch job over any executor (the ``executor`` setting).

Batch inference and batch segment jobs both come here. The driver is the job body in the worker
that claimed the job:

1. it plans the job: the input objects and, for each, where its ``.out`` goes (``jsonl.plan``);
2. it cuts each input file into shards: runs of raw lines holding a whole number of scoring
   chunks, with the number of their first line; a file with more records than the job kind
   allows fails the job with the kind's reason;
3. it maps the kind's shard function over the shards on the executor (``jobs/executors.py``):
   ``local`` runs them in this process, ``ray`` on Ray actors. Each executor worker builds the
   shard function once (loading the model, binding the filter) from a picklable spec of the job;
4. it writes the outputs, in shard order, into each file's temporary output, and publishes every
   file when all are done, so the output appears whole or not at all. Before it starts it clears
   what an earlier attempt of the job left (its process died), and however the job ends it
   clears every attempt's temporary folder, so no partial output outlives the job.

A shard starts on a scoring-chunk boundary counted from the start of its file, so every line is
scored together with the same neighbours whatever the executor: outputs are the same, byte for
byte. A shard function returns ``(output bytes, per-line errors)``.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from collections import deque
from collections.abc import Callable, Iterator
from io import BytesIO

from ..config import Settings
from ..errors import InvalidInputException
from ..jobs.contract import JobContext, JobFailed
from ..jobs.executors import ExecutorUnavailable, Task, get_executor
from ..store.files import ObjectInfo, Storage
from ..store.metadata import Store
from . import jsonl

log = logging.getLogger("openpersonalize.batch")


@dataclasses.dataclass(frozen=True)
class ShardPlan:
    """What a batch job kind tells the driver.

    ``factory`` (``module:callable``) builds the shard function from the job's spec;
    ``spec`` is added to it (the model to score with, say); a file may hold at most
    ``records_per_file`` records, else the job fails with ``too_many(uri)``. Shards hold
    ``unit`` records on the local executor and the whole number of units nearest above the
    ``shard_records`` setting on others, unless ``fixed`` (every shard ``unit`` records).
    """

    factory: str
    spec: dict
    records_per_file: int
    too_many: Callable[[str], str]
    unit: int
    fixed: bool = False


def run_sharded(job: JobContext, plan: ShardPlan) -> None:
    """Run a batch job through the configured executor and publish its outputs.

    A location the embedded store refuses (a symbolic link on the way, say) fails the job with
    the refusal as its reason, before anything is written."""
    storage = Storage(job.settings)
    output, name = job.doc["jobOutput"]["s3DataDestination"]["path"], job.doc["jobName"]
    cleared = published = False
    try:
        output_existed = storage.folder_exists(output, jsonl.OUTPUT_MEMBER)
        jsonl.clear_temporaries(storage, output, name)  # what an attempt that died left behind
        cleared = True
        _run(job, plan, storage)
        published = True
    except InvalidInputException as exc:
        raise JobFailed(exc.message) from None
    finally:
        if cleared:
            _clear(storage, output, name, drop_output=not published and not output_existed)


def clear_job_temporaries(job: JobContext) -> None:
    """Remove every attempt's temporaries of a batch job without running it: the cleanup of a job
    that ends without succeeding (its process was killed, or it was not started again), and the
    output folder if that leaves it empty."""
    _clear(Storage(job.settings), job.doc["jobOutput"]["s3DataDestination"]["path"], job.doc["jobName"],
           drop_output=True)


def _clear(storage: Storage, output: str, name: str, *, drop_output: bool) -> None:
    """Every attempt's temporaries go once the job ends, and the output folder a failed job
    created goes too if it is empty (on S3 it would not exist). Never raises: the outcome of the
    job is already decided, and should its reason be an error of the store, this would only
    repeat it; what cannot be removed is logged."""
    try:
        jsonl.clear_temporaries(storage, output, name)
        if drop_output:
            storage.remove_empty_folder(output, jsonl.OUTPUT_MEMBER)
    except Exception as exc:
        log.warning("batch job %s: temporary outputs under %s could not be removed: %s", name, output, exc)


def _run(job: JobContext, plan: ShardPlan, storage: Storage) -> None:
    executor = get_executor(job.settings)
    try:
        executor.check()
    except ExecutorUnavailable as exc:
        raise JobFailed(str(exc)) from None
    doc = job.doc
    planned = jsonl.plan(storage, doc["jobInput"]["s3DataSource"]["path"],
                         doc["jobOutput"]["s3DataDestination"]["path"], doc["jobName"], job.attempt,
                         doc["jobOutput"]["s3DataDestination"].get("kmsKeyArn"))
    jsonl.check_destinations(storage, planned)
    per_shard = plan.unit if plan.fixed else executor.shard_records(plan.unit)
    task = Task(plan.factory, ({**job_spec(job), **plan.spec},))
    total_bytes = sum(p.source.size for p in planned)
    under_way: deque[tuple[int, int, int]] = deque()  # (file index, records, bytes) of each shard handed out

    def shards() -> Iterator[tuple[int, bytes]]:
        for k, p in enumerate(planned):
            count = 0
            for first, data, records in cut(storage, p.source, per_shard, job.settings.batch_max_line_bytes):
                count += records
                if count > plan.records_per_file:
                    raise JobFailed(plan.too_many(p.source.uri))
                under_way.append((k, records, len(data)))
                yield first, data

    files = _OutputFiles(storage, planned)
    done = done_bytes = errors = 0
    job.progress(0, None, bytes_done=0, bytes_total=total_bytes)
    outputs = executor.map(task, shards())
    try:
        for data, bad in outputs:
            k, records, size = under_way.popleft()
            files.write(k, data)
            done, done_bytes, errors = done + records, done_bytes + size, errors + bad
            job.progress(done, None, bytes_done=done_bytes, bytes_total=total_bytes, errors=errors)
            job.check_cancelled()
            job.reached("writing")
        files.close()  # files with no record still get their (empty) output
        job.reached("written")
        jsonl.publish(storage, planned)
        job.reached("published")
    except BaseException:
        outputs.close()
        files.abandon()
        raise
    job.progress(done, done, bytes_done=total_bytes, bytes_total=total_bytes, errors=errors)


class _OutputFiles:
    """The planned files' temporary outputs, opened one after the other as shards arrive."""

    def __init__(self, storage: Storage, planned: list[jsonl.Planned]):
        self.storage, self.planned = storage, planned
        self.current, self.out = -1, None

    def _advance(self, to: int) -> None:
        while self.current < to:
            if self.out is not None:
                self.out.close()
                self.out = None
            self.current += 1
            if self.current < len(self.planned):
                p = self.planned[self.current]
                self.out = self.storage.write_object(p.temp_uri, jsonl.OUTPUT_MEMBER,
                                                     kms_key_arn=p.kms_key_arn)

    def write(self, k: int, data: bytes) -> None:
        self._advance(k)
        self.out.write(data)

    def close(self) -> None:
        self._advance(len(self.planned))

    def abandon(self) -> None:
        if self.out is not None:
            self.out.close()
            self.out = None


def cut(storage: Storage, obj: ObjectInfo, per_shard: int, max_line: int) -> Iterator[tuple[int, bytes, int]]:
    """``(first line number, raw lines, records)`` for runs of ``per_shard`` records of ``obj``
    (blank lines are not records, as ``jsonl.parse_line`` skips them; lines over ``max_line``
    bytes are not read, see ``jsonl.bounded_lines``)."""
    lines: list[bytes] = []
    first, records = 1, 0
    with storage.open_input(obj, member="jobInput.s3DataSource.path") as f:
        for number, raw in enumerate(jsonl.bounded_lines(f, max_line), start=1):
            lines.append(raw)
            if raw.strip():
                records += 1
                if records == per_shard:
                    yield first, b"".join(lines), records
                    lines, first, records = [], number + 1, 0
    if records:
        yield first, b"".join(lines), records


# -- in the executor's workers -------------------------------------------------------------------


def job_spec(job: JobContext) -> dict:
    """What an executor worker needs to rebuild the job's context (picklable)."""
    return {"arn": job.arn, "kind": job.kind, "doc": job.doc, "attempt": job.attempt,
            "settings": dataclasses.asdict(job.settings), "store_url": job.store.url}


def job_context(spec: dict) -> JobContext:
    """The job's context in an executor worker, with the modules a job process imports."""
    for module in filter(None, (m.strip() for m in spec["settings"].get("job_modules", "").split(","))):
        importlib.import_module(module)
    return JobContext(arn=spec["arn"], kind=spec["kind"], doc=spec["doc"], store=Store(spec["store_url"]),
                      settings=Settings(**spec["settings"]), attempt=spec["attempt"])


def records(first: int, data: bytes) -> Iterator[jsonl.Record]:
    """The parsed records of a shard, numbered from its first line (blank lines skipped)."""
    for number, raw in enumerate(BytesIO(data), start=first):  # splits lines as files do
        record = jsonl.parse_line(number, raw)
        if record is not None:
            yield record
