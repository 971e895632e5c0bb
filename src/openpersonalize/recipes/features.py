"""Item metadata as vectors: categorical and textual columns -> TF-IDF -> LSA embeddings.

Used wherever interactions say too little: cold items in Similar-Items and exploration, the
attribute side of Item-Attribute-Affinity, and the offline text encoder's fallback.
"""

from __future__ import annotations

import re

import numpy as np
import scipy.sparse as sp

from .base import TrainingData

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def tokens_of(value: object, prefix: str | None) -> list[str]:
    """Categorical values split on ``|`` (prefixed with the column), or text split into words."""
    if value is None:
        return []
    text = str(value)
    if prefix is not None:
        return [f"{prefix}={v.strip().lower()}" for v in text.split("|") if v.strip()]
    return [w.lower() for w in _WORD.findall(text)]


def tfidf(docs: list[list[str]]) -> sp.csr_matrix:
    """Row-normalised TF-IDF (sublinear tf, smooth idf) of token lists."""
    vocab: dict[str, int] = {}
    rows, cols, vals = [], [], []
    for r, doc in enumerate(docs):
        counts: dict[int, int] = {}
        for t in doc:
            j = vocab.setdefault(t, len(vocab))
            counts[j] = counts.get(j, 0) + 1
        for j, c in counts.items():
            rows.append(r)
            cols.append(j)
            vals.append(1.0 + np.log(c))
    m = sp.csr_matrix((np.asarray(vals, dtype=np.float32), (rows, cols)),
                      shape=(len(docs), max(len(vocab), 1)), dtype=np.float32)
    df = np.bincount(m.indices, minlength=m.shape[1]).astype(np.float32)
    idf = np.log((1 + len(docs)) / (1 + df)) + 1.0
    m = m @ sp.diags(idf.astype(np.float32))
    return normalize_rows(m.tocsr())


def normalize_rows(m):
    """L2-normalise rows of a dense array or CSR matrix (zero rows stay zero)."""
    if sp.issparse(m):
        norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        return sp.diags((1.0 / norms).astype(np.float32)) @ m
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (m / norms).astype(np.float32)


def item_documents(data: TrainingData, textual: bool = True, categorical: bool = True,
                   name: bool = True) -> list[list[str]]:
    """One token list per item index from the Items table (empty for items without a row)."""
    docs: list[list[str]] = [[] for _ in range(data.n_items)]
    if data.items is None:
        return docs
    rows = data.item_table_rows()
    roles = data.item_columns
    columns: list[tuple[str, str | None]] = []
    if categorical:
        columns += [(c, c.lower()) for c in roles.categorical]
    if textual:
        columns += [(c, None) for c in roles.textual]
    if name and roles.item_name and roles.item_name not in roles.textual:
        columns.append((roles.item_name, None))
    for col, prefix in columns:
        if col not in data.items.column_names:
            continue
        values = data.items.column(col).to_pylist()
        for i in np.flatnonzero(rows >= 0):
            docs[i].extend(tokens_of(values[rows[i]], prefix))
    return docs


def lsa(m: sp.csr_matrix, dim: int, seed: int = 0) -> np.ndarray:
    """Rows of ``m`` projected on its top ``dim`` singular directions, L2-normalised."""
    n, f = m.shape
    k = min(dim, n - 1, f - 1)
    if k < 2 or m.nnz == 0:
        return normalize_rows(np.asarray(m.todense(), dtype=np.float32)) if f <= dim \
            else np.zeros((n, 1), dtype=np.float32)
    if f <= dim:
        return normalize_rows(np.asarray(m.todense(), dtype=np.float32))
    from scipy.sparse.linalg import ArpackError, svds

    v0 = np.random.default_rng(seed).standard_normal(min(n, f))
    try:
        u, s, _ = svds(m.astype(np.float64), k=k, v0=v0)
    except ArpackError:
        # ARPACK gives up on many equal singular values (one categorical column with many
        # equally common values, say); a randomised range finder does not.
        u, s = randomized_svd(m.astype(np.float64), k, seed)
    return normalize_rows((u * s).astype(np.float32))


def randomized_svd(m: sp.csr_matrix, k: int, seed: int = 0, oversample: int = 10, power: int = 4
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The top ``k`` left singular vectors and values of ``m`` (Halko, Martinsson and Tropp 2011)."""
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(m @ rng.standard_normal((m.shape[1], k + oversample)))[0]
    for _ in range(power):
        Q = np.linalg.qr(m @ np.asarray(m.T @ Q))[0]
    u, s, _ = np.linalg.svd(np.asarray((m.T @ Q).T), full_matrices=False)
    return (Q @ u)[:, :k], s[:k]


def metadata_embedding(data: TrainingData, dim: int, seed: int = 0) -> np.ndarray:
    """(n_items, <=dim) L2-normalised embedding of categorical + textual metadata; zero rows
    for items without metadata."""
    docs = item_documents(data)
    if not any(docs):
        return np.zeros((data.n_items, 1), dtype=np.float32)
    return lsa(tfidf(docs), dim, seed)
