"""Baselines for the quality benchmark, and the scoring both benchmarks share.

The baselines are what a practitioner would try first on the same split, computed in the same
run so that a recipe's figure is always read beside them:

* most-popular (interaction counts);
* follow the last item: the items that most often came right after the user's newest item
  (the order-aware baseline a sequence model must beat);
* EASE (Steck 2019) with l2 tuned on a validation split cut from the training part by the data
  set's own protocol; skipped above ``EASE_MAX_ITEMS`` items (a dense items x items matrix);
* implicit's ALS with factors and regularisation tuned on the same validation split.

They are written here from numpy, scipy and implicit, not taken from the package, so a change
in the package cannot move its own yardstick.

Seen items: where the training data has no repeats (under ``NO_REPEATS`` of interactions repeat
an earlier user-item pair), a baseline leaves out the user's training items, as everyone does on
ratings data; where it has repeats, it ranks all items, since the user may well come back.

Scoring (``score_lists``) is plain: a list of 25 is cut to the top 10 and compared with the truth;
an item the user already has counts as a miss unless it is in the truth. Beside NDCG@10, P@10 and
R@10 it reports the share of list slots (all 25) taken by items of the user's training history.

Stand-alone, it prints the baselines (and, in-process, recipes trained by the package's
``train()``, as a quick check without a server) for the chosen data sets:

    python bench/quality_offline.py [--datasets ml100k-random,...] [--seeds N] [--quick]
                                    [--recipes aws-user-personalization,...]

Data sets whose file is absent are skipped (exit 0).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "src"))  # the package, installed or not

from datasets import DATASETS, QUICK, Interactions, Split  # noqa: E402

K = 10  # metrics at 10
LIST = 25  # list length, as a batch inference job returns by default
NO_REPEATS = 0.01  # below this repeat share, seen items are left out by the baselines
EASE_MAX_ITEMS = 20_000  # a 20k x 20k float32 matrix is 1.6 GB, and two live at once while B is built
TUNE_USERS = 5_000  # validation users scored per tuning candidate (a sample beyond this)
ALS_GRID = tuple((f, r) for f in (16, 32, 64, 128) for r in (1.0, 10.0, 30.0))
ALS_ITERATIONS = 15


# ---------------------------------------------------------------- scoring

@dataclass
class Scores:
    ndcg: float
    precision: float
    recall: float
    seen_share: float  # list slots holding an item of the user's training history / list slots


def score_lists(lists: dict[str, list[str]], truth: dict[str, set[str]], seen: dict[str, set[str]],
                k: int = K) -> Scores:
    """NDCG@k, P@k, R@k over the users in ``truth`` (a missing list scores 0), and the seen share
    over the whole lists."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ndcg, prec, rec = [], [], []
    seen_slots = slots = 0
    for user, relevant in truth.items():
        ranked = lists.get(user, [])
        hits = np.array([i in relevant for i in ranked[:k]] + [False] * (k - len(ranked[:k])), float)
        ndcg.append((hits * discounts).sum() / discounts[:min(k, len(relevant))].sum())
        prec.append(hits.sum() / k)
        rec.append(hits.sum() / len(relevant))
        history = seen.get(user, set())
        seen_slots += sum(i in history for i in ranked)
        slots += len(ranked)
    return Scores(float(np.mean(ndcg)), float(np.mean(prec)), float(np.mean(rec)),
                  seen_slots / slots if slots else 0.0)


# ---------------------------------------------------------------- the interaction matrix

class Catalogue:
    """Training interactions as a users x items count matrix over their own vocabularies."""

    def __init__(self, train: Interactions):
        self.users, u = np.unique(train.user, return_inverse=True)
        self.items, i = np.unique(train.item, return_inverse=True)
        self.X = sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=(len(self.users), len(self.items)))
        self.X.sum_duplicates()
        self.binary = self.X.copy()
        self.binary.data[:] = 1.0

    def rows(self, user_ids) -> np.ndarray:
        """Row of each user id; -1 for users without training data."""
        pos = np.searchsorted(self.users, user_ids)
        pos = np.minimum(pos, len(self.users) - 1)
        return np.where(self.users[pos] == np.asarray(user_ids), pos, -1)

    def popularity(self) -> np.ndarray:
        return np.asarray(self.X.sum(axis=0)).ravel().astype(np.float32)


