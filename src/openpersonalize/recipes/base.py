"""The recipe contract: training data in, a model that answers its recipe type's questions out.

Three pieces make the extension point "a recipe":

* :class:`TrainingData`, a plain bundle of numpy arrays (plus optional Arrow tables for item,
  user and action metadata) that the data layer fills and tests build with
  :meth:`TrainingData.from_records`. Users, items and actions are dense integer indices; the id
  vocabularies map them back.
* :class:`Algorithm`, one per recipe family: typed hyperparameters (:class:`HyperParameters`,
  parsed from the catalogue's strings) and ``fit(data, params, settings) -> Model``.
* :class:`Model`, the trained artefact: the query methods its recipe type supports, and
  ``save(dir)`` / ``load(dir)`` as ``.npy`` arrays plus ``manifest.json``, memory-mapped on load.

Masks are boolean arrays over items (or users, for segments). Every query applies them to the
full score vector before the top-k, so ``n`` results come back whenever ``n`` candidates pass.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..ordering import stable_order
from .capabilities import Capabilities
from .catalogue import Param, Recipe

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


class TooLittleData(Exception):
    """Training cannot start: the data misses a minimum. ``reason`` is the user-facing text."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class UnsupportedQuery(Exception):
    """A model was asked a question its recipe type does not answer."""


# --------------------------------------------------------------------------------------------
# Training data


@dataclass(frozen=True)
class Minimums:
    """The minimum-data rules training enforces (checks.py): AWS's by default; settings
    (``min_training_interactions``, ``min_training_active_users``) relax them for tests."""

    interactions: int = 1000
    active_users: int = 25


@dataclass(frozen=True)
class ColumnRoles:
    """Which metadata columns of an Items (or Users) table train the model, by role."""

    categorical: tuple[str, ...] = ()
    textual: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()
    item_name: str | None = None


