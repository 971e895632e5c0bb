"""Training a domain recommender: each use case is a recipe trained on its event type.

A recommender trains like a solution version, with the recipe and the event type its use case
names (recipes-and-metrics.md §1), and keeps the built-in exclusion the use case promises (items
the user purchased or watched) for serving. Its model lives under the recommender's ARN, one
folder per training.
"""

from __future__ import annotations

import time

from ..data.interactions import load_group
from ..data.rows import data_mark, group_datasets
from ..recipes.base import TooLittleData
from ..recipes.registry import use_case
from ..recipes.training import train
from ..store.models import save_model
from .contract import job_body
from .contract import JobContext, JobFailed
from .training import training_data

MIN_EVENTS = 1000


def training_stamp() -> str:
    """A recommender model folder's name: the UTC time to the millisecond (names sort by age)."""
    now = time.time()
    return f"{time.strftime('%Y%m%d%H%M%S', time.gmtime(now))}{int(now * 1000) % 1000:03d}"


@job_body("recommender", isolated=True)
def train_recommender(job: JobContext) -> dict:
    return train_use_case(job, job.arn, job.doc)


def train_use_case(job: JobContext, arn: str, doc: dict) -> dict:
    """Train recommender ``arn`` (its description ``doc``) from scratch; returns the members of
    its record that name the new model (also used by the weekly retraining, jobs/refresh.py)."""
    name = doc["recipeArn"].rsplit("/", 1)[1]
    case = use_case(name)
    recipe, wanted, exclude = case.recipe, case.event_type, case.excluded_event_types
    datasets = group_datasets(job.store, job.settings, doc["datasetGroupArn"])
    mark = data_mark(datasets)
    if "INTERACTIONS" not in datasets:
        raise JobFailed("Create failed. The dataset group has no Interactions dataset.")
    if case.needs_items and "ITEMS" not in datasets:
        raise JobFailed(f"Create failed. {name} needs an Items dataset.")
    schemas = {kind: ds.schema for kind, ds in datasets.items()}
    records_until = datasets["INTERACTIONS"].records.last_id(datasets["INTERACTIONS"].arn)
    data = training_data(load_group(job.store, job.settings, doc["datasetGroupArn"]), schemas, settings=job.settings)
    event_type = None
    if wanted:
        # Event types match case-insensitively; train on the data's own spelling.
        event_type = next((str(t) for t in data.event_types if str(t).lower() == wanted.lower()), wanted)
        count = int((data.event_type == list(map(str, data.event_types)).index(event_type)).sum()) \
            if event_type in map(str, data.event_types) else 0
        if count < MIN_EVENTS:
            raise JobFailed(f"Dataset has fewer than {MIN_EVENTS} interactions after filtering by event type: "
                            f"{wanted}")
    model_arn = f"{arn}/{training_stamp()}"
    try:
        result = train(recipe, data, {}, event_type=event_type, seed=arn)
    except TooLittleData as exc:
        raise JobFailed(exc.reason) from None
    save_model(job.settings, model_arn, result.model)
    excluded = [next((str(t) for t in data.event_types if str(t).lower() == e.lower()), e) for e in exclude]
    return {"_modelArn": model_arn, "_trainedRecipe": recipe, "_recordsUntil": records_until,
            "_excludeEventTypes": excluded, "modelMetrics": result.metrics, "_dataMark": mark,
            "_trainedAt": time.time()}
