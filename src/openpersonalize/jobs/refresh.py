"""Automatic model updates (resources-and-lifecycle.md §3), without new versions or metrics.

Every ``model_refresh_seconds`` (two hours by default) the scheduler looks at what is being served:

* the latest FULL (or automatic) solution version of each campaign, when its recipe is
  User-Personalization (v1, v2, the legacy HRNN names) or Next-Best-Action: the items and users
  that arrived since it was trained are folded into its model (``trainingMode`` UPDATE's
  ``Algorithm.update``), so new items can be recommended (exploration) at once; Trending-Now
  versions have their trends counted again;
* recommenders: Top picks for you and Recommended for you fold new items in the same way, and
  every recommender is retrained from scratch ``recommender_retrain_days`` (7) after its last
  training.

A fold-in happens only when the dataset group received data since the model was trained (the
group's *data mark*: each dataset's bulk-file generation and newest real-time record); Trending-Now
recounts and the weekly retraining run on schedule. A refresh is a job like any other (a hidden
``model-refresh`` resource, claimed by one worker, resumed after a crash). It writes a new model
folder next to the old one and points the trained resource's ``_modelArn`` at it; batch jobs
started afterwards load it, and campaigns switch to it within their next background view rebuild
(``view_refresh_seconds``, 30 s), request by request, without a failed request. The two previous
folders are kept for jobs still reading them.
"""

from __future__ import annotations

import logging
import time

from ..data.interactions import load_group
from ..data.rows import data_mark, group_datasets
from ..recipes.base import TooLittleData
from ..recipes.capabilities import FOLD_IN, REFIT
from ..recipes.registry import capabilities, served_recipe, use_case
from ..recipes.training import train
from ..store.models import load_model, model_arn_of, model_subfolders, remove_model, save_model
from .contract import job_body
from .recommenders import train_use_case, training_stamp
from .contract import JobContext, JobFailed
from .training import training_data

log = logging.getLogger("openpersonalize.refresh")

KEEP_FOLDERS = 3  # the current model folder and the two before it
# A served model takes in new data as its recipe declares (Capabilities.refresh): folded in
# (trainingMode UPDATE) or fitted again (cheap recipes); other recipes wait for a retraining.
MODES = {FOLD_IN: "update", REFIT: "full"}


def _served_versions(store) -> dict[str, object]:
    """Solution versions that ACTIVE campaigns serve, by ARN (``$LATEST`` resolved)."""
    out = {}
    for campaign in store.query("campaign", statuses=("ACTIVE",)):
        arn = campaign.doc.get("solutionVersionArn") or ""
        if arn.endswith("/$LATEST"):
            latest = store.query("solution-version", parent_arn=arn[: -len("/$LATEST")], statuses=("ACTIVE",), limit=1)
            version = latest[0] if latest else None
        else:
            version = store.get(arn)
        if version is not None and version.status == "ACTIVE":
            out[version.arn] = version
    return out


def _latest_full(store, version) -> bool:
    """Only the newest FULL (or automatic) version of a solution is refreshed."""
    for v in store.query("solution-version", parent_arn=version.doc["solutionArn"], statuses=("ACTIVE",)):
        if v.doc.get("trainingMode") in ("FULL", "AUTOTRAIN"):
            return v.arn == version.arn
    return False


def run_due(store, settings, now: float | None = None) -> list[str]:
    """Queue the refreshes that are due; returns the ARNs of the refresh jobs."""
    now = time.time() if now is None else now
    period = settings.model_refresh_seconds
    if period <= 0:
        return []
    queued = []
    targets: list[tuple[object, str]] = []
    for version in _served_versions(store).values():
        refresh = served_recipe(version.doc).capabilities.refresh
        if refresh is not None and _latest_full(store, version):
            targets.append((version, MODES[refresh]))
    retrain = settings.recommender_retrain_days * settings.auto_training_day_seconds
    for rec in store.query("recommender", statuses=("ACTIVE",)):
        refresh = capabilities(rec.doc["recipeArn"]).refresh  # the use case's recipe's
        trained_at = rec.doc.get("_trainedAt") or rec.created
        if now >= trained_at + retrain:
            targets.append((rec, "full"))
        elif refresh is not None:
            targets.append((rec, MODES[refresh]))
    for target, mode in targets:
        due = max(target.doc.get("_nextRefresh") or 0.0, (target.doc.get("_refreshedAt") or target.created) + period)
        if now < due:
            continue
        if mode == "update" and target.doc.get("_dataMark") == data_mark(
                group_datasets(store, settings, target.group_arn)):
            continue  # nothing new since the model was trained: nothing to write either
        if any(r.status in ("CREATE PENDING", "CREATE IN_PROGRESS")
               for r in store.query("model-refresh", parent_arn=target.arn)):
            continue
        store.update_doc(target.arn, {"_nextRefresh": now + period})  # also the retry time if it fails
        for old in store.query("model-refresh", parent_arn=target.arn):
            store.delete(old.arn)  # finished refreshes: only the newest is kept
        arn = f"{target.arn}/refresh/{int(now * 1000)}"
        store.insert(arn=arn, kind="model-refresh", name=arn.rsplit("/", 1)[1],
                     doc={"targetArn": target.arn, "mode": mode, "status": "CREATE PENDING"},
                     status="CREATE PENDING", group_arn=target.group_arn, parent_arn=target.arn, job=True)
        queued.append(arn)
        log.info("%s of %s queued as %s", "retraining" if mode == "full" else "automatic update", target.arn, arn)
    return queued


