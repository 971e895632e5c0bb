"""The batch inference job body: every input line scored by the solution version's model.

The batch driver (``driver.py``) cuts the input into shards and writes their outputs in order;
this module is what a shard goes through. Its lines are cut into chunks; each chunk is validated
line by line (a bad line becomes an output line with its ``error``) and its good lines are scored
together (one matrix product and a partial top-k per block of users, never a full sort). What the
output carries (scores, exploration, ranking influence, the fields a line must have) is what the
version's recipe declares in its capabilities.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from ..jobs.contract import JobContext, JobFailed, job_body
from ..recipes.capabilities import Capabilities
from ..recipes.factorization import Exploration
from ..recipes.registry import served_recipe
from ..recipes.scoring import rounded_scores, score_value
from ..store.models import load_model, model_arn_of
from . import jsonl
from .driver import ShardPlan, clear_job_temporaries, job_context, records, run_sharded
from .filtering import LineFilters
from .themes import ThemeWriter

MAX_RECORDS_PER_FILE = 50_000_000
MAX_THEMED_RECORDS = 100
SCORING_THREADS = 2  # chunks of a shard scored at once


def check_record(record: jsonl.Record, can: Capabilities) -> str | None:
    """None when the line suits the recipe, else the reason."""
    if record.error:
        return record.error
    required, optional = can.batch_input_fields
    obj = record.obj
    missing = sorted(required - obj.keys())
    if missing:
        return f"Line {record.line}: missing {', '.join(missing)} (a {can.recipe_type} job reads " \
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

    def __init__(self, model, can: Capabilities, num_results: int, filters: LineFilters | None,
                 exploration: Exploration | None, ranking_influence: dict | None = None):
        self.model = model
        self.ranking_influence = ranking_influence  # Semantic-Similarity: POPULARITY / FRESHNESS blend
        self.recipe_type = can.recipe_type
        self.n = num_results
        self.filters = filters
        self.exploration = exploration
        self.scored = can.scored

    def outputs(self, records: list[jsonl.Record]) -> list[dict | str]:
        """An output object (or an error string) per record."""
        if self.recipe_type == "USER_PERSONALIZATION":
            return self._users(records)
        if self.recipe_type == "PERSONALIZED_RANKING":
            return [self._rank(r) for r in records]
        return self._related(records)

    def _masks(self, records: list[jsonl.Record], users: np.ndarray, item: np.ndarray | None = None):
        """Per-record item masks from the job's filter, or errors for bad filter values."""
        if self.filters is None:
            return None, [None] * len(records)
        return self.filters.item_masks(records, users, item)

    def _users(self, records: list[jsonl.Record]) -> list[dict | str]:
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

    def _rank(self, record: jsonl.Record) -> dict | str:
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
        result = {"recommendedItems": items + unknown}
        if self.scored:
            result["scores"] = [score_value(s) for s in ranked_scores] + [0.0] * len(unknown)
        return result

    def _related(self, records: list[jsonl.Record]) -> list[dict | str]:
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


@job_body("batch-inference-job", isolated=True, cleanup=clear_job_temporaries)
def run_batch_inference(job: JobContext) -> dict:
    version = jsonl.active_version(job)
    served = served_recipe(version.doc)
    if not served.capabilities.batch_inference:
        raise JobFailed(f"Recipe {served.name} ({served.capabilities.recipe_type}) has no batch inference.")
    limit = MAX_THEMED_RECORDS if job.doc.get("batchInferenceJobMode") == "THEME_GENERATION" else MAX_RECORDS_PER_FILE
    run_sharded(job, ShardPlan(
        "openpersonalize.batch.inference:shard_scorer", {"model_arn": model_arn_of(version)}, limit,
        lambda uri: f"Number of records in input file {uri} exceeds {limit}.",
        unit=jsonl.CHUNK_LINES * SCORING_THREADS))
    return {}


