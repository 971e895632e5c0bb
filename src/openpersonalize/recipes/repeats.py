"""Whether users come back to items they already have, learned from the training data.

Personalize's models learn from the sequence of each user's events whether a user's next
interaction is with an item they already had: a movie catalogue gets no repeats, a grocery
catalogue gets re-purchases. The collaborative scores of this package (EASE, ALS) say nothing
about that: an item the user has is, to them, simply an item much like the user's history, so it
scores near the top. Training therefore measures repeat behaviour and serving applies it.

**What is measured.** Interactions are ordered by user and time; one is a *repeat* when its
(user, item) pair occurred before. From that:

* the overall repeat share R (repeats / interactions after each user's first), and each user's
  own share, shrunk towards R by ``USER_PRIOR`` interactions' worth of evidence;
* per item, repeats per (user, item) pair, shrunk towards the mean by ``ITEM_PRIOR`` pairs, so
  staples that people re-buy weigh more than one-off purchases;
* per event type (when the data has several), how often an interaction of that type is followed
  by another interaction with the same item, shrunk likewise: an item a user viewed may come back
  more (or less) than one they bought.

**How it is applied.** The model's scores define probabilities over the catalogue (a softmax).
The next interaction is taken to be a repeat with the user's probability R_u, spread over the
items they have in proportion to how often they had each, times the item's and the event type's
repeat weights; and a new item with probability 1 - R_u, spread as the model's softmax over the
items the user does not have. :meth:`RepeatPolicy.adjust` rewrites the raw scores of the user's
items so that the usual softmax over the whole row gives exactly that mixture; everything
downstream (top-k, filters, scores shown, rankings, metrics) is unchanged. When the data has
(almost) no repeats (R below ``MIN_SHARE``), the user's items are simply left out.

A list of n recommendations then holds at most ceil(R_u x n) of the user's items (:meth:`trim`):
the most probable ones, the rest of the list new items, so that recommendations contain seen
items in the measure the user comes back to them. (On repeat-heavy data the most probable items
are nearly all the user's own; a few more new items in the list cost little accuracy and keep
the list useful.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import index_in
from .scoring import refresh_group_maxima, row_log_normalisers

MIN_SHARE = 0.01  # below this overall repeat share, items a user has are never recommended back
USER_PRIOR = 5.0  # a user's repeat share is shrunk towards the overall one by this many interactions
ITEM_PRIOR = 10.0  # an item's repeats per pair are shrunk towards the mean by this many pairs
TYPE_PRIOR = 50.0  # the same for an event type, by this many interactions


def _share(data) -> float:
    """The overall repeat share alone: interactions whose (user, item) occurred before, over
    interactions after each user's first."""
    pair = data.user.astype(np.int64) * max(data.n_items, 1) + data.item
    distinct = len(np.unique(pair))
    per_user = np.bincount(data.user, minlength=data.n_users)
    opportunities = float(np.maximum(per_user - 1, 0).sum())
    return (data.n_interactions - distinct) / max(opportunities, 1.0)


@dataclass
class RepeatProfile:
    """What training measured (arrays aligned with the model's users, items and histories)."""

    share: float  # overall share of interactions that repeat an earlier (user, item)
    user_share: np.ndarray  # float32 per user: the user's repeat probability, shrunk to ``share``
    item_weight: np.ndarray  # float32 per item: its repeat propensity relative to the mean (1.0 = mean)
    pair_weight: np.ndarray  # float32 per history entry (the model's hist_items order): the weight of
    # that item among the user's items (times had x item weight x event type weight)

    @property
    def excludes(self) -> bool:
        return self.share < MIN_SHARE


SAMPLE_INTERACTIONS = 250_000  # above this, a sample of users first tells whether there are repeats at all


def _without_repeats(n_users: int, n_items: int, n_hist: int, share: float) -> RepeatProfile:
    return RepeatProfile(share, np.zeros(n_users, np.float32), np.ones(n_items, np.float32),
                         np.ones(n_hist, np.float32))


