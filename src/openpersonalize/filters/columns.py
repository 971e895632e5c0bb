"""Columnar data that filters are evaluated against, indexed once per catalogue.

A :class:`Catalogue` holds the columns of one entity table (items, users or actions) with rows
aligned to the model's index of those entities. String columns are multi-valued (a categorical
field's ``|``-separated categories, or a single value) and indexed both ways: value -> rows (to
answer ``IN`` with a few slice assignments) and row -> values (to look up CurrentItem/CurrentUser
attributes). Numeric columns are float64 with NaN for null. :class:`Histories` holds recent
interactions of a batch of users in CSR form.

Everything here is built with numpy/pyarrow vector operations; Python loops run over distinct
values (a vocabulary), never over rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..data.schemas import Schema

HISTORY_WINDOW = 100          # most recent interactions per user per event type (item filters)
ACTION_HISTORY_WINDOW = 300   # the same for action interactions
HISTORY_MAX_AGE = 90 * 86400  # users with no interaction this recent have their history ignored


def normalise_event_type(value: str) -> str:
    """Event types compare case-insensitively, and 'Not taken' equals 'NOT_TAKEN'."""
    return value.strip().upper().replace(" ", "_")


def _as_string_array(values) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        return values if values.type == pa.string() else values.cast(pa.string())
    return pa.array(list(values) if not isinstance(values, np.ndarray) else values.tolist(), type=pa.string())


def _normalise_events(arr: pa.Array) -> pa.Array:
    arr = pc.utf8_trim_whitespace(arr)
    return pc.replace_substring(pc.utf8_upper(arr), " ", "_")


def expand_csr(offsets: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For CSR ``offsets`` and an array of ``keys``: (index into keys, position in the data) of
    every stored element of every key, without a Python loop."""
    keys = np.asarray(keys, dtype=np.int64)
    starts = offsets[keys]
    lengths = offsets[keys + 1] - starts
    owner = np.repeat(np.arange(len(keys)), lengths)
    first = np.cumsum(lengths) - lengths
    positions = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(first - starts, lengths)
    return owner, positions


def _narrow(codes: np.ndarray, n_codes: int) -> np.ndarray:
    """Small codes as uint16, which numpy's stable sort handles with a linear radix sort."""
    return codes.astype(np.uint16) if n_codes <= 65536 else codes


def _csr(keys: np.ndarray, values: np.ndarray, n_keys: int) -> tuple[np.ndarray, np.ndarray]:
    """Group ``values`` by ``keys`` (0..n_keys-1): (offsets, values sorted by key, stable)."""
    if len(keys) and np.all(keys[1:] >= keys[:-1]):
        order = slice(None)  # already grouped (rows of a table come in order)
    else:
        order = np.argsort(keys, kind="stable")
    offsets = np.zeros(n_keys + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys, minlength=n_keys), out=offsets[1:])
    return offsets, values[order]


