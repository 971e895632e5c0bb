"""The solution version job: read the dataset group, train the recipe, store the model.

The data layer gives integer codes in order of first appearance; models look ids up in sorted
vocabularies, so the codes are re-ranked here once (vocabulary-sized work plus one gather per
interaction, no string work per interaction).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pyarrow as pa

from ..data.interactions import GroupData, Vocabulary, load_group
from ..data.rows import data_mark, group_datasets
from ..data.schemas import Schema
from ..config import Settings
from ..recipes.base import ColumnRoles, Minimums, TooLittleData, TrainingData
from ..recipes.catalogue import RECIPES_BY_ARN
from ..recipes.training import train
from ..store.models import load_model, remove_model, save_model
from .contract import job_body
from .contract import JobContext, JobFailed

log = logging.getLogger("openpersonalize.training")

RESERVED = {"ITEM_ID", "USER_ID", "ACTION_ID", "CREATION_TIMESTAMP", "TIMESTAMP", "EVENT_TYPE",
            "EVENT_VALUE", "EXPIRATION_TIMESTAMP", "ACTION_EXPIRATION_TIMESTAMP", "REPEAT_FREQUENCY"}
DEFAULT_AUTOML_METRIC = "precision_at_25"


def _sorted(vocab: Vocabulary) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ids and, for each old code, its new code."""
    ids = np.asarray(vocab.ids.to_pylist(), dtype=str)
    order = np.argsort(ids, kind="stable")
    rank = np.empty(len(ids), dtype=np.int32)
    rank[order] = np.arange(len(ids), dtype=np.int32)
    return ids[order], rank


def _roles(schema: Schema | None, excluded: set[str]) -> ColumnRoles:
    if schema is None:
        return ColumnRoles()
    fields = [f for f in schema.fields if f.name.upper() not in RESERVED and f.name not in excluded]
    return ColumnRoles(categorical=tuple(f.name for f in fields if f.categorical),
                       textual=tuple(f.name for f in fields if f.textual),
                       numeric=tuple(f.name for f in fields if f.numeric),
                       item_name=next((f.name for f in schema.fields if f.item_name), None))


def _table(key: str, ids: np.ndarray, vocab: Vocabulary, order_of: np.ndarray) -> pa.Table | None:
    """The metadata columns of a vocabulary as a table in sorted-id order."""
    if not vocab.columns:
        return None
    take = pa.array(np.argsort(order_of, kind="stable"))  # new code -> old code
    columns = {key: pa.array(ids)}
    columns.update({name: col.take(take) for name, col in vocab.columns.items() if name != key})
    return pa.table(columns)


def training_data(group: GroupData, schemas: dict[str, Schema], excluded: dict[str, list[str]] | None = None,
                  settings: Settings | None = None) -> TrainingData:
    """The recipe engine's view of a dataset group (with the settings' minimum-data rules)."""
    excluded = {k.upper(): set(v) for k, v in (excluded or {}).items()}
    ix = group.interactions
    user_ids, user_rank = _sorted(group.users)
    item_ids, item_rank = _sorted(group.items)
    if ix is not None and len(ix):
        types = list(ix.event_types)
        codes = ix.event_type.astype(np.int16)
        if (codes < 0).any():
            codes = np.where(codes < 0, len(types), codes).astype(np.int16)
            types.append("")
        user, item = user_rank[ix.user], item_rank[ix.item]
        timestamp, value = ix.timestamp, ix.event_value.astype(np.float32)
    else:
        types, codes = [""], np.zeros(0, np.int16)
        user = item = np.zeros(0, np.int32)
        timestamp, value = np.zeros(0, np.int64), np.zeros(0, np.float32)
    items_table = _table(_key(schemas.get("ITEMS"), "ITEM_ID"), item_ids, group.items, item_rank)
    users_table = _table(_key(schemas.get("USERS"), "USER_ID"), user_ids, group.users, user_rank)
    actions = action_ix = None
    if group.actions is not None:
        action_ids = np.asarray(group.actions.ids.to_pylist(), dtype=str)
        actions = pa.table({"ACTION_ID": pa.array(action_ids),
                            **{k: v for k, v in group.actions.columns.items() if k.upper() != "ACTION_ID"}})
        ai = group.action_interactions
        if ai is not None and len(ai):
            known = ai.user >= 0  # users the interactions vocabulary knows
            etypes = np.asarray(ai.event_types + [""], dtype=str)
            action_ix = pa.table({
                "USER_ID": pa.array(user_ids[user_rank[ai.user[known]]]),
                "ACTION_ID": pa.array(action_ids[ai.item[known]]),
                "EVENT_TYPE": pa.array(etypes[np.where(ai.event_type[known] < 0, len(etypes) - 1,
                                                       ai.event_type[known])]),
                "TIMESTAMP": pa.array(ai.timestamp[known])})
    minimums = Minimums(settings.min_training_interactions, settings.min_training_active_users) \
        if settings is not None else Minimums()
    return TrainingData(minimums=minimums, user_ids=user_ids, item_ids=item_ids, user=user.astype(np.int32), item=item.astype(np.int32),
                        timestamp=timestamp.astype(np.int64), event_type=codes, event_types=np.asarray(types, dtype=str),
                        event_value=value, items=items_table,
                        item_columns=_roles(schemas.get("ITEMS"), excluded.get("ITEMS", set())),
                        users=users_table, user_columns=_roles(schemas.get("USERS"), excluded.get("USERS", set())),
                        actions=actions, action_interactions=action_ix)


