"""Filters: the expression language, its static rules, and its evaluation to masks.

Modules::

    grammar.py    parse_filter(text) -> Filter (lark LALR grammar, typed syntax tree)
    validate.py   validate_filter / check_filter: the static rules, against the group's schemas
    values.py     parse_filter_values(filterValues) -> {name: [values]}
    columns.py    Catalogue, StringColumn, NumericColumn, Histories, FilterData: indexed data
    compile.py    compile_filter -> CompiledFilter -> .bind(data, values) -> BoundFilter -> masks
    lifecycle.py  what CreateFilter checks, and the job that makes a filter ACTIVE

How callers use it
------------------

Build the data once per catalogue (rows aligned with the model's index of items, users and
actions; string columns are indexed value -> rows once, here)::

    data = FilterData(
        items=Catalogue.from_table(items_table, items_schema),      # pyarrow Table or dict of arrays
        users=Catalogue.from_table(users_table, users_schema),      # CurrentUser, UserID filters
        user_event_types=FilterData.event_types_per_user(u_rows, event_types, n_users),  # UserID only
    )

Compile each filter once (``compile_filter(row.doc["filterExpression"], schemas)``) and keep the
``CompiledFilter``: it caches one ``BoundFilter`` per distinct placeholder-value set (LRU, bounded
by mask bytes), so the request-independent part of the filter is evaluated once per value set.

Runtime, one request (``mask`` is a boolean array over the candidates; True = may be returned)::

    bound = compiled.bind(data, request.get("filterValues"))   # raw strings are parsed here
    history = Histories.single(item_rows, event_types, timestamps=ts, now=time.time())
    allowed = bound.mask(user=user_row, history=history, current_item=item_row)

Batch inference, a block of B users scored against all items at once (group input lines by their
``filterValues`` first; each group binds once)::

    histories = all_histories.take(user_rows)      # Histories.from_pairs(...) built once per job
    allowed = bound.masks(users=user_rows, histories=histories)   # (B, n_items), vectorised
    scores[~allowed] = -inf

``bound.static_mask`` is the request-independent part alone (catalogue and placeholder values);
the history part is applied as sparse (user, item) pairs where the expression allows it, so
``mask = static_mask & ~history_part(user)`` costs one copy plus a scatter per request.

Errors: a bad expression, value or missing INCLUDE value raises ``InvalidInputException`` (for a
batch job: that line's error). Data that does not exist (a dataset, a field, an unknown user or
item) never raises: conditions on it match nothing, as the spec proposes.
"""

from .columns import (
    ACTION_HISTORY_WINDOW,
    HISTORY_MAX_AGE,
    HISTORY_WINDOW,
    Catalogue,
    FilterData,
    Histories,
    NumericColumn,
    StringColumn,
    normalise_event_type,
)
from .compile import BoundFilter, CompiledFilter, compile_filter
from .grammar import Filter, parse_filter
from .validate import FilterInfo, check_filter, filter_fields, validate_filter
from .values import parse_filter_values

__all__ = [
    "parse_filter", "Filter", "validate_filter", "check_filter", "filter_fields", "FilterInfo",
    "parse_filter_values", "compile_filter", "CompiledFilter", "BoundFilter", "Catalogue", "StringColumn",
    "NumericColumn", "Histories", "FilterData", "normalise_event_type", "HISTORY_WINDOW",
    "ACTION_HISTORY_WINDOW", "HISTORY_MAX_AGE",
]
