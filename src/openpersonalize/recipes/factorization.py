"""User-Personalization (v1, v2, legacy HRNN) and Personalized-Ranking (v1, v2).

One collaborative core scores every item for a history:

* EASE (Steck 2019) where its inversion is affordable: B = I - P / diag(P) with
  P = (X'X + l2 I)^-1 in float32. A user's scores are the weighted sum of B's rows for their
  history, so new users and new events need no fold-in at all.
* Neighbourhood EASE (recipes/local_ease.py) for bigger catalogues: the same, with a sparse B
  whose column j regresses item j on its most co-occurring items.
* implicit's ALS when even the co-occurrence matrix is too big (``hidden_dimension`` factors); a
  new history is folded in by one least-squares solve against the item factors.

recipes/cost.py chooses among them from the data's size and the machine's measured speed.

Around the core: ``recency_mask`` / ``apply_recency_bias`` give the latest ``bptt`` history
items full weight and older ones ``OLDER_WEIGHT``; users without history get popularity; the
campaign's ``explorationWeight`` gives new items (``explorationItemAgeCutOff``) that share of
the slots, ordered by metadata similarity to the history.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from .base import Algorithm, HyperParameters, Model, TrainingSettings, TrainingData, index_in, model_class
from .capabilities import FOLD_IN, Capabilities
from .checks import enough_interactions
from .cost import Plan, plan
from .features import metadata_embedding
from .local_ease import local_ease
from .repeats import RepeatPolicy, measure
from .scoring import (RowMasks, group_maxima_for, histories, interaction_matrix, mask_allows,
                      outside_history_percentiles, popularity, probabilities, product_with_normalisers,
                      refresh_group_maxima, renormalise_rows, row_log_normalisers, softmax_of, softmax_topk_rows,
                      topk, topk_rows)

OLDER_WEIGHT = 0.85  # history items older than the bptt window, when recency bias is on
BLOCK = 1024  # users scored per matrix product in batch calls (fewer for big catalogues)
BLOCK_CELLS = 1 << 24  # scores per block (64 MB of float32): bounds memory, stays in BLAS's sweet spot
EASE_L2_SCALE = 8.0  # untuned l2 = scale x mean interactions per item (docs/recipes.md)
EASE_L2_GRID = (2.0, 4.0, 8.0, 16.0)  # multiples of the mean tried when the catalogue is small
EASE_DROPOUT = 0.33
DAY = 86400.0
ITEM_TO_ITEM = ("ease", "local-ease")  # backends that score a history by item weights B (dense or sparse)


@dataclass
class Exploration:
    """Campaign exploration: ``weight`` share of slots for items newer than ``age_cutoff_days``."""

    weight: float = 0.3
    age_cutoff_days: float = 30.0
    now: float | None = None  # epoch s; default: the newest training timestamp
    explored: np.ndarray | None = None  # set by the model: the items exploration placed

    @classmethod
    def from_config(cls, config: dict | None) -> Exploration:
        """An ``itemExplorationConfig`` (string values, AWS's defaults 0.3 and 30 days)."""
        config = config or {}
        return cls(weight=float(config.get("explorationWeight", 0.3)),
                   age_cutoff_days=float(config.get("explorationItemAgeCutOff", 30)))


@model_class
class CollaborativeModel(Model):
    """Scores for all items given a history; shared by personalization, ranking and segments."""

    # -- core scoring --------------------------------------------------------------------------
    def _weights(self, hist: np.ndarray) -> np.ndarray:
        w = np.ones(len(hist), dtype=np.float32)
        if self.meta.get("recency") and len(hist) > self.meta["bptt"]:
            w[: len(hist) - self.meta["bptt"]] = OLDER_WEIGHT
        return w

    def scores_for_history(self, hist: np.ndarray, user: int = -1) -> np.ndarray:
        """Raw scores over all items (float32); popularity when the history is empty."""
        return self._with_objective(self._raw_scores(hist, user))

    def item_weights(self):
        """B: a dense array (EASE) or a CSR matrix (neighbourhood EASE), items x items."""
        return self.arrays["B"] if self.meta["backend"] == "ease" else stored_csr(self, "B")

    def _times_weights(self, X: sp.csr_matrix) -> np.ndarray:
        """Dense float32 ``X @ B`` for weighted history rows ``X``."""
        S = X @ self.item_weights()
        return np.asarray(S.toarray() if sp.issparse(S) else S, dtype=np.float32)

    def _with_objective(self, S: np.ndarray) -> np.ndarray:
        """Scores (a fresh array: added to in place) plus the optimizationObjective's per-item
        boost (recipes/training.py). The fused batch product adds it tile by tile instead
        (``normalised_block``)."""
        boost = self.arrays.get("objective_boost")
        if boost is not None:
            S += np.asarray(boost)
        return S

    def _raw_scores(self, hist: np.ndarray, user: int) -> np.ndarray:
        hist = np.asarray(hist, dtype=np.int64)
        hist = hist[(hist >= 0) & (hist < self.n_items)]
        if len(hist) == 0:
            return np.asarray(self.arrays["popularity"], dtype=np.float32).copy()
        w = self._weights(hist)
        a = self.arrays
        if self.meta["backend"] == "ease":
            return w @ a["B"][hist]
        if self.meta["backend"] == "local-ease":
            return np.asarray(self.item_weights()[hist].T @ w, dtype=np.float32).ravel()
        V = np.asarray(a["item_factors"])
        reweighted = self.meta.get("recency") and len(hist) > self.meta["bptt"]
        if 0 <= user < len(a["user_factors"]) and not reweighted and np.array_equal(hist, self.history(user)):
            x = np.asarray(a["user_factors"][user])
        else:
            x = als_fold_in(V, hist, w * self.meta["alpha"], self.meta["reg"], self._yty())
        return V @ x

    def explain(self, hist: np.ndarray, item: int) -> dict:
        """Why ``item`` scores what it does for a history: the raw score split into one additive
        part per history item, plus the optimisation objective's boost.

        EASE and neighbourhood EASE: ``score = sum_h w_h B[h, item]`` (w: the recency weights).
        ALS: the history's folded-in vector ``x = A^-1 V_h' c`` makes ``score = V_item . x =
        sum_h c_h (V_item A^-1 V_h)``, exact for the fold-in (a trained user's own vector is the
        same solve over the training data). Returns ``{"score", "boost", "parts": [(history item,
        part)]}`` with one part per distinct history item, largest first."""
        hist = np.asarray(hist, dtype=np.int64)
        hist = hist[(hist >= 0) & (hist < self.n_items)]
        boost = float(np.asarray(self.arrays["objective_boost"])[item]) if "objective_boost" in self.arrays else 0.0
        if len(hist) == 0:
            return {"score": float(np.asarray(self.arrays["popularity"])[item]) + boost, "boost": boost, "parts": []}
        w = self._weights(hist)
        backend = self.meta["backend"]
        if backend == "ease":
            parts = w * np.asarray(self.arrays["B"][hist, item], dtype=np.float64)
        elif backend == "local-ease":
            parts = w * np.asarray(self.item_weights()[hist][:, [item]].toarray(), dtype=np.float64).ravel()
        else:
            V = np.asarray(self.arrays["item_factors"], dtype=np.float64)
            c = w.astype(np.float64) * self.meta["alpha"]
            Vh = V[hist]
            A = self._yty() + (Vh.T * (c - 1.0)) @ Vh + self.meta["reg"] * np.eye(V.shape[1])
            parts = c * (Vh @ np.linalg.solve(A, V[item]))
        distinct, inverse = np.unique(hist, return_inverse=True)
        summed = np.bincount(inverse, weights=parts, minlength=len(distinct))
        order = np.lexsort((distinct, -summed))
        return {"score": float(summed.sum()) + boost, "boost": boost,
                "parts": [(int(distinct[k]), float(summed[k])) for k in order]}

    def _yty(self) -> np.ndarray:
        if not hasattr(self, "_YtY"):
            V = np.asarray(self.arrays["item_factors"])
            self._YtY = V.T @ V
        return self._YtY

    def history_matrix(self, users: np.ndarray) -> sp.csr_matrix:
        """Weighted history rows of the given users (CSR over items)."""
        a = self.arrays
        indptr, items = a["hist_indptr"], a["hist_items"]
        rows, cols, vals = [], [], []
        for k, u in enumerate(users):
            h = np.asarray(items[indptr[u]:indptr[u + 1]]) if u >= 0 else np.empty(0, np.int32)
            rows.append(np.full(len(h), k))
            cols.append(h)
            vals.append(self._weights(h))
        return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(len(users), self.n_items), dtype=np.float32)

    def history_lengths(self, users: np.ndarray) -> np.ndarray:
        """Training history length per user index (0 for -1 and unknown indices)."""
        users = np.asarray(users, dtype=np.int64)
        indptr = self.arrays["hist_indptr"]
        known = (users >= 0) & (users < len(indptr) - 1)
        out = np.zeros(len(users), dtype=np.int64)
        out[known] = np.asarray(indptr[users[known] + 1]) - np.asarray(indptr[users[known]])
        return out

    def score_block(self, users: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(len(users), n_items) raw scores; rows of users without history are popularity.
        ``out``, when given, is a float32 array of that shape the scores may be written to."""
        return self._with_objective(self._raw_block(users, out))

    def _raw_block(self, users: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        a = self.arrays
        users = np.asarray(users, dtype=np.int64)
        lengths = self.history_lengths(users)
        if self.meta["backend"] in ITEM_TO_ITEM:
            S = self._times_weights(self.history_matrix(users))
        else:
            # Into ``out`` when given: a fresh block of this size costs its page faults again
            # at every block (8 to 15 % of the product at 100,000 items).
            S = np.matmul(np.asarray(a["user_factors"])[np.maximum(users, 0)], np.asarray(a["item_factors"]).T,
                          out=out)
        self._rewrite_unscored_rows(users, lengths, S)
        return S

    def _rewrite_unscored_rows(self, users: np.ndarray, lengths: np.ndarray, S: np.ndarray) -> np.ndarray:
        """Rewrite the rows a block's product does not score: users without history get
        popularity, and with ``recency`` a factor model folds long histories in again (their
        latest ``bptt`` items re-weighted). Returns the rows rewritten."""
        refold = np.flatnonzero(lengths > self.meta["bptt"]) \
            if self.meta.get("recency") and self.meta["backend"] not in ITEM_TO_ITEM else np.empty(0, np.int64)
        for k in refold:
            S[k] = CollaborativeModel._raw_scores(self, self.history(int(users[k])), -1)
        empty = np.flatnonzero(lengths == 0)
        if len(empty):
            S[empty] = self.arrays["popularity"]
        return np.r_[refold, empty]

    def normalised_block(self, users: np.ndarray, out: np.ndarray, maxima: np.ndarray | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`score_block`'s scores (in ``out`` for a factor model) and each row's log-normaliser, as
        ``row_log_normalisers`` gives them; ``maxima``, when given, is filled with the rows'
        group maxima. A factor model's product and the normalisers' sweep run fused, tile by
        tile in the cache (``product_with_normalisers``)."""
        users = np.asarray(users, dtype=np.int64)
        t = self.meta["temperature"]
        if self.meta["backend"] in ITEM_TO_ITEM:
            S = CollaborativeModel.score_block(self, users, out)
            return S, row_log_normalisers(S, t, maxima)
        a = self.arrays
        boost = a.get("objective_boost")
        boost = None if boost is None else np.asarray(boost)
        log_z = product_with_normalisers(np.asarray(a["user_factors"])[np.maximum(users, 0)],
                                         np.asarray(a["item_factors"]), out, t, boost, maxima)
        redone = self._rewrite_unscored_rows(users, self.history_lengths(users), out)
        if len(redone):  # as score_block gives them; their normalisers and maxima again
            out[redone] = self._with_objective(out[redone])
            renormalise_rows(out, redone, t, log_z, maxima)
        return out, log_z

    def scores_for_histories(self, hists: list[np.ndarray]) -> np.ndarray:
        """(len(hists), n_items) raw scores for ad-hoc histories, as one matrix product."""
        return self._with_objective(self._raw_histories(hists))

    def _raw_histories(self, hists: list[np.ndarray]) -> np.ndarray:
        a = self.arrays
        if self.meta["backend"] in ITEM_TO_ITEM:
            rows = np.repeat(np.arange(len(hists)), [len(h) for h in hists])
            cols = np.concatenate(hists) if hists else np.empty(0, np.int64)
            vals = np.concatenate([self._weights(h) for h in hists]) if hists else np.empty(0, np.float32)
            X = sp.csr_matrix((vals, (rows, cols)), shape=(len(hists), self.n_items), dtype=np.float32)
            S = self._times_weights(X)
        else:
            V = np.asarray(a["item_factors"])
            rows = np.repeat(np.arange(len(hists)), [len(h) for h in hists])
            cols = np.concatenate(hists) if hists else np.empty(0, np.int64)
            vals = np.concatenate([self._weights(h) for h in hists]) * self.meta["alpha"] if hists \
                else np.empty(0, np.float32)
            C = sp.csr_matrix((vals.astype(np.float32), (rows, cols)), shape=(len(hists), self.n_items))
            S = als_fold_in_rows(V, C, self.meta["reg"], self._yty()) @ V.T
        for k, h in enumerate(hists):
            if len(h) == 0:
                S[k] = a["popularity"]
        return S


@model_class
class PersonalizationModel(CollaborativeModel):
    """GetRecommendations (userId) and GetPersonalizedRanking.

    Every score it gives has the repeat behaviour training measured applied (recipes/repeats.py):
    items a user already has keep the probability that they come back with, or none at all when
    the data has no repeats. Models saved before that was measured score as they did.
    """

    def _repeat_policy(self) -> RepeatPolicy | None:
        if "repeat_user_share" not in self.arrays:
            return None
        cached = self.__dict__.get("_policy")
        if cached is None:
            a = self.arrays
            cached = self.__dict__["_policy"] = RepeatPolicy(
                self.meta["repeat_share"], np.asarray(a["repeat_user_share"]), np.asarray(a["repeat_item_weight"]),
                np.asarray(a["repeat_pair_weight"]), self.meta["temperature"])
        return cached

    def scores_for_history(self, hist: np.ndarray, user: int = -1) -> np.ndarray:
        return self._scores_and_log_z(hist, user)[0]

    def _scores_and_log_z(self, hist: np.ndarray, user: int) -> tuple[np.ndarray, float | None, np.ndarray | None]:
        """The row's scores with the repeat policy applied, its log-normaliser when the policy
        computed it (a softmax need not sweep the row again), and the user's distinct items as
        the policy saw them (None without a policy)."""
        S = super().scores_for_history(hist, user)
        policy = self._repeat_policy()
        log_z = items = None
        if policy is not None:
            items, weights = policy.weights_of(hist, user, self.arrays["hist_indptr"], self.arrays["hist_items"])
            log_z = policy.adjust(S, items, weights, policy.probability(user))
        return S, log_z, items

    def score_block(self, users: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return self._scored_block(users, out)[0]

    def _scored_block(self, users: np.ndarray, out: np.ndarray | None = None, maxima: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray | None]:
        """The block's scores with the repeat policy applied, and the rows' log-normalisers
        (None when there is no repeat policy: compute them). ``maxima`` is filled with the group
        maxima whenever the normalisers are known (``RepeatPolicy.adjust_block``)."""
        policy = self._repeat_policy()
        if policy is None:
            return super().score_block(users, out), None
        if out is None:
            out = np.empty((len(users), self.n_items), dtype=np.float32)
        S, log_z = self.normalised_block(users, out, maxima)
        rows, items, positions = self._block_history(users)
        weights = np.asarray(policy.pair_weight, dtype=np.float64)[positions]
        repeat = np.array([policy.probability(int(u)) for u in np.asarray(users)])
        return S, policy.adjust_block(S, rows, items, weights, repeat, maxima, log_z)

    def _block_history(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The training histories of a block of users as (row in the block, item, position in
        ``hist_items``) arrays; unknown users (-1) have none."""
        users = np.asarray(users, dtype=np.int64)
        indptr = np.asarray(self.arrays["hist_indptr"])
        known = (users >= 0) & (users < len(indptr) - 1)
        starts = np.where(known, indptr[np.where(known, users, 0)], 0)
        lengths = np.where(known, indptr[np.where(known, users, 0) + 1] - starts, 0)
        rows = np.repeat(np.arange(len(users)), lengths)
        positions = np.repeat(starts - np.cumsum(np.r_[0, lengths[:-1]]), lengths) + np.arange(lengths.sum())
        return rows, np.asarray(self.arrays["hist_items"])[positions].astype(np.int64), positions

    def scores_for_histories(self, hists: list[np.ndarray]) -> np.ndarray:
        S = super().scores_for_histories(hists)
        policy = self._repeat_policy()
        if policy is not None and hists:
            # Each history's distinct items, weighted by times had x the item's weight (as
            # weights_of does for an ad-hoc history), all rows at once.
            lengths = [len(h) for h in hists]
            rows = np.repeat(np.arange(len(hists), dtype=np.int64), lengths)
            items = np.concatenate([np.asarray(h, dtype=np.int64) for h in hists]) if sum(lengths) \
                else np.empty(0, np.int64)
            valid = items >= 0
            keys, counts = np.unique(rows[valid] * self.n_items + items[valid], return_counts=True)
            rows, items = keys // self.n_items, keys % self.n_items
            weights = counts * np.asarray(policy.item_weight, dtype=np.float64)[items]
            policy.adjust_block(S, rows, items, weights, np.full(len(hists), policy.share))
        return S

    def recommend(self, user: int | np.ndarray, n: int, exclude: np.ndarray | None = None,
                  candidates_mask: np.ndarray | None = None, exploration: Exploration | None = None,
                  **options: Any) -> tuple[np.ndarray, np.ndarray]:
        """Top ``n`` items; scores are softmax probabilities over the whole catalogue."""
        hist = self.history(user) if np.isscalar(user) else np.asarray(user)
        uid = int(user) if np.isscalar(user) else -1
        s, log_z, seen = self._scores_and_log_z(hist, uid)
        if exploration is not None and exploration.weight > 0:
            return self._explore(s, hist, n, exclude, candidates_mask, exploration, log_z)
        policy = self._repeat_policy()
        if policy is not None and not policy.excludes and len(hist):
            idx, top = topk(s, n + len(seen), candidates_mask, exclude)  # room for every skip
            keep = policy.trim(idx, seen, policy.cap(n, policy.probability(uid)), n)
            idx, top = idx[keep], top[keep]
        else:
            idx, top = topk(s, n, candidates_mask, exclude)
        return idx, softmax_of(top, s, self.meta["temperature"], log_z)

    def recommend_batch(self, users: np.ndarray, n: int, mask: np.ndarray | None = None,
                        exclude_seen: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Top ``n`` per user, as :meth:`recommend` gives them one by one."""
        users = np.asarray(users, dtype=np.int64)
        out_i, out_s = [], []
        rows = block_rows(self.n_items)
        t = self.meta["temperature"]
        policy = None if exclude_seen else self._repeat_policy()
        trims = policy is not None and not policy.excludes
        # One block of scores for the whole call: each block is written into it.
        buf = np.empty((min(rows, len(users)), self.n_items), dtype=np.float32) if len(users) else None
        for start in range(0, len(users), rows):
            block = users[start:start + rows]
            m = None if mask is None else (mask if mask.ndim == 1 else mask[start:start + rows])
            # Unfiltered, the normalisers' sweep also takes the group maxima the selection needs.
            maxima = group_maxima_for(buf[:len(block)], n) if m is None and not exclude_seen else None
            S, log_z = self._scored_block(block, buf[:len(block)], maxima)
            if exclude_seen:
                X = self.history_matrix(block)
                S[X.nonzero()] = -np.inf
                log_z = None
            if trims:
                idx, probs = self._top_with_own_items(policy, block, S, n, m, log_z, maxima)
            else:
                idx, probs = softmax_topk_rows(S, n, t, m, log_z=log_z, maxima=maxima)
            del S
            self._cold_rows_as_single_requests(block, idx, m, exclude_seen)
            out_i.append(idx)
            out_s.append(probs)
        if not out_i:
            return np.zeros((0, n), np.int64), np.zeros((0, n), np.float32)
        return np.concatenate(out_i), np.concatenate(out_s)

    def _top_with_own_items(self, policy: RepeatPolicy, users: np.ndarray, S: np.ndarray, n: int, mask,
                            log_z: np.ndarray, maxima: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The repeat policy's list for a block (what :meth:`recommend` gives each user: the
        user's own items beyond their cap skipped) from a selection of ``n`` only: the top ``n``
        of the items the user has not had, merged with each user's best ``cap`` own items that
        the mask allows. The user's items are mostly near the top, so selecting room for them
        and trimming would cost about twice the selection."""
        rows, items, _ = self._block_history(users)
        own = S[rows, items].astype(np.float32)
        S[rows, items] = -np.inf
        if maxima is not None:
            refresh_group_maxima(S, maxima, rows, items)
        t = self.meta["temperature"]
        idx, probs = softmax_topk_rows(S, n, t, mask, log_z=log_z, maxima=maxima)
        known = (users >= 0) & (users < self.n_users)
        caps = np.array([policy.cap(n, policy.probability(int(u))) if k else 0 for u, k in zip(users, known)],
                        dtype=np.int64)
        finite = np.isfinite(own) & mask_allows(mask, rows, items)
        rows, items, own = rows[finite], items[finite], own[finite]
        if not len(rows):
            return idx, probs
        # Each row's own items best first (lower index first among equals); the first cap stay.
        order = np.lexsort((items, -own, rows))
        rows, items, own = rows[order], items[order], own[order]
        starts = np.searchsorted(rows, np.arange(len(users)))
        rank = np.arange(len(rows)) - starts[rows]
        kept = rank < caps[rows]
        rows, items, own, rank = rows[kept], items[kept], own[kept], rank[kept]
        width = int(rank.max(initial=-1)) + 1
        if width == 0:
            return idx, probs
        extra_i = np.full((len(users), width), -1, dtype=np.int64)
        extra_p = np.full((len(users), width), np.nan, dtype=np.float32)
        extra_s = np.full((len(users), width), -np.inf, dtype=np.float32)
        extra_i[rows, rank] = items
        extra_s[rows, rank] = own
        extra_p[rows, rank] = probabilities(own, t, np.asarray(log_z, dtype=np.float64)[rows, 0])
        # The selected items' scores (the selection leaves unmasked entries as they were).
        chosen = np.where(idx >= 0, S[np.arange(len(users))[:, None], np.maximum(idx, 0)], -np.inf)
        both_i = np.concatenate([idx, extra_i], axis=1)
        both_p = np.concatenate([probs, extra_p], axis=1)
        both_s = np.concatenate([chosen, extra_s], axis=1)
        valid = both_i >= 0
        # Best score first, lower index first among equals (as every selection orders), pads last.
        order = np.lexsort((np.where(valid, both_i, np.iinfo(np.int64).max), -both_s), axis=-1)[:, :n]
        return np.take_along_axis(both_i, order, axis=1), np.take_along_axis(both_p, order, axis=1)

    def trim_lists(self, idx: np.ndarray, hists: list[np.ndarray], n: int) -> np.ndarray:
        """Rows of ``idx`` (top items for ad-hoc ``hists``, best first) cut to ``n`` as
        :meth:`recommend` cuts a list: the user's items beyond their share are skipped."""
        policy = self._repeat_policy()
        if policy is None or policy.excludes:
            return np.asarray(idx)[:, :n]
        lengths = [len(h) for h in hists]
        items = np.concatenate([np.asarray(h, dtype=np.int64) for h in hists]) if sum(lengths) \
            else np.empty(0, np.int64)
        H = sp.csr_matrix((np.ones(len(items), np.float32), (np.repeat(np.arange(len(hists)), lengths), items)),
                          shape=(len(hists), self.n_items))
        idx = np.asarray(idx)
        return trim_block(H, idx, np.zeros(idx.shape, np.float32), [policy.cap(n, policy.share)] * len(hists), n)[0]

    def _cold_rows_as_single_requests(self, users: np.ndarray, idx: np.ndarray, mask, exclude_seen: bool) -> None:
        """Users without history get the popularity list, full of ties; pick among tied items
        the way a single request does (lowest index first), so batch and real-time agree. The
        scores of tied items are equal, so only ``idx`` changes."""
        if exclude_seen:
            return
        cold = np.flatnonzero(self.history_lengths(users) == 0)
        if not len(cold):
            return
        popularity = self._with_objective(np.array(self.arrays["popularity"], dtype=np.float32))
        n = idx.shape[1]
        shared: dict = {}  # rows with the same mask get the same list: one selection per mask
        own = set(mask.hidden_rows.tolist()) if isinstance(mask, RowMasks) else set()
        for r in cold.tolist():
            if mask is None or mask.ndim == 1:
                key = "all"
            elif isinstance(mask, RowMasks) and r not in own:
                key = int(mask.which[r])
            else:
                key = None  # a dense row, or the user's own exclusions: this row alone
            if key is None or key not in shared:
                row_mask = None if mask is None else (mask if mask.ndim == 1 else mask[r])
                picked = topk(popularity, n, row_mask)[0]
                if key is not None:
                    shared[key] = picked
            else:
                picked = shared[key]
            idx[r] = -1
            idx[r, :len(picked)] = picked

    def rank(self, user: int | np.ndarray, item_indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Known items by score, unknown ones (-1) last; softmax over the known ones."""
        hist = self.history(user) if np.isscalar(user) else np.asarray(user)
        s = self.scores_for_history(hist, int(user) if np.isscalar(user) else -1)
        items = np.asarray(item_indices, dtype=np.int64)
        known = items >= 0
        raw = np.full(len(items), -np.inf, dtype=np.float32)
        raw[known] = s[items[known]]
        order = np.lexsort((np.arange(len(items)), -raw))
        probs = np.zeros(len(items), dtype=np.float32)
        if known.any():
            probs[known] = softmax_of(raw[known], raw[known], self.meta["temperature"])
        return items[order], probs[order]

    # -- exploration ---------------------------------------------------------------------------
    def _fresh_items(self, now: float, age_cutoff_days: float) -> tuple[np.ndarray, np.ndarray]:
        """Items exploration may show (created within the cutoff, or of unknown age) and their
        age rank (newer is higher); computed once per model and exploration setting."""
        cache = self.__dict__.setdefault("_fresh_cache", {})
        key = (float(now), float(age_cutoff_days))
        if key not in cache:
            created = np.asarray(self.arrays["item_created"])
            fresh = np.flatnonzero(np.isnan(created) | (created >= now - age_cutoff_days * DAY))
            cache.clear()  # one setting at a time is the usual case
            cache[key] = (fresh, np.nan_to_num(created[fresh], nan=now) / max(now, 1.0))
        return cache[key]

    def _explore(self, s, hist, n, exclude, mask, ex: Exploration, log_z: float | None = None):
        """The list of the exploring policy: ``weight`` of the slots go to fresh items (ranked by
        metadata likeness to the history, newest first on ties), the rest to the model's top.

        Each item's score is its probability under that mixture, ``(1 - weight) * p_model +
        weight * q_fresh``, where ``q_fresh`` spreads the exploring share over every fresh item
        that may be shown (softmax of its likeness); the list is in descending order of it, as
        the API promises. ``ex.explored`` receives the items placed by exploration. ``log_z`` is
        the scores' log-normaliser when the caller has it (a pass over the catalogue less)."""
        a = self.arrays
        now = ex.now if ex.now is not None else self.meta["now"]
        weight = min(max(ex.weight, 0.0), 1.0)
        slots = int(round(weight * n))
        allowed = np.ones(self.n_items, bool) if mask is None else np.asarray(mask, bool).copy()
        if exclude is not None and len(exclude):
            allowed[np.asarray(exclude)] = False
        fresh, age_rank = self._fresh_items(now, ex.age_cutoff_days)
        usable = allowed[fresh]
        candidates = fresh[usable]
        content = np.asarray(a["item_content"])
        profile = content[hist].mean(axis=0) if len(hist) else np.zeros(content.shape[1], np.float32)
        fresh_score = (content[candidates] @ profile + 1e-3 * age_rank[usable]).astype(np.float64)
        new_idx = candidates[_best_first(fresh_score, candidates, slots)] if slots > 0 else np.empty(0, np.int64)
        # The few items to leave out beside the mask, rather than another mask over the catalogue.
        left_out = np.concatenate([np.asarray(exclude if exclude is not None else [], dtype=np.int64), new_idx])
        base_idx, _ = topk(s, n - len(new_idx), mask, exclude=left_out)
        idx = np.concatenate([np.asarray(base_idx, dtype=np.int64), new_idx])
        p_model = softmax_of(s[idx], s, self.meta["temperature"], log_z).astype(np.float64)
        q = np.zeros(len(idx))
        if len(candidates):
            share = np.exp(fresh_score - fresh_score.max())
            share /= share.sum()
            # candidates are in index order (np.flatnonzero): look the list's items up in them
            at = index_in(candidates, idx)
            q = np.where(at >= 0, share[at], 0.0)
        mixed = (1.0 - weight) * p_model + weight * q
        ranked = np.lexsort((np.arange(len(idx)), -mixed))  # descending, ties in list order
        ex.explored = new_idx
        return idx[ranked], mixed[ranked].astype(np.float32)


def _best_first(values: np.ndarray, keys: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest ``values``, highest first, lower ``keys`` first among equals:
    what ``np.lexsort((keys, -values))[:k]`` gives, without sorting every value."""
    if k >= len(values):
        return np.lexsort((keys, -values))
    kth = values[np.argpartition(-values, k - 1)[k - 1]]
    pool = np.flatnonzero(values >= kth)  # every value that can be among the k, ties included
    return pool[np.lexsort((keys[pool], -values[pool]))][:k]


def block_rows(n_items: int) -> int:
    """Users per scoring block: ``BLOCK``, fewer when the catalogue is big."""
    return int(max(16, min(BLOCK, BLOCK_CELLS // max(n_items, 1))))


def als_fold_in(V: np.ndarray, hist: np.ndarray, confidence: np.ndarray, reg: float,
                yty: np.ndarray) -> np.ndarray:
    """ALS user vector for a history: (Y'Y + Y_h'(C-1)Y_h + reg I) x = Y_h' C 1."""
    Vh = V[hist]
    c = np.asarray(confidence, dtype=np.float32)
    A = yty + (Vh.T * (c - 1.0)) @ Vh + reg * np.eye(V.shape[1], dtype=np.float32)
    return np.linalg.solve(A, Vh.T @ c).astype(np.float32)


def als_fold_in_rows(V: np.ndarray, confidence: sp.csr_matrix, reg: float,
                     yty: np.ndarray | None = None) -> np.ndarray:
    """:func:`als_fold_in` for every row of a (rows, len(V)) confidence matrix at once, by
    implicit's exact least-squares solver over the rows in parallel: the same vectors, without a
    Python loop of small solves. Rows without entries get zero vectors. ``yty`` (V'V) saves its
    product when the caller solves block after block against the same V."""
    from implicit.cpu.als import AlternatingLeastSquares

    n = confidence.shape[0]
    if n == 0:
        return np.zeros((0, V.shape[1]), dtype=np.float32)
    with threadpool_limits(1, "blas"):  # implicit parallelises over rows itself
        solver = AlternatingLeastSquares(factors=V.shape[1], regularization=reg, alpha=1.0, random_state=0)
        solver.item_factors = np.ascontiguousarray(V, dtype=np.float32)
        if yty is not None and hasattr(solver, "_YtY"):  # implicit caches V'V there
            solver._YtY = np.asarray(yty, dtype=np.float32)
        return solver.recalculate_user(np.arange(n), sp.csr_matrix(confidence, dtype=np.float32))


def ease(X: sp.csr_matrix, l2: float, dropout: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """EASE item-item weights B (zero diagonal) and diag(P), all float32.

    ``dropout`` > 0 adds EDLAE's emphasised-dropout penalty p/(1-p) * diag(X'X) to the diagonal
    (Steck 2020): popular items get more regularisation, which makes l2 less critical.
    """
    G = (X.T @ X).toarray().astype(np.float32)
    diag = np.diag_indices_from(G)
    G[diag] += l2 + dropout / (1.0 - dropout) * G[diag]
    with threadpool_limits(os.cpu_count() or 1, "blas"):  # one big inversion: every core helps
        P = np.linalg.inv(G)
    d = np.diag(P).copy()
    B = P / (-d)
    B[diag] = 0.0
    return B.astype(np.float32), d.astype(np.float32)


def tune_l2(X: sp.csr_matrix, candidates: list[float], seed: int, dropout: float, fit=None) -> float:
    """The candidate with the best NDCG@25 when 10 % of each user's items are held out.
    ``fit(X, l2, dropout)`` gives B (dense or sparse); dense EASE by default."""
    fit = fit or (lambda X, l2, dropout: ease(X, l2, dropout)[0])
    rng = np.random.default_rng(seed)
    X = X.tocsr()
    row_len = np.diff(X.indptr)
    held = (rng.random(X.nnz) < 0.1) & (np.repeat(row_len, row_len) >= 5)
    rows = np.repeat(np.arange(X.shape[0]), row_len)
    train = sp.csr_matrix((X.data[~held], (rows[~held], X.indices[~held])), shape=X.shape)
    val = sp.csr_matrix((np.ones(held.sum(), np.float32), (rows[held], X.indices[held])), shape=X.shape)
    users = np.flatnonzero(np.diff(val.indptr) > 0)
    if len(users) > 2000:
        users = np.sort(rng.choice(users, 2000, replace=False))
    if len(users) == 0:
        return candidates[len(candidates) // 2]
    discounts = 1.0 / np.log2(np.arange(2, 27))
    best, best_score = candidates[0], -1.0
    for l2 in candidates:
        B = fit(train, l2, dropout)
        S = train[users] @ B
        S = S.toarray() if sp.issparse(S) else np.asarray(S)
        S[train[users].nonzero()] = -np.inf
        idx, _ = topk_rows(S, 25)
        truth = val[users]
        score = 0.0
        for k, u in enumerate(users):
            t = set(truth.indices[truth.indptr[k]:truth.indptr[k + 1]].tolist())
            dcg = sum(discounts[p] for p, i in enumerate(idx[k]) if i in t)
            score += dcg / discounts[:min(len(t), 25)].sum()
        if score > best_score:
            best, best_score = l2, score
    return float(best)


def trim_block(H: sp.csr_matrix, idx: np.ndarray, probs: np.ndarray, caps, n: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``idx`` / ``probs`` (best first, -1 pads) cut to ``n`` once each row's history
    items (the nonzeros of ``H``'s row) beyond its cap are skipped; -1 / NaN pad."""
    rows = np.repeat(np.arange(idx.shape[0]), idx.shape[1])
    seen = np.asarray(H[rows, np.maximum(idx, 0).ravel()] != 0).reshape(idx.shape) & (idx >= 0)
    keep = ~seen | (np.cumsum(seen, axis=1) <= np.asarray(caps, dtype=np.int64).reshape(-1, 1))
    order = np.argsort(~keep, axis=1, kind="stable")[:, :n]  # kept positions first, in rank order
    kept = np.take_along_axis(keep, order, axis=1)
    out_i = np.where(kept, np.take_along_axis(idx, order, axis=1), -1)
    out_p = np.where(kept, np.take_along_axis(probs, order, axis=1), np.nan).astype(np.float32)
    if out_i.shape[1] < n:
        out_i = np.pad(out_i, ((0, 0), (0, n - out_i.shape[1])), constant_values=-1)
        out_p = np.pad(out_p, ((0, 0), (0, n - out_p.shape[1])), constant_values=np.nan)
    return out_i.astype(np.int64), out_p


def stored_csr(model: Model, name: str) -> sp.csr_matrix:
    """The CSR matrix (rows x items; items x items by default) a model saved as ``<name>_data``,
    ``_indices``, ``_indptr``, built once per loaded model (the arrays stay memory-mapped)."""
    cache = model.__dict__.setdefault("_csr", {})
    if name not in cache:
        a = model.arrays
        indptr = np.asarray(a[f"{name}_indptr"])
        cache[name] = sp.csr_matrix((np.asarray(a[f"{name}_data"]), np.asarray(a[f"{name}_indices"]), indptr),
                                    shape=(len(indptr) - 1, model.n_items))
    return cache[name]


def without_rows(X: sp.csr_matrix, rows: np.ndarray) -> sp.csr_matrix:
    """``X`` with the rows where ``rows`` is True emptied (no stored zeros: implicit would read a
    stored zero as a negative)."""
    lengths = np.diff(X.indptr)
    keep = np.repeat(~rows, lengths)
    indptr = np.zeros(len(lengths) + 1, dtype=X.indptr.dtype)
    np.cumsum(np.where(rows, 0, lengths), out=indptr[1:])
    return sp.csr_matrix((X.data[keep], X.indices[keep], indptr), shape=X.shape)


def fit_als(X: sp.csr_matrix, factors: int, settings: TrainingSettings, iterations: int | None = None):
    """implicit ALS on the float32 CSR, no copies beyond implicit's own transpose."""
    from implicit.cpu.als import AlternatingLeastSquares

    # implicit parallelises over users itself; a BLAS pool underneath would oversubscribe.
    with threadpool_limits(1, "blas"):
        m = AlternatingLeastSquares(factors=factors, regularization=settings.als_regularization,
                                    alpha=settings.als_alpha, iterations=iterations or settings.als_iterations,
                                    num_threads=settings.num_threads, random_state=settings.seed,
                                    calculate_training_loss=False)
        m.fit(X, show_progress=False)
    return m.user_factors, m.item_factors


def item_created(data: TrainingData) -> np.ndarray:
    """Creation time per item: CREATION_TIMESTAMP, else first interaction, else NaN."""
    created = np.full(data.n_items, np.inf)
    np.minimum.at(created, data.item, data.timestamp.astype(np.float64))
    created[np.isinf(created)] = np.nan
    if data.items is not None and "CREATION_TIMESTAMP" in data.items.column_names:
        rows = data.item_table_rows()
        col = np.array([np.nan if v is None else v for v in data.items.column("CREATION_TIMESTAMP").to_pylist()],
                       dtype=np.float64)
        has = rows >= 0
        given = np.full(data.n_items, np.nan)
        given[has] = col[rows[has]]
        created = np.where(np.isnan(given), created, given)
    return created


class CollaborativeAlgorithm(Algorithm):
    """Fits :class:`CollaborativeModel` variants (EASE, neighbourhood EASE or ALS by cost)."""

    model_cls: type[CollaborativeModel] = PersonalizationModel
    factors_param = "hidden_dimension"

    def plan(self, data: TrainingData, settings: TrainingSettings, params: HyperParameters | None = None) -> Plan:
        """The backend by cost; a factor model when the solution config names its size."""
        if params is not None and self.factors_param in params.get("_given", ()):
            return Plan("als", f"{self.factors_param} given: a factor model of that size")
        per_user = np.bincount(data.user, minlength=data.n_users) if data.n_interactions else np.zeros(0)
        return plan(data.n_items, per_user, settings)

    def backend(self, data: TrainingData, settings: TrainingSettings, params: HyperParameters | None = None) -> str:
        return self.plan(data, settings, params).backend

    def default_l2(self, data: TrainingData, X: sp.csr_matrix | None = None) -> float:
        """The scaled mean number of interactions per item: of the fitted matrix ``X`` when given
        (users left out of it count for nothing), else of ``data``."""
        n = X.nnz if X is not None else data.n_interactions
        return EASE_L2_SCALE * max(n / max(data.n_items, 1), 1.0)

    def extends_cheaply(self, data: TrainingData, settings: TrainingSettings,
                        params: HyperParameters | None = None) -> bool:
        """True when folding held-out users into a model is much cheaper than a refit (ALS)."""
        return self.backend(data, settings, params) == "als"

    def choose_l2(self, X, data, params, settings, chosen: Plan) -> float:
        """The given ``ease_l2`` (HPO), else one tuned on a validation split when the plan has
        time for it, else the scaled mean."""
        if "ease_l2" in params:
            return float(params["ease_l2"])
        if not chosen.tune_l2:
            return self.default_l2(data, X)
        mean = self.default_l2(data, X) / EASE_L2_SCALE
        fit = None if chosen.backend == "ease" else self._local_fit(settings)
        return tune_l2(X, [mean * g for g in EASE_L2_GRID], settings.seed, EASE_DROPOUT, fit)

    @staticmethod
    def _local_fit(settings: TrainingSettings):
        return lambda X, l2, dropout: local_ease(X, l2, dropout, settings.local_ease_neighbours)

    def internal_search_space(self, data, settings):
        if self.backend(data, settings) in ITEM_TO_ITEM:
            base = self.default_l2(data)
            return {"ease_l2": (base / 10.0, base * 10.0)}
        return {}

    def describe(self, data, params, settings):
        chosen = self.plan(data, settings, params)
        l2 = params.get("ease_l2")
        l2_text = "tuned on validation" if l2 is None and chosen.tune_l2 else \
            f"{l2:.4g}" if l2 is not None else "scaled mean interactions per item"
        if chosen.backend == "ease":
            return {"algorithm": "ease", "ease_dropout": str(EASE_DROPOUT), "ease_l2": l2_text,
                    "chosen_because": chosen.reason}
        if chosen.backend == "local-ease":
            return {"algorithm": "neighbourhood-ease", "neighbours": str(settings.local_ease_neighbours),
                    "ease_dropout": str(EASE_DROPOUT), "ease_l2": l2_text, "chosen_because": chosen.reason}
        return {"algorithm": "implicit-als", "factors": str(params.get(self.factors_param, 100)),
                "iterations": str(settings.als_iterations), "chosen_because": chosen.reason}

    def fit(self, data: TrainingData, params: HyperParameters, settings: TrainingSettings) -> Model:
        arrays, meta, X = self.fit_core(data, params, settings)
        return self._finish(data, params, settings, arrays, meta, X)

    def fit_core(self, data: TrainingData, params: HyperParameters, settings: TrainingSettings
                 ) -> tuple[dict[str, np.ndarray], dict[str, Any], sp.csr_matrix]:
        """The collaborative weights or factors (arrays, meta) and the interaction matrix."""
        X = interaction_matrix(data)
        # Users outside the history-length percentiles do not shape the model (bots, one-offs);
        # they are still served from their own histories (ALS folds them in afterwards).
        outside = outside_history_percentiles(np.diff(X.indptr), params)
        X_fit = X if outside is None else without_rows(X, outside)
        chosen = self.plan(data, settings, params)
        backend = chosen.backend
        arrays: dict[str, np.ndarray] = {"item_ids": data.item_ids, "user_ids": data.user_ids}
        meta: dict[str, Any] = {"backend": backend}
        if backend == "ease":
            l2 = self.choose_l2(X_fit, data, params, settings, chosen)
            arrays["B"], arrays["diag_p"] = ease(X_fit, l2, EASE_DROPOUT)
            meta["l2"] = l2
        elif backend == "local-ease":
            l2 = self.choose_l2(X_fit, data, params, settings, chosen)
            B = local_ease(X_fit, l2, EASE_DROPOUT, settings.local_ease_neighbours)
            arrays["B_indptr"], arrays["B_indices"], arrays["B_data"] = B.indptr, B.indices, B.data
            meta.update(l2=l2, neighbours=settings.local_ease_neighbours)
        else:
            factors = int(params.get(self.factors_param, 100))
            U, V = fit_als(X_fit, factors, settings)
            if outside is not None and outside.any():
                rows = np.flatnonzero(outside)
                U[rows] = als_fold_in_rows(V, X[rows] * settings.als_alpha, settings.als_regularization)
            arrays["user_factors"], arrays["item_factors"] = U, V
            meta.update(factors=factors, reg=settings.als_regularization, alpha=settings.als_alpha)
        return arrays, meta, X

    def _finish(self, data, params, settings, arrays, meta, X=None) -> Model:
        arrays["hist_indptr"], arrays["hist_items"] = histories(data)
        # Distinct users per item: the CSR already holds each (user, item) pair once.
        arrays["popularity"] = (np.bincount(X.indices, minlength=data.n_items).astype(np.float32)
                                if X is not None else popularity(data))
        arrays["item_created"] = item_created(data)
        arrays["item_content"] = metadata_embedding(data, 32, settings.seed)
        recency = params.get("recency_mask", params.get("apply_recency_bias", False))
        meta.update(recipe=params.get("_recipe", ""), bptt=int(params.get("bptt", 32)),
                    recency=bool(recency), now=float(data.timestamp.max()) if data.n_interactions else 0.0,
                    temperature=1.0)
        model = self.model_cls(arrays, meta)
        with threadpool_limits(1, "blas"):  # many tiny solves: threads only get in the way
            meta["temperature"] = _temperature(model, settings.seed)  # of the raw scores, before the repeat policy
        if issubclass(self.model_cls, PersonalizationModel):
            profile = measure(data)
            arrays["repeat_user_share"], arrays["repeat_item_weight"] = profile.user_share, profile.item_weight
            arrays["repeat_pair_weight"] = profile.pair_weight
            meta["repeat_share"] = profile.share
        return model

    def update(self, previous, data, params, settings):
        """Fold new users and items in: EASE gains columns for new items (their regression on
        the old items, through the stored diag(P)); ALS solves factors for the new rows."""
        if previous.meta["backend"] == "local-ease":  # a refit costs about what a fold-in would
            aligned = data.with_items_first(previous.item_ids)  # the old items keep their indices
            return self.fit(data if aligned is None else aligned, params, settings)
        old_items = previous.n_items
        aligned = data.with_items_first(previous.item_ids)  # the old items keep their indices
        if aligned is None:
            return self.fit(data, params, settings)  # items were removed: refit
        data = aligned
        X = interaction_matrix(data)
        a = previous.arrays
        arrays = {"item_ids": data.item_ids, "user_ids": data.user_ids}
        meta = {k: previous.meta[k] for k in ("backend", "l2", "factors", "reg", "alpha") if k in previous.meta}
        new = data.n_items - old_items
        if previous.meta["backend"] == "ease":
            B = np.asarray(a["B"])
            d = np.asarray(a["diag_p"])
            Xo, Xn = X[:, :old_items], X[:, old_items:]
            P = (np.eye(old_items, dtype=np.float32) - B) * d  # P = (I - B) diag(d)
            cross = (Xo.T @ Xn).toarray().astype(np.float32)
            Bn = np.zeros((data.n_items, data.n_items), dtype=np.float32)
            Bn[:old_items, :old_items] = B
            Bn[:old_items, old_items:] = P @ cross
            arrays["B"] = Bn
            arrays["diag_p"] = np.r_[d, np.ones(new, np.float32)].astype(np.float32)
        else:
            V = np.asarray(a["item_factors"])
            U_old = np.asarray(a["user_factors"])
            reg, alpha = meta["reg"], meta["alpha"]
            U = np.zeros((data.n_users, V.shape[1]), np.float32)
            known_u = previous.user_index(data.user_ids)
            U[known_u >= 0] = U_old[known_u[known_u >= 0]]
            # Rows to solve: users and items the previous model had no interactions for.
            old_len = np.diff(np.asarray(a["hist_indptr"]))
            fold_users = (known_u < 0) | (old_len[np.maximum(known_u, 0)] == 0)
            old_pop = np.asarray(a["popularity"])
            fold_items = np.r_[old_pop == 0, np.ones(new, bool)]
            V2 = np.vstack([V, np.zeros((new, V.shape[1]), np.float32)])
            items = np.flatnonzero(fold_items)
            if len(items):
                Xt = X[:, items].T.tocsr()
                V2[items] = als_fold_in_rows(U, Xt * alpha, reg)
            users = np.flatnonzero(fold_users)
            if len(users):
                U[users] = als_fold_in_rows(V2, X[users] * alpha, reg)
            arrays["user_factors"], arrays["item_factors"] = U, V2
        return self._finish(data, params, settings, arrays, meta, X)


def _temperature(model: CollaborativeModel, seed: int) -> float:
    """Softmax temperature: the typical spread of a user's top scores, so probabilities are
    neither uniform nor one-hot."""
    rng = np.random.default_rng(seed)
    users = rng.choice(model.n_users, size=min(64, model.n_users), replace=False) if model.n_users else []
    spreads = []
    for u in users:
        scores = model.scores_for_history(model.history(int(u)), int(u))
        top = np.partition(scores, len(scores) - 100)[-100:] if len(scores) > 100 else scores
        s = np.sort(top)[::-1]  # the top 100, best first: a float32 std depends on the order
        if len(s) > 1 and np.isfinite(s).all():
            spreads.append(float(s.std()))
    t = float(np.median(spreads)) if spreads else 1.0
    return t if t > 1e-6 else 1.0


# Legacy HRNN recipes train and serve as aws-user-personalization (registry.LEGACY).
USER_PERSONALIZATION = Capabilities(
    "USER_PERSONALIZATION", enough_interactions, "next-items", scored=True, exploration=True,
    batch_inference=True, training_update=True, refresh=FOLD_IN)


class UserPersonalization(CollaborativeAlgorithm):
    capabilities = {
        "aws-user-personalization": USER_PERSONALIZATION,
    }  # -v2, which learns from the order of events, is recipes/sequential.py


PERSONALIZED_RANKING = Capabilities("PERSONALIZED_RANKING", enough_interactions, "ranking", scored=True,
                                    batch_inference=True)


class PersonalizedRanking(CollaborativeAlgorithm):
    capabilities = {
        "aws-personalized-ranking": PERSONALIZED_RANKING,
        "aws-personalized-ranking-v2": PERSONALIZED_RANKING.but(reasons=True),
    }