@dataclass
class StringColumn:
    """A multi-valued string column over ``size`` rows, indexed value -> rows and row -> values."""

    size: int
    vocabulary: list[str]
    index: dict[str, int]
    row_offsets: np.ndarray   # row r's value codes: row_codes[row_offsets[r]:row_offsets[r+1]]
    row_codes: np.ndarray
    code_offsets: np.ndarray  # value code c's rows: code_rows[code_offsets[c]:code_offsets[c+1]]
    code_rows: np.ndarray

    @classmethod
    def from_values(cls, values, *, categorical: bool = False, event_types: bool = False) -> "StringColumn":
        """One string (or null) per row; categorical values split on ``|``. Empty strings, and
        empty categories such as the middle of ``a||b``, are no value."""
        arr = _as_string_array(values)
        if categorical:
            lists = pc.split_pattern(arr, "|")
            rows = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
            flat = pc.list_flatten(lists)
        else:
            valid = arr.is_valid().to_numpy(zero_copy_only=False)
            rows = np.flatnonzero(valid)
            flat = arr.filter(pa.array(valid))
        return cls.from_pairs(rows, flat, len(arr), event_types=event_types)

    @classmethod
    def from_pairs(cls, rows, values, size: int, *, event_types: bool = False) -> "StringColumn":
        """Rows holding values: ``values[k]`` is one of the values of row ``rows[k]``."""
        arr = _as_string_array(values)
        if event_types:
            arr = _normalise_events(arr)
        rows = np.asarray(rows, dtype=np.int64)
        keep = pc.fill_null(pc.not_equal(arr, ""), False).to_numpy(zero_copy_only=False)
        rows, arr = rows[keep], arr.filter(pa.array(keep))
        encoded = pc.dictionary_encode(arr).combine_chunks() if isinstance(arr, pa.ChunkedArray) \
            else pc.dictionary_encode(arr)
        vocabulary = encoded.dictionary.to_pylist()
        codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        n_codes = len(vocabulary)
        # Repeated (row, value) pairs ("a|a") are harmless to every query, so they are kept rather
        # than paying for a deduplication pass over all pairs.
        row_offsets, row_codes = _csr(rows, codes, size)
        code_offsets, code_rows = _csr(_narrow(codes, n_codes), rows, n_codes)
        return cls(size=size, vocabulary=vocabulary, index={v: i for i, v in enumerate(vocabulary)},
                   row_offsets=row_offsets, row_codes=row_codes, code_offsets=code_offsets, code_rows=code_rows)

    def codes(self, values: Iterable[str]) -> np.ndarray:
        """Codes of the given values that occur in the column (unknown values are dropped)."""
        return np.array(sorted({self.index[v] for v in values if v in self.index}), dtype=np.int64)

    def rows_with_any(self, codes: np.ndarray) -> np.ndarray:
        """Boolean mask of the rows holding at least one of ``codes``."""
        mask = np.zeros(self.size, dtype=bool)
        if len(codes):
            _, positions = expand_csr(self.code_offsets, codes)
            mask[self.code_rows[positions]] = True
        return mask

    def codes_of_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(index into ``rows``, value code) for every value of every row; rows < 0 have none."""
        rows = np.asarray(rows, dtype=np.int64)
        known = np.flatnonzero((rows >= 0) & (rows < self.size))
        owner, positions = expand_csr(self.row_offsets, rows[known])
        return known[owner], self.row_codes[positions]

    def translate(self, other: "StringColumn") -> np.ndarray:
        """An array mapping ``other``'s codes to this column's codes (-1: value absent here)."""
        return np.array([self.index.get(v, -1) for v in other.vocabulary], dtype=np.int64)


@dataclass
class NumericColumn:
    """A numeric column: float64, NaN for null."""

    values: np.ndarray

    @property
    def size(self) -> int:
        return len(self.values)

    @classmethod
    def from_values(cls, values) -> "NumericColumn":
        if isinstance(values, (pa.Array, pa.ChunkedArray)):
            arr = pc.cast(values, pa.float64())
            return cls(np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64))
        return cls(np.array([np.nan if v is None else v for v in values], dtype=np.float64)
                   if not isinstance(values, np.ndarray) else values.astype(np.float64))


Column = StringColumn | NumericColumn


@dataclass
class Catalogue:
    """The filterable columns of one entity table, rows aligned with the model's index.

    ``columns`` are keyed by upper-case field name. A catalogue without columns (a dataset that
    does not exist yet) still has a ``size``: every condition on it matches nothing.
    """

    size: int
    columns: dict[str, Column] = field(default_factory=dict)

    def column(self, name: str) -> Column | None:
        return self.columns.get(name.upper())

    @classmethod
    def from_table(cls, table, schema: Schema | None = None, *, categorical: Iterable[str] = (),
                   size: int | None = None) -> "Catalogue":
        """Index a pyarrow Table or a mapping of column name -> array-like (one row per entity).

        Column kinds come from ``schema`` when given (numeric fields, categorical string fields;
        textual and boolean fields are skipped), else from the arrow types, with ``categorical``
        naming the string columns that hold ``|``-separated categories.
        """
        if isinstance(table, pa.Table):
            items = {name: table.column(name) for name in table.column_names}
        else:
            items = dict(table)
        categorical = {c.upper() for c in categorical}
        columns: dict[str, Column] = {}
        n = size
        for name, values in items.items():
            arr = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(
                values.tolist() if isinstance(values, np.ndarray) else list(values))
            n = len(arr) if n is None else n
            if len(arr) != n:
                raise ValueError(f"column {name} has {len(arr)} rows, expected {n}")
            f = schema.field(name) if schema is not None else None
            if f is not None:
                if f.textual or f.type == "boolean":
                    continue
                numeric, is_categorical = f.numeric, f.categorical
            else:
                t = arr.type
                if pa.types.is_boolean(t):
                    continue
                numeric = pa.types.is_integer(t) or pa.types.is_floating(t)
                is_categorical = name.upper() in categorical
                if not numeric and not (pa.types.is_string(t) or pa.types.is_large_string(t)
                                        or pa.types.is_null(t)):
                    continue
            columns[name.upper()] = NumericColumn.from_values(arr) if numeric else \
                StringColumn.from_values(arr, categorical=is_categorical)
        return cls(size=n or 0, columns=columns)


@dataclass
class Histories:
    """Recent interactions of a batch of users (rows 0..n_users-1), in CSR form.

    User ``b`` interacted with ``entities[offsets[b]:offsets[b+1]]`` (item or action indices)
    with event types ``events[...]`` (codes into ``event_types``, normalised upper-case).
    """

    offsets: np.ndarray
    entities: np.ndarray
    events: np.ndarray
    event_types: list[str]
    index: dict[str, int]

    @property
    def n_users(self) -> int:
        return len(self.offsets) - 1

    @classmethod
    def empty(cls, n_users: int = 1) -> "Histories":
        return cls(np.zeros(n_users + 1, dtype=np.int64), np.zeros(0, dtype=np.int64),
                   np.zeros(0, dtype=np.int64), [], {})

    @classmethod
    def from_pairs(cls, users, entities, event_types, n_users: int, *, timestamps=None,
                   window: int | None = HISTORY_WINDOW, now: float | None = None,
                   max_age: float | None = HISTORY_MAX_AGE) -> "Histories":
        """Build from parallel arrays (user row, entity index, event type[, timestamp]).

        With ``timestamps``: only the ``window`` most recent interactions per user and event
        type are kept, and with ``now`` a user whose latest interaction is older than ``max_age``
        seconds has no history (both rules of the spec). Entities < 0 (unknown to the model) are
        dropped.
        """
        users = np.asarray(users, dtype=np.int64)
        entities = np.asarray(entities, dtype=np.int64)
        column = StringColumn.from_pairs(np.arange(len(users)), event_types, len(users), event_types=True)
        # Events that were empty strings have no code; give them none and drop them.
        codes = np.full(len(users), -1, dtype=np.int64)
        codes[column.code_rows] = np.repeat(np.arange(len(column.vocabulary)), np.diff(column.code_offsets))
        keep = (entities >= 0) & (codes >= 0) & (users >= 0) & (users < n_users)
        if timestamps is not None:
            ts = np.asarray(timestamps, dtype=np.float64)
            if now is not None and max_age is not None and len(users):
                latest = np.full(n_users, -np.inf)
                np.maximum.at(latest, users[keep], ts[keep])
                keep &= latest[np.clip(users, 0, n_users - 1)] >= now - max_age
            if window is not None:
                idx = np.flatnonzero(keep)
                order = idx[np.lexsort((-ts[idx], codes[idx], users[idx]))]
                group = users[order] * (len(column.vocabulary) + 1) + codes[order]
                starts = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
                rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
                keep = np.zeros(len(users), dtype=bool)
                keep[order[rank < window]] = True
        users, entities, codes = users[keep], entities[keep], codes[keep]
        offsets, order = _csr(users, np.arange(len(users)), n_users)
        return cls(offsets, entities[order], codes[order], column.vocabulary, column.index)

    @classmethod
    def single(cls, entities, event_types, **kwargs) -> "Histories":
        """The history of one user (a runtime request)."""
        entities = np.asarray(entities, dtype=np.int64)
        return cls.from_pairs(np.zeros(len(entities), dtype=np.int64), entities, event_types, 1, **kwargs)

    def take(self, rows) -> "Histories":
        """The histories of the given user rows, in that order (rows < 0: empty history)."""
        rows = np.asarray(rows, dtype=np.int64)
        valid = np.flatnonzero(rows >= 0)
        owner, positions = expand_csr(self.offsets, rows[valid])
        lengths = np.zeros(len(rows), dtype=np.int64)
        lengths[valid] = np.diff(self.offsets)[rows[valid]]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return Histories(offsets, self.entities[positions], self.events[positions], self.event_types, self.index)

    def pairs(self, event_types: Iterable[str] | None) -> tuple[np.ndarray, np.ndarray]:
        """(user row, entity) of every interaction whose type is one of ``event_types``
        (normalised already; None: any type)."""
        users = np.repeat(np.arange(self.n_users), np.diff(self.offsets))
        if event_types is None:
            return users, self.entities
        wanted = np.array([self.index[e] for e in event_types if e in self.index], dtype=np.int64)
        hit = np.isin(self.events, wanted)
        return users[hit], self.entities[hit]


@dataclass
class FilterData:
    """What filters of one dataset group are evaluated against.

    ``items`` / ``actions`` / ``users``: catalogues aligned with the model's candidate index (the
    users catalogue is also where ``IF CurrentUser`` looks up the requesting user).
    ``user_event_types``: for ``UserID`` filters, the event types each user has interacted with
    (a multi-valued column over the users catalogue's rows, normalised).
    """

    items: Catalogue | None = None
    users: Catalogue | None = None
    actions: Catalogue | None = None
    user_event_types: StringColumn | None = None

    @staticmethod
    def event_types_per_user(users, event_types, n_users: int) -> StringColumn:
        """Build ``user_event_types`` from parallel arrays (user row, event type)."""
        return StringColumn.from_pairs(users, event_types, n_users, event_types=True)


__all__ = ["Catalogue", "StringColumn", "NumericColumn", "Histories", "FilterData", "normalise_event_type",
           "expand_csr", "HISTORY_WINDOW", "ACTION_HISTORY_WINDOW", "HISTORY_MAX_AGE", "Mapping"]