def measure(data) -> RepeatProfile:
    """The repeat profile of ``data`` (TrainingData), its per-pair weights aligned with
    ``scoring.histories(data)`` (the model's per-user histories: distinct items, ordered by their
    latest interaction).

    Big data sets are first measured on a sample of users: when that shows (almost) no repeats,
    the per-user, per-item and per-pair weights are never used, so they are not computed (two
    sorts of every interaction saved on a ratings-like data set)."""
    n_users, n_items = data.n_users, data.n_items
    runs = data.pair_runs
    n_pairs = int(runs.first.sum())
    if data.n_interactions == 0:
        return _without_repeats(n_users, n_items, n_pairs, 0.0)
    if data.n_interactions > SAMPLE_INTERACTIONS:
        rng = np.random.default_rng(0)
        users = rng.random(n_users) < SAMPLE_INTERACTIONS / data.n_interactions
        sample = data.subset(users[data.user])
        if sample.n_interactions:
            share = _share(sample)
            if share < MIN_SHARE / 2:
                return _without_repeats(n_users, n_items, n_pairs, share)
    # Within a pair's run (data.pair_runs: by user, item, then time) all but the first
    # interaction are repeats, so the counts follow from the runs alone: a user's (an item's)
    # repeats are its interactions less its pairs. No per-interaction gathers.
    items_1 = max(n_items, 1)
    pair_key = runs.key[runs.by_key[runs.first]]  # each pair once, in key order
    pair_user, pair_item = pair_key // items_1, pair_key % items_1

    per_user = np.bincount(data.user, minlength=n_users).astype(np.float64)
    user_repeats = per_user - np.bincount(pair_user, minlength=n_users)
    opportunities = np.maximum(per_user - 1.0, 0.0)
    share = float(user_repeats.sum() / max(opportunities.sum(), 1.0))
    user_share = ((user_repeats + USER_PRIOR * share) / (opportunities + USER_PRIOR)).astype(np.float32)

    pairs_per_item = np.bincount(pair_item, minlength=n_items).astype(np.float64)
    item_repeats = np.bincount(data.item, minlength=n_items) - pairs_per_item
    mean = item_repeats.sum() / max(pairs_per_item.sum(), 1.0)
    item_rate = (item_repeats + ITEM_PRIOR * mean) / (pairs_per_item + ITEM_PRIOR)
    item_weight = (item_rate / mean if mean > 0 else np.ones(n_items)).astype(np.float32)

    # Per event type, how often an interaction is followed by another in its pair (one that is
    # not its run's last), shrunk towards the overall rate; with one type, from the totals.
    n_types = max(len(data.event_types), 1)
    if n_types > 1:
        types = data.event_type[runs.order[runs.by_key]]  # in key order
        type_total = np.bincount(types, minlength=n_types).astype(np.float64)
        type_followed = np.bincount(types[~runs.last], minlength=n_types).astype(np.float64)
    else:
        type_total = np.array([float(data.n_interactions)])
        type_followed = np.array([float(data.n_interactions - n_pairs)])
    overall = type_followed.sum() / max(type_total.sum(), 1.0)
    type_rate = (type_followed + TYPE_PRIOR * overall) / (type_total + TYPE_PRIOR)
    type_weight = type_rate / overall if overall > 0 else np.ones(n_types)
    pair_type = type_weight[types[runs.last]] if n_types > 1 else type_weight[0]

    latest = runs.by_key[runs.last]  # position of each pair's latest interaction, pairs in key order
    starts = np.flatnonzero(runs.first)
    counts = np.diff(starts, append=len(runs.order))
    weight_of_pair = counts * pair_type * item_weight[pair_item]
    # The histories (scoring.histories) hold each pair at its latest interaction, in (user, time)
    # order: the pairs by that interaction's position. The positions are distinct, so placing
    # each weight at its position and reading the placed ones back in order sorts them (no sort).
    placed = np.zeros(len(runs.order), dtype=np.float32)
    placed[latest] = weight_of_pair
    present = np.zeros(len(runs.order), dtype=bool)
    present[latest] = True
    return RepeatProfile(share, user_share, item_weight, placed[present])


