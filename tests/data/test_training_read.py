"""What training reads from a dataset group (data/interactions.py ``load_group``): imported through
the real server, read back from its data folder. Identical records count once; records that
share user, item and time but differ elsewhere all count; data without either reads exactly
the imported rows, oldest first."""

from __future__ import annotations

import collections

import numpy as np
import pyarrow as pa

from openpersonalize.config import Settings
from openpersonalize.data.interactions import load_group
from openpersonalize.store.metadata import Store

from tests.data.helpers import as_text_rows, csv_bytes, import_job, interactions_table, put_local


def read_back(server, group: str):
    env = {"OPENPERSONALIZE_DATA_DIR": str(server.data_dir)}
    if server.store_url:
        env["OPENPERSONALIZE_STORE_URL"] = server.store_url
    settings = Settings.from_env(env)
    store = Store(settings.resolved_store_url())
    try:
        data = load_group(store, settings, group)
    finally:
        store.close()
    ix = data.interactions
    users = np.asarray(data.users.ids.to_pylist())
    items = np.asarray(data.items.ids.to_pylist())
    types = np.asarray(ix.event_types + [""])
    return [(users[u], items[i], str(t), types[e]) for u, i, t, e in
            zip(ix.user, ix.item, ix.timestamp, ix.event_type)]


def imported(server, personalize, unique, dataset: str, table: pa.Table) -> None:
    location = put_local(server, "read", f"{unique('in')}/interactions.csv", csv_bytes(table))
    job = import_job(personalize, dataset, location, unique("imp"))
    assert job["status"] == "ACTIVE", job.get("failureReason")


def test_identical_records_count_once_and_near_twins_all_count(server, personalize, unique, group,
                                                               interactions_dataset):
    table = interactions_table(1200, seed=4)
    twin = table.slice(5, 1).to_pylist()[0]
    near = dict(table.slice(9, 1).to_pylist()[0], EVENT_TYPE="something-else")
    table = pa.concat_tables([table, pa.Table.from_pylist([twin, near], schema=table.schema)])
    imported(server, personalize, unique, interactions_dataset, table)
    rows = read_back(server, group)
    expected = {(u, i, t, e) for u, i, t, e, _ in as_text_rows(table)}
    assert collections.Counter(rows) == collections.Counter(expected)  # the twin once, the near twin kept
    assert len(rows) == 1201


def test_distinct_records_read_as_imported_oldest_first(server, personalize, unique, group, interactions_dataset):
    table = interactions_table(1200, seed=5)
    imported(server, personalize, unique, interactions_dataset, table)
    rows = read_back(server, group)
    assert sorted(rows) == sorted((u, i, t, e) for u, i, t, e, _ in as_text_rows(table))
    times = [int(t) for _, _, t, _ in rows]
    assert times == sorted(times)
