"""Replay: score solution versions on the events that arrived after their training data, before
switching a campaign to one of them (``openpersonalize evaluate``).

The hold-out is in time: the real-time events (PutEvents) that arrived after ``since``, by default
those after the last record any of the compared versions read when it trained, so that no version
has seen them. For each user the model knows who has such events, the version recommends 25 items from
what it learned of the user (as GetRecommendations would, without filter or exploration), and
the items the user then interacted with are the truth. The metrics are GetSolutionMetrics' names
(evaluation.ranking_metrics), so the numbers read like the ones a team already knows; versions
are ranked by NDCG@10.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from .data.rows import group_datasets
from .errors import InvalidInputException, ResourceNotFoundException
from .evaluation import K, ranking_metrics
from .recipes.registry import capabilities
from .store.models import load_model

MAX_USERS = 5000  # users scored at most (a seeded sample beyond)
RANKED_BY = "normalized_discounted_cumulative_gain_at_10"


def _versions(store, arns: list[str]) -> list:
    rows = []
    for arn in arns:
        row = store.get(arn)
        if row is None or row.kind != "solution-version":
            raise ResourceNotFoundException(f"No solution version {arn!r}.")
        if row.status != "ACTIVE":
            raise InvalidInputException(f"Invalid solutionVersionArn: {arn} is {row.status}; only ACTIVE versions "
                                        "can be evaluated.")
        recipe = row.doc.get("_trainedRecipe") or row.doc.get("recipeArn", "").rsplit("/", 1)[-1]
        if not capabilities(recipe).runtime_call == "GetRecommendations" or capabilities(recipe).needs_item:
            raise InvalidInputException(f"Invalid solutionVersionArn: {arn} was trained with {recipe}, which does "
                                        "not recommend items for users; evaluate compares USER_PERSONALIZATION "
                                        "versions.")
        rows.append(row)
    groups = {r.group_arn for r in rows}
    if len(groups) != 1:
        raise InvalidInputException("Invalid solutionVersionArn: the versions compared must belong to one dataset "
                                    f"group, not {len(groups)}.")
    return rows


def later_events(store, settings, group_arn: str, since: float | None, until: float | None,
                 after_id: int = 0) -> dict[str, list[str]]:
    """User ID -> item IDs of the real-time events that arrived in ``(since, until]`` (and after
    record ``after_id``), in order."""
    ds = group_datasets(store, settings, group_arn).get("INTERACTIONS")
    out: dict[str, list[str]] = defaultdict(list)
    if ds is None:
        return out
    user_column, item_column = ds.column("USER_ID"), ds.column("ITEM_ID")
    for batch in ds.iter_put(after_id=after_id):
        created = batch.column("_created").to_pylist()
        users, items = batch.column(user_column).to_pylist(), batch.column(item_column).to_pylist()
        for t, u, i in zip(created, users, items):
            if (since is None or t > since) and (until is None or t <= until) and u and i:
                out[str(u)].append(str(i))
    return out


def evaluate(store, settings, version_arns: list[str], since: float | None = None, until: float | None = None,
             seed: int = 0) -> dict:
    if not version_arns:
        raise InvalidInputException("Invalid solutionVersionArn: name at least one version.")
    rows = _versions(store, version_arns)
    # By default: the records after the last one any of the versions read when it trained.
    after_id = max(int(r.doc.get("_recordsUntil") or 0) for r in rows) if since is None else 0
    events = later_events(store, settings, rows[0].group_arn, since, until, after_id)
    if since is None:
        since = max(r.created for r in rows)
    result = {"since": since, "until": until, "usersWithEvents": len(events),
              "events": sum(len(v) for v in events.values()), "versions": []}
    for row in rows:
        model = load_model(settings, row.arn)
        users = sorted(events)
        index = model.user_index(users) if users else np.empty(0, np.int64)
        known = [(u, int(k)) for u, k in zip(users, index) if k >= 0]
        if len(known) > MAX_USERS:
            pick = np.random.default_rng(seed).choice(len(known), MAX_USERS, replace=False)
            known = [known[k] for k in sorted(pick)]
        lists, truths = [], []
        for user, k in known:
            truth = {int(i) for i in model.item_index(events[user]) if i >= 0}
            if not truth:
                continue
            idx, _ = model.recommend(k, K)
            lists.append([int(i) for i in idx if i >= 0])
            truths.append(truth)
        result["versions"].append({"solutionVersionArn": row.arn,
                                   "recipe": row.doc.get("_trainedRecipe") or row.doc.get("recipeArn"),
                                   "usersScored": len(lists), "metrics": ranking_metrics(lists, truths, model.n_items)})
    result["versions"].sort(key=lambda v: -(v["metrics"].get(RANKED_BY) or 0.0))
    result["rankedBy"] = RANKED_BY
    return result
