"""The batch inference job body: every input line scored by the solution version's model.

Per input file, lines are read in chunks; each chunk is validated line by line (a bad line
becomes an output line with its ``error``), the good lines are scored together (one matrix
product and a partial top-k per block of users, never a full sort), and the output lines are
written in input order. Outputs are published only when every file is done.
"""

from __future__ import annotations

import json
import math

import numpy as np

from ..jobs.bodies import job_body
from ..jobs.runner import JobContext, JobFailed
from ..recipes.catalogue import RECIPES_BY_ARN
from ..store.files import Storage
from ..store.models import load_model
from . import io
from .filtering import MASK_BLOCK, LineFilters

MAX_RECORDS_PER_FILE = 50_000_000
MAX_THEMED_RECORDS = 100

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


def _score_value(x: float) -> float:
    return float(f"{x:.6g}")


class Scorer:
    """Turns a chunk of valid records into output objects for one recipe type."""

    def __init__(self, model, recipe_name: str, recipe_type: str, num_results: int, filters: LineFilters | None,
                 exploration: dict | None):
        self.model = model
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
            mask = None if masks is None else masks[rows]
            if self.exploration is not None:
                picked = [self.model.recommend(int(users[k]), self.n, candidates_mask=None if mask is None else mask[j],
                                               exploration=self.exploration) for j, k in enumerate(rows)]
                idx = [p[0] for p in picked]
                scores = [p[1] for p in picked]
            else:
                idx, scores = self.model.recommend_batch(users[rows], self.n, mask)
            for j, k in enumerate(rows):
                out[k] = self._items(idx[j], scores[j])
        return out

    def _items(self, idx: np.ndarray, scores: np.ndarray) -> dict:
        idx = np.asarray(idx)
        keep = idx >= 0
        items = self.model.item_ids[idx[keep]].tolist()
        result = {"recommendedItems": items}
        if self.scored:
            result["scores"] = [_score_value(s) for s in np.asarray(scores)[keep]]
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
                "scores": [_score_value(s) for s in ranked_scores] + [0.0] * len(unknown)}

    def _related(self, records: list[io.Record]) -> list[dict | str]:
        items = self.model.item_index([r.obj["itemId"] for r in records]).astype(np.int64)
        users = (self.model.user_index([r.obj.get("userId", "") for r in records]).astype(np.int64))
        masks, errors = self._masks(records, users, items)
        out: list[dict | str] = list(errors)
        for k, record in enumerate(records):
            if errors[k] is not None:
                continue
            mask = None if masks is None else masks[k]
            idx, scores = self.model.similar_items(int(items[k]), self.n, candidates_mask=mask)
            out[k] = self._items(idx, scores)
        return out


@job_body("batch-inference-job", isolated=True)
def run_batch_inference(job: JobContext) -> dict:
    doc = job.doc
    version = job.store.get(doc["solutionVersionArn"])
    if version is None or version.status != "ACTIVE":
        raise JobFailed(f"Solution version {doc['solutionVersionArn']} is not ACTIVE.")
    recipe = RECIPES_BY_ARN.get(version.doc.get("recipeArn") or "")
    recipe_name = recipe.name if recipe else version.doc.get("_trainedRecipe", "aws-user-personalization")
    recipe_type = recipe.recipe_type if recipe else "USER_PERSONALIZATION"
    if recipe_type not in FIELDS:
        raise JobFailed(f"Recipe {recipe_name} ({recipe_type}) has no batch inference.")
    model = load_model(job.settings, version.arn)
    storage = Storage(job.settings)
    themed = doc.get("batchInferenceJobMode") == "THEME_GENERATION"
    planned = io.plan(storage, doc["jobInput"]["s3DataSource"]["path"], doc["jobOutput"]["s3DataDestination"]["path"],
                      doc["jobName"], job.attempt)
    filters = LineFilters.for_job(job, doc.get("filterArn"), model) if doc.get("filterArn") else None
    config = doc.get("batchInferenceJobConfig") or {}
    exploration = None
    if config.get("itemExplorationConfig") and recipe_name in ("aws-user-personalization", "aws-hrnn",
                                                                "aws-hrnn-metadata", "aws-hrnn-coldstart"):
        exploration = {k: float(v) for k, v in config["itemExplorationConfig"].items()}
    scorer = Scorer(model, recipe_name, recipe_type, doc.get("numResults") or 25, filters, exploration)
    themer = None
    if themed:
        from .themes import ThemeWriter

        themer = ThemeWriter.for_job(job, version.group_arn, model,
                                     doc["themeGenerationConfig"]["fieldsForThemeGeneration"]["itemName"])
    total_bytes = sum(p.source.size for p in planned)
    done_bytes, lines_done, bad = 0, 0, 0
    try:
        for p in planned:
            count = 0
            with storage.write_object(p.temp_uri, "jobOutput.s3DataDestination.path") as out:
                for chunk in io.read_records(storage, p.source, MASK_BLOCK if filters else io.CHUNK_LINES):
                    count += len(chunk)
                    limit = MAX_THEMED_RECORDS if themed else MAX_RECORDS_PER_FILE
                    if count > limit:
                        raise JobFailed(f"Number of records in input file {p.source.uri} exceeds {limit}.")
                    reasons = [check_record(r, recipe_type) for r in chunk]
                    good = [r for r, why in zip(chunk, reasons) if why is None]
                    results = iter(scorer.outputs(good) if good else [])
                    lines = []
                    for record, why in zip(chunk, reasons):
                        result = why if why is not None else next(results)
                        if isinstance(result, str):
                            bad += 1
                            lines.append(io.error_line(record, result))
                            continue
                        if themer is not None:
                            result = themer.themed(record.obj["itemId"], result)
                        lines.append(json.dumps({"input": record.obj, "output": result, "error": None},
                                                ensure_ascii=False))
                    out.write(("\n".join(lines) + "\n").encode("utf-8"))
                    lines_done += len(chunk)
                    job.progress(lines_done, None, bytes_done=done_bytes, bytes_total=total_bytes)
                    job.check_cancelled()
            done_bytes += p.source.size
        io.publish(storage, planned)
    except BaseException:
        io.discard(storage, planned)
        raise
    job.progress(lines_done, lines_done, bytes_done=total_bytes, bytes_total=total_bytes, errors=bad)
    return {}


__all__ = ["run_batch_inference", "check_record", "Scorer", "math"]
