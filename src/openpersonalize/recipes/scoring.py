"""Shared numerics: the interaction matrix, masked top-k, score normalisation."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from ..ordering import stable_order
from .base import TrainingData


def interaction_matrix(data: TrainingData, weights: np.ndarray | None = None) -> sp.csr_matrix:
    """users x items float32 CSR; repeated (user, item) pairs keep their strongest weight.

    Built once, without intermediate float64 copies (the 10M-interaction case matters).
    """
    w = data.weights() if weights is None else weights
    w = np.asarray(w, dtype=np.float32)
    shape = (data.n_users, data.n_items)
    m = sp.csr_matrix((w, (data.user, data.item)), shape=shape, dtype=np.float32)
    if m.nnz == len(w):
        return m
    if len(w) and w.min() == w.max():  # one weight for all (the usual case): the maximum is it
        m.data[:] = w[0]
        return m
    # Duplicates were summed: rebuild with the per-pair maximum instead.
    key = data.user.astype(np.int64) * data.n_items + data.item
    order = stable_order(key)
    k = key[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    best = np.maximum.reduceat(w[order], starts)
    uk = k[starts]
    return sp.csr_matrix((best, ((uk // data.n_items).astype(np.int32), (uk % data.n_items).astype(np.int32))),
                         shape=shape, dtype=np.float32)


def outside_history_percentiles(lengths: np.ndarray, params) -> np.ndarray | None:
    """Users whose history ``lengths`` lie outside ``min/max_user_history_length_percentile``
    (quantiles over users with history), or None when the recipe has no such parameters or
    nobody is outside."""
    lo_q = params.get("min_user_history_length_percentile")
    hi_q = params.get("max_user_history_length_percentile")
    if lo_q is None and hi_q is None:
        return None
    lengths = np.asarray(lengths)
    active = lengths[lengths > 0]
    if not len(active):
        return None
    lo = np.quantile(active, float(lo_q or 0.0))
    hi = np.quantile(active, float(1.0 if hi_q is None else hi_q))
    outside = (lengths > 0) & ((lengths < lo) | (lengths > hi))
    return outside if outside.any() else None


def histories(data: TrainingData) -> tuple[np.ndarray, np.ndarray]:
    """Per user, distinct items ordered by their latest interaction (oldest first) as CSR-style
    (indptr, items)."""
    runs = data.pair_runs
    keep = np.zeros(len(runs.order), dtype=bool)
    keep[runs.by_key[runs.last]] = True  # the latest interaction of each (user, item)
    kept = runs.order[keep]
    indptr = np.zeros(data.n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(data.user[kept], minlength=data.n_users), out=indptr[1:])
    return indptr, data.item[kept].astype(np.int32)


def topk(scores: np.ndarray, n: int, mask: np.ndarray | None = None,
         exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of the ``n`` best entries of a 1-D score vector, best first.

    Masked-out (False) and excluded entries never appear; fewer than ``n`` come back only when
    fewer pass. Uses argpartition, so the cost is linear in the catalogue.
    """
    s = np.array(scores, dtype=np.float32, copy=True)
    if mask is not None:
        s[~np.asarray(mask, dtype=bool)] = -np.inf
    if exclude is not None and len(exclude):
        ex = np.asarray(exclude, dtype=np.int64)
        s[ex[(ex >= 0) & (ex < len(s))]] = -np.inf
    valid = int(np.isfinite(s).sum())
    k = min(n, valid)
    if k <= 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    if _uses_groups(len(s), k):  # the two-stage selection of topk_rows, on one row
        groups = len(s) // GROUP
        maxima = np.empty((1, groups), dtype=s.dtype)
        _group_maxima(s[None, :], groups, maxima)
        cand = _candidates(maxima, len(s), k)[0]
        cand = cand[cand >= 0]
        part = cand[np.argpartition(-s[cand], k - 1)[:k]]
        pool = s[cand]
    else:
        part = np.argpartition(-s, k - 1)[:k] if k < len(s) else np.arange(len(s))
        pool, maxima = s, None
    if _ties_left_out(s[part][None], k, pool[None], maxima).size:
        part = _lowest_ties(s, part, k)
    part = part[np.isfinite(s[part])]
    order = part[np.lexsort((part, -s[part]))]
    return order.astype(np.int64), s[order]


