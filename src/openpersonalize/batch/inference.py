"""The batch inference job body: every input line scored by the solution version's model.

Per input file, lines are read in chunks; each chunk is validated line by line (a bad line
becomes an output line with its ``error``), the good lines are scored together (one matrix
product and a partial top-k per block of users, never a full sort), and the output lines are
written in input order. Outputs are published only when every file is done.
"""

from __future__ import annotations

import json
import math
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO

import numpy as np
from threadpoolctl import threadpool_limits

from ..jobs.bodies import job_body
from ..jobs.runner import JobContext, JobFailed
from ..recipes.catalogue import RECIPES_BY_ARN
from ..recipes.factorization import Exploration
from ..recipes.scoring import rounded_scores, score_value
from ..store.files import Storage
from ..store.models import load_model, model_arn_of
from . import io
from .filtering import LineFilters

MAX_RECORDS_PER_FILE = 50_000_000
MAX_THEMED_RECORDS = 100
SCORING_THREADS = 2  # chunks scored at once (this many more wait to be written)

# recipe type -> (required fields, optional fields) of an input line
FIELDS = {
    "USER_PERSONALIZATION": ({"userId"}, {"filterValues"}),
    "PERSONALIZED_RANKING": ({"userId", "itemList"}, {"filterValues"}),
    "RELATED_ITEMS": ({"itemId"}, {"filterValues", "userId"}),
}
SCORED_RECIPES = ("aws-user-personalization", "aws-user-personalization-v2", "aws-personalized-ranking",
                  "aws-personalized-ranking-v2", "aws-hrnn", "aws-hrnn-metadata", "aws-hrnn-coldstart")


def check_record(record: io.Record, recipe_type: str) -> str | None:
    """None when the line suits the recipe type, else the reason."""
    if record.error:
        return record.error
    required, optional = FIELDS[recipe_type]
    obj = record.obj
    missing = sorted(required - obj.keys())
    if missing:
        return f"Line {record.line}: missing {', '.join(missing)} (a {recipe_type} job reads " \
               f"{', '.join(sorted(required))})."
    unknown = sorted(obj.keys() - required - optional)
    if unknown:
        return f"Line {record.line}: unknown field {', '.join(unknown)}; allowed: " \
               f"{', '.join(sorted(required | optional))}."
    for key in ("userId", "itemId"):
        if key in obj and (not isinstance(obj[key], str) or not 1 <= len(obj[key]) <= 256):
            return f"Line {record.line}: {key} must be a string of 1 to 256 characters."
    if "itemList" in obj:
        items = obj["itemList"]
        if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
            return f"Line {record.line}: itemList must be a non-empty list of item id strings."
        if len(items) > 500:
            return f"Line {record.line}: itemList has {len(items)} items; at most 500."
    if "filterValues" in obj and not (isinstance(obj["filterValues"], dict) and
                                      all(isinstance(v, str) for v in obj["filterValues"].values())):
        return f"Line {record.line}: filterValues must be an object of strings."
    return None


try:  # orjson writes an output line several times faster than json; same JSON values
    import orjson

    def dumps(obj) -> bytes:
        try:
            return orjson.dumps(obj)
        except (TypeError, ValueError):  # integers beyond 64 bits, NaN in echoed input ...
            return json.dumps(obj, ensure_ascii=False).encode("utf-8")
except ImportError:  # pragma: no cover
    def dumps(obj) -> bytes:
        return json.dumps(obj, ensure_ascii=False).encode("utf-8")


