"""Solution metrics (GetSolutionMetrics) by the hold-out protocol of recipes-and-metrics.md §5.1.

``solution_metrics`` trains a separate model on the training part of the split and measures it;
the metric definitions are plain functions over ranked lists so that they can be checked alone.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from .config import usable_cores
from .ordering import stable_order
from .recipes.base import Model, TrainingData
from .recipes.popularity import trend_scores
from .recipes.scoring import topk_rows

K = 25
CUTOFFS = (5, 10, 25)
NEGATIVES = 100  # PERSONALIZED_RANKING: ground truth ranked among this many random items
MAX_SEGMENT_ITEMS = 200  # USER_SEGMENTATION: items measured (a seeded sample beyond this)


# -- definitions --------------------------------------------------------------------------------


def precision_at(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    return sum(1 for i in list(ranked)[:k] if i in relevant) / k


def reciprocal_rank_at(ranked: Sequence[int], relevant: set[int], k: int = K) -> float:
    for pos, i in enumerate(list(ranked)[:k], start=1):
        if i in relevant:
            return 1.0 / pos
    return 0.0


def ndcg_at(ranked: Sequence[int], relevant: set[int] | dict[int, float], k: int) -> float:
    """DCG / IDCG with gains 1 (a set) or per-item gains (a dict: event weights)."""
    gains = relevant if isinstance(relevant, dict) else {i: 1.0 for i in relevant}
    dcg = sum(gains.get(i, 0.0) / math.log2(pos + 1) for pos, i in enumerate(list(ranked)[:k], start=1))
    ideal = sorted(gains.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(pos + 1) for pos, g in enumerate(ideal, start=1))
    return dcg / idcg if idcg > 0 else 0.0


def ranking_metrics(lists: Sequence[Sequence[int]], truths: Sequence[set[int]], n_items: int,
                    weights: Sequence[dict[int, float]] | None = None) -> dict[str, float]:
    """The standard keys, averaged over users; ``coverage`` over ``n_items``."""
    out: dict[str, float] = {}
    if not lists:
        return out
    seen = set()
    for r in lists:
        seen.update(int(i) for i in list(r)[:K])
    out["coverage"] = len(seen) / max(n_items, 1)
    # One (users, K) hit matrix gives every binary-relevance metric (the functions above, for
    # thousands of users at once).
    hits = np.zeros((len(lists), K), dtype=bool)
    for u, (r, t) in enumerate(zip(lists, truths)):
        top = list(r)[:K]
        hits[u, :len(top)] = [i in t for i in top]
    n_relevant = np.array([len(t) for t in truths])
    first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0)
    out["mean_reciprocal_rank_at_25"] = float(np.mean(np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0)))
    discount = 1.0 / np.log2(np.arange(2, K + 2))
    for k in CUTOFFS:
        dcg = hits[:, :k] @ discount[:k]
        idcg = np.cumsum(discount[:k])[np.minimum(n_relevant, k) - 1] * (n_relevant > 0)
        out[f"normalized_discounted_cumulative_gain_at_{k}"] = float(
            np.mean(np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1.0), 0.0)))
    for k in CUTOFFS:
        out[f"precision_at_{k}"] = float(np.mean(hits[:, :k].sum(axis=1) / k))
    if weights is not None:
        out["normalized_discounted_cumulative_gain_with_event_weights_at_k"] = float(
            np.mean([ndcg_at(r, w, K) for r, w in zip(lists, weights)]))
    return out


# -- the split ------------------------------------------------------------------------------------


def seed_from(key: str | int) -> int:
    """A reproducible seed from a solution version ARN (or an int)."""
    if isinstance(key, int):
        return key
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little")


def deduplicate(data: TrainingData) -> TrainingData:
    """Drop interactions identical in user, item, time, type and value (§5.1 step 1)."""
    if data.n_interactions == 0:
        return data
    value = np.nan_to_num(data.event_value, nan=-1e30).view(np.int32)
    keys = (value, data.event_type, data.timestamp, data.item, data.user)
    # One sort of a 64-bit mix of the keys finds the candidates (equal mixes); only those rows
    # are sorted on the keys themselves, so a collision of mixes never merges distinct rows.
    mixed = np.zeros(data.n_interactions, dtype=np.uint64)
    for k, factor in zip(keys, (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                                0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD)):
        mixed = (mixed ^ k.astype(np.int64).view(np.uint64)) * np.uint64(factor)
        mixed ^= mixed >> np.uint64(29)
    sorted_mix = np.sort(mixed)  # values, not an argsort: ten times faster, and rows are rarely identical
    repeated = sorted_mix[1:][sorted_mix[1:] == sorted_mix[:-1]]
    if not len(repeated):
        return data
    candidates = np.flatnonzero(np.isin(mixed, repeated))
    sub = candidates[np.lexsort(tuple(k[candidates] for k in keys))]
    same = np.ones(len(sub) - 1, bool)
    for k in keys:
        ks = k[sub]
        same &= ks[1:] == ks[:-1]
    if not same.any():
        return data
    keep = np.ones(data.n_interactions, bool)
    keep[sub[1:][same]] = False
    return data.subset(keep)


@dataclass
class HoldOut:
    """Training part plus, per test user, history (item indices, oldest first) and truth."""

    train: TrainingData
    users: np.ndarray
    histories: list[np.ndarray]
    truths: list[set[int]]
    truth_events: list[dict[int, int]]  # item -> event type code of its ground-truth event


def user_holdout(data: TrainingData, seed: int, share: float = 0.1) -> HoldOut:
    """§5.1: 10 % of users with >= 2 interactions; their newest max(1, round(0.1 n)) interactions
    (distinct items) are the truth, the rest their history; the other users train."""
    counts = np.bincount(data.user, minlength=data.n_users)
    eligible = np.flatnonzero(counts >= 2)
    rng = np.random.default_rng(seed)
    n_test = max(1, int(round(share * len(eligible)))) if len(eligible) else 0
    test = np.sort(rng.choice(eligible, size=n_test, replace=False)) if n_test else np.empty(0, np.int64)
    is_test = np.zeros(data.n_users, bool)
    is_test[test] = True
    # The test users' interactions by user, then time (then input order), in one sort.
    rows = np.flatnonzero(is_test[data.user])
    rows = rows[stable_order(data.user[rows], data.timestamp[rows])]
    user = data.user[rows].astype(np.int64)
    n = counts[user]
    first = np.r_[0, np.flatnonzero(user[1:] != user[:-1]) + 1]
    position = np.arange(len(rows)) - np.repeat(first, np.diff(np.r_[first, len(rows)]))
    in_history = position < n - np.maximum(1, np.round(0.1 * n).astype(np.int64))
    # History: each item once, at its latest interaction, oldest first.
    h_rows = rows[in_history]
    key = user[in_history] * max(data.n_items, 1) + data.item[h_rows]
    _, last_in_reversed = np.unique(key[::-1], return_index=True)
    latest = np.sort(len(key) - 1 - last_in_reversed)
    h_user, h_items = user[in_history][latest], data.item[h_rows[latest]].astype(np.int64)
    hists = np.split(h_items, np.searchsorted(h_user, test)[1:])
    t_rows = rows[~in_history]
    t_user = user[~in_history]
    bounds = np.searchsorted(t_user, test)[1:]
    t_items = np.split(data.item[t_rows], bounds)
    t_events = np.split(data.event_type[t_rows], bounds)
    truths = [set(items.tolist()) for items in t_items]
    events = [dict(zip(items.tolist(), ev.tolist())) for items, ev in zip(t_items, t_events)]
    return HoldOut(data.subset(~is_test[data.user]), test, hists, truths, events)


# -- per recipe type --------------------------------------------------------------------------


def solution_metrics(protocol: str, fit: Callable[[TrainingData], Model], data: TrainingData,
                     seed: int, event_weights: dict[int, float] | None = None,
                     rewards: np.ndarray | None = None) -> dict[str, float]:
    """GetSolutionMetrics for a recipe measured by ``protocol`` (its declared
    ``Capabilities.metric_protocol``): ``fit`` trains on the training part of the split."""
    data = deduplicate(data)
    if protocol == "segments":
        return segmentation_metrics(fit, data, seed)
    if protocol == "actions":
        return action_metrics(fit, data, seed)
    if protocol == "item-text":
        return semantic_metrics(fit(data), seed)
    split = user_holdout(data, seed)
    if not len(split.users):
        return {}
    model = fit(split.train)
    split = scored_sample(split, model.n_items, seed)
    lists = recommend_lists(model, protocol, split, seed)
    weights = None
    if event_weights is not None:
        weights = [{i: event_weights.get(e, 0.0) for i, e in ev.items()} for ev in split.truth_events]
    out = ranking_metrics(lists, split.truths, data.n_items, weights)
    if rewards is not None:
        out["average_rewards_at_k"] = average_rewards(lists, split.truths, rewards)
    if protocol == "trending":
        out["trend_prediction_accuracy"] = trend_accuracy(model, data)
    return out


METRIC_USERS = 10_000  # held-out users scored at most: a seeded sample beyond (NDCG's standard
# error is then about 0.002, far below the spread between seeds)
METRIC_CELLS = 3_000_000_000  # scores computed at most: fewer users past 300,000 items (3,000 at a million)


def scored_sample(split: HoldOut, n_items: int, seed: int) -> HoldOut:
    """The held-out users the metrics score: all of them, or a seeded sample of at most
    METRIC_USERS whose scores fit METRIC_CELLS (the model was still trained without all of them)."""
    most = max(1000, min(METRIC_USERS, METRIC_CELLS // max(n_items, 1)))
    if len(split.users) <= most:
        return split
    keep = np.sort(np.random.default_rng(seed + 2).choice(len(split.users), most, replace=False))
    return HoldOut(split.train, split.users[keep], [split.histories[k] for k in keep],
                   [split.truths[k] for k in keep], [split.truth_events[k] for k in keep])


def recommend_lists(model: Model, protocol: str, split: HoldOut, seed: int) -> list[list[int]]:
    """Each held-out user's top K by the question the protocol asks: the next items for the
    history, the ranking of truth among negatives, or the items related to the last one."""
    rng = np.random.default_rng(seed + 1)
    if protocol in ("next-items", "trending") and hasattr(model, "scores_for_histories"):
        # The same answers as model.recommend(history, K), scored in blocks by matrix products.
        trim = getattr(model, "trim_lists", None)  # the user's own items, as many as a list holds
        # Blocks are scored a core each, one thread per block (as batch inference does): numpy
        # lets go of the interpreter in the products, the top-k and the softmax, so the
        # selections and normalisers run in parallel too, not only the products. At most 512
        # users, and 16 million scores (64 MB) over the blocks in flight: a million-item catalogue
        # would otherwise hold gigabytes of scores, and a blend several copies of them.
        workers = usable_cores()
        rows = max(1, min(512, (1 << 24) // (max(model.n_items, 1) * workers)))

        def block(start: int) -> list[list[int]]:
            hists = split.histories[start:start + rows]
            S = model.scores_for_histories(hists)
            if trim is not None:
                idx, _ = topk_rows(S, 2 * K)
                idx = trim(idx, hists, K)
            else:
                idx, _ = topk_rows(S, K)
            return [[int(i) for i in row if i >= 0] for row in idx]

        # One BLAS thread (the process's setting, set once) and one OpenMP thread for implicit's
        # fold-in solves (a thread's own setting: each worker sets it as it starts).
        starts = range(0, len(split.histories), rows)
        with threadpool_limits(1, "blas"), ThreadPoolExecutor(
                max(1, min(workers, len(starts))), initializer=threadpool_limits, initargs=(1, "openmp")) as pool:
            return [items for part in pool.map(block, starts) for items in part]
    lists = []
    for hist, truth in zip(split.histories, split.truths):
        if protocol == "related-items":
            idx, _ = model.similar_items(int(hist[-1]) if len(hist) else -1, K)
        elif protocol == "ranking":
            negatives = rng.choice(model.n_items, size=min(NEGATIVES, model.n_items), replace=False)
            pool = np.unique(np.r_[np.fromiter(truth, np.int64), negatives])
            idx, _ = model.rank(hist, pool)
        else:
            idx, _ = model.recommend(hist, K)
        lists.append([int(i) for i in idx[:K]])
    return lists


def average_rewards(lists, truths, rewards: np.ndarray) -> float:
    vals = []
    for r, t in zip(lists, truths):
        denom = sum(float(rewards[i]) for i in t)
        if denom > 0:
            got = sum(float(rewards[i]) for i in set(r[:K]) & t)
            vals.append(min(max(got / denom, 0.0), 1.0))
    return float(np.mean(vals)) if vals else 0.0


def trend_accuracy(model: Model, data: TrainingData) -> float:
    """Share of the items that trended in the newest window which the model, trained up to the
    window before, also named as trending (top 25). May legitimately be 0.0."""
    window = model.meta.get("window")
    if not window or not data.n_interactions:
        return 0.0
    anchor = float(data.timestamp.max())
    inc, _ = trend_scores(data.item, data.timestamp, data.n_items, window, anchor)
    actual = {int(i) for i in np.argsort(-inc)[:K] if inc[i] > 0}
    if not actual:
        return 0.0
    before = data.timestamp <= anchor - window
    prev_inc, _ = trend_scores(data.item[before], data.timestamp[before], data.n_items, window, anchor - window)
    predicted = {int(i) for i in np.argsort(-prev_inc)[:K] if prev_inc[i] > 0}
    return len(actual & predicted) / len(actual)


def segmentation_metrics(fit: Callable[[TrainingData], Model], data: TrainingData, seed: int) -> dict[str, float]:
    """§5.1 step 10: per user 80/20 split; per test item, rank all users; K = ceil(1 % users)."""
    rng = np.random.default_rng(seed)
    test = rng.random(data.n_interactions) < 0.2
    model = fit(data.subset(~test))
    users_per_item: dict[int, set[int]] = {}
    for u, i in zip(data.user[test], data.item[test]):
        users_per_item.setdefault(int(i), set()).add(int(u))
    items = sorted(users_per_item)
    if len(items) > MAX_SEGMENT_ITEMS:
        items = sorted(rng.choice(items, size=MAX_SEGMENT_ITEMS, replace=False).tolist())
    active = np.bincount(data.user, minlength=data.n_users) > 0
    k = max(1, math.ceil(0.01 * int(active.sum())))
    hits, recalls, covered = [], [], set()
    for i in items:
        top, _ = model.users_for_items(np.array([i]), k)
        found = len(set(top.tolist()) & users_per_item[i])
        hits.append(found / k)
        recalls.append(found / len(users_per_item[i]))
        covered.update(top.tolist())
    if not items:
        return {}
    return {"hits_at_1_percent": float(np.mean(hits)), "recall_at_1_percent": float(np.mean(recalls)),
            "coverage": len(covered) / max(int(active.sum()), 1)}


def semantic_metrics(model: Model, seed: int, sample: int = 200) -> dict[str, float]:
    """Mean normalised popularity, freshness and cosine similarity of the top 25 for a sample
    of items that have text."""
    a = model.arrays
    items = np.flatnonzero(np.asarray(a["has_text"]))
    rng = np.random.default_rng(seed)
    if len(items) > sample:
        items = rng.choice(items, size=sample, replace=False)
    pops, fresh, sims = [], [], []
    emb = a["embedding"]
    for i in items:
        idx, _ = model.similar_items(int(i), K)
        if len(idx):
            pops.append(float(np.mean(a["pop_norm"][idx])))
            fresh.append(float(np.mean(a["fresh_norm"][idx])))
            sims.append(float(np.mean(emb[idx] @ emb[int(i)])))
    if not sims:
        return {}
    return {"item_popularity": float(np.mean(pops)), "item_freshness": float(np.mean(fresh)),
            "item_similarity": float(np.mean(sims))}


# -- next best action --------------------------------------------------------------------------


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (rank statistic, ties averaged)."""
    pos, neg = labels.sum(), len(labels) - labels.sum()
    if pos == 0 or neg == 0:
        return 0.5
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    s = scores[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[labels == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def action_metrics(fit: Callable[[TrainingData], Model], data: TrainingData, seed: int) -> dict[str, float]:
    import pyarrow.compute as pc

    ai = data.action_interactions
    if ai is None or ai.num_rows < 10:
        return {}
    ts = np.asarray(ai.column("TIMESTAMP").to_pylist(), dtype=np.int64)
    cut = np.quantile(ts, 0.9)
    train_tbl = ai.filter(pc.less_equal(ai.column("TIMESTAMP"), cut))
    test_tbl = ai.filter(pc.greater(ai.column("TIMESTAMP"), cut))
    train = TrainingData(**{**data.__dict__, "action_interactions": train_tbl})
    model = fit(train)
    users = model.user_index(np.asarray(test_tbl.column("USER_ID").to_pylist(), dtype=str))
    acts_raw = np.asarray(test_tbl.column("ACTION_ID").to_pylist(), dtype=str)
    action_ids = model.arrays["action_ids"]
    acts = np.searchsorted(action_ids, acts_raw)
    ok = (acts < len(action_ids)) & (action_ids[np.minimum(acts, len(action_ids) - 1)] == acts_raw)
    taken = np.array([str(e).strip().upper().replace(" ", "_") == "TAKEN"
                      for e in test_tbl.column("EVENT_TYPE").to_pylist()])
    truth: dict[int, set[int]] = {}
    pairs: dict[tuple[int, int], int] = {}
    for u, a, t, good in zip(users, acts, taken, ok):
        if not good:
            continue
        pairs[(int(u), int(a))] = max(pairs.get((int(u), int(a)), 0), int(t))
        if t:
            truth.setdefault(int(u), set()).add(int(a))
    out: dict[str, float] = {}
    lists = {u: model.actions_for_user(u, K)[0].tolist() for u in truth}
    if truth:
        seen = set()
        for r in lists.values():
            seen.update(r)
        out["coverage"] = len(seen) / max(len(action_ids), 1)
        for k in CUTOFFS:
            out[f"normalized_discounted_cumulative_gain_at_{k}"] = float(
                np.mean([ndcg_at(lists[u], truth[u], k) for u in truth]))
        out["precision"] = float(np.mean([len(set(lists[u][:K]) & truth[u]) / K for u in truth]))
        out["recall"] = float(np.mean([len(set(lists[u][:K]) & truth[u]) / len(truth[u]) for u in truth]))
    if pairs:
        scores = np.array([model.propensity(u)[a] for (u, a) in pairs])
        labels = np.array(list(pairs.values()))
        out["auc"] = auc(scores, labels)
    return out
