"""User-Personalization-v2 and the HRNN recipes: the next item from the order of a user's events.

AWS builds these recipes on sequence models (a transformer, a recurrent network) that predict a
user's next interaction from their recent ones. This model does that with two closed-form
parts, in the spirit of SLIST (Choi et al. 2021), which matches neural sequence models on
session data at a fraction of their cost:

* the collaborative part of User-Personalization (EASE, neighbourhood EASE or ALS by cost):
  what a user's whole history says about their taste, order-blind;
* a transition part: for every item, which items followed it in users' sequences (the next
  ``GAPS`` interactions, nearer ones counting more), as probabilities. A user's transition
  scores are the rows of their most recent items, the newest weighing most (``decay`` per step
  back, over the last ``WINDOW`` items).

Each part is scaled to its row's maximum and they are mixed with weight ``seq_weight`` on the
transitions. HRNN-Metadata adds a third part, ``meta_weight`` x the likeness of each item's
metadata (categorical and textual columns, the same embedding exploration uses) to the user's
recent items', and a fourth from the Users dataset, ``user_weight`` x what the user's segment
(the users who share every categorical user column's value: a tier, a country) interacts with. HRNN-Coldstart recommends cold items only (``cold_start_*``: at most
``cold_start_max_interactions`` interactions, created within ``cold_start_max_duration`` days
of the newest item or of now), scored with the metadata part too, since they have few or no
interactions for the rest to go on. ``seq_weight`` and ``decay`` are chosen on a validation split inside training
(each user's newest interaction held out), so data without order gets the collaborative
model alone, data where the next item follows the last gets the transitions, and data between
gets the blend. With ``apply_recency_bias`` (HRNN: ``recency_mask``) false, a random share of
each user's earlier interactions is held out too, and a blend is kept only when it does not rank
those worse than the order-blind model (for lists judged against the whole history rather than
the next interactions). Real-time events are the newest items of the history the runtime passes, so
an event moves the answer at once.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .base import HyperParameters, Model, TrainingData, TrainingSettings, index_in, model_class, sorter_of
from .features import metadata_embedding
from .factorization import (USER_PERSONALIZATION, CollaborativeAlgorithm, CollaborativeModel, PersonalizationModel,
                            stored_csr)
from .scoring import histories, topk_rows

WINDOW = 10  # most recent history items whose transitions count
GAPS = (1.0, 0.5, 0.25)  # weight of the item 1, 2, 3 steps later in a sequence
KEEP_PER_ITEM = 200  # transitions stored per item (the strongest)
WEIGHTS = (0.0, 0.1, 0.2, 0.4, 0.6, 0.8)  # seq_weight candidates: the collaborative part always counts
DECAYS = (0.0, 0.3, 0.6, 0.9)  # decay candidates (0: the last item alone)
META_WEIGHTS = (0.0, 0.2, 0.4, 0.6)  # meta_weight candidates (HRNN-Metadata, HRNN-Coldstart)
USER_WEIGHTS = (0.0, 0.2, 0.4, 0.6)  # user_weight candidates (the user metadata part)
KEEP_PER_SEGMENT = 500  # items kept per user segment (its members' most frequent)
METADATA_RECIPES = ("aws-hrnn-metadata", "aws-hrnn-coldstart")
DAY = 86400.0
VALIDATION_USERS = 3000  # users scored per candidate when choosing
VALIDATION_CELLS = 300_000_000  # ... but at most this many scores per candidate (fewer users on huge catalogues)
BLOCK_CELLS = 1 << 24  # validation scores held at once (64 MB of float32)
MIN_VALIDATION_USERS = 30
EARLIER_SHARE = 0.2  # share of each user's earlier interactions held out at random (the guard's truth)
GUARD_MARGIN = 0.01  # a blend may cost the random hold-out at most this share of the order-blind NDCG@10 ...
GUARD_CONFIDENCE = 2.0  # ... with this many standard errors of confidence


def ordered(data: TrainingData) -> tuple[np.ndarray, np.ndarray]:
    """(user, item) of every interaction, sorted by user then time (stable): the order the
    model's histories already sorted (``data.pair_runs``)."""
    order = data.pair_runs.order
    return data.user[order].astype(np.int64), data.item[order].astype(np.int64)