class RepeatPolicy:
    """Applies a measured :class:`RepeatProfile` to raw scores (see the module docstring).

    ``temperature`` is the model's softmax temperature: raw scores s give probabilities
    exp(s / t) / Z over the row.
    """

    def __init__(self, share: float, user_share: np.ndarray, item_weight: np.ndarray,
                 pair_weight: np.ndarray, temperature: float):
        self.share = float(share)
        self.user_share = user_share
        self.item_weight = item_weight
        self.pair_weight = pair_weight
        self.t = max(float(temperature), 1e-6)

    @property
    def excludes(self) -> bool:
        return self.share < MIN_SHARE

    def weights_of(self, hist: np.ndarray, user: int, indptr: np.ndarray, hist_items: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
        """The user's distinct items and their repeat weights. The training history's stored
        weights when ``hist`` is it; otherwise times in ``hist`` x the item's weight."""
        hist = np.asarray(hist, dtype=np.int64)
        if 0 <= user < len(indptr) - 1:
            start, end = int(indptr[user]), int(indptr[user + 1])
            stored = np.asarray(hist_items[start:end], dtype=np.int64)
            if len(stored) == len(hist) and np.array_equal(stored, hist):
                return stored, np.asarray(self.pair_weight[start:end], dtype=np.float64)
        items, counts = np.unique(hist[hist >= 0], return_counts=True)
        return items, counts * np.asarray(self.item_weight, dtype=np.float64)[items]

    def probability(self, user: int) -> float:
        return float(self.user_share[user]) if 0 <= user < len(self.user_share) else self.share

    def adjust(self, scores: np.ndarray, items: np.ndarray, weights: np.ndarray, repeat: float) -> float | None:
        """Rewrite one row of raw ``scores`` in place for the user's ``items`` (with ``weights``)
        and repeat probability ``repeat``; the row's log-normaliser afterwards, or None when the
        user's items were simply removed (see :meth:`adjust_block`)."""
        items = np.asarray(items, dtype=np.int64)
        if self.excludes or not len(items):
            log_z = self.adjust_block(scores[None, :], np.zeros(len(items), dtype=np.int64), items,
                                      np.asarray(weights, dtype=np.float64), np.array([repeat]))
            return None if log_z is None else float(log_z[0, 0])
        # adjust_block's arithmetic for one row, without its per-row bookkeeping (a request pays
        # for every small array operation; the values are the same).
        log_z = row_log_normalisers(scores[None, :], self.t)
        old = scores[items].astype(np.float64)
        with np.errstate(under="ignore", over="ignore"):
            share = np.exp(np.where(np.isfinite(old), old / self.t - log_z[0, 0], -np.inf))
        one_row = np.zeros(len(items), dtype=np.int64)
        seen_share = np.bincount(one_row, weights=share)
        log_other = self._others_log_z(scores[None, :], one_row, items, log_z[:, 0], seen_share)[0]
        if not np.isfinite(log_other):
            return float(log_z[0, 0])  # every finite score is the user's own: kept as they are
        r = min(max(float(repeat), 0.0), 0.99)
        weights = np.asarray(weights, dtype=np.float64)
        total = np.bincount(one_row, weights=weights)[0]
        scores[items] = self._rewritten(np.full(len(items), r), weights / max(total, 1e-12), log_other).astype(
            scores.dtype)
        return float(log_other - np.log1p(-r)) if r > 0 else float(log_other)

    def cap(self, n: int, repeat: float) -> int:
        """How many of the user's items a list of ``n`` may hold."""
        return 0 if self.excludes else int(np.ceil(min(max(repeat, 0.0), 1.0) * n - 1e-9))

    @staticmethod
    def trim(idx: np.ndarray, seen: np.ndarray, cap: int, n: int) -> np.ndarray:
        """Positions in ``idx`` (best first; -1 pads) of the first ``n`` entries once the user's
        items (``seen``) beyond the first ``cap`` are skipped."""
        idx = np.asarray(idx)
        # A lookup by search: np.isin costs more than this on a request's arrays.
        is_seen = (index_in(np.sort(np.asarray(seen)), idx) >= 0) & (idx >= 0)
        keep = ~is_seen | (np.cumsum(is_seen) <= cap)
        return np.flatnonzero(keep)[:n]

    def adjust_block(self, scores: np.ndarray, rows: np.ndarray, items: np.ndarray, weights: np.ndarray,
                     repeat: np.ndarray, maxima: np.ndarray | None = None, log_z: np.ndarray | None = None
                     ) -> np.ndarray | None:
        """:meth:`adjust` for a block of rows at once: ``scores[rows[k], items[k]]`` is user row
        ``rows[k]``'s item ``items[k]``, ``repeat`` one probability per row. Returns the rows'
        log-normalisers after the change (shape (rows, 1)), known in closed form (the user's
        items take R of the mass, so Z' = Z_other / (1 - R)), so a softmax need not sweep the
        block again; None when the user's items were simply removed and the normalisers before
        the change were not given (``log_z``, shape (rows, 1); ``maxima`` then holds the group
        maxima before it). With ``maxima`` (see ``row_log_normalisers``), it holds the group
        maxima after the change whenever the normalisers are returned."""
        if log_z is None and self.excludes:
            scores[rows, items] = -np.inf
            return None
        if log_z is None:
            log_z = row_log_normalisers(scores, self.t, maxima)
        if len(items) == 0:
            return log_z
        old = scores[rows, items].astype(np.float64)
        with np.errstate(under="ignore", over="ignore"):
            share = np.exp(np.where(np.isfinite(old), old / self.t - log_z[rows, 0], -np.inf))
        n_rows = scores.shape[0]
        seen_share = np.bincount(rows, weights=share, minlength=n_rows)
        has = np.bincount(rows, minlength=n_rows) > 0
        r = np.minimum(np.clip(np.asarray(repeat, dtype=np.float64), 0.0, None), 0.99)
        log_other = self._others_log_z(scores, rows, items, log_z[:, 0], seen_share)
        if self.excludes:  # the user's items removed: the others' mass is all there is
            scores[rows, items] = -np.inf
            if maxima is not None:
                refresh_group_maxima(scores, maxima, rows, items)
            return log_other[:, None]
        # Rows whose every finite score is the user's own keep them as they are (as adjust does).
        usable = has & np.isfinite(log_other)
        total = np.bincount(rows, weights=weights, minlength=n_rows)
        new = self._rewritten(r[rows], weights / np.maximum(total[rows], 1e-12), log_other[rows])
        keep = usable[rows]
        scores[rows[keep], items[keep]] = new[keep].astype(scores.dtype)
        if maxima is not None:
            refresh_group_maxima(scores, maxima, rows[keep], items[keep])
        out = log_z[:, 0].copy()
        out[usable] = np.where(r[usable] > 0, log_other[usable] - np.log1p(-r[usable]), log_other[usable])
        return out[:, None]

    def _others_log_z(self, scores: np.ndarray, rows: np.ndarray, items: np.ndarray, log_z: np.ndarray,
                      seen_share: np.ndarray) -> np.ndarray:
        """Per score row, log of the mass outside the user's items: Z (1 - seen share), or, where
        the user's items hold most of the mass and that difference loses its digits (the result
        would depend on rounding), the other items summed directly."""
        with np.errstate(divide="ignore"):
            log_other = log_z + np.log1p(-np.minimum(seen_share, 1.0 - 1e-6))
        crowded = np.flatnonzero(seen_share > 0.5)
        if len(crowded):
            # The user's items masked in place for the sum, then put back; a single request's
            # row (every row crowded) is swept as it is, without a copy.
            at = seen_share[rows] > 0.5
            saved = scores[rows[at], items[at]]
            scores[rows[at], items[at]] = -np.inf
            swept = scores if len(crowded) == len(scores) else scores[crowded]
            log_other[crowded] = row_log_normalisers(swept, self.t)[:, 0]
            scores[rows[at], items[at]] = saved
        return log_other

    def _rewritten(self, r: np.ndarray, q: np.ndarray, log_other: np.ndarray) -> np.ndarray:
        """The user's items' new raw scores: together they take ``r`` of the mass, each its share
        ``q`` of it; -inf where ``r`` is 0."""
        with np.errstate(divide="ignore"):
            new = self.t * (np.log(r * q) + log_other - np.log1p(-r))
        return np.where(r > 0, new, -np.inf)
