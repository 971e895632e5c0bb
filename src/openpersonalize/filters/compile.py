"""Compile a filter into masks over candidates (filters spec §4).

``compile_filter(text, schemas)`` parses and validates once. ``CompiledFilter.bind(data, values)``
resolves placeholder values and evaluates every part of the filter that depends only on the
catalogue and those values into boolean masks; bound filters are cached per distinct value set.
``BoundFilter.masks(...)`` then adds the request-dependent parts (the users' recent interactions,
``IF CurrentUser`` gates, ``CurrentItem`` comparisons) for a batch of requests at once, as
``(batch, n_candidates)`` broadcasting array operations.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..data.schemas import Schema
from ..errors import InvalidInputException
from ..recipes.scoring import Candidates
from .columns import Catalogue, FilterData, Histories, NumericColumn, StringColumn, expand_csr, normalise_event_type
from .grammar import And, Condition, FieldRef, Filter, Literal, Node, Number, Placeholder, Star, parse_filter
from .validate import INTERACTION_DATASETS, FilterInfo, validate_filter
from .values import number_value, parse_filter_values

CACHE_BYTES = 256 * 1024 * 1024  # bound filters kept per compiled filter, by mask size

_ENTITY_DATASET = {"ItemID": "ITEMS", "ActionID": "ACTIONS", "UserID": "USERS"}


# -- resolved conditions ------------------------------------------------------------------


@dataclass(frozen=True)
class _Cond:
    """A condition with its placeholder values substituted.

    ``source``: "entity" (a column of the candidates' catalogue), "history" (the requesting
    users' interactions), "user_events" (UserID filters: event types each user has) or
    "current_user" (IF clause). ``strings`` is None for ``*`` (any event type).
    """

    source: str
    field: str
    op: str
    strings: tuple[str, ...] | None = None
    number: float | None = None
    current_item: str | None = None


@dataclass(frozen=True)
class _Tree:
    op: str  # "AND" | "OR"
    parts: tuple


def _compare(left: np.ndarray, op: str, right) -> np.ndarray:
    """Numeric comparison where a NaN (null) on either side is false, also for !=."""
    with np.errstate(invalid="ignore"):
        if op == "=":
            return left == right
        if op == "!=":
            return (left != right) & ~np.isnan(left) & ~np.isnan(right)
        if op == "<":
            return left < right
        if op == "<=":
            return left <= right
        if op == ">":
            return left > right
        return left >= right


@dataclass
class _Plan:
    action: str
    text: str
    where: object
    gate: tuple[_Cond, ...]
    dynamic: bool
    static: np.ndarray | None = None   # (n,) when not dynamic
    history_in: tuple[str, ...] | None | bool = False  # fast path: WHERE is one history IN


@dataclass
class _Ctx:
    batch: int
    users: np.ndarray | None
    histories: Histories | None
    current_items: np.ndarray | None


class BoundFilter:
    """A filter with its placeholder values: evaluates to masks for batches of requests."""

    def __init__(self, compiled: "CompiledFilter", data: FilterData, values: dict[str, list[str]]):
        self.compiled = compiled
        self.data = data
        self.values = values
        self.catalogue = compiled.candidates(data)
        self.size = self.catalogue.size
        self.plans = [p for p in (self._plan(e) for e in compiled.parsed.expressions) if p is not None]
        self._precompute()

    # -- binding ------------------------------------------------------------------------

    def _plan(self, e) -> _Plan | None:
        names = {p.name for c in e.all_conditions() for p in c.placeholders}
        missing = sorted(n for n in names if not self.values.get(n))
        if missing:
            if e.action == "EXCLUDE":
                return None  # the spec: an EXCLUDE expression without its values is skipped
            raise InvalidInputException(
                f"Invalid filterValues: no value for ${missing[0]}, which the INCLUDE expression "
                f"'{e.text}' uses; an INCLUDE expression needs a value for each of its placeholders.")
        where = self._resolve_node(e.where, e.target)
        gate = tuple(self._resolve(c, e.target, "current_user") for c in e.if_conditions)
        conds = _leaves(where)
        dynamic = any(c.source == "history" or c.current_item for c in conds)
        history_in: tuple[str, ...] | None | bool = False
        if isinstance(where, _Cond) and where.source == "history" and where.op == "IN":
            history_in = where.strings
        return _Plan(e.action, e.text, where, gate, dynamic, history_in=history_in)

    def _resolve_node(self, node: Node, target: str):
        if isinstance(node, Condition):
            if node.field.dataset in INTERACTION_DATASETS:
                source = "user_events" if target == "UserID" else "history"
            else:
                source = "entity"
            return self._resolve(node, target, source)
        parts = tuple(self._resolve_node(p, target) for p in node.parts)
        return _Tree("AND" if isinstance(node, And) else "OR", parts)

    def _resolve(self, c: Condition, target: str, source: str) -> _Cond:
        events = c.field.dataset in INTERACTION_DATASETS
        if c.op in ("IN", "NOT IN"):
            if len(c.values) == 1 and isinstance(c.values[0], FieldRef):
                return _Cond(source, c.field.key, c.op, current_item=c.values[0].key)
            strings: list[str] = []
            for v in c.values:
                if isinstance(v, Star):
                    return _Cond(source, c.field.key, c.op, strings=None)
                strings.extend([v.value] if isinstance(v, Literal) else self.values[v.name])
            if events:
                strings = [normalise_event_type(s) for s in strings]
            return _Cond(source, c.field.key, c.op, strings=tuple(dict.fromkeys(strings)))
        rhs = c.values[0]
        if isinstance(rhs, FieldRef):
            return _Cond(source, c.field.key, c.op, current_item=rhs.key)
        if isinstance(rhs, Number):
            return _Cond(source, c.field.key, c.op, number=rhs.value)
        assert isinstance(rhs, Placeholder)
        where = f"{c.field} {c.op} ${rhs.name}"
        return _Cond(source, c.field.key, c.op, number=number_value(rhs.name, self.values[rhs.name], where))

    def _precompute(self) -> None:
        """Evaluate what does not depend on the request, once per value set."""
        ctx = _Ctx(1, None, None, None)
        for p in self.plans:
            if not p.dynamic:
                p.static = self._eval(p.where, ctx)[0]
                p.static.flags.writeable = False
        ungated = [p for p in self.plans if not p.gate and not p.dynamic]
        inc = [p.static for p in ungated if p.action == "INCLUDE"]
        exc = [p.static for p in ungated if p.action == "EXCLUDE"]
        self._static_include = np.logical_or.reduce(inc) if inc else None
        self._static_exclude = np.logical_or.reduce(exc) if exc else None
        self._rest = [p for p in self.plans if p.gate or p.dynamic]
        self._sparse_only = all(p.action == "EXCLUDE" and not p.gate and p.history_in is not False
                                for p in self._rest)
        self._always_include = bool(inc) or any(p.action == "INCLUDE" and not p.gate for p in self._rest)
        self._has_include = any(p.action == "INCLUDE" for p in self.plans)
        base = self._static_include if self._static_include is not None else np.ones(self.size, dtype=bool)
        if self._static_exclude is not None:
            base = base & ~self._static_exclude
        base.flags.writeable = False
        self._base = base  # the whole answer when nothing else applies

    @property
    def nbytes(self) -> int:  # the masks, and the candidates' index arrays at their largest
        return self.size * (1 + len(self.plans) + 8)

    @property
    def compact(self) -> bool:
        """True when every request's mask is ``candidates`` minus the pairs of
        ``history_exclusions`` (no per-request dense mask needed): the filter is static, or
        static plus ungated ``EXCLUDE ... WHERE Interactions...IN`` parts."""
        return (not self._rest or self._sparse_only) and not self.compiled.info.uses_current_item

    @cached_property
    def uses_history(self) -> bool:
        return any(c.source == "history" for p in self.plans for c in _leaves(p.where))

    @cached_property
    def candidates(self) -> Candidates:
        """The static mask, with its allowed and hidden indices (computed once per value set)."""
        return Candidates(self._base)

    def history_exclusions(self, histories: Histories) -> tuple[np.ndarray, np.ndarray]:
        """For a ``compact`` filter: the (request, candidate) pairs that the requesters' own
        interactions exclude. ``histories`` has one entry per request."""
        ctx = _Ctx(histories.n_users, None, histories, None)
        pairs = [self._history_pairs(p.history_in, ctx) for p in self._rest]
        if not pairs:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate([r for r, _ in pairs]), np.concatenate([c for _, c in pairs])

    @property
    def static_mask(self) -> np.ndarray:
        """The request-independent part: candidates that pass the filter's static expressions
        (read-only). Equal to ``mask()`` when the filter has no request-dependent part."""
        return self._base

    # -- evaluation ---------------------------------------------------------------------

    def mask(self, *, user: int | None = None, history: Histories | None = None,
             current_item: int | None = None) -> np.ndarray:
        """The candidates one request may return: a boolean array of length ``size``.

        ``user``: the requesting user's row in ``data.users`` (None or -1: unknown/anonymous).
        ``history``: that user's recent interactions (``Histories.single``), None for none.
        ``current_item``: the row in ``data.items`` of a related-items request's ``itemId``.
        The result may be read-only; copy it before writing.
        """
        if not self._rest and not (self.compiled.info.uses_current_item and current_item is None):
            return self._base
        return self.masks(users=None if user is None else np.array([user]), histories=history,
                          current_items=None if current_item is None else np.array([current_item]))[0]

    def masks(self, *, users: np.ndarray | None = None, histories: Histories | None = None,
              current_items: np.ndarray | None = None, batch: int | None = None) -> np.ndarray:
        """Masks for a batch of requests: a ``(batch, size)`` boolean array (may be a read-only
        broadcast view). ``users``/``current_items``: ``(batch,)`` rows (-1: unknown);
        ``histories``: one per request, in the same order (``Histories.take``)."""
        sizes = {len(a) for a in (users, current_items) if a is not None}
        if histories is not None:
            sizes.add(histories.n_users)
        if batch is not None:
            sizes.add(batch)
        if len(sizes) > 1:
            raise ValueError(f"batch sizes disagree: {sorted(sizes)}")
        n_batch = sizes.pop() if sizes else 1
        if self.compiled.info.uses_current_item and current_items is None:
            raise InvalidInputException(
                f"Invalid filterArn: the filter '{self.compiled.parsed.source}' compares with CurrentItem, "
                "which only a related-items request with an itemId has.")
        if not self._rest:
            return np.broadcast_to(self._base, (n_batch, self.size))
        if self._sparse_only:
            # The common shape (static parts, minus what each user interacted with): one copy of
            # the static mask per request, then a scatter of the users' history.
            result = np.empty((n_batch, self.size), dtype=bool)
            result[:] = self._base
            for p in self._rest:
                rows, cols = self._history_pairs(p.history_in, _Ctx(n_batch, None, histories, None))
                result[rows, cols] = False
            return result
        ctx = _Ctx(n_batch, None if users is None else np.asarray(users, dtype=np.int64), histories,
                   None if current_items is None else np.asarray(current_items, dtype=np.int64))
        includes = [self._static_include[None, :]] if self._static_include is not None else []
        excludes = [self._static_exclude[None, :]] if self._static_exclude is not None else []
        pairs: list[tuple[np.ndarray, np.ndarray]] = []
        active = np.full(n_batch, self._always_include)
        for p in self._rest:
            gate = self._gate(p.gate, ctx) if p.gate else None
            if p.action == "EXCLUDE" and gate is None and p.history_in is not False:
                pairs.append(self._history_pairs(p.history_in, ctx))  # sparse: no dense matrix
                continue
            part = p.static[None, :] if p.static is not None else self._eval(p.where, ctx)
            if gate is not None:
                part = part & gate[:, None]
            if p.action == "INCLUDE":
                includes.append(part)
                active |= True if gate is None else gate
            else:
                excludes.append(part)
        if self._has_include:
            result = _any(includes, n_batch, self.size) | ~active[:, None]
        else:
            result = np.ones((1, self.size), dtype=bool)
        if excludes:
            result = result & ~_any(excludes, n_batch, self.size)
        if pairs:
            result = np.array(np.broadcast_to(result, (n_batch, self.size)))
            for rows, cols in pairs:
                result[rows, cols] = False
        return np.broadcast_to(result, (n_batch, self.size))

    def _history_pairs(self, strings, ctx: _Ctx) -> tuple[np.ndarray, np.ndarray]:
        if ctx.histories is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        rows, cols = ctx.histories.pairs(strings)
        ok = (cols >= 0) & (cols < self.size)
        return rows[ok], cols[ok]

    def _eval(self, node, ctx: _Ctx) -> np.ndarray:
        """A node's matches: shape (1, size) when request-independent, else (batch, size)."""
        if isinstance(node, _Tree):
            parts = [self._eval(p, ctx) for p in node.parts]
            combine = np.logical_and if node.op == "AND" else np.logical_or
            out = parts[0]
            for part in parts[1:]:
                out = combine(out, part)
            return out
        c: _Cond = node
        if c.source == "history":
            rows, cols = self._history_pairs(c.strings, ctx)
            hit = np.zeros((ctx.batch, self.size), dtype=bool)
            hit[rows, cols] = True
            return ~hit if c.op == "NOT IN" else hit
        if c.source == "user_events":
            column = self.data.user_event_types
            if column is None:
                return np.zeros((1, self.size), dtype=bool)
            hit = np.diff(column.row_offsets) > 0 if c.strings is None else \
                column.rows_with_any(column.codes(c.strings))
            return (~hit if c.op == "NOT IN" else hit)[None, :]
        column = self.catalogue.column(c.field)
        if c.op in ("IN", "NOT IN"):
            if not isinstance(column, StringColumn):
                return np.zeros((1, self.size), dtype=bool)  # no such data yet: no match
            if c.current_item is not None:
                hit = self._in_current_item(column, c.current_item, ctx)
            else:
                hit = column.rows_with_any(column.codes(c.strings))[None, :]
            return ~hit if c.op == "NOT IN" else hit
        if not isinstance(column, NumericColumn):
            return np.zeros((1, self.size), dtype=bool)
        if c.current_item is not None:
            right = _numbers_at(self.data.items.column(c.current_item) if self.data.items else None,
                                ctx.current_items)[:, None]
        else:
            right = c.number
        return _compare(column.values[None, :], c.op, right)

    def _in_current_item(self, column: StringColumn, field: str, ctx: _Ctx) -> np.ndarray:
        hit = np.zeros((ctx.batch, self.size), dtype=bool)
        source = self.data.items.column(field) if self.data.items else None
        if not isinstance(source, StringColumn) or ctx.current_items is None:
            return hit
        owner, codes = source.codes_of_rows(ctx.current_items)
        codes = column.translate(source)[codes] if source is not column else codes
        owner, codes = owner[codes >= 0], codes[codes >= 0]
        which, positions = expand_csr(column.code_offsets, codes)
        hit[owner[which], column.code_rows[positions]] = True
        return hit

    def _gate(self, conds: tuple[_Cond, ...], ctx: _Ctx) -> np.ndarray:
        """IF CurrentUser ...: one boolean per request; an unknown user or attribute is false."""
        users = self.data.users
        if ctx.users is None or users is None:
            return np.zeros(ctx.batch, dtype=bool)
        out = np.ones(ctx.batch, dtype=bool)
        for c in conds:
            column = users.column(c.field)
            if isinstance(column, NumericColumn) and c.op not in ("IN", "NOT IN"):
                out &= _compare(_numbers_at(column, ctx.users), c.op, c.number)
            elif isinstance(column, StringColumn) and c.op in ("IN", "NOT IN"):
                owner, codes = column.codes_of_rows(ctx.users)
                known = np.bincount(owner, minlength=ctx.batch) > 0
                wanted = column.codes(c.strings)
                found = np.bincount(owner[np.isin(codes, wanted)], minlength=ctx.batch) > 0
                out &= found if c.op == "IN" else known & ~found
            else:
                out[:] = False
        return out


def _numbers_at(column, rows: np.ndarray | None) -> np.ndarray:
    """A numeric column's values at ``rows`` (NaN for rows < 0 or a missing column)."""
    if rows is None:
        return np.full(1, np.nan)
    if not isinstance(column, NumericColumn):
        return np.full(len(rows), np.nan)
    ok = (rows >= 0) & (rows < column.size)
    out = np.full(len(rows), np.nan)
    out[ok] = column.values[rows[ok]]
    return out


def _any(parts: list[np.ndarray], n_batch: int, size: int) -> np.ndarray:
    if not parts:
        return np.zeros((1, size), dtype=bool)
    out = parts[0]
    for p in parts[1:]:
        out = out | p
    return out


def _leaves(node) -> list[_Cond]:
    if isinstance(node, _Cond):
        return [node]
    return [leaf for p in node.parts for leaf in _leaves(p)]


class CompiledFilter:
    """A parsed and validated filter, ready to bind to data and placeholder values."""

    def __init__(self, parsed: Filter, info: FilterInfo, *, cache_bytes: int = CACHE_BYTES):
        self.parsed = parsed
        self.info = info
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict = OrderedDict()
        self._cache_data: FilterData | None = None
        self._lock = threading.Lock()

    @property
    def target(self) -> str:
        """ItemID, ActionID or UserID: what the masks are over."""
        return self.info.target

    @property
    def placeholders(self) -> frozenset[str]:
        return self.info.placeholders

    def candidates(self, data: FilterData) -> Catalogue:
        dataset = _ENTITY_DATASET[self.target]
        catalogue = {"ITEMS": data.items, "ACTIONS": data.actions, "USERS": data.users}[dataset]
        if catalogue is None:
            raise ValueError(f"a {self.target} filter needs FilterData.{dataset.lower()}; pass "
                             "Catalogue(size=n) when that dataset does not exist yet")
        return catalogue

    def bind(self, data: FilterData, values: Mapping[str, str | Sequence[str]] | None = None) -> BoundFilter:
        """The filter with these placeholder values, cached per distinct value set.

        ``values`` maps names (without $) to lists of strings (``parse_filter_values``) or to raw
        request strings, which are parsed here. Values for names the filter does not use are
        ignored. Raises InvalidInputException for a malformed value or a missing INCLUDE value.
        """
        raw = dict(values or {})
        if any(isinstance(v, str) for v in raw.values()):
            raw = {**raw, **parse_filter_values({k: v for k, v in raw.items() if isinstance(v, str)})}
        used = {k: list(v) for k, v in raw.items() if k in self.placeholders}
        key = tuple(sorted((k, tuple(v)) for k, v in used.items()))
        with self._lock:
            if self._cache_data is not data:
                self._cache.clear()
                self._cache_data = data
            bound = self._cache.get(key)
            if bound is not None:
                self._cache.move_to_end(key)
                return bound
        bound = BoundFilter(self, data, used)
        with self._lock:
            if self._cache_data is data:
                self._cache[key] = bound
                total = sum(b.nbytes for b in self._cache.values())
                while total > self.cache_bytes and len(self._cache) > 1:
                    _, old = self._cache.popitem(last=False)
                    total -= old.nbytes
        return bound

    def masks(self, data: FilterData, values=None, **request) -> np.ndarray:
        """Shortcut: ``bind(data, values).masks(**request)``."""
        return self.bind(data, values).masks(**request)


def compile_filter(expression: str | Filter, schemas: Mapping[str, Schema] | None = None) -> CompiledFilter:
    """Parse (if needed) and validate a filter expression against the group's schemas."""
    parsed = parse_filter(expression) if isinstance(expression, str) else expression
    return CompiledFilter(parsed, validate_filter(parsed, schemas))


__all__ = ["compile_filter", "CompiledFilter", "BoundFilter", "CACHE_BYTES"]