def transitions(data: TrainingData) -> sp.csr_matrix:
    """Row-normalised item -> following-item weights (n_items x n_items, float32), the strongest
    ``KEEP_PER_ITEM`` per row."""
    n = data.n_items
    user, item = ordered(data)
    rows, cols, vals = [], [], []
    for gap, weight in enumerate(GAPS, start=1):
        same = (user[gap:] == user[:-gap]) & (item[gap:] != item[:-gap])
        rows.append(item[:-gap][same])
        cols.append(item[gap:][same])
        vals.append(np.full(int(same.sum()), weight, dtype=np.float32))
    if not rows or not sum(len(r) for r in rows):
        return sp.csr_matrix((n, n), dtype=np.float32)
    C = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n),
                      dtype=np.float32)
    C.sum_duplicates()
    C = _strongest(C, KEEP_PER_ITEM)
    totals = np.asarray(C.sum(axis=1)).ravel()
    C = sp.diags(1.0 / np.maximum(totals, 1e-9)).astype(np.float32) @ C
    C.sort_indices()
    return C.tocsr()


def _strongest(C: sp.csr_matrix, k: int) -> sp.csr_matrix:
    lengths = np.diff(C.indptr)
    if lengths.max(initial=0) <= k:
        return C
    keep = np.ones(C.nnz, dtype=bool)
    for r in np.flatnonzero(lengths > k):
        a, b = C.indptr[r], C.indptr[r + 1]
        weakest = np.argsort(-C.data[a:b], kind="stable")[k:]
        keep[a + weakest] = False
    rows = np.repeat(np.arange(C.shape[0]), lengths)
    return sp.csr_matrix((C.data[keep], (rows[keep], C.indices[keep])), shape=C.shape)