def _key(schema: Schema | None, name: str) -> str:
    field = schema.field(name) if schema else None
    return field.name if field else name


def _previous_full(job: JobContext) -> str | None:
    versions = job.store.query("solution-version", parent_arn=job.doc["solutionArn"], statuses=("ACTIVE",))
    full = [v for v in versions if v.doc.get("trainingMode") in ("FULL", "AUTOTRAIN") and v.arn != job.arn]
    return full[0].arn if full else None


def discard_model(job: JobContext) -> None:
    """The cleanup of a training that did not succeed: a model its attempts saved (whole or in
    part) goes."""
    remove_model(job.settings, job.arn)


@job_body("solution-version", isolated=True, cleanup=discard_model)
def train_solution_version(job: JobContext) -> dict:
    started = time.time()
    doc = job.doc
    config = doc.get("solutionConfig") or {}
    datasets = group_datasets(job.store, job.settings, doc["datasetGroupArn"])
    schemas = {kind: ds.schema for kind, ds in datasets.items()}
    if "INTERACTIONS" not in datasets and "ITEMS" not in datasets:
        raise JobFailed("Create failed. The dataset group has no Interactions dataset to train on.")
    job.progress(0, 3, stage="reading data")
    # Events after this point are not in the training data; serving reads them from the log.
    records_until = datasets["INTERACTIONS"].records.last_id(datasets["INTERACTIONS"].arn) \
        if "INTERACTIONS" in datasets else 0
    mark = data_mark(datasets)  # automatic updates compare it
    group = load_group(job.store, job.settings, doc["datasetGroupArn"])
    data = training_data(group, schemas, (config.get("trainingDataConfig") or {}).get("excludedDatasetColumns"),
                         job.settings)
    del group
    job.reached("read")
    read = time.time()
    job.check_cancelled()
    job.progress(1, 3, stage="training")
    previous = None
    if doc.get("trainingMode") == "UPDATE":
        previous_arn = _previous_full(job)
        if previous_arn is None:
            raise JobFailed("trainingMode UPDATE needs an ACTIVE FULL version of the solution.")
        previous = load_model(job.settings, previous_arn)
    candidates = [doc["recipeArn"]] if doc.get("recipeArn") else \
        (config.get("autoMLConfig") or {}).get("recipeList") or \
        ["arn:aws:personalize:::recipe/aws-user-personalization", "arn:aws:personalize:::recipe/aws-popularity-count"]
    metric = (config.get("autoMLConfig") or {}).get("metricName") or DEFAULT_AUTOML_METRIC
    best = None
    for recipe_arn in candidates:
        recipe = RECIPES_BY_ARN[recipe_arn]
        try:
            result = train(recipe.name, data, config, event_type=doc.get("eventType"),
                           perform_hpo=bool(doc.get("performHPO")), training_mode=doc.get("trainingMode") or "FULL",
                           previous=previous, seed=job.arn)
        except TooLittleData as exc:
            raise JobFailed(exc.reason) from None
        except ValueError as exc:
            raise JobFailed(f"Invalid solution configuration: {exc}") from None
        score = result.metrics.get(metric, 0.0)
        if best is None or score > best[0]:
            best = (score, recipe_arn, result)
        job.check_cancelled()
    _, recipe_arn, result = best
    trained = time.time()
    job.progress(2, 3, stage="saving the model")
    job.reached("trained")
    save_model(job.settings, job.arn, result.model)
    job.reached("saved")
    spent = result.seconds
    log.info("%s: %d interactions read in %.1fs, trained (with metrics) in %.1fs (metrics %.1fs, of which the "
             "model they measure %.1fs; the served model %.1fs), saved in %.1fs; %s", job.arn,
             data.n_interactions, read - started, trained - read, spent.get("metrics", 0.0),
             spent.get("metrics_fit", 0.0), spent.get("final", 0.0), time.time() - trained,
             result.tuned_params.get("algorithm"))
    tuned = {"algorithmHyperParameters": {k: str(v) for k, v in
                                          (result.tuned_params.get("algorithmHyperParameters") or {}).items()}}
    changes = {"_metrics": result.metrics, "tunedHPOParams": tuned, "_algorithm": result.tuned_params.get("algorithm"),
               "_trainedRecipe": RECIPES_BY_ARN[recipe_arn].name, "_recordsUntil": records_until, "_dataMark": mark,
               "trainingHours": round((time.time() - started) / 3600.0, 6)}
    if doc.get("performAutoML"):
        job.store.update_doc(doc["solutionArn"], {"autoMLResult": {"bestRecipeArn": recipe_arn}})
    job.progress(3, 3, stage="done")
    return changes
