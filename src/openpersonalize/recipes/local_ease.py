"""EASE for catalogues too big to invert: each item regressed on its nearest neighbours only.

EASE's weights for item j are the ridge regression of j's column of the interaction matrix on
every other column: B[:, j] = (G_-j,-j + L)^-1 G_-j,j with G = X'X. Items that never co-occur
with j contribute nothing to G_-j,j, and on a sparse catalogue most pairs never co-occur, so
solving the regression over j's ``k`` most co-occurring items keeps most of what the full
inverse gives at a cost of k^3 per item instead of n^3 in total, and a sparse B of at most
n x k weights instead of a dense n^2 one (Steck's EASE, with the neighbourhood restriction of
SLIM-style models; EDLAE's emphasised-dropout penalty as in the dense version).

Items are solved in batches: the union of a batch's neighbourhoods is cut out of G once as a
dense block, each item's k x k system is gathered from it, and numpy solves the stack at once.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

NEIGHBOURS = 128  # regressors per item: the quality of full EASE at a fraction of its cost (docs/recipes.md)
UNION = 2048  # items in one batch's union block (a dense float32 block of 16 MB at most)


def cooccurrence(X: sp.csr_matrix) -> sp.csr_matrix:
    """G = X'X as float32 CSR with sorted indices."""
    X = sp.csr_matrix(X, dtype=np.float32)
    G = (X.T @ X).tocsr()
    G.sort_indices()
    return G


def neighbours(G: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each item's ``k`` most co-occurring other items, as (n, k) indices padded with -1 and the
    count of real ones per item."""
    n = G.shape[0]
    out = np.full((n, k), -1, dtype=np.int64)
    count = np.zeros(n, dtype=np.int64)
    indptr, indices, data = G.indptr, G.indices, G.data
    for j in range(n):
        cols, vals = indices[indptr[j]:indptr[j + 1]], data[indptr[j]:indptr[j + 1]]
        keep = cols != j
        cols, vals = cols[keep], vals[keep]
        if len(cols) > k:
            top = np.argpartition(-vals, k - 1)[:k]
            cols = cols[top]
        count[j] = len(cols)
        out[j, :len(cols)] = np.sort(cols)
    return out, count


def local_ease(X: sp.csr_matrix, l2: float, dropout: float = 0.0, k: int = NEIGHBOURS) -> sp.csr_matrix:
    """Sparse EASE weights B (n x n CSR, zero diagonal): column j holds the regression of item j
    on its ``k`` most co-occurring items. ``l2`` and ``dropout`` as in the dense ``ease``."""
    G = cooccurrence(X)
    n = G.shape[0]
    diag = G.diagonal().astype(np.float64)
    penalty = l2 + dropout / (1.0 - dropout) * diag
    nb, count = neighbours(G, k)
    order = np.argsort(-count, kind="stable")  # similar sizes together: less padding per batch
    rows, cols, vals = [], [], []
    start = 0
    while start < n:
        # As many items as keep the union of their neighbourhoods within UNION.
        width = max(int(count[order[start]]), 1)
        size = max(1, min(n - start, UNION // (width + 1)))
        batch = order[start:start + size]
        start += size
        width = int(count[batch].max())
        if width == 0:
            continue
        nbrs = nb[batch, :width]
        real = nbrs >= 0
        union = np.unique(np.r_[nbrs[real], batch])
        inverse = np.searchsorted(union, np.where(real, nbrs, batch[:, None]))
        block = G[union][:, union].toarray()
        targets = np.searchsorted(union, batch)
        A = block[inverse[:, :, None], inverse[:, None, :]].astype(np.float64)
        b = block[inverse, targets[:, None]].astype(np.float64)
        # Padding rows/columns (-1 neighbours) become identity rows with a zero target.
        pad = ~real
        A[pad[:, :, None] | pad[:, None, :]] = 0.0
        A += np.eye(width)[None] * np.where(real, penalty[np.where(real, nbrs, 0)], 1.0)[:, :, None]
        b[pad] = 0.0
        w = np.linalg.solve(A, b[:, :, None])[:, :, 0]
        rows.append(nbrs[real])
        cols.append(np.repeat(batch, real.sum(axis=1)))
        vals.append(w[real])
    if not rows:
        return sp.csr_matrix((n, n), dtype=np.float32)
    B = sp.csr_matrix((np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(n, n))
    B.sort_indices()
    return B