def recent_rows(hists: list[np.ndarray], n_items: int, decay: float) -> sp.csr_matrix:
    """One row per history: its last ``WINDOW`` items weighted decay^(steps back) (newest 1)."""
    rows, cols, vals = [], [], []
    for r, h in enumerate(hists):
        tail = np.asarray(h, dtype=np.int64)[-WINDOW:]
        tail = tail[(tail >= 0) & (tail < n_items)]
        if len(tail) == 0:
            continue
        steps = np.arange(len(tail))[::-1]
        w = np.where(steps == 0, 1.0, decay ** steps) if decay > 0 else (steps == 0).astype(np.float64)
        rows.append(np.full(len(tail), r))
        cols.append(tail)
        vals.append(w)
    if not rows:
        return sp.csr_matrix((len(hists), n_items), dtype=np.float32)
    return sp.csr_matrix((np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(len(hists), n_items))


def metadata_scores(content: np.ndarray, hists: list[np.ndarray], decay: float) -> np.ndarray:
    """Per history, each item's metadata likeness to the recent items' (cosine of the
    L2-normalised embeddings against their decay-weighted mean); zeros without metadata."""
    R = recent_rows(hists, content.shape[0], max(decay, 0.5))
    profile = np.asarray(R @ content, dtype=np.float32)
    return np.maximum(profile @ content.T, 0.0).astype(np.float32)


def user_segments(data: TrainingData) -> tuple[np.ndarray, sp.csr_matrix] | None:
    """The user metadata part's data: users sharing the value of every categorical column of the
    Users dataset form a segment, whose row holds its members' item counts (the strongest
    ``KEEP_PER_SEGMENT``) scaled to its maximum. Returns each user's segment (-1 without a Users
    row) and the rows; None without categorical user columns."""
    table, roles = data.users, data.user_columns
    if table is None or not roles.categorical:
        return None
    id_column = next((c for c in table.column_names if c.upper() == "USER_ID"), None)
    if id_column is None:
        return None
    ids = np.asarray(table.column(id_column).to_pylist(), dtype=str)
    keys = np.asarray(["\x1f".join(map(str, values)) for values in
                       zip(*(table.column(c).to_pylist() for c in roles.categorical))], dtype=str)
    position = index_in(data.user_ids, ids, sorter_of(data.user_ids))
    known = position >= 0
    labels, segment_of_row = np.unique(keys[known], return_inverse=True)
    segment = np.full(data.n_users, -1, dtype=np.int64)
    segment[position[known]] = segment_of_row
    of_interaction = segment[data.user]
    has = of_interaction >= 0
    C = sp.csr_matrix((np.ones(int(has.sum()), np.float32), (of_interaction[has], data.item[has].astype(np.int64))),
                      shape=(len(labels), data.n_items), dtype=np.float32)
    C.sum_duplicates()
    C = _strongest(C, KEEP_PER_SEGMENT)
    tops = np.asarray(C.max(axis=1).toarray()).ravel() if C.shape[0] else np.zeros(0)
    C = (sp.diags(1.0 / np.maximum(tops, 1e-9)).astype(np.float32) @ C).tocsr()
    C.sort_indices()
    return segment, C


def segment_scores(segment: np.ndarray, C: sp.csr_matrix, users: np.ndarray) -> np.ndarray:
    """One row per user: their segment's row (zeros for users without one)."""
    users = np.asarray(users, dtype=np.int64)
    of = np.where((users >= 0) & (users < len(segment)), segment[np.clip(users, 0, max(len(segment) - 1, 0))], -1) \
        if len(segment) else np.full(len(users), -1)
    out = np.zeros((len(users), C.shape[1]), dtype=np.float32)
    rows = np.flatnonzero(of >= 0)
    if len(rows):
        out[rows] = C[of[rows]].toarray()
    return out


def cold_items(data: TrainingData, created: np.ndarray, params: HyperParameters) -> np.ndarray:
    """HRNN-Coldstart's cold items: at most ``cold_start_max_interactions`` interactions and
    created within ``cold_start_max_duration`` days of the newest item (``latestItem``) or of
    the newest interaction (``currentTime``: training's now)."""
    counts = np.bincount(data.item, minlength=data.n_items)
    known = created[np.isfinite(created)]
    if params.get("cold_start_relative_from", "latestItem") == "currentTime":
        reference = float(data.timestamp.max()) if data.n_interactions else 0.0
    else:
        reference = float(known.max()) if len(known) else 0.0
    recent = np.where(np.isfinite(created), created >= reference - float(params.get("cold_start_max_duration", 5.0)) * DAY,
                      True)
    return (counts <= int(params.get("cold_start_max_interactions", 15))) & recent


def row_scaled(S: np.ndarray) -> np.ndarray:
    """Each row divided by its largest finite value (rows without a positive one unchanged)."""
    top = np.max(np.where(np.isfinite(S), S, -np.inf), axis=1, keepdims=True)
    return S / np.where(top > 1e-12, top, 1.0)


def blend(base: np.ndarray, seq: np.ndarray, weight: float, has_history: np.ndarray) -> np.ndarray:
    """(1 - weight) x base + weight x seq, each scaled to its row maximum; rows without history
    keep ``base`` (popularity)."""
    if weight <= 0.0:
        return base
    mixed = (1.0 - weight) * row_scaled(base) + weight * row_scaled(seq)
    return np.where(has_history[:, None], mixed, base).astype(np.float32)


def significant_best(gains: dict[tuple[float, float], np.ndarray], blind: tuple[float, float],
                     earlier: dict[tuple[float, float], np.ndarray] | None = None) -> tuple[float, float]:
    """The candidate with the best mean gain on the newest interactions, if it beats the
    order-blind one by more than two standard errors of the paired per-user differences; else
    the order-blind one. On data without order, noise would otherwise pick some blend by chance.

    With ``earlier`` (gains on interactions held out at random from earlier in each history),
    only candidates that do not rank those worse than the order-blind model are eligible: the
    paired difference's lower confidence bound must stay at or above -GUARD_MARGIN x the order-blind
    gain. Lists are judged against the next interactions by some and against the whole history
    by others; a blend that wins the first by losing the second is not kept."""
    eligible = [c for c in gains if earlier is None or c == blind or _not_worse(earlier[c], earlier[blind])]
    best = max(eligible, key=lambda c: (gains[c].mean(), -c[0]))
    diff = gains[best] - gains[blind]
    if best == blind or len(diff) < 2:
        return blind
    return best if diff.mean() > 2.0 * _standard_error(diff) else blind


def _not_worse(candidate: np.ndarray, blind: np.ndarray) -> bool:
    """Non-inferiority on the random hold-out (NaN: users with nothing held out there)."""
    keep = ~np.isnan(blind)
    diff = candidate[keep] - blind[keep]
    if len(diff) < 2:
        return True
    return bool(diff.mean() - GUARD_CONFIDENCE * _standard_error(diff) >= -GUARD_MARGIN * blind[keep].mean())


def _standard_error(diff: np.ndarray) -> float:
    """Of the mean of paired per-user differences."""
    return float(diff.std(ddof=1) / np.sqrt(len(diff)))


@model_class
class SequentialModel(PersonalizationModel):
    """The collaborative model's scores blended with transition scores from the newest items."""

    def transition_matrix(self) -> sp.csr_matrix:
        return stored_csr(self, "T")

    def _sequence_scores(self, hists: list[np.ndarray]) -> np.ndarray:
        R = recent_rows(hists, self.n_items, float(self.meta["seq_decay"]))
        return np.asarray((R @ self.transition_matrix()).toarray(), dtype=np.float32)

    def _blended(self, base: np.ndarray, hists: list[np.ndarray], users: np.ndarray | None = None) -> np.ndarray:
        weight = float(self.meta.get("seq_weight", 0.0))
        has = np.array([len(h) > 0 for h in hists], dtype=bool)
        if weight > 0.0 and "T_indptr" in self.arrays:
            base = blend(base, self._sequence_scores(hists), weight, has)
        meta_weight = float(self.meta.get("meta_weight", 0.0))
        if meta_weight > 0.0:
            base = blend(base, metadata_scores(np.asarray(self.arrays["item_content"]), hists,
                                               float(self.meta.get("seq_decay", 0.0))), meta_weight, has)
        user_weight = float(self.meta.get("user_weight", 0.0))
        if user_weight > 0.0 and users is not None and "U_indptr" in self.arrays:
            segment = np.asarray(self.arrays["user_segment"])
            scores = segment_scores(segment, stored_csr(self, "U"), users)
            base = blend(base, scores, user_weight, scores.max(axis=1) > 0)
        return base

    def candidates(self, mask: np.ndarray | None) -> np.ndarray | None:
        """HRNN-Coldstart: only cold items are recommended (combined with a filter's mask)."""
        cold = self.arrays.get("cold_items")
        if cold is None:
            return mask
        cold = np.asarray(cold, dtype=bool)
        return cold if mask is None else (np.asarray(mask, dtype=bool) & (cold if mask.ndim == 1 else cold[None, :]))

    def recommend(self, user, n, exclude=None, candidates_mask=None, exploration=None, **options):
        return super().recommend(user, n, exclude, self.candidates(candidates_mask), exploration, **options)

    def recommend_batch(self, users, n, mask=None, exclude_seen=False):
        return super().recommend_batch(users, n, self.candidates(mask), exclude_seen)

    def _raw_scores(self, hist: np.ndarray, user: int) -> np.ndarray:
        base = super()._raw_scores(hist, user)
        return self._blended(base[None, :], [np.asarray(hist)], np.array([user]))[0]

    def _raw_block(self, users: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        base = super()._raw_block(users, out)
        return self._blended(base, [self.history(int(u)) for u in np.asarray(users)], np.asarray(users))

    def _raw_histories(self, hists: list[np.ndarray]) -> np.ndarray:
        return self._blended(super()._raw_histories(hists), list(hists))


class _BlockScores:
    """A block of validation users: their scaled collaborative scores, and NDCG@10 gains of a
    blend on their held-out newest item and on their earlier interactions held out at random."""

    DISCOUNTS = 1.0 / np.log2(np.arange(2, 12))
    IDEAL = np.cumsum(DISCOUNTS)

    def __init__(self, core: CollaborativeModel, T: sp.csr_matrix, users: np.ndarray, truth: np.ndarray,
                 earlier: sp.csr_matrix, drop_seen: bool, n_items: int):
        self.T, self.truth, self.earlier, self.n_items, self.users = T, truth, earlier, n_items, users
        self.base = row_scaled(core._raw_block(users))
        self.hists = [core.history(int(u)) for u in users]
        lengths = [len(h) for h in self.hists]
        self.seen = sp.csr_matrix((np.ones(sum(lengths), np.float32),
                                   (np.repeat(np.arange(len(users)), lengths),
                                    np.concatenate(self.hists) if self.hists else np.empty(0, np.int64))),
                                  shape=(len(users), n_items)) if drop_seen else None
        self._seq: dict[float, np.ndarray] = {}

    def seq(self, decay: float) -> np.ndarray:
        if decay not in self._seq:
            R = recent_rows(self.hists, self.n_items, decay)
            self._seq = {decay: row_scaled(np.asarray((R @ self.T).toarray(), dtype=np.float32))}
        return self._seq[decay]

    def gains(self, weight: float, decay: float, content: np.ndarray | None = None, meta_weight: float = 0.0,
              segments: tuple[np.ndarray, sp.csr_matrix] | None = None, user_weight: float = 0.0
              ) -> tuple[np.ndarray, np.ndarray]:
        """NDCG@10 per user on the newest interaction, and on the earlier ones (NaN for users
        with none held out)."""
        S = self.base if weight == 0.0 else (1.0 - weight) * self.base + weight * self.seq(decay)
        if content is not None:
            S = (1.0 - meta_weight) * row_scaled(S) + meta_weight * row_scaled(
                metadata_scores(content, self.hists, decay))
        if segments is not None and user_weight > 0.0:
            part = segment_scores(*segments, self.users)
            S = np.where((part.max(axis=1) > 0)[:, None],
                         (1.0 - user_weight) * row_scaled(S) + user_weight * row_scaled(part), S)
        if self.seen is not None:  # as the repeat policy will: seen items are not recommended
            S = S.copy() if S is self.base else S
            S[self.seen.nonzero()] = -np.inf
        idx, _ = topk_rows(S, 10)
        newest = ((idx == self.truth[:, None]) * self.DISCOUNTS).sum(axis=1)
        if self.earlier.nnz == 0:  # no guard (or nothing held out earlier)
            return newest, np.full(len(idx), np.nan)
        held = np.diff(self.earlier.indptr)
        # topk_rows pads short rows with -1, which a sparse index would read as the last column
        rows = np.arange(len(idx))[:, None]
        hits = (np.asarray(self.earlier[rows, np.maximum(idx, 0)].todense()) > 0) & (idx >= 0)
        ideal = self.IDEAL[np.clip(held, 1, 10) - 1]
        return newest, np.where(held > 0, (hits * self.DISCOUNTS).sum(axis=1) / ideal, np.nan)


class SequentialPersonalization(CollaborativeAlgorithm):
    """Fits :class:`SequentialModel`: the collaborative core, the transitions, and the blend
    chosen on each user's newest interaction."""

    model_cls = SequentialModel
    # -v2 explains each item (``reason``), returns metadata without being asked at creation,
    # and has no exploration and no UPDATE training at AWS.
    capabilities = {"aws-user-personalization-v2": USER_PERSONALIZATION.but(
        reasons=True, metadata_by_default=True, exploration=False, training_update=False)}

    def describe(self, data, params, settings):
        out = super().describe(data, params, settings)
        out["algorithm"] = f"sequence-blend({out['algorithm']} + item transitions)"
        out.update(seq_weight="chosen on validation", seq_decay="chosen on validation", seq_window=str(WINDOW))
        if params.get("_asked") in METADATA_RECIPES:
            out["meta_weight"] = "chosen on validation"
            out["user_weight"] = "chosen on validation (categorical Users columns)"
        if params.get("_asked") == "aws-hrnn-coldstart":
            out["candidates"] = "cold items (cold_start_max_interactions, cold_start_max_duration, cold_start_relative_from)"
        return out

    def fit(self, data: TrainingData, params: HyperParameters, settings: TrainingSettings) -> Model:
        weight, decay, meta_weight, user_weight = self.choose_blend(data, params, settings)
        arrays, meta, X = self.fit_core(data, params, settings)
        T = transitions(data)
        arrays["T_indptr"], arrays["T_indices"], arrays["T_data"] = T.indptr, T.indices, T.data
        meta.update(seq_weight=weight, seq_decay=decay, seq_window=WINDOW, meta_weight=meta_weight,
                    user_weight=user_weight)
        segments = user_segments(data) if user_weight > 0.0 else None
        if segments is not None:
            arrays["user_segment"] = segments[0]
            arrays["U_indptr"], arrays["U_indices"], arrays["U_data"] = segments[1].indptr, segments[1].indices, \
                segments[1].data
        model = self._finish(data, params, settings, arrays, meta, X)
        if params.get("_asked") == "aws-hrnn-coldstart":
            cold = cold_items(data, np.asarray(arrays["item_created"]), params)
            if cold.any():  # without any cold item, the recipe has nothing to restrict to
                arrays["cold_items"] = cold
        return model

    def update(self, previous, data, params, settings):
        """A refit (the blend is chosen again on the new data) in which the old items keep
        their indices, as a fold-in's do."""
        aligned = data.with_items_first(previous.item_ids)
        return self.fit(data if aligned is None else aligned, params, settings)

    def choose_blend(self, data: TrainingData, params: HyperParameters, settings: TrainingSettings
                     ) -> tuple[float, float, float, float]:
        """(seq_weight, decay) with the best NDCG@10 on each user's newest interaction, the
        models fitted on the rest; and for the metadata recipes the item and the user metadata
        weights. Zeros when too few users have three or more interactions. Without recency bias
        each candidate must also pass the guard (``significant_best``); the models it compares
        are then fitted without the randomly held-out earlier interactions too."""
        order = data.pair_runs.order  # by user, then time
        counts = np.bincount(data.user, minlength=data.n_users)
        last = np.zeros(data.n_interactions, dtype=bool)
        ends = np.cumsum(counts)[counts >= 3] - 1
        last[order[ends]] = True
        if len(ends) < MIN_VALIDATION_USERS:
            return 0.0, 0.0, 0.0, 0.0
        # Without recency bias (apply_recency_bias / recency_mask false) a blend must also not
        # rank the rest of the history worse: its truth is a random EARLIER_SHARE of the same
        # users' earlier interactions, held out too.
        guarded = not params.get("apply_recency_bias", params.get("recency_mask", True))
        rng = np.random.default_rng(settings.seed)
        truth_user, truth_item = data.user[last].astype(np.int64), data.item[last].astype(np.int64)
        users = max(MIN_VALIDATION_USERS * 10, min(VALIDATION_USERS, VALIDATION_CELLS // max(data.n_items, 1)))
        if len(truth_user) > users:
            pick = np.sort(rng.choice(len(truth_user), users, replace=False))
            truth_user, truth_item = truth_user[pick], truth_item[pick]
        earlier = np.zeros(data.n_interactions, dtype=bool)
        if guarded:  # only the validation users' earlier interactions: the others' stay in the fit
            per_row = np.repeat(counts, counts)  # in ``order``: the user's count, and the position
            position = np.arange(data.n_interactions) - np.repeat(np.cumsum(counts) - counts, counts)
            scored = np.zeros(data.n_users, dtype=bool)
            scored[truth_user] = True
            earlier[order[scored[data.user[order]] & (position < per_row - 1)
                          & (rng.random(data.n_interactions) < EARLIER_SHARE)]] = True
        rest = data.subset(~(last | earlier))
        held = sp.csr_matrix((np.ones(int(earlier.sum()), np.float32), (data.user[earlier], data.item[earlier])),
                             shape=(data.n_users, data.n_items))[truth_user]
        arrays, meta, X = self.fit_core(rest, params, settings)
        arrays["hist_indptr"], arrays["hist_items"] = histories(rest)
        arrays["popularity"] = np.bincount(X.indices, minlength=rest.n_items).astype(np.float32)
        meta.update(recency=False, bptt=32)
        core = CollaborativeModel(arrays, meta)
        repeats = np.isin(truth_item + truth_user * rest.n_items,
                          rest.user.astype(np.int64) * rest.n_items + rest.item).mean()
        T = transitions(rest)
        metadata = params.get("_asked") in METADATA_RECIPES
        content = metadata_embedding(rest, 32, settings.seed) if metadata else None
        # Users are scored in blocks of at most BLOCK_CELLS scores, so memory stays flat at any
        # catalogue size; each choice below is a pass over the blocks, rather than holding them all.
        block = max(1, BLOCK_CELLS // max(rest.n_items, 1))
        blocks = [slice(start, start + block) for start in range(0, len(truth_user), block)]

        def best(candidates: list, gains_of, blind: tuple[float, float]) -> tuple[float, float]:
            """significant_best over ``candidates``, ``gains_of(scores, candidate)`` giving a
            block's (newest, earlier) gains of one."""
            newest = {c: np.zeros(len(truth_user)) for c in candidates}
            earlier_gains = {c: np.zeros(len(truth_user)) for c in candidates}
            for rows in blocks:
                scores = _BlockScores(core, T, truth_user[rows], truth_item[rows], held[rows], repeats < 0.01,
                                      rest.n_items)
                for c in candidates:
                    newest[c][rows], earlier_gains[c][rows] = gains_of(scores, c)
            return significant_best(newest, blind, earlier_gains if guarded else None)

        weight, decay = best([(w, d) for d in DECAYS for w in WEIGHTS if w > 0.0 or d == DECAYS[0]],
                             lambda scores, c: scores.gains(*c), (0.0, DECAYS[0]))
        if not metadata:
            return weight, decay, 0.0, 0.0
        # The metadata part, on top of the chosen blend, kept only when it beats it likewise.
        meta_weight = best([(m, 0.0) for m in META_WEIGHTS],
                           lambda scores, c: scores.gains(weight, decay, content, c[0]), (0.0, 0.0))[0]
        # The user metadata part likewise, on top of the chosen blend.
        segments = user_segments(rest)
        user_weight = 0.0
        if segments is not None:
            user_weight = best([(u, 0.0) for u in USER_WEIGHTS],
                               lambda scores, c: scores.gains(weight, decay, content, meta_weight, segments, c[0]),
                               (0.0, 0.0))[0]
        if params.get("_asked") == "aws-hrnn-coldstart":
            # Cold items have few or no interactions: the validation (newest interactions, warm
            # items) cannot see their need, and without the metadata part they would all tie.
            meta_weight = max(meta_weight, META_WEIGHTS[1])
        return weight, decay, meta_weight, user_weight
