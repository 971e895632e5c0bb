"""The data sets and split protocols of the quality benchmarks.

Each data set yields a :class:`Split`: the training interactions (what a user would import) and,
per evaluated user, the set of items they went on to interact with (the truth, never imported).
The protocols:

* ``random_holdout``: per user, a random 20 % of their interactions is the truth (the classic
  MovieLens protocol; comparable with published EASE / ALS numbers).
* ``personalize_holdout``: Amazon Personalize's own offline protocol: 10 % of the users are held
  out at random, their newest 10 % of interactions are the truth; everything else trains. It asks
  what a solution's reported metrics ask, so the two can be compared.
* ``last_out``: each user's last ``k`` interactions in time are the truth (the sequential
  literature's leave-one-out, and leave-last-2-out for re-purchase data, where the truth is often
  an item the user already has).

Each split also knows how to cut a validation split of the same kind from its own training part,
so baselines are tuned without looking at the truth.

Real data sets are read from ``../shared/data`` beside the project and never copied into it; a
loader returns None when its file is absent. The generated sets need nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ML100K = DATA / "ml-100k" / "u.data"
BEAUTY = DATA / "amazon-beauty" / "Beauty.txt"
START = 1_600_000_000  # generated and position-ordered data start here (seconds since the epoch)


@dataclass
class Interactions:
    """Columns of an Interactions data set, ids as strings as a CSV import carries them."""

    user: np.ndarray
    item: np.ndarray
    timestamp: np.ndarray
    event_type: np.ndarray

    def __len__(self) -> int:
        return len(self.user)

    def take(self, keep: np.ndarray) -> Interactions:
        return Interactions(self.user[keep], self.item[keep], self.timestamp[keep], self.event_type[keep])

    def repeat_share(self) -> float:
        """Share of interactions whose (user, item) pair occurred before: 0 for ratings data,
        high for re-purchase data. Decides whether excluding seen items is right."""
        if len(self) == 0:
            return 0.0
        pairs = np.unique(np.char.add(np.char.add(self.user, "\x1f"), self.item))
        return 1.0 - len(pairs) / len(self)

    def histories(self) -> dict[str, set[str]]:
        """The items each user has in this data."""
        seen: dict[str, set[str]] = {}
        for u, i in zip(self.user.tolist(), self.item.tolist()):
            seen.setdefault(u, set()).add(i)
        return seen


Protocol = Callable[[Interactions, int], "tuple[Interactions, dict[str, set[str]]]"]


@dataclass
class Split:
    """Training interactions, the truth per evaluated user, and the protocol that made them."""

    train: Interactions
    truth: dict[str, set[str]]
    protocol: Protocol = field(repr=False)
    seed: int = 0

    def validation(self) -> tuple[Interactions, dict[str, set[str]]]:
        """The same protocol applied to the training part: for tuning baselines."""
        return self.protocol(self.train, self.seed + 100)


# ---------------------------------------------------------------- protocols

def _groups(user: np.ndarray, timestamp: np.ndarray | None = None):
    """Interaction indices grouped by user (time order within a user when ``timestamp`` is given)."""
    codes = np.unique(user, return_inverse=True)[1]
    order = np.lexsort((timestamp, codes)) if timestamp is not None else np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    return np.split(order, bounds)


def _cut(data: Interactions, test: np.ndarray) -> tuple[Interactions, dict[str, set[str]]]:
    truth: dict[str, set[str]] = {}
    for u, i in zip(data.user[test].tolist(), data.item[test].tolist()):
        truth.setdefault(u, set()).add(i)
    return data.take(~test), truth


def random_holdout(data: Interactions, seed: int, share: float = 0.2) -> tuple[Interactions, dict[str, set[str]]]:
    """Per user, round(share x n) interactions drawn at random are the truth."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(data), bool)
    for idx in _groups(data.user):
        k = int(round(share * len(idx)))
        if 0 < k < len(idx):
            test[rng.choice(idx, size=k, replace=False)] = True
    return _cut(data, test)


