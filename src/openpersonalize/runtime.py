"""personalize-runtime: GetRecommendations, GetPersonalizedRanking, GetActionRecommendations.

Each request resolves its campaign (or recommender) to a model deployed in this process (held
by ``ctx.state``, state.py), reads the events the user sent since training so they count at once, applies the filter and promotion, and shapes the
answer as AWS does: scores only for the recipes that have them, ``reason`` only for -v2.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np

from .attribution import source_code
from .control.base import Context, kind_of_arn
from .errors import InvalidInputException, ResourceNotFoundException
from .recipes.factorization import Exploration
from .recipes.registry import capabilities
from .recipes.scoring import score_value
from .serving import builtin_exclusion, deployment, filter_mask, history_of, recent_events


def _shares(pairs: list[tuple[int, float]], share: float) -> list[tuple[int, float]]:
    """``(item, score)`` pairs rescaled so that their scores sum to ``share`` (equal parts when the
    scores sum to nothing)."""
    total = sum(x for _, x in pairs if math.isfinite(x) and x > 0)
    if total <= 0:
        return [(i, share / len(pairs)) for i, _ in pairs]
    return [(i, share * max(x, 0.0) / total if math.isfinite(x) else 0.0) for i, x in pairs]


def _popular_placeholders(model, idx, scores, reasons, mask: np.ndarray, n: int):
    """-v2's rule when a filter leaves fewer than ``n`` items: popular items that pass the filter
    fill the list, with the reason "Popular item" and no score (AWS: "They don't have a relevance
    score for the user")."""
    idx = np.asarray(idx, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    keep = idx >= 0
    idx, scores = idx[keep], scores[keep]
    reasons = [r for r, k in zip(reasons, keep.tolist()) if k] if reasons else [[] for _ in range(len(idx))]
    popularity = getattr(model, "arrays", {}).get("popularity") if hasattr(model, "arrays") else None
    if len(idx) >= n or popularity is None:
        return idx, scores, reasons
    allowed = np.asarray(mask, dtype=bool).copy()
    allowed[idx] = False
    order = np.argsort(-np.where(allowed, np.asarray(popularity, dtype=np.float64), -np.inf), kind="stable")
    extra = [int(i) for i in order[: n - len(idx)] if allowed[i]]
    return (np.concatenate([idx, np.asarray(extra, dtype=np.int64)]), np.concatenate([scores, np.full(len(extra), np.nan)]),
            reasons + [["Popular item"]] * len(extra))


def _recommendation_id(arn: str) -> str:
    """AWS's shape (RID-...-CID-...), kept within the 40 characters PutEvents accepts back. The
    CID part names the campaign or recommender (attribution.source_code), so that events carrying
    the id are attributed to it."""
    raw = os.urandom(11).hex()
    return f"RID-{raw[:2]}-{raw[2:6]}-{raw[6:10]}-{raw[10:22]}-CID-{source_code(arn)}"


def _served(ctx: Context, p: dict):
    """The deployment behind ``campaignArn`` or ``recommenderArn``, and the serving resource."""
    campaign, recommender = p.get("campaignArn"), p.get("recommenderArn")
    if bool(campaign) == bool(recommender):
        raise InvalidInputException("Invalid request: give exactly one of campaignArn and recommenderArn.")
    arn = campaign or recommender
    kind = "campaign" if campaign else "recommender"
    row = ctx.store.get_recent(arn, ctx.settings.runtime_row_cache_seconds)
    if row is None or row.kind != kind:
        raise ResourceNotFoundException(f"{kind.capitalize()} {arn} does not exist.")
    if row.status != "ACTIVE":
        raise ResourceNotFoundException(f"{kind.capitalize()} {arn} is not active (it is {row.status}).")
    if kind == "recommender":
        version_arn, trained = row.doc.get("_modelArn"), row
    else:
        version_arn = row.doc["solutionVersionArn"]
        if version_arn.endswith("/$LATEST"):
            latest = ctx.store.query("solution-version", parent_arn=version_arn[: -len("/$LATEST")],
                                     statuses=("ACTIVE",), limit=1)
            if not latest:
                raise ResourceNotFoundException(f"Campaign {arn} follows the latest solution version, and "
                                                "none is ACTIVE yet.")
            version_arn = latest[0].arn
        def trained():  # read only when this process has not deployed the version yet
            found = ctx.store.get(version_arn)
            if found is None:
                raise ResourceNotFoundException(f"Solution version {version_arn} does not exist.")
            return found
    if not version_arn:
        raise ResourceNotFoundException(f"{kind.capitalize()} {arn} has no trained model.")
    return deployment(ctx.store, ctx.settings, arn, version_arn, trained, ctx.state), row


CONTEXT_EXCLUDED = ("USER_ID", "ITEM_ID", "TIMESTAMP")


def _check_context(ctx: Context, dep, p: dict) -> None:
    """``context`` names Interactions metadata columns (runtime-and-events §2). The recipes here
    do not model context, so a valid one changes nothing; an unknown key is refused rather than
    silently ignored."""
    context = p.get("context")
    if not context:
        return
    schema = dep.view(ctx.store, ctx.settings).schemas.get("INTERACTIONS")
    allowed = [f.name for f in schema.fields if f.name.upper() not in CONTEXT_EXCLUDED] if schema else []
    known = {a.upper() for a in allowed}
    for key in context:
        if key.upper() not in known:
            raise InvalidInputException(
                f"Invalid context: '{key}' is not a metadata column of the Interactions dataset "
                f"(its columns: {', '.join(allowed) or 'none'}).")


def _metadata_columns(p: dict, row, dep, limit_items: int, limit_key: str) -> list[str]:
    columns = (p.get("metadataColumns") or {})
    if not columns:
        return []
    if set(columns) - {"ITEMS"}:
        raise InvalidInputException(f"Invalid metadataColumns: only the key ITEMS is allowed, not "
                                    f"{', '.join(sorted(set(columns) - {'ITEMS'}))}.")
    config = row.doc.get("campaignConfig") or row.doc.get("recommenderConfig") or {}
    if not config.get("enableMetadataWithRecommendations") and not capabilities(dep.recipe).metadata_by_default:
        raise InvalidInputException(f"Invalid metadataColumns: {row.arn} was not created with "
                                    "enableMetadataWithRecommendations.")
    if limit_items > 50:
        raise InvalidInputException(f"Invalid {limit_key}: {limit_items} is more than 50, the limit when "
                                    "metadataColumns is given.")
    return list(columns["ITEMS"])


def _metadata(ctx: Context, dep, items: list[int], columns: list[str]) -> list[dict]:
    """Per item, the requested Items columns as strings (null columns left out)."""
    view = dep.view(ctx.store, ctx.settings)
    schema = view.schemas.get("ITEMS")
    found = {}
    for name in columns:
        field = schema.field(name) if schema is not None else None
        if field is None:
            raise InvalidInputException(f"Invalid metadataColumns: ITEMS has no column {name}.")
        found[name] = field.name
    out = []
    for i in items:
        meta = {}
        for requested, actual in found.items():
            value = view.item_columns[actual][i].as_py()
            if value is not None:
                meta[requested] = str(value)
        out.append(meta)
    return out


class RuntimeOperations:
    """Runtime operations, one method per boto3 call."""

    def get_recommendations(self, ctx: Context, p: dict) -> dict:
        dep, row = _served(ctx, p)
        _check_context(ctx, dep, p)
        can = capabilities(dep.recipe)
        if can.runtime_call != "GetRecommendations":
            raise InvalidInputException(f"Invalid request: {row.arn} serves a {dep.recipe_type} model; use "
                                        f"{can.runtime_call}.")
        n = p.get("numResults") or 25
        columns = _metadata_columns(p, row, dep, n if p.get("metadataColumns") else 0, "numResults")
        if n > 500:
            raise InvalidInputException(f"Invalid numResults: {n} is more than 500.")
        user_id = p.get("userId")
        model = dep.model
        current_item = None
        if can.needs_item:
            if not p.get("itemId"):
                raise InvalidInputException(f"Invalid request: {row.arn} serves related items; itemId is required.")
            current_item = int(model.item_index([p["itemId"]])[0])
        elif not user_id and can.needs_user:
            raise InvalidInputException(f"Invalid request: {row.arn} recommends items for users; userId is required.")
        user_index = model.user_position(user_id) if user_id else -1
        events = recent_events(ctx.state, dep, user_id, max_age=ctx.settings.runtime_events_cache_seconds) \
            if user_id else []
        mask = builtin_exclusion(ctx.store, ctx.settings, dep, user_id, user_index, events)
        if p.get("filterArn"):
            requested = filter_mask(ctx.store, ctx.settings, dep, p["filterArn"], p.get("filterValues"), user_id,
                                    user_index, events,
                                    current_item if current_item is not None and current_item >= 0 else None)
            mask = requested if mask is None else mask & requested
        idx, scores, explored = self._rank_items(dep, row, user_index, events, current_item, n, mask)
        reasons = [["Exploration"] if int(i) in explored else [] for i in idx] if explored else None
        if can.reasons and p.get("filterArn") and mask is not None:
            idx, scores, reasons = _popular_placeholders(model, idx, scores, reasons, mask, n)
        promoted: dict[int, str] = {}
        if p.get("promotions"):
            idx, scores, reasons, promoted = self._promote(ctx, dep, row, p, user_id, user_index, events,
                                                           current_item, n, mask)
        return self._answer(ctx, dep, idx, scores, reasons, promoted, columns)

    def _rank_items(self, dep, row, user_index, events, current_item, n, mask):
        """Item indexes and scores, in descending score order, and the set of items exploration
        placed (empty when the campaign does not explore)."""
        model = dep.model
        can = capabilities(dep.recipe)
        if can.needs_item:
            influence = (row.doc.get("campaignConfig") or {}).get("rankingInfluence")
            extra = {"ranking_influence": influence} if influence and can.ranking_influence else {}
            return (*model.similar_items(current_item, n, candidates_mask=mask, **extra), set())
        exploration = None
        if can.exploration:
            exploration = Exploration.from_config((row.doc.get("campaignConfig") or {}).get("itemExplorationConfig"))
        target = history_of(dep, user_index, events) if events else user_index
        kwargs = {"exploration": exploration} if exploration is not None else {}
        idx, scores = model.recommend(target, n, candidates_mask=mask, **kwargs)
        explored = exploration.explored if exploration is not None else None
        return idx, scores, set() if explored is None else set(np.asarray(explored).tolist())

    def _promote(self, ctx, dep, row, p, user_id, user_index, events, current_item, n, mask):
        promotion = p["promotions"][0]
        pct = promotion.get("percentPromotedItems") or 0
        if not promotion.get("filterArn") or pct <= 0:
            raise InvalidInputException("Invalid promotions: a promotion needs a filterArn and a "
                                        "percentPromotedItems from 1 to 100.")
        slots = max(1, n * pct // 100)
        promo_mask = filter_mask(ctx.store, ctx.settings, dep, promotion["filterArn"], promotion.get("filterValues"),
                                 user_id, user_index, events, current_item)
        p_idx, p_scores, _ = self._rank_items(dep, row, user_index, events, current_item, slots, promo_mask)
        promoted_pairs = [(int(i), float(x)) for i, x in zip(p_idx, p_scores) if i >= 0][:slots]
        allowed = np.ones(dep.model.n_items, bool) if mask is None else np.array(mask, dtype=bool)
        allowed[[i for i, _ in promoted_pairs]] = False
        rest_idx, rest_scores, explored = self._rank_items(dep, row, user_index, events, current_item,
                                                           n - len(promoted_pairs), allowed)
        rest = [(int(i), float(x)) for i, x in zip(rest_idx, rest_scores) if i >= 0]
        # The list is a mixture: ``pct`` of it drawn from the promoted ranking, the rest from the
        # plain one. An item's score is its share of the list under that mixture (its score over
        # its part's total, times that part's share), and the list is in descending order of it,
        # as the API promises: a promoted item lands where its share puts it (AWS places promoted
        # items at random positions; docs/runtime.md).
        share = pct / 100.0 if rest else 1.0
        mixed = _shares(promoted_pairs, share) + _shares(rest, 1.0 - share)
        flags = [True] * len(promoted_pairs) + [False] * len(rest)
        order = sorted(range(len(mixed)), key=lambda k: (-mixed[k][1], k))
        name = promotion.get("name") or "promotion"
        out_idx = np.array([mixed[k][0] for k in order], dtype=np.int64)
        out_scores = np.array([mixed[k][1] for k in order], dtype=np.float64)
        out_reasons = [["Promoted item"] if flags[k] else ["Exploration"] if mixed[k][0] in explored else []
                       for k in order]
        promoted = {mixed[k][0]: name for k in order if flags[k]}
        return out_idx, out_scores, out_reasons, promoted

    def _answer(self, ctx, dep, idx, scores, reasons, promoted, columns) -> dict:
        # A few dozen entries: plain Python lists beat numpy's per-call overhead here.
        idx = np.asarray(idx, dtype=np.int64)
        keep = idx >= 0
        if not keep.all():
            scores = None if scores is None else np.asarray(scores)[keep]
            reasons = [r for r, k in zip(reasons, keep.tolist()) if k] if reasons else reasons
            idx = idx[keep]
        items = idx.tolist()
        names = np.asarray(dep.model.item_ids)[idx].tolist()  # one gather
        can = capabilities(dep.recipe)
        scored = can.scored and ":recommender/" not in dep.key and scores is not None
        # recommenders return no scores; the same 6 significant digits as batch output
        values = [score_value(x) for x in np.asarray(scores, dtype=np.float64).tolist()] if scored else None
        metadata = _metadata(ctx, dep, items, columns) if columns else None
        with_reason = can.reasons
        out = []
        for k, i in enumerate(items):
            entry = {"itemId": str(names[k])}
            if scored and math.isfinite(values[k]):
                entry["score"] = values[k]
            if promoted and i in promoted:
                entry["promotionName"] = promoted[i]
            if metadata is not None and metadata[k]:
                entry["metadata"] = metadata[k]
            if with_reason:
                entry["reason"] = reasons[k] if reasons else []
            out.append(entry)
        return {"itemList": out, "recommendationId": _recommendation_id(dep.key)}

    def get_personalized_ranking(self, ctx: Context, p: dict) -> dict:
        dep, row = _served(ctx, p)
        _check_context(ctx, dep, p)
        can = capabilities(dep.recipe)
        if can.runtime_call != "GetPersonalizedRanking":
            raise InvalidInputException(f"Invalid request: {row.arn} serves a {dep.recipe_type} model; "
                                        "GetPersonalizedRanking needs a PERSONALIZED_RANKING campaign.")
        inputs = list(dict.fromkeys(p["inputList"]))  # duplicates: the first occurrence counts
        columns = _metadata_columns(p, row, dep, len(inputs) if p.get("metadataColumns") else 0, "inputList")
        if len(inputs) > 500:
            raise InvalidInputException(f"Invalid inputList: {len(inputs)} items; at most 500.")
        user_id = p["userId"]
        model = dep.model
        user_index = model.user_position(user_id)
        events = recent_events(ctx.state, dep, user_id, max_age=ctx.settings.runtime_events_cache_seconds)
        index = model.item_index(inputs).astype(np.int64)
        known = index >= 0
        mask = None
        if p.get("filterArn"):
            mask = filter_mask(ctx.store, ctx.settings, dep, p["filterArn"], p.get("filterValues"), user_id,
                               user_index, events)
        target = history_of(dep, user_index, events) if events else user_index
        order, scores = model.rank(target, index[known]) if known.any() else (np.empty(0, int), np.empty(0))
        ranked = [(int(i), float(s)) for i, s in zip(order, scores) if mask is None or mask[int(i)]]
        items = [i for i, _ in ranked]
        metadata = _metadata(ctx, dep, items, columns) if columns else None
        out = []
        for k, (i, s) in enumerate(ranked):
            entry = {"itemId": str(model.item_ids[i])}
            if can.scored:
                entry["score"] = score_value(s)
            if metadata is not None and metadata[k]:
                entry["metadata"] = metadata[k]
            if can.reasons:
                entry["reason"] = []
            out.append(entry)
        out += [{"itemId": item} for item, k in zip(inputs, known) if not k]  # unseen items: last, no score
        return {"personalizedRanking": out, "recommendationId": _recommendation_id(dep.key)}

    def get_action_recommendations(self, ctx: Context, p: dict) -> dict:
        dep, row = _served(ctx, p)
        if capabilities(dep.recipe).runtime_call != "GetActionRecommendations":
            raise InvalidInputException(f"Invalid request: {row.arn} serves a {dep.recipe_type} model; "
                                        "GetActionRecommendations needs a Next-Best-Action campaign.")
        if not p.get("userId"):
            raise InvalidInputException("Invalid userId: it is required for action recommendations.")
        n = p.get("numResults") or 5
        model = dep.model
        user_index = model.user_position(p["userId"])
        mask = None
        if p.get("filterArn"):
            mask = filter_mask(ctx.store, ctx.settings, dep, p["filterArn"], p.get("filterValues"), p["userId"],
                               user_index, [])
        view = dep.view(ctx.store, ctx.settings)
        row = int(view.user_rows(np.array([user_index]), [p["userId"]])[0])
        idx, scores = model.actions_for_user(user_index, n, candidates_mask=mask, now=time.time(),
                                             taken_at=view.action_taken_at(row))
        ids = model.arrays["action_ids"] if "action_ids" in model.arrays else model.item_ids
        return {"actionList": [{"actionId": str(ids[int(i)]), "score": score_value(float(s))}
                               for i, s in zip(idx, scores) if i >= 0],
                "recommendationId": _recommendation_id(dep.key)}


__all__ = ["RuntimeOperations", "kind_of_arn"]


def explain(ctx: Context, p: dict) -> dict:
    """Why a campaign or recommender puts ``itemId`` in ``userId``'s list (the extension behind
    ``GET /openpersonalize/explain`` and ``openpersonalize explain``; not an AWS operation).

    ``rule`` says what placed the item: ``exploration`` (a fresh item given an exploring slot),
    ``popularity`` (the user has no history: the cold-start answer) or ``model``; for the model, the
    history items that contributed most to its score, each with its additive part (see
    ``CollaborativeModel.explain``), including the real-time events the list would use."""
    dep, row = _served(ctx, p)
    for member in ("userId", "itemId"):
        if not p.get(member):
            raise InvalidInputException(f"Invalid {member}: it is required.")
    model = dep.model
    item = int(model.item_index([p["itemId"]])[0])
    if item < 0:
        raise ResourceNotFoundException(f"Item {p['itemId']!r} is not in the model of {row.arn}.")
    user_index = model.user_position(p["userId"])
    events = recent_events(ctx.state, dep, p["userId"], max_age=ctx.settings.runtime_events_cache_seconds)
    history = history_of(dep, user_index, events) if (events or user_index >= 0) else np.empty(0, np.int64)
    out = {"arn": row.arn, "userId": p["userId"], "itemId": p["itemId"], "recipe": dep.recipe,
           "historyLength": int(len(history)), "contributions": []}
    can = capabilities(dep.recipe)
    if can.exploration and not can.needs_item:
        exploring = Exploration.from_config((row.doc.get("campaignConfig") or {}).get("itemExplorationConfig"))
        try:
            n = min(max(int(p.get("numResults") or 25), 1), 500)
        except (TypeError, ValueError):
            raise InvalidInputException(f"Invalid numResults: {p.get('numResults')!r} is not a whole number "
                                        "from 1 to 500.") from None
        model.recommend(history if len(history) else user_index, n, exploration=exploring)
        if exploring.explored is not None and item in set(np.asarray(exploring.explored).tolist()):
            out.update(rule="exploration", explanation=(
                f"Exploration: {p['itemId']} is a fresh item (created within {exploring.age_cutoff_days:g} days) "
                "given one of the campaign's exploring slots, ranked by likeness to the user's history."))
            return out
    if not len(history):
        out.update(rule="popularity", explanation="The user has no history: the list is the cold-start answer "
                                                  "(popular items).")
        return out
    if not hasattr(model, "explain"):
        out.update(rule="model", explanation=f"{dep.recipe} gives no per-history explanation.")
        return out
    found = model.explain(history, item)
    top = found["parts"][:10]
    names = model.item_ids[[h for h, _ in top]].tolist() if top else []
    out.update(rule="model", score=found["score"], boost=found["boost"],
               contributions=[{"itemId": str(name), "contribution": part} for name, (_, part) in zip(names, top)],
               explanation=(f"{p['itemId']} scores {found['score']:.4g} for this user; the history items that "
                            "contributed most are listed, each with its part of the score."))
    return out
