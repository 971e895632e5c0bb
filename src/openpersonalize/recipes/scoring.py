"""Shared numerics: the interaction matrix, masked top-k, score normalisation."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

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
    # Duplicates were summed: rebuild with the per-pair maximum instead.
    key = data.user.astype(np.int64) * data.n_items + data.item
    order = np.argsort(key, kind="stable")
    k = key[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    best = np.maximum.reduceat(w[order], starts)
    uk = k[starts]
    return sp.csr_matrix((best, ((uk // data.n_items).astype(np.int32), (uk % data.n_items).astype(np.int32))),
                         shape=shape, dtype=np.float32)


def histories(data: TrainingData) -> tuple[np.ndarray, np.ndarray]:
    """Per user, distinct items ordered by their latest interaction (oldest first) as CSR-style
    (indptr, items)."""
    order = np.lexsort((data.timestamp, data.user))
    u, i = data.user[order], data.item[order]
    # keep the last occurrence of each (user, item) pair
    key = u.astype(np.int64) * max(data.n_items, 1) + i
    rev = key[::-1]
    _, first_in_rev = np.unique(rev, return_index=True)
    keep = np.zeros(len(key), dtype=bool)
    keep[len(key) - 1 - first_in_rev] = True
    u, i = u[keep], i[keep]
    indptr = np.zeros(data.n_users + 1, dtype=np.int64)
    np.add.at(indptr, u.astype(np.int64) + 1, 1)
    return np.cumsum(indptr), i.astype(np.int32)


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
    part = np.argpartition(-s, k - 1)[:k] if k < len(s) else np.arange(len(s))
    part = part[np.isfinite(s[part])]
    order = part[np.lexsort((part, -s[part]))]
    return order.astype(np.int64), s[order]


def topk_rows(scores: np.ndarray, n: int, mask: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise :func:`topk` for a (users, items) block; -1 / NaN pad rows with too few valid
    entries. ``mask`` is one row over items or one per score row; it is applied in place."""
    if mask is not None:
        scores[~np.broadcast_to(np.asarray(mask, dtype=bool), scores.shape)] = -np.inf
    k = min(n, scores.shape[1])
    if k <= 0:
        return (np.full((scores.shape[0], n), -1, dtype=np.int64),
                np.full((scores.shape[0], n), np.nan, dtype=np.float32))
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else \
        np.tile(np.arange(scores.shape[1]), (scores.shape[0], 1))
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1).astype(np.int64)
    vals = np.take_along_axis(vals, order, axis=1).astype(np.float32)
    bad = ~np.isfinite(vals)
    idx[bad] = -1
    vals[bad] = np.nan
    if k < n:
        idx = np.pad(idx, ((0, 0), (0, n - k)), constant_values=-1)
        vals = np.pad(vals, ((0, 0), (0, n - k)), constant_values=np.nan)
    return idx, vals


def softmax_of(selected: np.ndarray, all_scores: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax probabilities of ``selected`` scores, normalised over ``all_scores``."""
    finite = all_scores[np.isfinite(all_scores)]
    if finite.size == 0:
        return np.zeros_like(selected, dtype=np.float32)
    t = max(float(temperature), 1e-6)
    top = float(finite.max())
    log_z = top / t + np.log(np.exp((finite - top) / t).sum())
    return np.exp(selected / t - log_z).astype(np.float32)


def popularity(data: TrainingData) -> np.ndarray:
    """Number of distinct users per item (float32)."""
    key = np.unique(data.user.astype(np.int64) * max(data.n_items, 1) + data.item)
    return np.bincount((key % max(data.n_items, 1)).astype(np.int64),
                       minlength=data.n_items).astype(np.float32)