def _lowest_ties(s: np.ndarray, part: np.ndarray, k: int) -> np.ndarray:
    """``part`` (k indices holding the k best scores of row ``s``) with the entries tied at its
    k-th score taken from the lowest indices, so that every path (single request, batch block,
    candidate groups or not) picks the same items. For the rows :func:`_ties_left_out` finds."""
    kth = s[part].min()
    above = np.flatnonzero(s > kth)
    return np.r_[above, np.flatnonzero(s == kth)[: k - len(above)]]


def _ties_left_out(vals: np.ndarray, k: int, pool: np.ndarray, maxima: np.ndarray | None = None) -> np.ndarray:
    """Rows whose selection (``vals``: k scores per row) left out an entry equal to its lowest
    score, which :func:`_lowest_ties` takes instead. ``pool`` is what was selected
    from: the whole rows, or with group ``maxima`` the candidates' scores; then a group that was
    not a candidate holds such an entry exactly when more than ``k`` groups reach that score (no
    group left out has a higher maximum than a selected score)."""
    kth = vals.min(axis=1, keepdims=True)
    crossing = (pool == kth).sum(axis=1) > (vals == kth).sum(axis=1)
    if maxima is not None:
        crossing |= (maxima >= kth).sum(axis=1) > k
    return np.flatnonzero(crossing & np.isfinite(kth[:, 0]))


GROUP = 64  # items per group in the two-stage top-k
TILE_CELLS = 1 << 18  # scores per tile (1 MB of float32): a tile's passes run in the CPU cache


def _group_maxima(scores: np.ndarray, groups: int, out: np.ndarray) -> None:
    """Per row, the maximum of each group of items: column c is in group c mod ``groups``."""
    rows, n = scores.shape
    cols = groups * GROUP
    np.max(scores[:, :cols].reshape(rows, GROUP, groups), axis=1, out=out)
    tail = n - cols  # fewer than ``groups`` columns left over: column cols + c joins group c
    if tail:
        np.maximum(out[:, :tail], scores[:, cols:], out=out[:, :tail])


def _uses_groups(n_items: int, k: int) -> bool:
    # At least GROUP groups, so that the leftover columns (fewer than GROUP) fit one per group.
    return n_items // GROUP >= max(8 * k, GROUP)


def refresh_group_maxima(scores: np.ndarray, maxima: np.ndarray, rows: np.ndarray, items: np.ndarray) -> None:
    """Recompute the group maxima of the groups holding ``scores[rows[k], items[k]]``, after those
    entries changed."""
    if not len(items):
        return
    groups = maxima.shape[1]
    cols = groups * GROUP
    items = np.asarray(items, dtype=np.int64)
    group = np.where(items < cols, items % groups, items - cols)
    keys = np.unique(np.asarray(rows, dtype=np.int64) * groups + group)
    r, g = keys // groups, keys % groups
    values = scores[r[:, None], g[:, None] + np.arange(GROUP) * groups].max(axis=1)
    tail = g < scores.shape[1] - cols
    if tail.any():
        values[tail] = np.maximum(values[tail], scores[r[tail], cols + g[tail]])
    maxima[r, g] = values


def _candidates(maxima: np.ndarray, n_items: int, k: int) -> np.ndarray:
    """Per row, the columns of the ``k`` groups with the highest maxima; they hold the row's
    ``k`` best entries (a group holding a top-k entry has a maximum no lower than every maximum
    of a group holding none). -1 marks group slots without a tail column."""
    rows, groups = maxima.shape
    cols = groups * GROUP
    best = np.argpartition(maxima, groups - k, axis=1)[:, groups - k:]
    cand = (best[:, :, None] + np.arange(GROUP, dtype=np.intp) * groups).reshape(rows, k * GROUP)
    tail = n_items - cols
    if tail:
        extra = best + cols
        extra[best >= tail] = -1
        cand = np.concatenate([cand, extra], axis=1)
    return cand


