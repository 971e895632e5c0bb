"""Offline quality on MovieLens 100k: our recipes against baselines, measured in one run.

Protocol (the one bench/quality.py uses through the API): per user, a random 80/20 split of
their ratings (every rating counts as an interaction); items seen in training are excluded; all
items are ranked; NDCG@10, P@10 and R@10 averaged over users with test items; 5 seeds.

Baselines: most-popular; EASE with l2 tuned on a validation split (a further 80/20 of each
seed's training part); implicit ALS. Ours: User-Personalization (default settings, as a
solution trains it), Popularity-Count, SIMS and Similar-Items (item-to-item: the summed
similarities of a user's training items).

    python bench/quality_offline.py [path/to/u.data]

Skips (exit 0) when the data is absent. The data set is not part of the repository.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from openpersonalize.recipes.base import HyperParameters, TrainingSettings, TrainingData  # noqa: E402
from openpersonalize.recipes.factorization import ease, fit_als  # noqa: E402
from openpersonalize.recipes.registry import RECIPE_BY_NAME, algorithm_for  # noqa: E402

# ../shared beside the project, as the development setup lays it out; ML100K overrides.
DEFAULT = Path(os.environ.get("ML100K", Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k" / "u.data"))
SEEDS = (0, 1, 2, 3, 4)
N = 10


def load(path: Path) -> np.ndarray:
    return np.loadtxt(path, dtype=np.int64)


def split(rows: np.ndarray, seed: int, share: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    test = np.zeros(len(rows), bool)
    order = np.argsort(rows[:, 0], kind="stable")
    users, starts = np.unique(rows[order, 0], return_index=True)
    ends = np.r_[starts[1:], len(rows)]
    for s, e in zip(starts, ends):
        idx = order[s:e]
        k = int(round(share * len(idx)))
        test[rng.choice(idx, size=k, replace=False)] = True
    return rows[~test], rows[test]


def to_data(rows: np.ndarray, users: np.ndarray, items: np.ndarray) -> TrainingData:
    """Training data over the full vocabularies (so indices line up across methods)."""
    d = TrainingData.from_records(rows[:, 0].astype(str), rows[:, 1].astype(str), rows[:, 3])
    uix = np.searchsorted(users, d.user_ids)
    iix = np.searchsorted(items, d.item_ids)
    return TrainingData(users, items, uix[d.user].astype(np.int32), iix[d.item].astype(np.int32),
                        d.timestamp, d.event_type, d.event_types, d.event_value)


def evaluate(scores_fn, train: TrainingData, test_rows: np.ndarray, users, items) -> tuple[float, float, float]:
    X = sp.csr_matrix((np.ones(train.n_interactions, np.float32), (train.user, train.item)),
                      shape=(len(users), len(items)))
    tu = np.searchsorted(users, test_rows[:, 0].astype(str))
    ti = np.searchsorted(items, test_rows[:, 1].astype(str))
    truth: dict[int, set[int]] = {}
    for u, i in zip(tu, ti):
        truth.setdefault(int(u), set()).add(int(i))
    ndcg, prec, rec = [], [], []
    ulist = np.array(sorted(truth))
    discounts = 1.0 / np.log2(np.arange(2, N + 2))
    for start in range(0, len(ulist), 512):
        block = ulist[start:start + 512]
        S = np.array(scores_fn(block), dtype=np.float32, copy=True)
        S[X[block].nonzero()] = -np.inf
        top = np.argsort(-S, axis=1)[:, :N]
        for u, row in zip(block, top):
            rel = np.array([i in truth[u] for i in row], float)
            idcg = discounts[:min(N, len(truth[u]))].sum()
            ndcg.append((rel * discounts).sum() / idcg)
            prec.append(rel.sum() / N)
            rec.append(rel.sum() / len(truth[u]))
    return float(np.mean(ndcg)), float(np.mean(prec)), float(np.mean(rec))


def tuned_ease_l2(train_rows, users, items, seed) -> float:
    fit_rows, val_rows = split(train_rows, seed + 100)
    d = to_data(fit_rows, users, items)
    X = sp.csr_matrix((np.ones(d.n_interactions, np.float32), (d.user, d.item)), shape=(len(users), len(items)))
    best, best_l2 = -1.0, None
    for l2 in (25, 50, 100, 200, 400, 800, 1600):
        B, _ = ease(X, l2)
        score = evaluate(lambda b: (X[b] @ B), d, val_rows, users, items)[0]
        if score > best:
            best, best_l2 = score, l2
    return float(best_l2)


def tuned_als(train_rows, users, items, seed) -> tuple[int, float]:
    fit_rows, val_rows = split(train_rows, seed + 100)
    d = to_data(fit_rows, users, items)
    X = sp.csr_matrix((np.ones(d.n_interactions, np.float32), (d.user, d.item)), shape=(len(users), len(items)))
    best, choice = -1.0, None
    for factors in (32, 64, 128):
        for reg in (1.0, 10.0, 30.0):
            U, V = fit_als(X.copy(), factors, TrainingSettings(als_regularization=reg, als_alpha=1.0))
            score = evaluate(lambda b: U[b] @ V.T, d, val_rows, users, items)[0]
            if score > best:
                best, choice = score, (factors, reg)
    return choice


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    if not path.exists():
        print(f"skipped: {path} not found (MovieLens 100k u.data)")
        return 0
    rows = load(path)
    users = np.unique(rows[:, 0].astype(str))
    items = np.unique(rows[:, 1].astype(str))
    settings = TrainingSettings(num_threads=0)
    results: dict[str, list[tuple[float, float, float]]] = {}
    times: dict[str, list[float]] = {}

    def record(name, fn, train, test):
        t = time.perf_counter()
        results.setdefault(name, []).append(evaluate(fn, train, test, users, items))
        times.setdefault(name, []).append(time.perf_counter() - t)

    for seed in SEEDS:
        train_rows, test_rows = split(rows, seed)
        d = to_data(train_rows, users, items)
        X = sp.csr_matrix((np.ones(d.n_interactions, np.float32), (d.user, d.item)), shape=(len(users), len(items)))
        pop = np.asarray(X.sum(axis=0)).ravel()
        record("baseline most-popular", lambda b: np.tile(pop, (len(b), 1)), d, test_rows)
        l2 = tuned_ease_l2(train_rows, users, items, seed)
        B, _ = ease(X, l2)
        record(f"baseline EASE (l2 tuned on validation)", lambda b: X[b] @ B, d, test_rows)
        factors, reg = tuned_als(train_rows, users, items, seed)
        U, V = fit_als(X.copy(), factors, TrainingSettings(als_regularization=reg, als_alpha=1.0))
        record("baseline implicit ALS (factors, reg tuned)", lambda b: U[b] @ V.T, d, test_rows)

        for recipe in ("aws-user-personalization", "aws-user-personalization-v2", "aws-popularity-count"):
            alg = algorithm_for(recipe)
            params = HyperParameters.parse(RECIPE_BY_NAME[recipe]).replace(_recipe=recipe)
            model = alg.fit(d, params, settings)
            if hasattr(model, "score_block"):
                record(f"ours {recipe}", model.score_block, d, test_rows)
            else:
                record(f"ours {recipe}", lambda b, m=model: np.tile(np.asarray(m.arrays["item_score"]), (len(b), 1)),
                       d, test_rows)
        for recipe in ("aws-sims", "aws-similar-items"):
            alg = algorithm_for(recipe)
            params = HyperParameters.parse(RECIPE_BY_NAME[recipe]).replace(_recipe=recipe)
            model = alg.fit(d, params, settings)
            record(f"ours {recipe} (item-to-item)", lambda b, m=model: item_to_item(m, X, b), d, test_rows)
        print(f"seed {seed} done (EASE l2={l2:g}, ALS factors/reg={factors}/{reg:g})", file=sys.stderr)

    print(f"MovieLens 100k, per-user random 80/20, seen items excluded, all items ranked, {len(SEEDS)} seeds")
    print(f"{'method':52s} {'NDCG@10':>8s} {'P@10':>7s} {'R@10':>7s} {'s/seed':>7s}")
    for name, vals in results.items():
        m = np.mean(vals, axis=0)
        sd = np.std([v[0] for v in vals])
        print(f"{name:52s} {m[0]:8.4f} {m[1]:7.4f} {m[2]:7.4f} {np.mean(times[name]):7.2f}   (NDCG sd {sd:.4f})")
    return 0


def item_to_item(model, X: sp.csr_matrix, block: np.ndarray) -> np.ndarray:
    """Scores as the sum over a user's training items of each item's related-item scores."""
    n = model.n_items
    rel = np.zeros((n, n), np.float32)
    if "nbr_idx" in model.arrays:
        nb, sc = np.asarray(model.arrays["nbr_idx"]), np.asarray(model.arrays["nbr_score"])
        rows = np.repeat(np.arange(n), nb.shape[1])
        ok = nb.ravel() >= 0
        rel[rows[ok], nb.ravel()[ok]] = sc.ravel()[ok] / np.maximum(sc[:, :1], 1e-9).repeat(nb.shape[1])[ok]
    else:
        for i in range(n):
            rel[i] = model.similarity(i)
            rel[i, i] = 0
    return X[block] @ rel


if __name__ == "__main__":
    raise SystemExit(main())