class Scorer:
    """Turns a chunk of valid records into output objects for one recipe type."""

    def __init__(self, model, recipe_name: str, recipe_type: str, num_results: int, filters: LineFilters | None,
                 exploration: Exploration | None, ranking_influence: dict | None = None):
        self.model = model
        self.ranking_influence = ranking_influence  # Semantic-Similarity: POPULARITY / FRESHNESS blend
        self.recipe_name = recipe_name
        self.recipe_type = recipe_type
        self.n = num_results
        self.filters = filters
        self.exploration = exploration
        self.scored = recipe_name in SCORED_RECIPES

    def outputs(self, records: list[io.Record]) -> list[dict | str]:
        """An output object (or an error string) per record."""
        if self.recipe_type == "USER_PERSONALIZATION":
            return self._users(records)
        if self.recipe_type == "PERSONALIZED_RANKING":
            return [self._rank(r) for r in records]
        return self._related(records)

    def _masks(self, records: list[io.Record], users: np.ndarray, item: np.ndarray | None = None):
        """Per-record item masks from the job's filter, or errors for bad filter values."""
        if self.filters is None:
            return None, [None] * len(records)
        return self.filters.item_masks(records, users, item)

    def _users(self, records: list[io.Record]) -> list[dict | str]:
        users = self.model.user_index([r.obj["userId"] for r in records]).astype(np.int64)
        masks, errors = self._masks(records, users)
        out: list[dict | str] = list(errors)
        ok = np.array([e is None for e in errors])
        if ok.any():
            rows = np.flatnonzero(ok)
            mask = None if masks is None else masks.take(rows)
            if self.exploration is not None:
                picked = [self.model.recommend(int(users[k]), self.n, candidates_mask=None if mask is None else mask[j],
                                               exploration=self.exploration) for j, k in enumerate(rows)]
                idx = [p[0] for p in picked]
                scores = [p[1] for p in picked]
                for j, k in enumerate(rows):
                    out[k] = self._items(idx[j], scores[j])
            else:
                if mask is not None:  # lines sharing a mask scored next to each other
                    order = mask.order()
                    rows, mask = rows[order], mask.take(order)
                idx, scores = self.model.recommend_batch(users[rows], self.n, mask)
                for k, result in zip(rows, self._item_rows(idx, scores)):
                    out[k] = result
        return out

    def _item_rows(self, idx: np.ndarray, scores: np.ndarray) -> list[dict]:
        """``_items`` for every row of a (records, n) block at once."""
        idx = np.asarray(idx)
        keep = idx >= 0
        names = self.model.item_ids[np.maximum(idx, 0)].tolist()
        values = rounded_scores(scores).tolist() if self.scored else None
        full = keep.all(axis=1).tolist()
        out = []
        for j, whole in enumerate(full):
            if whole:
                result = {"recommendedItems": names[j]}
                if values is not None:
                    result["scores"] = values[j]
            else:
                kept = np.flatnonzero(keep[j]).tolist()
                result = {"recommendedItems": [names[j][c] for c in kept]}
                if values is not None:
                    result["scores"] = [values[j][c] for c in kept]
            out.append(result)
        return out

    def _items(self, idx: np.ndarray, scores: np.ndarray) -> dict:
        idx = np.asarray(idx)
        keep = idx >= 0
        items = self.model.item_ids[idx[keep]].tolist()
        result = {"recommendedItems": items}
        if self.scored:
            result["scores"] = [score_value(s) for s in np.asarray(scores)[keep]]
        return result

    def _rank(self, record: io.Record) -> dict | str:
        user = int(self.model.user_index([record.obj["userId"]])[0])
        ids = list(dict.fromkeys(record.obj["itemList"]))  # first occurrence of duplicates
        index = self.model.item_index(ids)
        known = index >= 0
        mask = None
        if self.filters is not None:
            masks, errors = self.filters.item_masks([record], np.array([user]))
            if errors[0]:
                return errors[0]
            mask = None if masks is None else masks[0]
        order, scores = self.model.rank(user, index[known]) if known.any() else (np.empty(0, int), np.empty(0))
        ranked = [int(i) for i in order]
        ranked_scores = [float(s) for s in scores]
        if mask is not None:
            kept = [(i, s) for i, s in zip(ranked, ranked_scores) if mask[i]]
            ranked, ranked_scores = [i for i, _ in kept], [s for _, s in kept]
        items = self.model.item_ids[np.array(ranked, dtype=np.int64)].tolist() if ranked else []
        # Items the model has never seen go last, in input order, with score 0.0.
        unknown = [i for i, k in zip(ids, known) if not k]
        return {"recommendedItems": items + unknown,
                "scores": [score_value(s) for s in ranked_scores] + [0.0] * len(unknown)}

    def _related(self, records: list[io.Record]) -> list[dict | str]:
        items = self.model.item_index([r.obj["itemId"] for r in records]).astype(np.int64)
        users = (self.model.user_index([r.obj.get("userId", "") for r in records]).astype(np.int64))
        masks, errors = self._masks(records, users, items)
        out: list[dict | str] = list(errors)
        for k, record in enumerate(records):
            if errors[k] is not None:
                continue
            mask = None if masks is None else masks[k]
            extra = {"ranking_influence": self.ranking_influence} if self.ranking_influence else {}
            idx, scores = self.model.similar_items(int(items[k]), self.n, candidates_mask=mask, **extra)
            out[k] = self._items(idx, scores)
        return out


