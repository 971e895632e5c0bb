"""Batch jobs split into shards for an executor (the ``executor`` setting; docs/deploy.md).

The driver is the job body in the worker that claimed the job. It counts each input file's
records once (the job's progress is records done of that total, and an oversized file fails at
once), then reads the files again and cuts them into shards: runs of raw lines holding a whole
number of scoring chunks, with the number of their first line. The executor's workers each
build the job's scorer once (the model loaded once per worker) and turn a shard into its output
bytes; the driver writes the outputs, in order, into each file's temporary output and publishes
every file at the end, as the local body does, so the output appears whole or not at all.

A shard starts on a chunk boundary counted from the start of its file, exactly where the local
body starts a chunk, so every line is scored together with the same neighbours and the output is
the same, byte for byte.
"""

from __future__ import annotations

import dataclasses
import io as bytes_io
import math
from collections import deque
from collections.abc import Iterator

from ..jobs.executors import ExecutorUnavailable, Task, get_executor
from ..jobs.runner import JobContext, JobFailed
from ..recipes.catalogue import RECIPES_BY_ARN
from ..store.files import ObjectInfo, Storage
from ..store.models import model_arn_of
from . import io

SEGMENT_SHARD_QUERIES = 64  # a segment query scores every user: a few dozen make a shard


# -- the driver --------------------------------------------------------------------------------


def count_records(storage: Storage, obj: ObjectInfo) -> int:
    """Non-blank lines of an input object (the records ``io.read_records`` yields)."""
    with storage.open_input(obj) as f:
        return sum(1 for line in f if line.strip())


def cut(storage: Storage, obj: ObjectInfo, per_shard: int) -> Iterator[tuple[int, bytes, int]]:
    """``(first line number, raw lines, records)`` for runs of ``per_shard`` records of ``obj``."""
    lines: list[bytes] = []
    first, records = 1, 0
    with storage.open_input(obj) as f:
        for number, raw in enumerate(f, start=1):
            lines.append(raw)
            if raw.strip():
                records += 1
                if records == per_shard:
                    yield first, b"".join(lines), records
                    lines, first, records = [], number + 1, 0
    if records:
        yield first, b"".join(lines), records


def job_spec(job: JobContext) -> dict:
    """What an executor worker needs to rebuild the job's context."""
    return {"arn": job.arn, "kind": job.kind, "doc": job.doc, "attempt": job.attempt,
            "settings": dataclasses.asdict(job.settings), "store_url": job.store.url}


def _drive(job: JobContext, planned: list[io.Planned], task: Task, per_shard: int, counts: list[int]) -> None:
    """Score every planned file through the executor and publish the outputs."""
    storage = Storage(job.settings)
    executor = get_executor(job.settings)
    try:
        executor.check()
    except ExecutorUnavailable as exc:
        raise JobFailed(str(exc)) from None
    total, done = sum(counts), 0
    job.progress(0, total, shards_done=0)
    meta: deque[tuple[int, int]] = deque()  # (file index, records) of each shard handed out

    def shards():
        for k, p in enumerate(planned):
            for first, data, records in cut(storage, p.source, per_shard):
                meta.append((k, records))
                yield first, data

    current, out, shards_done = -1, None, 0

    def advance(to: int):
        nonlocal current, out
        while current < to:
            if out is not None:
                out.close()
                out = None
            current += 1
            if current < len(planned):
                out = storage.write_object(planned[current].temp_uri, "jobOutput.s3DataDestination.path",
                                           kms_key_arn=planned[current].kms_key_arn)

    outputs = executor.map(task, shards())
    try:
        for data in outputs:
            k, records = meta.popleft()
            advance(k)
            out.write(data)
            done += records
            shards_done += 1
            job.progress(done, total, shards_done=shards_done)
            job.check_cancelled()
        advance(len(planned))  # files with no record still get their (empty) output
        io.publish(storage, planned)
    except BaseException:
        outputs.close()
        if out is not None:
            out.close()
        io.discard(storage, planned)
        raise


def _plan(job: JobContext) -> tuple[Storage, list[io.Planned]]:
    doc = job.doc
    storage = Storage(job.settings)
    return storage, io.plan(storage, doc["jobInput"]["s3DataSource"]["path"],
                            doc["jobOutput"]["s3DataDestination"]["path"], doc["jobName"], job.attempt,
                            doc["jobOutput"]["s3DataDestination"].get("kmsKeyArn"))


