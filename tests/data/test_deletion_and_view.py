"""Data deletion jobs, and the integer-coded read view that training and batch jobs use."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from openpersonalize.config import Settings
from openpersonalize.data.interactions import load_group
from openpersonalize.store.metadata import Store
from tests.data.helpers import csv_bytes, export_job, interactions_table, import_job, parse_csv, put_local, wait


def view(server, group):
    settings = Settings(data_dir=str(server.data_dir), store_url=server.store_url or "")
    store = Store(settings.resolved_store_url())
    try:
        return load_group(store, settings, group)
    finally:
        store.close()


def test_view_codes_users_items_and_columns(server, personalize, events, unique, group, interactions_dataset,
                                            items_dataset, tracking_id):
    table = interactions_table(1000, seed=21, users=50, items=40)
    location = put_local(server, "view", unique("i") + ".csv", csv_bytes(table))
    job = import_job(personalize, interactions_dataset, location, unique("imp")); assert job["status"] == "ACTIVE", job.get("failureReason")
    items = pa.table({"ITEM_ID": ["i1", "zz-only-in-items"], "GENRES": ["a|b", "c"], "PRICE": [1.0, None],
                      "CREATION_TIMESTAMP": [1_600_000_000, 1_600_000_001]})
    location = put_local(server, "view", unique("it") + ".csv", csv_bytes(items))
    job = import_job(personalize, items_dataset, location, unique("imp")); assert job["status"] == "ACTIVE", job.get("failureReason")
    events.put_items(datasetArn=items_dataset, items=[{"itemId": "i1", "properties": '{"genres": "new"}'}])
    # An anonymous session, later identified: its events move to the user.
    events.put_events(trackingId=tracking_id, sessionId="sess-9", eventList=[
        {"eventType": "click", "itemId": "i2", "sentAt": 1_750_000_000}])
    events.put_events(trackingId=tracking_id, sessionId="sess-9", userId="u-late", eventList=[
        {"eventType": "buy", "itemId": "i3", "sentAt": 1_750_000_001, "eventValue": 2.0}])

    data = view(server, group)
    ix = data.interactions
    assert len(ix) == len(set(map(tuple, zip(*[c.to_pylist() for c in table.columns])))) + 2
    assert ix.user.dtype == np.int32 and ix.timestamp.dtype == np.int64
    assert np.all(np.diff(ix.timestamp) >= 0)
    late = data.users.code("u-late")
    assert late >= 0 and sorted(ix.timestamp[ix.user == late].tolist()) == [1_750_000_000, 1_750_000_001]
    assert data.users.code("sess-9") == -1
    assert set(ix.event_types) == {"click", "watch", "buy"}
    only = data.items.code("zz-only-in-items")
    assert only == len(data.items) - 1 and only not in set(ix.item.tolist())
    assert data.items.columns["GENRES"][data.items.code("i1")].as_py() == "new"
    assert data.items.columns["GENRES"][only].as_py() == "c"
    m = ix.csr()
    assert m.shape == (len(data.users), len(data.items)) and m.sum() == len(ix)


def test_deletion_job_removes_users_everywhere(server, personalize, events, unique, group, interactions_dataset,
                                               users_dataset, tracking_id):
    table = interactions_table(1200, seed=4, users=30)
    location = put_local(server, "del", unique("i") + ".csv", csv_bytes(table))
    job = import_job(personalize, interactions_dataset, location, unique("imp")); assert job["status"] == "ACTIVE", job.get("failureReason")
    location = put_local(server, "del", unique("u") + ".csv", b"USER_ID,TIER\nu1,gold\nu2,silver\nu3,x\n")
    job = import_job(personalize, users_dataset, location, unique("imp")); assert job["status"] == "ACTIVE", job.get("failureReason")
    events.put_users(datasetArn=users_dataset, users=[{"userId": "u1", "properties": '{"tier": "a"}'}])
    events.put_events(trackingId=tracking_id, userId="u1", sessionId="s-u1", eventList=[
        {"eventType": "click", "itemId": "i1", "sentAt": 1_750_000_000}])
    events.put_events(trackingId=tracking_id, sessionId="s-u1", eventList=[
        {"eventType": "click", "itemId": "i2", "sentAt": 1_750_000_001}])

    users = table.column("USER_ID").to_pylist()
    expected = users.count("u1") + users.count("u2") + 2 + 1 + 2  # bulk interactions, users rows, put
    ids = put_local(server, "del", unique("ids") + ".csv", b"USER_ID\nu1\nu2\nnobody\n")
    arn = personalize.create_data_deletion_job(jobName=unique("del"), datasetGroupArn=group,
                                               dataSource={"dataLocation": ids},
                                               roleArn="arn:aws:iam::000000000000:role/p")["dataDeletionJobArn"]
    assert personalize.describe_data_deletion_job(dataDeletionJobArn=arn)["dataDeletionJob"]["status"] in (
        "PENDING", "IN_PROGRESS", "COMPLETED")
    job = wait(lambda: personalize.describe_data_deletion_job(dataDeletionJobArn=arn)["dataDeletionJob"])
    assert job["status"] == "COMPLETED", job.get("failureReason")
    assert job["numDeleted"] == expected

    out = unique("out")
    for dataset in (interactions_dataset, users_dataset):
        job = export_job(personalize, dataset, f"s3://del/{out}/", unique("exp"), mode="ALL")
        folder = server.data_dir / "s3" / "del" / out / job["jobName"]
        _, rows = parse_csv((folder / "part-00000.csv").read_bytes())
        assert rows and not {r[0] for r in rows} & {"u1", "u2", "s-u1"}

    bad = put_local(server, "del", unique("bad") + ".csv", b"ITEM_ID\ni1\n")
    arn = personalize.create_data_deletion_job(jobName=unique("del"), datasetGroupArn=group,
                                               dataSource={"dataLocation": bad},
                                               roleArn="arn:aws:iam::000000000000:role/p")["dataDeletionJobArn"]
    job = wait(lambda: personalize.describe_data_deletion_job(dataDeletionJobArn=arn)["dataDeletionJob"])
    assert job["status"] == "FAILED" and "the header must be the single column USER_ID" in job["failureReason"]
    assert json.dumps(job, default=str)
