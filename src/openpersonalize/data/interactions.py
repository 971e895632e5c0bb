"""The read view of a dataset group for training and batch jobs: integer-coded users and items.

    from openpersonalize.data.interactions import load_group

    data = load_group(store, settings, dataset_group_arn)
    ix = data.interactions            # Interactions or None
    ix.user, ix.item                  # int32 codes per interaction (numpy)
    ix.timestamp                      # int64 epoch seconds
    ix.event_type                     # int16 code into ix.event_types (-1: no EVENT_TYPE)
    ix.event_value                    # float32, NaN where absent
    ix.columns["DEVICE"]              # other columns of the Interactions schema (pyarrow arrays)
    data.users.ids / data.items.ids   # pyarrow string arrays: code -> ID
    data.users.code("u1")             # ID -> code (or -1)
    data.items.columns["GENRES"]      # Items metadata aligned with item codes (null where absent)
    data.users.columns["TIER"]        # Users metadata aligned with user codes
    ix.csr(weights=None)              # scipy.sparse CSR users x items (counts, or summed weights)

What it contains: bulk rows plus real-time records, as of the call. Interactions identical in every
field are kept once; rows without an ITEM_ID (anonymous session continuity events) are dropped;
anonymous events (USER_ID = sessionId) move to the user that later sent events with that session
(session -> user aliasing). Items and Users keep the newest record per ID (real-time records
newer than the bulk import win). The item vocabulary is every item in Interactions followed by
the Items-only ones, so an item code indexes both ``ix.item`` and ``data.items.columns``; the same
holds for users. Action datasets load the same way: ``data.actions`` (codes of ACTION_ID, in
``data.action_interactions`` whose ``item`` holds action codes).

Memory: the whole view is in memory (about 20 bytes per interaction plus the ID strings), which is
what training needs anyway; reading streams the files batch by batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..config import Settings
from ..ordering import stable_order
from ..store.metadata import Store
from .rows import Dataset, group_datasets


@dataclass
class Vocabulary:
    """IDs by code, with their metadata columns aligned to the codes."""

    ids: pa.Array
    columns: dict[str, pa.Array] = field(default_factory=dict)
    _index: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def code(self, id_: str) -> int:
        """The code of an ID, or -1 when unknown."""
        if self._index is None:
            self._index = {v: i for i, v in enumerate(self.ids.to_pylist())}
        return self._index.get(id_, -1)

    def codes(self, ids) -> np.ndarray:
        """Codes of many IDs (-1 for unknown ones), vectorised."""
        found = pc.index_in(pa.array(ids, pa.string()), value_set=self.ids)
        return np.asarray(found.fill_null(-1), dtype=np.int64).astype(np.int32)


@dataclass
class Interactions:
    """Interactions as parallel arrays, one entry per interaction, oldest first."""

    user: np.ndarray
    item: np.ndarray
    timestamp: np.ndarray
    event_type: np.ndarray
    event_types: list[str]
    event_value: np.ndarray
    columns: dict[str, pa.Array] = field(default_factory=dict)
    n_users: int = 0
    n_items: int = 0

    def __len__(self) -> int:
        return len(self.user)

    def select(self, mask: np.ndarray) -> "Interactions":
        """The interactions where ``mask`` is true (e.g. one event type)."""
        arrow_mask = pa.array(mask)
        return Interactions(self.user[mask], self.item[mask], self.timestamp[mask], self.event_type[mask],
                            self.event_types, self.event_value[mask],
                            {k: v.filter(arrow_mask) for k, v in self.columns.items()},
                            self.n_users, self.n_items)

    def csr(self, weights: np.ndarray | None = None):
        """Users x items sparse matrix of interaction counts (or summed ``weights``)."""
        from scipy.sparse import csr_matrix

        data = np.ones(len(self), dtype=np.float32) if weights is None else weights.astype(np.float32)
        m = csr_matrix((data, (self.user, self.item)), shape=(self.n_users, self.n_items))
        m.sum_duplicates()
        return m


@dataclass
class GroupData:
    interactions: Interactions | None
    users: Vocabulary
    items: Vocabulary
    action_interactions: Interactions | None = None
    actions: Vocabulary | None = None


# -- reading -----------------------------------------------------------------------------------


def _event_table(ds: Dataset, aliases: bool = True) -> pa.Table:
    """Bulk plus real-time rows of an event dataset, deduplicated, sorted by time."""
    names = [f.name for f in ds.arrow_schema]
    batches = list(ds.iter_bulk())
    put = list(ds.iter_put())
    if put and aliases:
        session_to_user = ds.records.session_aliases(ds.arn)
        user_col = ds.column("USER_ID")
        fixed = []
        for b in put:
            if session_to_user and user_col:
                anonymous = pc.is_null(b.column("_user_id"))
                mapped = pa.array([session_to_user.get(s) for s in b.column("_session_id").to_pylist()], pa.string())
                new_user = pc.if_else(pc.and_(anonymous, pc.is_valid(mapped)), mapped, b.column(user_col))
                b = b.set_column(names.index(user_col), user_col, new_user)
            fixed.append(b.select(names))
        batches.extend(fixed)
    if not batches:
        return ds.arrow_schema.empty_table()
    table = pa.Table.from_batches(batches, schema=ds.arrow_schema)
    ts = ds.column("TIMESTAMP")
    distinct = _encoded_if_distinct(table, ts, ds.column("USER_ID"), ds.column("ITEM_ID"))
    table = distinct if distinct is not None else table.group_by(names, use_threads=False).aggregate([])
    if not ts:
        return table
    # A stable sort of the integer times and one take: the same order as Table.sort_by, in a
    # fraction of its time for millions of rows.
    times = np.asarray(table.column(ts).combine_chunks().fill_null(0), dtype=np.int64)
    if len(times) and not np.all(times[1:] >= times[:-1]):
        table = table.take(stable_order(times))
    return table


def _encoded_if_distinct(table: pa.Table, ts: str | None, user: str | None, item: str | None) -> pa.Table | None:
    """``table`` with its user and item columns dictionary-encoded, when no two rows share
    (time, user, item) and so none can be identical: one integer sort, instead of hashing every
    column of every row, on the data sets without repeated rows (most of them); the encoding is
    the one the vocabularies are then read from. None when that cannot be shown (then identical
    rows are removed the general way)."""
    if not (ts and user and item) or not table.num_rows:
        return None if table.num_rows else table
    columns = [table.column(name).combine_chunks() for name in (ts, user, item)]
    if any(c.null_count for c in columns):
        return None
    times = np.asarray(columns[0], dtype=np.int64)
    users, items = (pc.dictionary_encode(c) for c in columns[1:])
    n_users, n_items = len(users.dictionary), len(items.dictionary)
    offset = times - times.min()
    if int(offset.max()) >= (2 ** 62) // max(n_users * n_items, 1):
        return None  # the key would not fit in 64 bits
    key = offset * (n_users * n_items) + np.asarray(users.indices, dtype=np.int64) * n_items \
        + np.asarray(items.indices, dtype=np.int64)
    key.sort()
    if (key[1:] == key[:-1]).any():
        return None
    for name, encoded in ((user, users), (item, items)):
        table = table.set_column(table.column_names.index(name), name, encoded)
    return table


def _entity_table(ds: Dataset) -> pa.Table:
    """Newest record per ID of an Items/Users/Actions dataset (real-time wins when newer)."""
    key = ds.id_column
    names = [f.name for f in ds.arrow_schema]
    parts = []
    for part in ds.bulk_state().parts:
        for b in ds.iter_part(part):
            parts.append(pa.RecordBatch.from_arrays(list(b.columns) + [pa.array(np.full(b.num_rows, part.get("time", 0.0)))],
                                                    names=names + ["_t"]))
    for b in ds.iter_put():
        parts.append(pa.RecordBatch.from_arrays([b.column(n) for n in names] + [b.column("_created")],
                                                names=names + ["_t"]))
    if not parts:
        return ds.arrow_schema.empty_table()
    table = pa.Table.from_batches(parts)
    table = table.append_column("_seq", pa.array(np.arange(table.num_rows)))
    table = table.sort_by([("_t", "ascending"), ("_seq", "ascending")])
    ids = table.column(key).to_pylist()
    last = {v: i for i, v in enumerate(ids)}  # later (newer) rows overwrite earlier ones
    keep = np.zeros(len(ids), dtype=bool)
    keep[list(last.values())] = True
    return table.filter(pa.array(keep)).select(names)


def _vocabulary(primary: pa.Array, entity: pa.Table | None, key: str | None) -> tuple[Vocabulary, np.ndarray]:
    """Codes for ``primary`` (interactions order of first appearance) then entity-only IDs."""
    encoded = pc.dictionary_encode(primary) if len(primary) else None
    ids = encoded.dictionary if encoded is not None else pa.array([], pa.string())
    codes = np.asarray(encoded.indices, dtype=np.int32) if encoded is not None else np.zeros(0, np.int32)
    columns: dict[str, pa.Array] = {}
    if entity is not None and key is not None and entity.num_rows:
        entity_ids = entity.column(key).combine_chunks()
        extra = entity_ids.filter(pc.invert(pc.is_in(entity_ids, value_set=ids)))
        ids = pa.concat_arrays([ids, extra.cast(pa.string())])
        position = pc.index_in(ids, value_set=entity_ids)
        for name in entity.column_names:
            if name != key:
                columns[name] = entity.column(name).combine_chunks().take(position)
    return Vocabulary(ids, columns), codes


def _events(table: pa.Table, ds: Dataset, item_key: str, n_users: int, n_items: int,
            user_codes: np.ndarray, item_codes: np.ndarray) -> Interactions:
    et_col, ev_col, ts_col = ds.column("EVENT_TYPE"), ds.column("EVENT_VALUE"), ds.column("TIMESTAMP")
    n = table.num_rows
    if et_col:
        encoded = pc.dictionary_encode(table.column(et_col).combine_chunks())
        event_types = encoded.dictionary.to_pylist()
        event_type = np.asarray(encoded.indices.fill_null(-1), dtype=np.int16)
    else:
        event_types, event_type = [], np.full(n, -1, np.int16)
    if ev_col:
        event_value = np.asarray(table.column(ev_col).fill_null(np.nan), dtype=np.float32)
    else:
        event_value = np.full(n, np.nan, np.float32)
    skip = {ds.column("USER_ID"), item_key, et_col, ev_col, ts_col}
    columns = {name: table.column(name).combine_chunks() for name in table.column_names if name not in skip}
    return Interactions(user_codes, item_codes, np.asarray(table.column(ts_col), dtype=np.int64), event_type,
                        event_types, event_value, columns, n_users, n_items)


def load_group(store: Store, settings: Settings, group_arn: str, *, events: bool = True) -> GroupData:
    """Everything training and batch jobs read from a dataset group (see the module docstring).

    ``events=False`` skips the interaction datasets (a filter that never looks at them only needs
    the users and items tables; reading millions of events would be most of its cost)."""
    datasets = group_datasets(store, settings, group_arn)
    if not events:
        datasets = {kind: ds for kind, ds in datasets.items() if kind not in ("INTERACTIONS", "ACTION_INTERACTIONS")}
    items_ds, users_ds = datasets.get("ITEMS"), datasets.get("USERS")
    items_t = _entity_table(items_ds) if items_ds else None
    users_t = _entity_table(users_ds) if users_ds else None

    interactions = None
    users = Vocabulary(pa.array([], pa.string()))
    items = Vocabulary(pa.array([], pa.string()))
    ix_ds = datasets.get("INTERACTIONS")
    table = _event_table(ix_ds) if ix_ds else None
    if table is not None:
        item_col = ix_ds.column("ITEM_ID")
        table = table.filter(pc.is_valid(table.column(item_col)))
        users, user_codes = _vocabulary(table.column(ix_ds.column("USER_ID")).combine_chunks(), users_t,
                                        users_ds.id_column if users_ds else None)
        items, item_codes = _vocabulary(table.column(item_col).combine_chunks(), items_t,
                                        items_ds.id_column if items_ds else None)
        interactions = _events(table, ix_ds, item_col, len(users), len(items), user_codes, item_codes)
    else:
        if users_t is not None:
            users, _ = _vocabulary(pa.array([], pa.string()), users_t, users_ds.id_column)
        if items_t is not None:
            items, _ = _vocabulary(pa.array([], pa.string()), items_t, items_ds.id_column)

    actions = action_ix = None
    actions_ds, ai_ds = datasets.get("ACTIONS"), datasets.get("ACTION_INTERACTIONS")
    if actions_ds or ai_ds:
        actions_t = _entity_table(actions_ds) if actions_ds else None
        ai_table = _event_table(ai_ds) if ai_ds else None
        primary = ai_table.column(ai_ds.column("ACTION_ID")).combine_chunks() if ai_table is not None \
            else pa.array([], pa.string())
        actions, action_codes = _vocabulary(primary, actions_t, actions_ds.id_column if actions_ds else None)
        if ai_table is not None:
            user_codes = users.codes(ai_table.column(ai_ds.column("USER_ID")).to_pylist())
            action_ix = _events(ai_table, ai_ds, ai_ds.column("ACTION_ID"), len(users), len(actions),
                                user_codes, action_codes)
    return GroupData(interactions, users, items, action_ix, actions)