@job_body("batch-inference-job", isolated=True)
def run_batch_inference(job: JobContext) -> dict:
    if job.settings.executor != "local":  # sharded over an executor (batch/shards.py)
        from .shards import run_inference

        return run_inference(job)
    doc = job.doc
    version = io.active_version(job)
    recipe = RECIPES_BY_ARN.get(version.doc.get("recipeArn") or "")
    recipe_name = recipe.name if recipe else version.doc.get("_trainedRecipe", "aws-user-personalization")
    recipe_type = recipe.recipe_type if recipe else "USER_PERSONALIZATION"
    if recipe_type not in FIELDS:
        raise JobFailed(f"Recipe {recipe_name} ({recipe_type}) has no batch inference.")
    model = load_model(job.settings, model_arn_of(version))
    storage = Storage(job.settings)
    themed = doc.get("batchInferenceJobMode") == "THEME_GENERATION"
    planned = io.plan(storage, doc["jobInput"]["s3DataSource"]["path"], doc["jobOutput"]["s3DataDestination"]["path"],
                      doc["jobName"], job.attempt, doc["jobOutput"]["s3DataDestination"].get("kmsKeyArn"))
    lines = LineScorer.for_job(job, version, recipe_name, recipe_type, model)
    limit = MAX_THEMED_RECORDS if themed else MAX_RECORDS_PER_FILE
    total_bytes = sum(p.source.size for p in planned)
    done_bytes, lines_done, bad = 0, 0, 0
    # Two scoring threads: numpy releases the interpreter lock in the matrix product, the top-k
    # and the softmax, so one chunk scores while the other formats its JSON; BLAS gets one
    # thread each (two BLAS pools on two cores only fight).
    pool = ThreadPoolExecutor(SCORING_THREADS, thread_name_prefix="batch-score")
    try:
        with threadpool_limits(1, "blas"):
            for p in planned:
                count = 0
                pending: deque = deque()
                with storage.write_object(p.temp_uri, "jobOutput.s3DataDestination.path", kms_key_arn=p.kms_key_arn) as out:
                    def drain(keep: int) -> None:
                        nonlocal lines_done, bad
                        while len(pending) > keep:
                            size, future = pending.popleft()
                            data, errors = future.result()
                            out.write(data)
                            lines_done += size
                            bad += errors
                            job.progress(lines_done, None, bytes_done=done_bytes, bytes_total=total_bytes)
                            job.check_cancelled()

                    for chunk in io.read_records(storage, p.source, lines.chunk_lines):
                        count += len(chunk)
                        if count > limit:
                            raise JobFailed(f"Number of records in input file {p.source.uri} exceeds {limit}.")
                        pending.append((len(chunk), pool.submit(lines.chunk, chunk)))
                        drain(SCORING_THREADS)  # at most this many chunks wait: memory stays flat
                    drain(0)
                done_bytes += p.source.size
        io.publish(storage, planned)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        io.discard(storage, planned)
        raise
    pool.shutdown()
    job.progress(lines_done, lines_done, bytes_done=total_bytes, bytes_total=total_bytes, errors=bad)
    return {}