def _select(scores: np.ndarray, n: int, k: int, maxima: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The top ``k`` of each (masked) row, best first, padded to ``n`` with -1 / NaN.

    With group ``maxima`` the selection runs on about ``k * GROUP`` candidate columns instead
    of the whole catalogue (several times faster than argpartition over 100,000 items).
    """
    if maxima is not None:
        cand = _candidates(maxima, scores.shape[1], k)
        cand_vals = np.take_along_axis(scores, np.maximum(cand, 0), axis=1)
        cand_vals[cand < 0] = -np.inf
        part = np.argpartition(-cand_vals, k - 1, axis=1)[:, :k]
        vals = np.take_along_axis(cand_vals, part, axis=1)
        part = np.take_along_axis(cand, part, axis=1)
        tied = _ties_left_out(vals, k, cand_vals, maxima)
    else:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else \
            np.tile(np.arange(scores.shape[1]), (scores.shape[0], 1))
        vals = np.take_along_axis(scores, part, axis=1)
        tied = _ties_left_out(vals, k, scores)
    for r in tied:  # few rows (a cold user's popularity counts): as a single request picks
        part[r] = _lowest_ties(scores[r], part[r], k)
        vals[r] = scores[r, part[r]]
    order = np.lexsort((part, -vals), axis=-1)  # best first, lower index first among equals
    idx = np.take_along_axis(part, order, axis=1).astype(np.int64)
    vals = np.take_along_axis(vals, order, axis=1).astype(np.float32)
    bad = ~np.isfinite(vals)
    idx[bad] = -1
    vals[bad] = np.nan
    if k < n:
        idx = np.pad(idx, ((0, 0), (0, n - k)), constant_values=-1)
        vals = np.pad(vals, ((0, 0), (0, n - k)), constant_values=np.nan)
    return idx, vals


class Candidates:
    """One candidate mask over items, with its allowed and hidden indices worked out once."""

    def __init__(self, mask: np.ndarray):
        self.mask = np.asarray(mask, dtype=bool)

    @cached_property
    def allowed(self) -> np.ndarray:
        return np.flatnonzero(self.mask)

    @cached_property
    def hidden(self) -> np.ndarray:
        return np.flatnonzero(~self.mask)


@dataclass
class RowMasks:
    """Candidate masks of a block of score rows, without a dense (rows, items) matrix.

    Row ``r`` may return the items of ``masks[which[r]]`` (``which[r]`` -1: every item), except
    the (row, item) pairs ``hidden_rows[j], hidden_cols[j]``. Filters give this shape: a few
    distinct masks (one per set of filter values) and a sparse list of each user's own exclusions.
    Rows sharing a mask should be adjacent (``order()``) so that each run is selected at once.
    """

    masks: list[Candidates]
    which: np.ndarray
    hidden_rows: np.ndarray
    hidden_cols: np.ndarray
    n_items: int

    @classmethod
    def none(cls, rows: int, n_items: int) -> "RowMasks":
        empty = np.zeros(0, dtype=np.int64)
        return cls([], np.full(rows, -1, dtype=np.int64), empty, empty, n_items)

    def __len__(self) -> int:
        return len(self.which)

    @property
    def ndim(self) -> int:  # reads as a per-row mask where a dense 2-D one was expected
        return 2

    def order(self) -> np.ndarray:
        """A row order that puts rows sharing a mask next to each other."""
        return np.argsort(self.which, kind="stable")

    def take(self, rows: np.ndarray) -> "RowMasks":
        """The masks of ``rows`` (distinct row indices), in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        position = np.full(len(self.which), -1, dtype=np.int64)
        position[rows] = np.arange(len(rows))
        new_rows = position[self.hidden_rows]
        keep = new_rows >= 0
        return RowMasks(self.masks, self.which[rows], new_rows[keep], self.hidden_cols[keep], self.n_items)

    def __getitem__(self, key) -> "RowMasks | np.ndarray":
        """A slice of rows gives a RowMasks; an integer gives that row's dense mask."""
        if isinstance(key, slice):
            return self.take(np.arange(len(self.which))[key])
        return self.row(int(key))

    def allows(self, rows: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Whether row ``rows[k]`` may return item ``items[k]``, for each k."""
        rows, items = np.asarray(rows, dtype=np.int64), np.asarray(items, dtype=np.int64)
        which = self.which[rows]
        out = np.ones(len(rows), dtype=bool)
        for g in np.unique(which[which >= 0]).tolist():
            at = which == g
            out[at] = self.masks[g].mask[items[at]]
        if len(self.hidden_rows):
            hidden = np.isin(rows * self.n_items + items, self.hidden_rows * self.n_items + self.hidden_cols)
            out &= ~hidden
        return out

    def row(self, r: int) -> np.ndarray:
        g = int(self.which[r])
        out = self.masks[g].mask.copy() if g >= 0 else np.ones(self.n_items, dtype=bool)
        out[self.hidden_cols[self.hidden_rows == r]] = False
        return out

    def dense(self) -> np.ndarray:
        out = np.ones((len(self.which), self.n_items), dtype=bool)
        for g, c in enumerate(self.masks):
            out[self.which == g] = c.mask
        out[self.hidden_rows, self.hidden_cols] = False
        return out


def mask_allows(mask, rows: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Whether a block's candidate mask (None, one row over items, one row per score row, or
    :class:`RowMasks`) lets score row ``rows[k]`` return item ``items[k]``."""
    if mask is None:
        return np.ones(len(items), dtype=bool)
    if isinstance(mask, RowMasks):
        return mask.allows(rows, items)
    mask = np.asarray(mask, dtype=bool)
    return mask[items] if mask.ndim == 1 else mask[rows, items]


def _select_masked(scores: np.ndarray, n: int, masks: RowMasks) -> tuple[np.ndarray, np.ndarray]:
    """:func:`topk_rows` under compact masks: each run of rows sharing a mask selects among
    that mask's allowed columns only (a gather when few are allowed), so no pass over a dense
    (rows, items) boolean matrix is needed. ``scores`` is overwritten."""
    rows, items = scores.shape
    if len(masks.hidden_rows):
        scores[masks.hidden_rows, masks.hidden_cols] = -np.inf
    idx = np.full((rows, n), -1, dtype=np.int64)
    vals = np.full((rows, n), np.nan, dtype=np.float32)
    which = masks.which
    cuts = np.flatnonzero(which[1:] != which[:-1]) + 1
    for start, stop in zip(np.r_[0, cuts].tolist(), np.r_[cuts, rows].tolist()):
        g = int(which[start])
        run = scores[start:stop]
        if g < 0:
            i, v = topk_rows(run, n)
        else:
            c = masks.masks[g]
            if not len(c.allowed):
                continue  # nothing passes: the rows stay -1 / NaN
            if len(c.allowed) * 2 <= items:
                i, v = topk_rows(run[:, c.allowed], n)
                i = np.where(i >= 0, c.allowed[np.maximum(i, 0)], -1)
            else:
                run[:, c.hidden] = -np.inf
                i, v = topk_rows(run, n)
        idx[start:stop], vals[start:stop] = i, v
    return idx, vals


def _apply_mask(scores: np.ndarray, mask: np.ndarray | None) -> None:
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        np.copyto(scores, -np.inf, where=~mask if mask.ndim == 1 else ~mask)


def topk_rows(scores: np.ndarray, n: int, mask: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise :func:`topk` for a (users, items) block; -1 / NaN pad rows with too few valid
    entries. ``mask`` is one row over items or one per score row; it is applied in place."""
    if isinstance(mask, RowMasks):
        return _select_masked(scores, n, mask)
    _apply_mask(scores, mask)
    rows, items = scores.shape
    k = min(n, items)
    if k <= 0:
        return np.full((rows, n), -1, dtype=np.int64), np.full((rows, n), np.nan, dtype=np.float32)
    maxima = None
    if _uses_groups(items, k):
        maxima = np.empty((rows, items // GROUP), dtype=scores.dtype)
        _group_maxima(scores, items // GROUP, maxima)
    return _select(scores, n, k, maxima)


def softmax_topk_rows(scores: np.ndarray, n: int, temperature: float, mask: np.ndarray | None = None,
                      log_z: np.ndarray | None = None, maxima: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`topk_rows` whose scores are softmax probabilities over each whole row.

    The normaliser covers every finite score of the row (masked entries included, as the
    catalogue-wide softmax does). One sweep over cache-sized tiles of rows computes the
    normaliser, applies the mask and takes the group maxima, so each score is read from memory
    once. A caller that knows the normalisers (log-sum-exp per row, shape (rows, 1)) passes
    ``log_z`` and the sweep skips them; one that also has the group maxima (from
    :func:`row_log_normalisers`, no mask) passes ``maxima`` and there is no sweep at all.
    ``scores`` is overwritten.
    """
    rows, items = scores.shape
    k = min(n, items)
    if k <= 0 or rows == 0:
        return np.full((rows, n), -1, dtype=np.int64), np.full((rows, n), np.nan, dtype=np.float32)
    t = temperature
    if maxima is not None and log_z is not None and mask is None:
        log_z = np.asarray(log_z, dtype=np.float64).reshape(rows, 1)
        idx, vals = _select(scores, n, k, maxima)
        return idx, probabilities(vals, t, log_z)
    compact = mask if isinstance(mask, RowMasks) else None
    mask = None if mask is None or compact is not None else np.asarray(mask, dtype=bool)
    hidden = None if mask is None or mask.ndim != 1 else ~mask
    groups = items // GROUP if _uses_groups(items, k) and compact is None else 0
    maxima = np.empty((rows, groups), dtype=scores.dtype) if groups else None
    known_z = log_z is not None
    log_z = np.asarray(log_z, dtype=np.float64).reshape(rows, 1) if known_z else np.empty((rows, 1), np.float64)
    step = max(1, TILE_CELLS // max(items, 1))
    buf = np.empty((min(step, rows), items), dtype=np.float32)
    for r0 in range(0, rows, step):
        r1 = min(r0 + step, rows)
        tile, work = scores[r0:r1], buf[:r1 - r0]
        top = tile.max(axis=1, keepdims=True) if not known_z else None
        if known_z:
            pass
        elif np.isfinite(top).all():
            np.subtract(tile, top, out=work)
            np.divide(work, t, out=work)
            np.exp(work, out=work)
            log_z[r0:r1] = top.astype(np.float64) / t + np.log(work.sum(axis=1, keepdims=True))
        else:  # NaN or +inf somewhere: the careful formula
            finite = np.where(np.isfinite(tile), tile, -np.inf)
            top = finite.max(axis=1, keepdims=True)
            log_z[r0:r1] = top.astype(np.float64) / t + np.log(np.exp((finite - top) / t).sum(axis=1, keepdims=True))
        if hidden is not None:
            np.copyto(tile, -np.inf, where=hidden)
        elif mask is not None:
            np.copyto(tile, -np.inf, where=~mask[r0:r1])
        if groups:
            _group_maxima(tile, groups, maxima[r0:r1])
    idx, vals = _select(scores, n, k, maxima) if compact is None else _select_masked(scores, n, compact)
    return idx, probabilities(vals, t, log_z)


def probabilities(selected: np.ndarray, temperature: float, log_z: np.ndarray) -> np.ndarray:
    """exp(s / t - log_z) as float32, computed in float64: s / t can be in the millions when the
    temperature is small, where float32 would be off by a whole unit (a factor e on the result)."""
    return np.exp(np.asarray(selected, dtype=np.float64) / temperature - log_z).astype(np.float32)


def group_maxima_for(scores: np.ndarray, n: int) -> np.ndarray | None:
    """An empty (rows, groups) array for :func:`row_log_normalisers` to fill while it sweeps
    ``scores`` for a top ``n``, or None when the catalogue is too small for groups."""
    rows, items = scores.shape
    k = min(n, items)
    return np.empty((rows, items // GROUP), dtype=scores.dtype) if k > 0 and _uses_groups(items, k) else None


_ONES: dict[int, np.ndarray] = {}


def _ones(n: int) -> np.ndarray:
    """A read-only float32 vector of ``n`` ones, made once per length (a single request would
    otherwise pay for filling one as long as the catalogue)."""
    v = _ONES.get(n)
    if v is None:
        if len(_ONES) > 16:
            _ONES.clear()
        v = _ONES[n] = np.ones(n, dtype=np.float32)
        v.flags.writeable = False
    return v


def row_log_normalisers(scores: np.ndarray, temperature: float, maxima: np.ndarray | None = None) -> np.ndarray:
    """log sum exp(s / t) over the finite scores of each row, shape (rows, 1), float64; -inf for
    rows without a finite score. The same tiled sweep as :func:`softmax_topk_rows`'s.

    With ``maxima`` (rows, groups), the sweep also fills it with the rows' group maxima (see
    :func:`_group_maxima`), so a selection after it need not read the block again; each row's
    maximum then comes from its groups' instead of a pass of its own."""
    rows, items = scores.shape
    out = np.full((rows, 1), -np.inf)
    step = max(1, TILE_CELLS // max(items, 1))
    buf = np.empty((min(step, rows), items), dtype=np.float32)
    ones = _ones(items)
    for r0 in range(0, rows, step):
        tile = scores[r0:r0 + step]
        work = buf[:len(tile)]
        if maxima is not None:
            _group_maxima(tile, maxima.shape[1], maxima[r0:r0 + step])
            top = maxima[r0:r0 + step].max(axis=1, keepdims=True)
        else:
            top = tile.max(axis=1, keepdims=True)
        if np.isfinite(top).all():
            np.subtract(tile, top, out=work)
            np.multiply(work, 1.0 / temperature, out=work)
            np.exp(work, out=work)
            # A product with a vector of ones sums the rows faster than sum() (BLAS, no pairwise tree).
            out[r0:r0 + step] = top.astype(np.float64) / temperature + np.log(work @ ones)[:, None]
            continue
        finite = np.where(np.isfinite(tile), tile, -np.inf)  # NaN, +inf or an empty row: the careful way
        top = finite.max(axis=1, keepdims=True)
        ok = np.isfinite(top[:, 0])
        with np.errstate(invalid="ignore", divide="ignore"):
            sums = np.exp((finite - np.where(ok[:, None], top, 0.0)) / temperature).sum(axis=1, keepdims=True)
            out[r0:r0 + step] = np.where(ok[:, None], top.astype(np.float64) / temperature + np.log(sums), -np.inf)
    return out


PRODUCT_TILE_CELLS = 1 << 19  # scores per tile of the fused product: written, then swept, in cache
PRODUCT_TILE_ITEMS = 3072  # about this many items per tile (whole chunks of the groups)


def renormalise_rows(scores: np.ndarray, rows: np.ndarray, temperature: float, log_z: np.ndarray,
                     maxima: np.ndarray | None) -> None:
    """After ``scores[rows]`` were rewritten: their normalisers in ``log_z`` and, when given,
    their group maxima again."""
    again = None if maxima is None else np.empty((len(rows), maxima.shape[1]), maxima.dtype)
    log_z[rows] = row_log_normalisers(scores[rows], temperature, again)
    if again is not None:
        maxima[rows] = again


def product_with_normalisers(left: np.ndarray, right: np.ndarray, out: np.ndarray, temperature: float,
                             boost: np.ndarray | None = None, maxima: np.ndarray | None = None) -> np.ndarray:
    """``out = left @ right.T (+ boost)`` and each row's log sum exp(out / t), as
    :func:`row_log_normalisers` gives it, in one pass over cache-sized tiles.

    Separately, the product writes a block far bigger than the cache and the sweep reads it
    back from memory (more than half of the sweep's time at 100,000 items). Here each tile (a few
    thousand items of a hundred-odd rows) is written by the product and swept at once: the
    group maxima (``maxima``, as :func:`_group_maxima` fills it) grow tile by tile, and the
    normaliser is a running log-sum-exp, its sum rescaled whenever a row's maximum rises.
    Rows whose normaliser comes out NaN or infinite (a NaN or +inf score, no finite score) are
    redone by :func:`row_log_normalisers`."""
    rows, items = out.shape
    t = float(temperature)
    log_z = np.empty((rows, 1), np.float64)
    if rows == 0 or items == 0:
        log_z.fill(-np.inf)
        return log_z
    groups = maxima.shape[1] if maxima is not None else 0
    cols = groups * GROUP
    # Item tiles hold whole chunks of ``groups`` columns, so a tile's group maxima are an
    # element-wise maximum per chunk; the leftover columns ride with the last tile.
    width = -(-PRODUCT_TILE_ITEMS // groups) * groups if groups else min(items, PRODUCT_TILE_ITEMS)
    step = max(1, PRODUCT_TILE_CELLS // width)
    work = np.empty((min(step, rows), width + (items - cols if groups else 0)), np.float32)
    ones = _ones(work.shape[1])
    starts = list(range(0, cols if groups else items, width))
    with np.errstate(invalid="ignore", over="ignore"):
        for r0 in range(0, rows, step):
            r1 = min(r0 + step, rows)
            u = left[r0:r1]
            top = np.full((r1 - r0, 1), -np.inf, np.float32)
            total = np.zeros(r1 - r0, np.float64)
            m = maxima[r0:r1] if groups else None
            if groups:
                m.fill(-np.inf)
            for n, c0 in enumerate(starts):
                c1 = items if n == len(starts) - 1 else c0 + width
                tile = out[r0:r1, c0:c1]
                np.matmul(u, right[c0:c1].T, out=tile)
                if boost is not None:
                    tile += boost[c0:c1]
                if groups:
                    for q in range(c0, c1, groups):
                        w = min(groups, c1 - q)
                        np.maximum(m[:, :w], out[r0:r1, q:q + w], out=m[:, :w])
                    new_top = m.max(axis=1, keepdims=True)
                else:
                    new_top = np.maximum(top, tile.max(axis=1, keepdims=True))
                total *= np.exp((top[:, 0] - new_top[:, 0]) / t)  # 0 where the maximum was -inf
                top = new_top
                scaled = work[:r1 - r0, :c1 - c0]
                np.subtract(tile, top, out=scaled)
                np.multiply(scaled, 1.0 / t, out=scaled)
                np.exp(scaled, out=scaled)
                total += scaled @ ones[:c1 - c0]
            log_z[r0:r1, 0] = top[:, 0].astype(np.float64) / t + np.log(total)
    odd = np.flatnonzero(~np.isfinite(log_z[:, 0]))
    if len(odd):  # NaN, +inf or a row without a finite score: the careful way
        renormalise_rows(out, odd, t, log_z, maxima if groups else None)
    return log_z


def softmax_of(selected: np.ndarray, all_scores: np.ndarray, temperature: float,
               log_z: float | None = None) -> np.ndarray:
    """Softmax probabilities of ``selected`` scores, normalised over ``all_scores`` (or by
    ``log_z``, the normaliser, when the caller knows it)."""
    t = max(float(temperature), 1e-6)
    if log_z is None:
        finite = all_scores[np.isfinite(all_scores)]
        if finite.size == 0:
            return np.zeros_like(selected, dtype=np.float32)
        top = float(finite.max())
        # float(): a float32 log would make the sum float32, off by up to 1e-4 when s / t is large.
        log_z = top / t + float(np.log(np.exp((finite - top) / t).sum()))
    return probabilities(selected, t, log_z)


def popularity(data: TrainingData) -> np.ndarray:
    """Number of distinct users per item (float32)."""
    key = np.unique(data.user.astype(np.int64) * max(data.n_items, 1) + data.item)
    return np.bincount((key % max(data.n_items, 1)).astype(np.int64),
                       minlength=data.n_items).astype(np.float32)


def score_value(x: float) -> float:
    """A score as the APIs return it: 6 significant digits."""
    return float(f"{x:.6g}")


def rounded_scores(values: np.ndarray) -> np.ndarray:
    """``float(f"{x:.6g}")`` for every entry, vectorised (float64; NaN stays NaN).

    x rounded to 6 significant digits is m / 10**d with an integer m; for 10**d exact (d <= 22)
    the division is correctly rounded, so it is the same float as parsing the ``%.6g`` text.
    Entries outside that range take the text route.
    """
    a = np.asarray(values, dtype=np.float64)
    out = a.copy()
    mag = np.abs(a)
    ok = np.isfinite(a) & (mag >= 1e-16) & (mag < 1e5)
    if ok.any():
        x, m = a[ok], mag[ok]
        e = np.floor(np.log10(m)).astype(np.int64)
        p = 10.0 ** e  # log10 may be one off next to a power of ten
        e = np.where(m < p, e - 1, np.where(m >= p * 10, e + 1, e))
        scale = 10.0 ** (5 - e)
        out[ok] = np.rint(x * scale) / scale
    flat, source = out.reshape(-1), a.reshape(-1)
    for k in np.flatnonzero(~ok & np.isfinite(a)):
        flat[k] = score_value(source[k])
    return out