def top_lists(cat: Catalogue, scores_fn: Callable[[np.ndarray], np.ndarray], users, exclude_seen: bool,
              n: int = LIST) -> dict[str, list[str]]:
    """The top ``n`` item ids per user. Scoring runs in blocks of rows (64 MB of scores each) so
    memory stays flat at any catalogue size; users without training data get the popular items."""
    users = list(users)
    rows = cat.rows(np.asarray(users))
    pop_order = np.argsort(-cat.popularity(), kind="stable")[:n]
    block = max(1, (1 << 24) // max(1, len(cat.items)))
    out: dict[str, list[str]] = {}
    known = np.flatnonzero(rows >= 0)
    for start in range(0, len(known), block):
        take = known[start:start + block]
        S = np.array(scores_fn(rows[take]), dtype=np.float32)
        if exclude_seen:
            r, c = cat.X[rows[take]].nonzero()
            S[r, c] = -np.inf
        for j, idx in zip(take, _topk(S, n)):
            out[users[j]] = cat.items[idx].tolist()
    for j in np.flatnonzero(rows < 0):
        out[users[j]] = cat.items[pop_order].tolist()
    return out


def _topk(S: np.ndarray, n: int) -> np.ndarray:
    """Per row, the indices of the ``n`` largest finite scores, best first."""
    n = min(n, S.shape[1])
    part = np.argpartition(-S, n - 1, axis=1)[:, :n]
    vals = np.take_along_axis(S, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1)
    finite = np.isfinite(np.take_along_axis(vals, order, axis=1))
    return [row[ok] for row, ok in zip(idx, finite)]


# ---------------------------------------------------------------- EASE

def ease_weights(X: sp.csr_matrix, l2: float) -> np.ndarray:
    """EASE's B = -P / diag(P) (zero diagonal) with P = (X'X + l2 I)^-1, in float32.

    A Cholesky inverse (half the work of a general one) written over the Gram matrix, and the
    lower triangle mirrored in blocks: the largest catalogues then need two matrices, not four.
    """
    G = (X.T @ X).toarray().astype(np.float32)
    G[np.diag_indices_from(G)] += l2
    c, info = lapack.spotrf(G.T, lower=0, clean=1, overwrite_a=1)  # G.T: the same matrix, Fortran order
    if info != 0:
        raise np.linalg.LinAlgError(f"Cholesky failed ({info})")
    P, info = lapack.spotri(c, lower=0, overwrite_c=1)
    del c, G
    n = P.shape[0]
    for s in range(0, n, 1024):
        e = min(n, s + 1024)
        P[s:e, :s] = P[:s, s:e].T
        block = P[s:e, s:e]
        P[s:e, s:e] = np.triu(block) + np.triu(block, 1).T
    P = P.T  # symmetric: the same matrix, in C order for the sparse products that use it
    d = np.diag(P).copy()
    P /= -d
    P[np.diag_indices_from(P)] = 0.0
    return P


def tune_ease(split: Split, exclude_seen: bool) -> tuple[float, str]:
    """l2 with the best validation NDCG@10: a log search from 8 x the mean interactions per item
    (steps of 4 while it improves), then the halfway points either side of the best."""
    fit, truth = split.validation()
    cat = Catalogue(fit)
    users = _sample(truth, split.seed)
    seen = fit.histories()
    tried: dict[float, float] = {}

    def score(l2: float) -> float:
        if l2 not in tried:
            try:
                B = ease_weights(cat.binary, l2)
            except np.linalg.LinAlgError:  # l2 too small for a rank-deficient Gram matrix
                tried[l2] = -1.0
                return -1.0
            lists = top_lists(cat, lambda r: cat.binary[r] @ B, users, exclude_seen)
            tried[l2] = score_lists(lists, {u: truth[u] for u in users}, seen).ndcg
        return tried[l2]

    best = max(1.0, 8.0 * cat.binary.nnz / max(1, len(cat.items)))
    for step in (4.0, 0.25):
        for _ in range(6):  # at most 4096 x either way (sparse data can want a very large l2)
            if score(best * step) <= score(best):
                break
            best *= step
    for step in (2.0, 0.5):
        if score(best * step) > score(best):
            best *= step
    return best, f"l2={best:g} ({len(tried)} tried)"


def _sample(truth: dict[str, set[str]], seed: int) -> list[str]:
    """Validation users, a seeded sample of ``TUNE_USERS`` when there are more."""
    users = sorted(truth)
    if len(users) > TUNE_USERS:
        rng = np.random.default_rng(seed)
        users = sorted(rng.choice(users, TUNE_USERS, replace=False).tolist())
    return users


# ---------------------------------------------------------------- implicit ALS

def fit_als(X: sp.csr_matrix, factors: int, regularization: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """implicit's ALS on the count matrix (confidence 1 + count); user and item factors."""
    from implicit.cpu.als import AlternatingLeastSquares

    with threadpool_limits(1, "blas"):  # implicit parallelises itself; a BLAS pool below oversubscribes
        model = AlternatingLeastSquares(factors=factors, regularization=regularization, alpha=1.0,
                                        iterations=ALS_ITERATIONS, random_state=seed, calculate_training_loss=False)
        model.fit(X, show_progress=False)
    return np.asarray(model.user_factors), np.asarray(model.item_factors)


def tune_als(split: Split, exclude_seen: bool) -> tuple[tuple[int, float], str]:
    """(factors, regularisation) of ``ALS_GRID`` with the best validation NDCG@10."""
    fit, truth = split.validation()
    cat = Catalogue(fit)
    users = _sample(truth, split.seed)
    seen = fit.histories()
    best, choice = -1.0, ALS_GRID[0]
    for factors, reg in ALS_GRID:
        U, V = fit_als(cat.X, factors, reg, split.seed)
        lists = top_lists(cat, lambda r: U[r] @ V.T, users, exclude_seen)
        ndcg = score_lists(lists, {u: truth[u] for u in users}, seen).ndcg
        if ndcg > best:
            best, choice = ndcg, (factors, reg)
    return choice, f"factors={choice[0]}, reg={choice[1]:g}"


# ---------------------------------------------------------------- the baselines on a split

@dataclass
class Outcome:
    """One method's lists on one split, with what it cost."""

    lists: dict[str, list[str]]
    train_seconds: float | None = None
    batch_seconds: float | None = None
    peak_mb: float | None = None
    note: str = ""
    service_ndcg: float | None = None  # GetSolutionMetrics' NDCG@10 for a recipe trained by the service


def baselines(split: Split, exclude_seen: bool, log=print) -> dict[str, Outcome]:
    """most-popular, EASE (when the catalogue fits) and ALS lists for the split's truth users.
    A baseline's time covers tuning, fitting and scoring."""
    cat = Catalogue(split.train)
    users = sorted(split.truth)
    out: dict[str, Outcome] = {}

    t = time.perf_counter()
    pop = cat.popularity()
    out["baseline most-popular"] = Outcome(
        top_lists(cat, lambda r: np.broadcast_to(pop, (len(r), len(pop))), users, exclude_seen),
        time.perf_counter() - t)

    if len(cat.items) <= EASE_MAX_ITEMS:
        t = time.perf_counter()
        l2, note = tune_ease(split, exclude_seen)
        B = ease_weights(cat.binary, l2)
        out["baseline EASE (l2 tuned)"] = Outcome(
            top_lists(cat, lambda r: cat.binary[r] @ B, users, exclude_seen), time.perf_counter() - t, note=note)
        del B
    else:
        log(f"  EASE skipped: {len(cat.items):,} items > {EASE_MAX_ITEMS:,} (dense item-item matrix too big)")

    t = time.perf_counter()
    follows = following_counts(cat, split.train)
    last = last_items(cat, split.train)
    out["baseline follow the last item"] = Outcome(
        top_lists(cat, lambda r: np.asarray(follows[last[r]].toarray()) + 1e-6 * pop, users, exclude_seen),
        time.perf_counter() - t)

    t = time.perf_counter()
    (factors, reg), note = tune_als(split, exclude_seen)
    U, V = fit_als(cat.X, factors, reg, split.seed)
    out["baseline implicit ALS (tuned)"] = Outcome(
        top_lists(cat, lambda r: U[r] @ V.T, users, exclude_seen), time.perf_counter() - t, note=note)
    for name, o in out.items():
        if o.note:
            log(f"  {name}: {o.note}")
    return out


def ordered_rows(cat: Catalogue, train: Interactions) -> tuple[np.ndarray, np.ndarray]:
    """(user row, item column) of every training interaction, by user then time."""
    u, i = cat.rows(train.user), np.searchsorted(cat.items, train.item)
    order = np.lexsort((np.arange(len(u)), train.timestamp, u))
    return u[order], i[order]


def following_counts(cat: Catalogue, train: Interactions) -> sp.csr_matrix:
    """How often item b directly followed item a in a user's sequence (items x items)."""
    u, i = ordered_rows(cat, train)
    same = (u[1:] == u[:-1]) & (i[1:] != i[:-1])
    n = len(cat.items)
    return sp.csr_matrix((np.ones(int(same.sum()), np.float32), (i[:-1][same], i[1:][same])), shape=(n, n))


def last_items(cat: Catalogue, train: Interactions) -> np.ndarray:
    """Each user row's newest training item."""
    u, i = ordered_rows(cat, train)
    last = np.zeros(len(cat.users), dtype=np.int64)
    last[u] = i  # the last write per user is their newest
    return last


def seen_rule(train: Interactions) -> tuple[bool, str]:
    """Whether baselines leave seen items out, decided from the training data, and why."""
    share = train.repeat_share()
    if share < NO_REPEATS:
        return True, f"training repeats {share:.1%}: no repeats, baselines exclude seen items"
    return False, f"training repeats {share:.1%}: repeat data, baselines rank all items"


# ---------------------------------------------------------------- tables

@dataclass
class Table:
    """Per method, the scores and costs of each seed; printed as means."""

    rows: dict[str, list[tuple[Scores, Outcome]]] = field(default_factory=dict)

    def add(self, name: str, scores: Scores, outcome: Outcome) -> None:
        self.rows.setdefault(name, []).append((scores, outcome))

    def mean(self, name: str, attr: str) -> float:
        return float(np.mean([getattr(s, attr) for s, _ in self.rows[name]]))

    def print(self) -> None:
        print(f"{'method':40s} {'NDCG@10':>8s} {'P@10':>7s} {'R@10':>7s} {'seen@25':>8s} "
              f"{'train s':>8s} {'batch s':>8s} {'peak MB':>8s}")
        for name, values in self.rows.items():
            scores = [s for s, _ in values]
            sd = np.std([s.ndcg for s in scores])
            cost = [_mean([getattr(o, a) for _, o in values]) for a in ("train_seconds", "batch_seconds", "peak_mb")]
            print(f"{name:40s} {np.mean([s.ndcg for s in scores]):8.4f} {np.mean([s.precision for s in scores]):7.4f} "
                  f"{np.mean([s.recall for s in scores]):7.4f} {np.mean([s.seen_share for s in scores]):8.2%} "
                  f"{_fmt(cost[0], 8, 1)} {_fmt(cost[1], 8, 1)} {_fmt(cost[2], 8, 0)}"
                  + (f"   (NDCG sd {sd:.4f}, {len(scores)} seeds)" if len(scores) > 1 else ""))


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _fmt(value: float | None, width: int, digits: int) -> str:
    return f"{'-':>{width}s}" if value is None else f"{value:{width}.{digits}f}"


# ---------------------------------------------------------------- stand-alone

def in_process(recipe: str, split: Split, seed: int) -> Outcome:
    """A recipe trained by the package's ``train()`` with the default solution config and asked
    for batch lists of 25, without a server: what a batch inference job computes, minus the I/O."""
    from openpersonalize.recipes.base import TrainingData
    from openpersonalize.recipes.training import train

    t = time.perf_counter()
    tr = split.train
    data = TrainingData.from_records(tr.user, tr.item, tr.timestamp, tr.event_type)
    model, _, _ = train(recipe, data, {}, seed=seed, compute_metrics=False)
    trained = time.perf_counter()
    users = sorted(split.truth)
    idx, _ = model.recommend_batch(model.user_index(users).astype(np.int64), LIST)
    lists = {u: model.item_ids[row[row >= 0]].tolist() for u, row in zip(users, np.asarray(idx))}
    return Outcome(lists, trained - t, time.perf_counter() - trained)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="ml100k-random", help=f"comma-separated: {', '.join(DATASETS)}")
    parser.add_argument("--seeds", type=int, default=None, help="at most this many seeds per data set")
    parser.add_argument("--quick", action="store_true", help="one seed, small generated sets")
    parser.add_argument("--recipes", default="aws-user-personalization,aws-popularity-count",
                        help="recipes also trained in-process ('' for none)")
    args = parser.parse_args()
    keys = list(QUICK) if args.quick and args.datasets == "all" else _keys(args.datasets)
    recipes = [r for r in args.recipes.split(",") if r]
    for key in keys:
        ds = DATASETS[key]
        if ds.missing():
            print(f"{key}: skipped, {ds.missing()} not found")
            continue
        seeds = 1 if args.quick else min(ds.seeds, args.seeds or ds.seeds)
        table = Table()
        for seed in range(seeds):
            split = ds.build(seed, args.quick)
            exclude, why = seen_rule(split.train)
            print(f"{key} seed {seed}: {why}", file=sys.stderr)
            seen = split.train.histories()
            outcomes = baselines(split, exclude, log=lambda m: print(m, file=sys.stderr))
            for recipe in recipes:
                outcomes[f"in-process {recipe}"] = in_process(recipe, split, seed)
            for name, o in outcomes.items():
                table.add(name, score_lists(o.lists, split.truth, seen), o)
        print(f"\n{ds.title}: {seeds} seed(s); {why}")
        table.print()
    return 0


def _keys(text: str) -> list[str]:
    keys = list(DATASETS) if text == "all" else [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in DATASETS]
    if unknown:
        raise SystemExit(f"unknown data set(s) {', '.join(unknown)}; choose from {', '.join(DATASETS)}")
    return keys


if __name__ == "__main__":
    raise SystemExit(main())