class LineScorer:
    """A batch inference job's scoring, from input lines to output bytes.

    ``chunk(records)`` scores parsed records together and returns their output lines;
    ``lines(first_line, data)`` does the same for a run of raw lines of one input file (numbered
    from ``first_line``), so a shard of a file can be scored anywhere that can load the model.
    Chunks are cut every ``chunk_lines`` records, counted from the start of ``data``.
    """

    def __init__(self, scorer: Scorer, recipe_type: str, themer=None, chunk_lines: int = io.CHUNK_LINES):
        self.scorer = scorer
        self.recipe_type = recipe_type
        self.themer = themer
        self.chunk_lines = chunk_lines

    @classmethod
    def for_job(cls, job: JobContext, version, recipe_name: str, recipe_type: str, model) -> "LineScorer":
        doc = job.doc
        filters = LineFilters.for_job(job, doc.get("filterArn"), model) if doc.get("filterArn") else None
        config = doc.get("batchInferenceJobConfig") or {}
        exploration = None
        if config.get("itemExplorationConfig") and recipe_name in ("aws-user-personalization", "aws-hrnn",
                                                                    "aws-hrnn-metadata", "aws-hrnn-coldstart"):
            given = config["itemExplorationConfig"]
            exploration = Exploration(weight=float(given.get("explorationWeight", 0.3)),
                                      age_cutoff_days=float(given.get("explorationItemAgeCutOff", 30)))
        influence = config.get("rankingInfluence") if recipe_name == "aws-semantic-similarity" else None
        scorer = Scorer(model, recipe_name, recipe_type, doc.get("numResults") or 25, filters, exploration,
                        influence)
        themer = None
        if doc.get("batchInferenceJobMode") == "THEME_GENERATION":
            from .themes import ThemeWriter

            themer = ThemeWriter.for_job(job, version.group_arn, model,
                                         doc["themeGenerationConfig"]["fieldsForThemeGeneration"]["itemName"])
        return cls(scorer, recipe_type, themer)

    def chunk(self, chunk: list[io.Record]) -> tuple[bytes, int]:
        """The output lines of a chunk of records (each ending in a newline), and how many of
        them are per-line errors."""
        reasons = [check_record(r, self.recipe_type) for r in chunk]
        good = [r for r, why in zip(chunk, reasons) if why is None]
        results = iter(self.scorer.outputs(good) if good else [])
        lines: list[bytes] = []
        errors = 0
        for record, why in zip(chunk, reasons):
            result = why if why is not None else next(results)
            if isinstance(result, str):
                errors += 1
                lines.append(io.error_line(record, result).encode("utf-8"))
                continue
            if self.themer is not None:
                result = self.themer.themed(record.obj["itemId"], result)
            lines.append(dumps({"input": record.obj, "output": result, "error": None}))
        lines.append(b"")
        return b"\n".join(lines), errors

    def lines(self, first_line: int, data: bytes) -> bytes:
        """The output of a run of raw input lines whose first is line ``first_line`` of its file."""
        out: list[bytes] = []
        chunk: list[io.Record] = []
        for number, raw in enumerate(BytesIO(data), start=first_line):  # splits as files do
            record = io.parse_line(number, raw)
            if record is None:
                continue
            chunk.append(record)
            if len(chunk) >= self.chunk_lines:
                out.append(self.chunk(chunk)[0])
                chunk = []
        if chunk:
            out.append(self.chunk(chunk)[0])
        return b"".join(out)


__all__ = ["run_batch_inference", "check_record", "Scorer", "LineScorer", "math"]