@job_body("model-refresh", isolated=True)
def refresh_model(job: JobContext) -> dict:
    target = job.store.get(job.doc["targetArn"])
    if target is None or target.status != "ACTIVE":
        return {}  # deleted or replaced meanwhile: nothing to refresh
    started = time.time()
    mode = job.doc["mode"]
    group_arn = target.group_arn
    datasets = group_datasets(job.store, job.settings, group_arn)
    if "INTERACTIONS" not in datasets:
        raise JobFailed(f"The dataset group of {target.arn} has no Interactions dataset any more.")
    mark = data_mark(datasets)
    records_until = datasets["INTERACTIONS"].records.last_id(datasets["INTERACTIONS"].arn)
    schemas = {kind: ds.schema for kind, ds in datasets.items()}
    if target.kind == "recommender" and mode == "full":  # the weekly retraining
        changes = train_use_case(job, target.arn, target.doc)
        return _point_at(job, target, changes["_modelArn"], {**changes, "_refreshedAt": time.time()},
                         started, data_size=None)
    if target.kind == "recommender":
        case = use_case(target.doc["recipeArn"])
        recipe, config, event_type = case.recipe, {}, case.event_type
        excluded = None
    else:
        recipe = served_recipe(target.doc).name
        config = dict(target.doc.get("solutionConfig") or {})
        tuned = (target.doc.get("tunedHPOParams") or {}).get("algorithmHyperParameters") or {}
        config["algorithmHyperParameters"] = {**(config.get("algorithmHyperParameters") or {}), **tuned}
        config.pop("hpoConfig", None)
        event_type = target.doc.get("eventType")
        excluded = (config.get("trainingDataConfig") or {}).get("excludedDatasetColumns")
    data = training_data(load_group(job.store, job.settings, group_arn), schemas, excluded, job.settings)
    if event_type:  # the data's own spelling of the event type (they match case-insensitively)
        event_type = next((str(t) for t in data.event_types if str(t).lower() == event_type.lower()), event_type)
    previous = load_model(job.settings, model_arn_of(target)) if mode == "update" else None
    try:
        result = train(recipe, data, config, event_type=event_type, training_mode="UPDATE" if previous else "FULL",
                       previous=previous, seed=target.arn, compute_metrics=False)
    except TooLittleData as exc:
        raise JobFailed(exc.reason) from None
    job.check_cancelled()
    model_arn = f"{target.arn}/{training_stamp()}" if target.kind == "recommender" \
        else f"{target.arn}/update-{int(time.time() * 1000)}"
    save_model(job.settings, model_arn, result.model)
    changes = {"_modelArn": model_arn, "_recordsUntil": records_until, "_dataMark": mark, "_refreshedAt": time.time()}
    return _point_at(job, target, model_arn, changes, started, data.n_interactions)


def _point_at(job: JobContext, target, model_arn: str, changes: dict, started: float, data_size) -> dict:
    """Make ``target`` serve ``model_arn`` (unless it stopped being ACTIVE meanwhile)."""
    if job.store.update_doc(target.arn, changes, expect_status=("ACTIVE",)) is None:
        remove_model(job.settings, model_arn)
        return {}
    _forget_old_folders(job, target, model_arn)
    log.info("%s %s in %.1fs%s: now %s", target.arn, "updated" if "_trainedAt" not in changes else "retrained",
             time.time() - started, "" if data_size is None else f" ({data_size} interactions)", model_arn)
    return {}


def _forget_old_folders(job: JobContext, target, current: str) -> None:
    """Remove the model folders of ``target`` older than the newest KEEP_FOLDERS (names sort by
    age), here and in a remote data root. A recommender has one folder per training or update; a
    version keeps its own files and has update-* folders."""
    names = model_subfolders(job.settings, target.arn)
    if target.kind != "recommender":
        names = sorted((n for n in names if n.startswith("update-")), key=lambda n: int(n.split("-", 1)[1]))
    for name in names[:-KEEP_FOLDERS]:
        if f"{target.arn}/{name}" != current:
            remove_model(job.settings, f"{target.arn}/{name}")