def personalize_holdout(data: Interactions, seed: int, user_share: float = 0.1,
                        newest: float = 0.1) -> tuple[Interactions, dict[str, set[str]]]:
    """Personalize's protocol: ``user_share`` of the users with >= 2 interactions, their newest
    max(1, round(newest x n)) interactions are the truth."""
    rng = np.random.default_rng(seed)
    groups = [g for g in _groups(data.user, data.timestamp) if len(g) >= 2]
    chosen = rng.choice(len(groups), size=max(1, int(round(user_share * len(groups)))), replace=False)
    test = np.zeros(len(data), bool)
    for g in chosen:
        idx = groups[g]
        test[idx[len(idx) - max(1, int(round(newest * len(idx)))):]] = True
    return _cut(data, test)


def personalize_validation(data: Interactions, seed: int) -> tuple[Interactions, dict[str, set[str]]]:
    """Personalize's protocol with a quarter of the users held out: a tenth of a small data set
    is too few users to tell tuning candidates apart."""
    return personalize_holdout(data, seed, user_share=0.25)


def last_out(k: int) -> Protocol:
    """Each user's last ``k`` interactions in time are the truth (users with more than ``k``)."""
    def protocol(data: Interactions, seed: int) -> tuple[Interactions, dict[str, set[str]]]:
        test = np.zeros(len(data), bool)
        for idx in _groups(data.user, data.timestamp):
            if len(idx) > k:
                test[idx[-k:]] = True
        return _cut(data, test)
    return protocol


# ---------------------------------------------------------------- loaders

def movielens_100k(path: Path = ML100K) -> Interactions | None:
    """Every rating is an interaction (user, movie, time), as Personalize would import them."""
    if not path.exists():
        return None
    rows = np.loadtxt(path, dtype=np.int64)
    return Interactions(rows[:, 0].astype(str), rows[:, 1].astype(str), rows[:, 3],
                        np.full(len(rows), "rating"))


def amazon_beauty(path: Path = BEAUTY) -> Interactions | None:
    """One line per user, items oldest first; the position is the only clock (a minute apart)."""
    if not path.exists():
        return None
    users, items, times = [], [], []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        users += [parts[0]] * (len(parts) - 1)
        items += parts[1:]
        times += range(len(parts) - 1)
    return Interactions(np.array(users), np.array(items), START + 60 * np.array(times, dtype=np.int64),
                        np.full(len(users), "review"))