def run_inference(job: JobContext) -> dict:
    """A batch inference job through the configured executor."""
    from .inference import FIELDS, MAX_RECORDS_PER_FILE, MAX_THEMED_RECORDS

    version = io.active_version(job)
    recipe_name, recipe_type = _recipe(version)
    if recipe_type not in FIELDS:
        raise JobFailed(f"Recipe {recipe_name} ({recipe_type}) has no batch inference.")
    storage, planned = _plan(job)
    limit = MAX_THEMED_RECORDS if job.doc.get("batchInferenceJobMode") == "THEME_GENERATION" else MAX_RECORDS_PER_FILE
    counts = []
    for p in planned:
        counts.append(count_records(storage, p.source))
        if counts[-1] > limit:
            raise JobFailed(f"Number of records in input file {p.source.uri} exceeds {limit}.")
    chunk = io.CHUNK_LINES  # shards start where LineScorer's chunks do
    per_shard = max(1, math.ceil(job.settings.shard_records / chunk)) * chunk
    spec = {**job_spec(job), "model_arn": model_arn_of(version)}  # every shard scores with this model
    _drive(job, planned, Task("openpersonalize.batch.shards:inference_shard_scorer", (spec,)), per_shard, counts)
    return {}


def run_segment(job: JobContext) -> dict:
    """A batch segment job through the configured executor."""
    from .segment import LIMITS

    version = io.active_version(job)
    recipe = RECIPES_BY_ARN[version.doc["recipeArn"]]
    storage, planned = _plan(job)
    limit = LIMITS[recipe.name]
    counts = []
    for p in planned:
        counts.append(count_records(storage, p.source))
        if counts[-1] > limit:
            raise JobFailed(f"Input file {p.source.uri} has more than {limit} queries; "
                            f"{recipe.name} segment jobs read at most {limit} per file.")
    spec = {**job_spec(job), "model_arn": model_arn_of(version)}
    _drive(job, planned, Task("openpersonalize.batch.shards:segment_shard_scorer", (spec,)),
           SEGMENT_SHARD_QUERIES, counts)
    return {}


def _recipe(version) -> tuple[str, str]:
    recipe = RECIPES_BY_ARN.get(version.doc.get("recipeArn") or "")
    if recipe:
        return recipe.name, recipe.recipe_type
    return version.doc.get("_trainedRecipe", "aws-user-personalization"), "USER_PERSONALIZATION"


# -- the executor workers ----------------------------------------------------------------------


def _context(spec: dict) -> JobContext:
    """The job's context in an executor worker, with every module a job process imports."""
    import importlib

    from .. import jobs_registry  # noqa: F401  (recipes register their model classes on import)
    from ..config import Settings
    from ..store.metadata import Store

    for module in filter(None, (m.strip() for m in spec["settings"].get("job_modules", "").split(","))):
        importlib.import_module(module)
    return JobContext(arn=spec["arn"], kind=spec["kind"], doc=spec["doc"], store=Store(spec["store_url"]),
                      settings=Settings(**spec["settings"]), attempt=spec["attempt"])


def records(first: int, data: bytes) -> Iterator[io.Record]:
    """The parsed records of a shard, numbered from its first line, as ``io.read_records``."""
    for number, raw in enumerate(bytes_io.BytesIO(data), start=first):  # splits lines as files do
        record = io.parse_line(number, raw)
        if record is not None:
            yield record


def _joined(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


def inference_shard_scorer(spec: dict):
    """Set up a batch inference job's scorer once; returns ``fn((first line, raw lines)) -> bytes``.

    It is the local body's own ``LineScorer``: the same chunks give the same bytes."""
    from ..store.models import load_model
    from .inference import LineScorer

    job = _context(spec)
    version = io.active_version(job)
    recipe_name, recipe_type = _recipe(version)
    model = load_model(job.settings, spec["model_arn"])  # the driver's: one model for every shard
    scorer = LineScorer.for_job(job, version, recipe_name, recipe_type, model)
    job.store.close()  # set-up done: a worker holds no database connection while it scores
    return lambda shard: scorer.lines(*shard)


def segment_shard_scorer(spec: dict):
    """Set up a batch segment job once; returns ``fn((first line, raw lines)) -> bytes``."""
    from ..store.models import load_model
    from .segment import SegmentScorer

    job = _context(spec)
    version = io.active_version(job)
    recipe = RECIPES_BY_ARN[version.doc["recipeArn"]]
    scorer = SegmentScorer.for_job(job, version, recipe.name, load_model(job.settings, spec["model_arn"]))
    job.store.close()

    def score(shard: tuple[int, bytes]) -> bytes:
        first, data = shard
        lines = [scorer.line(record) for record in records(first, data)]
        return _joined(lines)

    return score
