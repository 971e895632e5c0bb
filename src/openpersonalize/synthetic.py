"""Generated data with known structure, for the demo, the tests and the benchmarks.

Items belong to genres and carry readable titles and descriptions; each user prefers one or two
genres and mostly interacts with popular items of those genres. A model that learns anything
recommends a user items of their genres, so tests can check answers without a reference
dataset, and nothing here comes from a licensed data set.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GENRES = ["Comedy", "Drama", "Action", "Horror", "Romance", "Documentary", "Animation", "Thriller"]
_WORDS = {
    "Comedy": ["Laughing", "Silly", "Wedding", "Roommates", "Mix-up", "Holiday", "Prank", "Road Trip"],
    "Drama": ["Silent", "Letters", "Inheritance", "Winter", "Family", "Courtroom", "Promise", "Harbor"],
    "Action": ["Heist", "Vendetta", "Pursuit", "Agent", "Firestorm", "Rogue", "Extraction", "Showdown"],
    "Horror": ["Haunting", "Cellar", "Curse", "Midnight", "Possession", "Asylum", "Whispers", "Hollow"],
    "Romance": ["Paris", "Summer", "Sweetheart", "Letters", "Moonlight", "Proposal", "Serenade", "Kiss"],
    "Documentary": ["Oceans", "Glaciers", "Chefs", "Pioneers", "Wildlife", "Engineers", "Deserts", "Bees"],
    "Animation": ["Dragon", "Robot", "Kingdom", "Penguin", "Wizard", "Toy", "Comet", "Forest"],
    "Thriller": ["Conspiracy", "Witness", "Alibi", "Hostage", "Cipher", "Double", "Stranger", "Deadline"],
}
_TOPICS = {
    "Comedy": "a chaotic comedy of errors with friends and family",
    "Drama": "a quiet character drama about loss and loyalty",
    "Action": "an explosive action chase with car stunts and fights",
    "Horror": "a terrifying horror story of ghosts and a haunted house",
    "Romance": "a tender romance about two lovers who meet by chance",
    "Documentary": "a documentary exploring nature science and history",
    "Animation": "an animated family adventure with talking animals",
    "Thriller": "a tense thriller about spies secrets and a murder investigation",
}
START = 1_700_000_000


@dataclass
class GeneratedCatalogue:
    """Generated users, items and interactions (numpy arrays; ids are strings)."""

    item_ids: np.ndarray
    item_genres: list[list[str]]
    item_titles: list[str]
    item_descriptions: list[str]
    item_prices: np.ndarray
    item_created: np.ndarray
    user_ids: np.ndarray
    user_genres: list[list[str]]
    user_tiers: list[str]
    users: np.ndarray        # per interaction: user index
    items: np.ndarray        # per interaction: item index
    timestamps: np.ndarray
    event_types: np.ndarray
    event_values: np.ndarray

    def genre_of(self, item_id: str) -> list[str]:
        return self.item_genres[int(np.searchsorted(self.item_ids, item_id))]


def generate(n_users: int = 500, n_items: int = 300, interactions_per_user: int = 30, seed: int = 7,
             affinity: float = 0.9, distinct: bool = False) -> GeneratedCatalogue:
    """A catalogue where users prefer their genres with probability ``affinity``. Popular items
    are drawn again now and then (users come back to them); with ``distinct`` each user has each
    item at most once, as in a ratings data set."""
    rng = np.random.default_rng(seed)
    width = max(len(str(n_items)), 4)
    item_ids = np.array([f"i{k:0{width}d}" for k in range(n_items)])
    primary = rng.integers(len(GENRES), size=n_items)
    genres = []
    for k in range(n_items):
        g = [GENRES[primary[k]]]
        if rng.random() < 0.2:
            g.append(GENRES[(primary[k] + 1 + rng.integers(len(GENRES) - 1)) % len(GENRES)])
        genres.append(g)
    titles = [f"The {' '.join(rng.choice(_WORDS[g[0]], size=2, replace=False))} {k}" for k, g in enumerate(genres)]
    descriptions = [_TOPICS[g[0]] for g in genres]
    prices = np.round(rng.uniform(1, 60, size=n_items), 2)
    created = START - rng.integers(0, 400 * 86400, size=n_items)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    rng.shuffle(popularity)

    uwidth = max(len(str(n_users)), 4)
    user_ids = np.array([f"u{k:0{uwidth}d}" for k in range(n_users)])
    by_genre = {g: np.flatnonzero(primary == j) for j, g in enumerate(GENRES)}
    user_genres, users, items = [], [], []
    for u in range(n_users):
        liked = [str(g) for g in rng.choice(GENRES, size=1 + int(rng.random() < 0.3), replace=False)]
        user_genres.append(liked)
        pool = np.concatenate([by_genre[g] for g in liked])
        n = max(2, int(rng.poisson(interactions_per_user)))
        from_pool = rng.random(n) < affinity
        p = popularity[pool] / popularity[pool].sum()
        chosen = np.where(from_pool, rng.choice(pool, size=n, p=p),
                          rng.choice(n_items, size=n, p=popularity / popularity.sum()))
        if distinct:
            chosen = _distinct_draws(rng, chosen, pool, popularity)
        users.append(np.full(n, u))
        items.append(chosen)
    users_a = np.concatenate(users)
    items_a = np.concatenate(items)
    timestamps = START + np.sort(rng.integers(0, 90 * 86400, size=len(users_a)))
    rng.shuffle(timestamps)
    event_types = np.where(rng.random(len(users_a)) < 0.15, "purchase", "click")
    values = np.round(rng.uniform(0.5, 5.0, size=len(users_a)), 1)
    tiers = [str(t) for t in rng.choice(["gold", "silver", "bronze"], size=n_users, p=[0.2, 0.3, 0.5])]
    return GeneratedCatalogue(item_ids, genres, titles, descriptions, prices, created, user_ids, user_genres, tiers,
                     users_a, items_a, timestamps, event_types, values)


def _distinct_draws(rng, chosen: np.ndarray, pool: np.ndarray, popularity: np.ndarray) -> np.ndarray:
    """``chosen`` with each repeated draw replaced by an item not drawn yet (from ``pool`` first)."""
    kept = list(dict.fromkeys(chosen.tolist()))
    for candidates in (pool, np.arange(len(popularity))):
        fresh = np.setdiff1d(candidates, kept)
        missing = len(chosen) - len(kept)
        if missing and len(fresh):
            p = popularity[fresh] / popularity[fresh].sum()
            kept += rng.choice(fresh, size=min(missing, len(fresh)), replace=False, p=p).tolist()
    return np.array(kept[:len(chosen)], dtype=np.int64)


def generate_staples(n_users: int = 500, n_items: int = 300, interactions_per_user: int = 40, seed: int = 7,
                     repeat_share: float = 0.6, staples_per_user: int = 6) -> GeneratedCatalogue:
    """A shop where users re-buy their staples: each user has a few favourite items of their
    genres; after the first purchase, each interaction is a re-purchase of an item the user
    already bought with probability ``repeat_share`` (staples far more often than others), and
    otherwise a new item of their genres. The share of repeats is known, so a model can be
    checked for learning it."""
    base = generate(n_users, n_items, interactions_per_user=2, seed=seed, distinct=True)
    rng = np.random.default_rng(seed + 1)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    rng.shuffle(popularity)
    primary = np.array([GENRES.index(g[0]) for g in base.item_genres])
    users, items = [], []
    for u in range(n_users):
        pool = np.concatenate([np.flatnonzero(primary == GENRES.index(g)) for g in base.user_genres[u]])
        p = popularity[pool] / popularity[pool].sum()
        staples = rng.choice(pool, size=min(staples_per_user, len(pool)), replace=False, p=p)
        n = max(3, int(rng.poisson(interactions_per_user)))
        bought: dict[int, float] = {}
        sequence = []
        for k in range(n):
            if bought and rng.random() < repeat_share:
                have = np.fromiter(bought, dtype=np.int64)
                w = np.fromiter(bought.values(), dtype=np.float64)
                item = int(rng.choice(have, p=w / w.sum()))
            else:
                fresh = np.setdiff1d(pool, np.fromiter(bought, dtype=np.int64))
                if len(fresh) == 0:
                    fresh = np.setdiff1d(np.arange(n_items), np.fromiter(bought, dtype=np.int64))
                unbought_staples = np.setdiff1d(staples, np.fromiter(bought, dtype=np.int64))
                if len(unbought_staples) and rng.random() < 0.5:
                    item = int(rng.choice(unbought_staples))
                else:
                    q = popularity[fresh] / popularity[fresh].sum()
                    item = int(rng.choice(fresh, p=q))
                bought[item] = 8.0 if item in staples else 1.0
            sequence.append(item)
        users.append(np.full(n, u))
        items.append(np.array(sequence))
    users_a, items_a = np.concatenate(users), np.concatenate(items)
    # Time runs forward within each user's sequence (the order above), interleaved across users.
    gaps = rng.integers(3600, 5 * 86400, size=len(users_a))
    starts = np.r_[0, np.cumsum([len(x) for x in items])[:-1]]
    timestamps = np.cumsum(gaps)
    timestamps = START + timestamps - np.repeat(timestamps[starts] - rng.integers(0, 30 * 86400, size=n_users),
                                                [len(x) for x in items])
    event_types = np.full(len(users_a), "purchase")
    values = np.round(base.item_prices[items_a], 1)
    return GeneratedCatalogue(base.item_ids, base.item_genres, base.item_titles, base.item_descriptions,
                              base.item_prices, base.item_created, base.user_ids, base.user_genres, base.user_tiers,
                              users_a, items_a, timestamps, event_types, values)


INTERACTIONS_SCHEMA = {
    "type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema",
    "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
               {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"},
               {"name": "EVENT_VALUE", "type": ["null", "float"]}],
    "version": "1.0",
}
ITEMS_SCHEMA = {
    "type": "record", "name": "Items", "namespace": "com.amazonaws.personalize.schema",
    "fields": [{"name": "ITEM_ID", "type": "string"},
               {"name": "TITLE", "type": "string", "itemName": True},
               {"name": "GENRES", "type": "string", "categorical": True},
               {"name": "DESCRIPTION", "type": ["null", "string"], "textual": True},
               {"name": "PRICE", "type": "float"},
               {"name": "CREATION_TIMESTAMP", "type": "long"}],
    "version": "1.0",
}
USERS_SCHEMA = {
    "type": "record", "name": "Users", "namespace": "com.amazonaws.personalize.schema",
    "fields": [{"name": "USER_ID", "type": "string"}, {"name": "TIER", "type": "string", "categorical": True}],
    "version": "1.0",
}


def write_csvs(cat: GeneratedCatalogue, folder: str | Path) -> dict[str, Path]:
    """Write interactions.csv, items.csv and users.csv in the import format; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"interactions": folder / "interactions.csv", "items": folder / "items.csv",
             "users": folder / "users.csv"}
    with open(paths["interactions"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"])
        for u, i, t, e, v in zip(cat.users, cat.items, cat.timestamps, cat.event_types, cat.event_values):
            w.writerow([cat.user_ids[u], cat.item_ids[i], int(t), e, v])
    with open(paths["items"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ITEM_ID", "TITLE", "GENRES", "DESCRIPTION", "PRICE", "CREATION_TIMESTAMP"])
        for k, item in enumerate(cat.item_ids):
            w.writerow([item, cat.item_titles[k], "|".join(cat.item_genres[k]), cat.item_descriptions[k],
                        cat.item_prices[k], int(cat.item_created[k])])
    with open(paths["users"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["USER_ID", "TIER"])
        for u, tier in zip(cat.user_ids, cat.user_tiers):
            w.writerow([u, tier])
    return paths


def schema_json(schema: dict) -> str:
    return json.dumps(schema)