def generate_sparse(n_users: int, n_items: int, seed: int, per_user: tuple[int, int] = (10, 15),
                    items_per_cluster: int = 250, affinity: float = 0.8,
                    exponent: float = 0.8) -> Interactions:
    """A long-tail catalogue with few interactions per item.

    Item popularity follows a power law (rank^-exponent, ranks shuffled); items fall into latent
    clusters of ``items_per_cluster``; each user likes one or two clusters and draws ``affinity``
    of their items from them (by popularity), the rest from the whole catalogue. Each user has
    each item at most once. Popularity alone explains part of it, the clusters the rest, so a
    model has to learn something to beat most-popular.
    """
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1) ** exponent
    rng.shuffle(popularity)
    n_clusters = max(2, n_items // items_per_cluster)
    cluster = rng.integers(n_clusters, size=n_items)
    members = [np.flatnonzero(cluster == c) for c in range(n_clusters)]
    global_p = popularity / popularity.sum()
    users, items = [], []
    for u in range(n_users):
        n = int(rng.integers(per_user[0], per_user[1] + 1))
        liked = rng.choice(n_clusters, size=1 + int(rng.random() < 0.3), replace=False)
        pool = np.concatenate([members[c] for c in liked])
        n_in = min(len(pool), int(rng.binomial(n, affinity)))
        chosen = rng.choice(pool, size=n_in, replace=False, p=popularity[pool] / popularity[pool].sum())
        chosen = _add_distinct(rng, chosen, n, global_p)
        users.append(np.full(len(chosen), u))
        items.append(chosen)
    u_idx, i_idx = np.concatenate(users), np.concatenate(items)
    times = START + rng.integers(0, 180 * 86400, size=len(u_idx))
    width = len(str(max(n_users, n_items)))
    return Interactions(np.char.add("u", np.char.zfill(u_idx.astype(str), width)),
                        np.char.add("i", np.char.zfill(i_idx.astype(str), width)),
                        times.astype(np.int64), np.full(len(u_idx), "click"))


def _add_distinct(rng: np.random.Generator, chosen: np.ndarray, n: int, p: np.ndarray) -> np.ndarray:
    """``chosen`` topped up to ``n`` distinct items drawn from the whole catalogue by ``p``."""
    have = list(chosen.tolist())
    while len(have) < n:
        extra = rng.choice(len(p), size=2 * (n - len(have)), p=p)
        for i in extra.tolist():
            if i not in have and len(have) < n:
                have.append(i)
    return np.array(have, dtype=np.int64)


def staples(n_users: int, n_items: int, seed: int) -> Interactions:
    """Re-purchase data from the package's generator: 60 % of purchases are repeats."""
    from openpersonalize.synthetic import generate_staples

    cat = generate_staples(n_users, n_items, seed=seed, repeat_share=0.6)
    return Interactions(np.asarray(cat.user_ids)[cat.users].astype(str),
                        np.asarray(cat.item_ids)[cat.items].astype(str),
                        np.asarray(cat.timestamps, dtype=np.int64), np.asarray(cat.event_types).astype(str))


# ---------------------------------------------------------------- the benchmark's data sets

@dataclass
class DataSet:
    """A named data set: how to build the split for a seed, at full or quick size."""

    key: str
    title: str
    seeds: int  # seeds of a full run
    build: Callable[[int, bool], Split | None]  # (seed, quick) -> split, None when the file is absent
    source: Path | None = None  # the file it reads, for the skip message

    def missing(self) -> Path | None:
        return self.source if self.source is not None and not self.source.exists() else None


def _ml_random(seed: int, quick: bool) -> Split | None:
    data = movielens_100k()
    return None if data is None else Split(*random_holdout(data, seed), random_holdout, seed)


def _ml_personalize(seed: int, quick: bool) -> Split | None:
    data = movielens_100k()
    return None if data is None else Split(*personalize_holdout(data, seed), personalize_validation, seed)


def _beauty(seed: int, quick: bool) -> Split | None:
    data = amazon_beauty()
    protocol = last_out(1)
    return None if data is None else Split(*protocol(data, seed), protocol, seed)


def _sparse(seed: int, quick: bool) -> Split:
    n_users, n_items = (2_000, 5_000) if quick else (20_000, 50_000)
    data = generate_sparse(n_users, n_items, seed)
    return Split(*random_holdout(data, seed), random_holdout, seed)


def _staples(seed: int, quick: bool) -> Split:
    n_users, n_items = (1_000, 500) if quick else (4_000, 2_000)
    protocol = last_out(2)
    data = staples(n_users, n_items, seed)
    return Split(*protocol(data, seed), protocol, seed)


DATASETS = {d.key: d for d in (
    DataSet("ml100k-random", "MovieLens 100k, per-user random 80/20", 5, _ml_random, ML100K),
    DataSet("ml100k-personalize", "MovieLens 100k, Personalize protocol (10 % of users, their newest 10 %)", 3,
            _ml_personalize, ML100K),
    DataSet("beauty", "Amazon Beauty, leave-one-out (last item per user)", 1, _beauty, BEAUTY),
    DataSet("sparse", "generated sparse catalogue (50,000 items; 5,000 with --quick), per-user random 80/20", 1,
            _sparse),
    DataSet("staples", "generated re-purchase data (60 % repeats), leave-last-2-out", 3, _staples),
)}
QUICK = ("ml100k-random", "staples", "sparse")