@dataclass
class TrainingData:
    """Interactions as parallel numpy arrays, and the optional metadata tables.

    ``user_ids`` / ``item_ids`` map index to id (any order; ``from_records`` sorts them);
    ``user`` / ``item`` are int32 indices per
    interaction. ``event_type`` holds int16 codes into ``event_types`` (the vocabulary);
    ``event_value`` is float32 with NaN for null. ``weight`` is the per-interaction weight that
    :func:`~openpersonalize.recipes.training.train` sets from ``eventsConfig`` (1.0 when absent).

    ``items`` is an Arrow table with an ``ITEM_ID`` column (and ``CREATION_TIMESTAMP`` when the
    schema has one); every id in it is in ``item_ids``, so items without interactions are
    candidates too. ``item_columns`` says which of its columns are categorical, textual or the
    item name. ``actions`` has ``ACTION_ID`` (+ ``VALUE``, ``EXPIRATION_TIMESTAMP`` ...);
    ``action_interactions`` has ``USER_ID``, ``ACTION_ID``, ``EVENT_TYPE``, ``TIMESTAMP``, and
    its users are in ``user_ids``.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    user: np.ndarray
    item: np.ndarray
    timestamp: np.ndarray
    event_type: np.ndarray
    event_types: np.ndarray
    event_value: np.ndarray
    weight: np.ndarray | None = None
    items: Any = None  # pyarrow.Table
    item_columns: ColumnRoles = field(default_factory=ColumnRoles)
    users: Any = None  # pyarrow.Table
    user_columns: ColumnRoles = field(default_factory=ColumnRoles)
    actions: Any = None  # pyarrow.Table
    action_interactions: Any = None  # pyarrow.Table
    minimums: Minimums = field(default_factory=Minimums)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_interactions(self) -> int:
        return len(self.user)

    @cached_property
    def pair_runs(self) -> PairRuns:
        """The interactions by user then time, grouped by (user, item) pair: computed once per
        data, since the model's histories and the repeat measurement both need it (two sorts of
        every interaction)."""
        ts = self.timestamp
        if np.all(ts[1:] >= ts[:-1]):  # rows come from the store in time order: order users only
            order = stable_order(self.user)
        else:
            order = stable_order(self.user, ts)
        key = self.user[order].astype(np.int64) * max(self.n_items, 1) + self.item[order]
        by_key = stable_order(key)
        sorted_key = key[by_key]
        first = np.r_[True, sorted_key[1:] != sorted_key[:-1]] if len(key) else np.zeros(0, dtype=bool)
        return PairRuns(order, key, by_key, first)

    def weights(self) -> np.ndarray:
        """Per-interaction weights (ones when no weighting was applied)."""
        if self.weight is None:
            return np.ones(len(self.user), dtype=np.float32)
        return self.weight

    def subset(self, keep: np.ndarray) -> TrainingData:
        """The same vocabularies and tables with only the interactions where ``keep`` is true."""
        w = None if self.weight is None else self.weight[keep]
        return TrainingData(self.user_ids, self.item_ids, self.user[keep], self.item[keep],
                            self.timestamp[keep], self.event_type[keep], self.event_types,
                            self.event_value[keep], w, self.items, self.item_columns, self.users,
                            self.user_columns, self.actions, self.action_interactions, self.minimums)

    def with_items_first(self, first: np.ndarray) -> TrainingData | None:
        """The same data with the item index re-ordered so that ``first`` (a previous model's
        item ids) come first, in that order, then the other items in their current order.
        None when some of ``first`` are not items of this data any more."""
        first = np.asarray(first)
        position = index_in(self.item_ids, first, sorter_of(self.item_ids))  # of each first id here
        if len(first) and (position < 0).any():
            return None
        rest = np.ones(self.n_items, dtype=bool)
        rest[position] = False
        order = np.r_[position, np.flatnonzero(rest)].astype(np.int64)  # new index -> old index
        new_code = np.empty(self.n_items, dtype=np.int64)
        new_code[order] = np.arange(self.n_items)
        return TrainingData(self.user_ids, self.item_ids[order], self.user, new_code[self.item].astype(self.item.dtype),
                            self.timestamp, self.event_type, self.event_types, self.event_value, self.weight,
                            self.items, self.item_columns, self.users, self.user_columns, self.actions,
                            self.action_interactions, self.minimums)

    def item_table_rows(self) -> np.ndarray:
        """For each item index, its row in ``items`` (-1 when the item has no row)."""
        rows = np.full(self.n_items, -1, dtype=np.int64)
        if self.items is None:
            return rows
        ids = np.asarray(self.items.column("ITEM_ID").to_pylist(), dtype=str)
        position = index_in(self.item_ids, ids, sorter_of(self.item_ids))
        ok = position >= 0
        rows[position[ok]] = np.flatnonzero(ok)
        return rows

    @classmethod
    def from_records(cls, users: Sequence[str] | np.ndarray, items: Sequence[str] | np.ndarray,
                     timestamps: Sequence[int] | np.ndarray,
                     event_types: Sequence[str] | np.ndarray | None = None,
                     event_values: Sequence[float | None] | np.ndarray | None = None, *,
                     items_table: Any = None, item_columns: ColumnRoles | None = None,
                     users_table: Any = None, user_columns: ColumnRoles | None = None,
                     actions: Any = None, action_interactions: Any = None) -> TrainingData:
        """Code raw string ids as dense indices (sorted id order) and build the arrays.

        Item ids in ``items_table`` and user ids in ``action_interactions`` join the vocabularies
        even without item interactions, so cold items and action-only users have indices.
        """
        users = np.asarray(users, dtype=str)
        items = np.asarray(items, dtype=str)
        extra_items = (np.asarray(items_table.column("ITEM_ID").to_pylist(), dtype=str)
                       if items_table is not None else np.array([], dtype=str))
        extra_users = (np.asarray(action_interactions.column("USER_ID").to_pylist(), dtype=str)
                       if action_interactions is not None else np.array([], dtype=str))
        user_ids, user_idx = np.unique(np.concatenate([users, extra_users]), return_inverse=True)
        item_ids, item_idx = np.unique(np.concatenate([items, extra_items]), return_inverse=True)
        n = len(users)
        if event_types is None:
            event_types = np.full(n, "", dtype=object)
        vocab, codes = np.unique(np.asarray(event_types, dtype=str), return_inverse=True)
        if event_values is None:
            values = np.full(n, np.nan, dtype=np.float32)
        else:
            values = np.array([np.nan if v is None else v for v in event_values], dtype=np.float32)
        return cls(user_ids=user_ids, item_ids=item_ids, user=user_idx[:n].astype(np.int32),
                   item=item_idx[:n].astype(np.int32),
                   timestamp=np.asarray(timestamps, dtype=np.int64),
                   event_type=codes.astype(np.int16), event_types=vocab, event_value=values,
                   items=items_table, item_columns=item_columns or ColumnRoles(),
                   users=users_table, user_columns=user_columns or ColumnRoles(),
                   actions=actions, action_interactions=action_interactions)


@dataclass(frozen=True)
class PairRuns:
    """:attr:`TrainingData.pair_runs`: positions below are into ``order``."""

    order: np.ndarray  # interaction indices by user, then time (stable: input order within a time)
    key: np.ndarray  # user * n_items + item of each, in that order
    by_key: np.ndarray  # positions sorted by key, stably: within a pair, in time order
    first: np.ndarray  # over key[by_key]: True where a pair's run starts

    @property
    def last(self) -> np.ndarray:
        """Over key[by_key]: True at the latest interaction of each pair."""
        last = np.empty_like(self.first)
        last[:-1] = self.first[1:]
        last[-1:] = True
        return last


def index_in(vocabulary: np.ndarray, values: np.ndarray, sorter: np.ndarray | None = None) -> np.ndarray:
    """Index of each value in a vocabulary, -1 when absent. ``sorter`` (an argsort of the
    vocabulary) makes any order work; without it the vocabulary must be sorted."""
    if len(vocabulary) == 0:
        return np.full(len(values), -1, dtype=np.int64)
    pos = np.searchsorted(vocabulary, values, sorter=sorter)
    pos = np.clip(pos, 0, len(vocabulary) - 1)
    if sorter is not None:
        pos = sorter[pos]
    return np.where(vocabulary[pos] == values, pos, -1)


def sorter_of(vocabulary: np.ndarray) -> np.ndarray | None:
    """None for a sorted vocabulary (the common case), else its argsort."""
    v = np.asarray(vocabulary)
    if len(v) < 2 or bool(np.all(v[:-1] < v[1:])):
        return None
    return np.argsort(v, kind="stable")


# --------------------------------------------------------------------------------------------
# Hyperparameters and settings


@dataclass(frozen=True)
class HyperParameters(Mapping):
    """Typed hyperparameters of one recipe: catalogue defaults overlaid with the given strings.

    Ints become int, floats float, ``true``/``false`` become bool, other categoricals stay str.
    Feature-transformation parameters live here too (``where="feature"`` in the catalogue).
    """

    values: Mapping[str, Any]
    params: tuple[Param, ...] = ()

    @classmethod
    def parse(cls, recipe: Recipe, algorithm: Mapping[str, str] | None = None,
              feature: Mapping[str, str] | None = None) -> HyperParameters:
        given = {**(feature or {}), **(algorithm or {})}
        values: dict[str, Any] = {}
        for p in recipe.params:
            raw = given.get(p.name, p.default)
            problem = p.check(str(raw))
            if problem:
                raise ValueError(f"{p.name}={raw!r} {problem}")
            values[p.name] = convert(p, str(raw))
        return cls(values, recipe.params)

    def replace(self, **changes: Any) -> HyperParameters:
        return HyperParameters({**self.values, **changes}, self.params)

    def as_strings(self, where: str = "algorithm") -> dict[str, str]:
        """The values as the API shows them (``tunedHPOParams``)."""
        out = {}
        for p in self.params:
            if p.where == where:
                v = self.values[p.name]
                out[p.name] = ("true" if v else "false") if isinstance(v, bool) else str(v)
        return out

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def __iter__(self):
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


def convert(p: Param, raw: str) -> Any:
    if p.kind == "int":
        return int(float(raw))
    if p.kind == "float":
        return float(raw)
    if set(p.values) == {"true", "false"}:
        return raw == "true"
    return raw


@dataclass(frozen=True)
class TrainingSettings:
    """Operator settings that are not AWS hyperparameters (documented in docs/recipes.md).

    Which collaborative backend trains is chosen by estimated cost (recipes/cost.py):
    ``ease_max_items``: never dense EASE above this size. ``ease_seconds``: the time dense
    EASE's inversions may take in one training (estimated from this machine's speed).
    ``training_memory_mb``: the memory dense EASE may take. ``local_ease_seconds``: the time
    neighbourhood EASE's fits may take (estimated from the co-occurrence work, the sum of
    squared history lengths); beyond it, implicit's ALS. ``ease_tune_max_items``: up to this size EASE tries four l2 values on a
    validation split (four more inversions, when they fit ``ease_seconds`` too); above it l2 is
    the scaled mean item count.
    """

    ease_max_items: int = 20_000
    ease_seconds: float = 30.0
    training_memory_mb: int = 2048
    local_ease_seconds: float = 30.0
    local_ease_neighbours: int = 64
    ease_tune_max_items: int = 6_000  # up to here EASE's l2 is chosen on a validation split
    als_iterations: int = 15
    als_regularization: float = 10.0  # implicit does not scale it by counts; 10 won on MovieLens
    als_alpha: float = 1.0
    num_threads: int = 0  # 0 = all cores
    seed: int = 0
    neighbours: int = 200  # stored neighbours per item for related-items recipes


# --------------------------------------------------------------------------------------------
# Models


MODEL_CLASSES: dict[str, type[Model]] = {}


def model_class(cls: type[Model]) -> type[Model]:
    """Register a Model subclass so that :meth:`Model.load` can rebuild it from a manifest."""
    MODEL_CLASSES[cls.__name__] = cls
    return cls


class Model:
    """A trained model: named numpy arrays plus JSON-able ``meta``, and the queries it answers.

    Subclasses keep all state in ``self.arrays`` (numpy) and ``self.meta`` (JSON), so that
    save/load is generic. Query methods a recipe type does not support raise UnsupportedQuery.
    """

    def __init__(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]):
        self.arrays = arrays
        self.meta = meta

    # identity ------------------------------------------------------------------------------
    @property
    def recipe(self) -> str:
        return self.meta["recipe"]

    @property
    def item_ids(self) -> np.ndarray:
        return self.arrays["item_ids"]

    @property
    def user_ids(self) -> np.ndarray:
        return self.arrays["user_ids"]

    @property
    def n_items(self) -> int:
        return len(self.arrays["item_ids"])

    @property
    def n_users(self) -> int:
        return len(self.arrays["user_ids"])

    def item_index(self, ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """Indices of item ids, -1 for unknown ones."""
        return index_in(self.item_ids, np.asarray(ids, dtype=str), self._sorter("item_ids"))

    def user_index(self, ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """Indices of user ids, -1 for unknown ones."""
        return index_in(self.user_ids, np.asarray(ids, dtype=str), self._sorter("user_ids"))

    def user_position(self, user_id: str) -> int:
        """:meth:`user_index` of one id, without building arrays (one request's lookup)."""
        vocabulary, sorter = self.user_ids, self._sorter("user_ids")
        pos = int(np.searchsorted(vocabulary, user_id, sorter=sorter))
        if pos >= len(vocabulary):
            return -1
        if sorter is not None:
            pos = int(sorter[pos])
        return pos if vocabulary[pos] == user_id else -1

    def _sorter(self, name: str) -> np.ndarray | None:
        cache = self.__dict__.setdefault("_sorters", {})
        if name not in cache:
            cache[name] = sorter_of(self.arrays[name])
        return cache[name]

    # queries (overridden by the recipe types that answer them) ------------------------------
    def recommend(self, user: int | np.ndarray, n: int, exclude: np.ndarray | None = None,
                  candidates_mask: np.ndarray | None = None, **options: Any
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``n`` item indices and scores for a user index, or for a history given as an
        array of item indices (-1 = no user: the cold-start answer)."""
        raise UnsupportedQuery(f"{self.recipe} does not recommend items for users")

    def recommend_batch(self, users: np.ndarray, n: int, mask: np.ndarray | None = None,
                        exclude_seen: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Top ``n`` per user as two (len(users), n) arrays; -1 / NaN pad short rows.
        ``mask`` is one boolean row over items or one row per user."""
        rows = [self.recommend(int(u), n, candidates_mask=_row(mask, k)) for k, u in enumerate(users)]
        return _stack(rows, n)

    def rank(self, user: int | np.ndarray, item_indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The given items in order of preference, with scores (softmax over the list)."""
        raise UnsupportedQuery(f"{self.recipe} does not rank items")

    def similar_items(self, item: int, n: int, exclude: np.ndarray | None = None,
                      candidates_mask: np.ndarray | None = None, **options: Any
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Items like ``item`` (never ``item`` itself); -1 = unknown item."""
        raise UnsupportedQuery(f"{self.recipe} does not find related items")

    def users_for_items(self, item_indices: np.ndarray, n: int,
                        users_mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Users most likely to interact with any of the items, with scores."""
        raise UnsupportedQuery(f"{self.recipe} does not segment users")

    def actions_for_user(self, user: int, n: int, candidates_mask: np.ndarray | None = None,
                         now: float | None = None, taken_at: np.ndarray | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
        """Action indices and propensity scores in [0, 1] for a user (-1 = unknown user).
        ``taken_at``: per action, when the user last took it (NaN: never), for REPEAT_FREQUENCY."""
        raise UnsupportedQuery(f"{self.recipe} does not recommend actions")

    def history(self, user: int) -> np.ndarray:
        """Item indices the user interacted with in training, oldest first (empty if none)."""
        a = self.arrays
        if "hist_indptr" not in a or user < 0 or user >= self.n_users:
            return np.empty(0, dtype=np.int32)
        return np.asarray(a["hist_items"][a["hist_indptr"][user]:a["hist_indptr"][user + 1]])

    # persistence ----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the arrays and the manifest into ``path``; the folder appears whole."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
        for name, arr in self.arrays.items():
            np.save(tmp / f"{name}.npy", np.asarray(arr), allow_pickle=False)
        manifest = {"format": FORMAT_VERSION, "model_class": type(self).__name__,
                    "arrays": sorted(self.arrays), "meta": self.meta}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        if target.exists():
            old = target.with_name(target.name + ".old")
            target.rename(old)
            tmp.rename(target)
            for f in old.iterdir():
                f.unlink()
            old.rmdir()
        else:
            tmp.rename(target)

    @staticmethod
    def load(path: str | os.PathLike) -> Model:
        """Rebuild a saved model; arrays are memory-mapped read-only, not copied."""
        folder = Path(path)
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported model format {manifest.get('format')!r}")
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)
                  for name in manifest["arrays"]}
        if manifest["model_class"] not in MODEL_CLASSES:  # its recipe module was not imported
            raise ValueError(f"unknown model class {manifest['model_class']!r}; import "
                             "openpersonalize.recipes.registry first")
        cls = MODEL_CLASSES[manifest["model_class"]]
        return cls(arrays, manifest["meta"])


def _row(mask: np.ndarray | None, k: int) -> np.ndarray | None:
    if mask is None or mask.ndim == 1:
        return mask
    return mask[k]


def _stack(rows: list[tuple[np.ndarray, np.ndarray]], n: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.full((len(rows), n), -1, dtype=np.int64)
    sc = np.full((len(rows), n), np.nan, dtype=np.float32)
    for k, (i, s) in enumerate(rows):
        idx[k, :len(i)] = i
        sc[k, :len(s)] = s
    return idx, sc


# --------------------------------------------------------------------------------------------
# Algorithms


class Algorithm:
    """A recipe family's trainer.

    ``capabilities`` declares, for each catalogue recipe it trains, what that recipe's model can
    do (:class:`~openpersonalize.recipes.capabilities.Capabilities`); ``recipes`` is its keys.
    """

    capabilities: ClassVar[dict[str, Capabilities]] = {}
    recipes: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.recipes = tuple(cls.__dict__.get("capabilities", {}))

    def fit(self, data: TrainingData, params: HyperParameters, settings: TrainingSettings) -> Model:
        raise NotImplementedError

    def update(self, previous: Model, data: TrainingData, params: HyperParameters,
               settings: TrainingSettings) -> Model:
        """trainingMode UPDATE: fold new users and items into ``previous``. Default: refit."""
        return self.fit(data, params, settings)

    def describe(self, data: TrainingData, params: HyperParameters, settings: TrainingSettings) -> dict[str, str]:
        """The concrete algorithm and knobs a fit would use (reported in tunedHPOParams)."""
        return {}

    def internal_search_space(self, data: TrainingData, settings: TrainingSettings) -> dict[str, tuple[float, float]]:
        """Extra knobs (log-uniform ranges) that HPO searches besides the AWS hyperparameters."""
        return {}