def shard_scorer(spec: dict):
    """Set up a batch inference job's scoring once, in an executor worker; returns
    ``fn((first line, raw lines)) -> (output bytes, bad lines)``."""
    job = job_context(spec)
    version = jsonl.active_version(job)
    model = load_model(job.settings, spec["model_arn"])  # the driver's: one model for every shard
    scorer = LineScorer.for_job(job, version, served_recipe(version.doc).capabilities, model)
    job.store.close()  # set-up done: a worker holds no database connection while it scores
    return scorer.shard


class LineScorer:
    """A batch inference job's scoring, from input lines to output bytes.

    ``chunk(records)`` scores parsed records together and returns their output lines;
    ``lines(first_line, data)`` does the same for a run of raw lines of one input file (numbered
    from ``first_line``), so a shard of a file can be scored anywhere that can load the model.
    Chunks are cut every ``chunk_lines`` records, counted from the start of ``data``.
    """

    def __init__(self, scorer: Scorer, can: Capabilities, themer=None, chunk_lines: int = jsonl.CHUNK_LINES,
                 threads: int = SCORING_THREADS):
        self.scorer = scorer
        self.can = can
        self.themer = themer
        self.chunk_lines = chunk_lines
        self.threads = threads

    @classmethod
    def for_job(cls, job: JobContext, version, can: Capabilities, model) -> LineScorer:
        doc = job.doc
        filters = LineFilters.for_job(job, doc.get("filterArn"), model) if doc.get("filterArn") else None
        config = doc.get("batchInferenceJobConfig") or {}
        exploration = None
        if config.get("itemExplorationConfig") and can.exploration:
            exploration = Exploration.from_config(config["itemExplorationConfig"])
        influence = config.get("rankingInfluence") if can.ranking_influence else None
        scorer = Scorer(model, can, doc.get("numResults") or 25, filters, exploration, influence)
        themer = None
        if doc.get("batchInferenceJobMode") == "THEME_GENERATION":
            themer = ThemeWriter.for_job(job, version.group_arn, model,
                                         doc["themeGenerationConfig"]["fieldsForThemeGeneration"]["itemName"])
        return cls(scorer, can, themer)

    def chunk(self, chunk: list[jsonl.Record]) -> tuple[bytes, int]:
        """The output lines of a chunk of records (each ending in a newline), and how many of
        them are per-line errors."""
        reasons = [check_record(r, self.can) for r in chunk]
        good = [r for r, why in zip(chunk, reasons) if why is None]
        results = iter(self.scorer.outputs(good) if good else [])
        lines: list[bytes] = []
        errors = 0
        for record, why in zip(chunk, reasons):
            result = why if why is not None else next(results)
            if isinstance(result, str):
                errors += 1
                lines.append(jsonl.error_line(record, result).encode("utf-8"))
                continue
            if self.themer is not None:
                result = self.themer.themed(record.obj["itemId"], result)
            lines.append(dumps({"input": record.obj, "output": result, "error": None}))
        lines.append(b"")
        return b"\n".join(lines), errors

    def shard(self, shard: tuple[int, bytes]) -> tuple[bytes, int]:
        """The output of a run of raw input lines whose first is line ``first`` of its file, and
        how many of its lines are errors. Chunks are cut every ``chunk_lines`` records from the
        start of the run and scored ``threads`` at a time: numpy releases the interpreter lock in
        the matrix product, the top-k and the softmax, so one chunk scores while another formats
        its JSON; BLAS gets one thread each (two BLAS pools on two cores only fight)."""
        chunks: list[list[jsonl.Record]] = [[]]
        for record in records(*shard):
            if len(chunks[-1]) >= self.chunk_lines:
                chunks.append([])
            chunks[-1].append(record)
        chunks = [c for c in chunks if c]
        if len(chunks) > 1 and self.threads > 1:
            with threadpool_limits(1, "blas"), ThreadPoolExecutor(min(self.threads, len(chunks))) as pool:
                scored = list(pool.map(self.chunk, chunks))
        else:
            scored = [self.chunk(c) for c in chunks]
        return b"".join(data for data, _ in scored), sum(bad for _, bad in scored)


__all__ = ["run_batch_inference", "shard_scorer", "check_record", "Scorer", "LineScorer"]
