"""Dataset import and export jobs on the embedded store, through boto3."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pyarrow as pa

from openpersonalize.data.exporter import _line_bytes, csv_text
from tests.data.helpers import (
    as_text_rows,
    csv_bytes,
    export_job,
    float_text,
    import_job,
    interactions_table,
    parse_csv,
    put_local,
)


def read_export(server, bucket: str, prefix: str) -> tuple[list[str], list[tuple]]:
    folder = Path(server.data_dir) / "s3" / bucket / prefix
    parts = sorted(folder.glob("part-*.csv"))
    assert parts, f"no parts under {folder}"
    assert not list(folder.glob(".*")), "temporary files left behind"
    header, rows = None, []
    for part in parts:
        h, r = parse_csv(part.read_bytes())
        header = header or h
        assert h == header
        rows.extend(r)
    return header, rows


def test_round_trip_import_events_export_all(server, personalize, events, unique, interactions_dataset,
                                             tracking_id):
    table = interactions_table(1500, seed=1)
    location = put_local(server, "rt", f"{unique('in')}/interactions.csv", csv_bytes(table))
    job = import_job(personalize, interactions_dataset, location, unique("imp"))
    assert job["status"] == "ACTIVE", job.get("failureReason")

    sent = []
    for k in range(12):
        event = {"eventId": f"e{k}", "eventType": "watch", "itemId": f"i{k}", "sentAt": 1_700_000_000 + k,
                 "eventValue": 0.25 * k, "properties": json.dumps({"itemId": f"i{k}"})}
        events.put_events(trackingId=tracking_id, userId=f"u{k % 3}", sessionId="s-1", eventList=[event])
        sent.append((f"u{k % 3}", f"i{k}", str(1_700_000_000 + k), "watch", float_text(0.25 * k)))

    out = unique("out")
    job = export_job(personalize, interactions_dataset, f"s3://rt/{out}/", unique("exp"), mode="ALL")
    assert job["status"] == "ACTIVE", job.get("failureReason")
    header, rows = read_export(server, "rt", f"{out}/{job['jobName']}")
    assert header == ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"]
    expected = collections.Counter(as_text_rows(table)) + collections.Counter(sent)
    expected = collections.Counter(set(expected))  # identical records are exported once
    assert collections.Counter(rows) == expected

    for mode, want in (("BULK", set(as_text_rows(table))), ("PUT", set(sent)), (None, set(sent))):
        job = export_job(personalize, interactions_dataset, f"s3://rt/{out}/", unique("exp"), mode=mode)
        assert job["ingestionMode"] == (mode or "PUT")
        _, rows = read_export(server, "rt", f"{out}/{job['jobName']}")
        assert sorted(rows) == sorted(want)


def test_export_quotes_and_reimports_awkward_values(server, personalize, unique, items_dataset):
    values = ['plain', 'with,comma', 'with "quote"', 'back\\slash', 'multi|valued', 'ünïcode', '']
    table = pa.table({"ITEM_ID": [f"it{k}" for k in range(len(values))],
                      "GENRES": [v or None for v in values],
                      "PRICE": [1.5, None, 2.0, 1e-7, 3.25, 0.1, 10.0],
                      "CREATION_TIMESTAMP": [1_600_000_000 + k for k in range(len(values))]})
    data = _line_bytes(csv_text(table.to_batches()[0]))
    location = put_local(server, "q", unique("k") + ".csv", b"ITEM_ID,GENRES,PRICE,CREATION_TIMESTAMP\n" + data)
    assert import_job(personalize, items_dataset, location, unique("imp"))["status"] == "ACTIVE"
    out = unique("out")
    job = export_job(personalize, items_dataset, f"s3://q/{out}", unique("exp"), mode="BULK")
    assert job["status"] == "ACTIVE", job.get("failureReason")
    _, rows = read_export(server, "q", f"{out}/{job['jobName']}")
    assert sorted(rows) == sorted(as_text_rows(table))


def test_full_replaces_bulk_incremental_appends_and_replaces_ids(server, personalize, events, unique,
                                                                 items_dataset):
    def items(ids, price):
        return csv_bytes(pa.table({"ITEM_ID": ids, "GENRES": ["a|b"] * len(ids), "PRICE": [price] * len(ids),
                                   "CREATION_TIMESTAMP": [1_600_000_000] * len(ids)}))

    bucket = "modes"
    first = put_local(server, bucket, unique("a") + ".csv", items(["i1", "i2", "i3"], 1.0))
    second = put_local(server, bucket, unique("b") + ".csv", items(["i3", "i4"], 2.0))
    assert import_job(personalize, items_dataset, first, unique("imp"))["status"] == "ACTIVE"
    events.put_items(datasetArn=items_dataset, items=[{"itemId": "p1", "properties": '{"genres": "x", "price": 9}'}])
    assert import_job(personalize, items_dataset, second, unique("imp"), mode="INCREMENTAL")["status"] == "ACTIVE"

    out = unique("out")
    job = export_job(personalize, items_dataset, f"s3://{bucket}/{out}/", unique("exp"), mode="BULK")
    _, rows = read_export(server, bucket, f"{out}/{job['jobName']}")
    assert sorted((r[0], r[2]) for r in rows) == [("i1", "1"), ("i2", "1"), ("i3", "2"), ("i4", "2")]

    assert import_job(personalize, items_dataset, second, unique("imp"), mode="FULL")["status"] == "ACTIVE"
    job = export_job(personalize, items_dataset, f"s3://{bucket}/{out}/", unique("exp"), mode="ALL")
    _, rows = read_export(server, bucket, f"{out}/{job['jobName']}")
    assert sorted(r[0] for r in rows) == ["i3", "i4", "p1"]  # real-time records survive FULL


def test_export_all_keeps_newest_entity(server, personalize, events, unique, users_dataset):
    location = put_local(server, "new", unique("u") + ".csv", b"USER_ID,TIER\nu1,gold\nu2,silver\n")
    assert import_job(personalize, users_dataset, location, unique("imp"))["status"] == "ACTIVE"
    events.put_users(datasetArn=users_dataset, users=[{"userId": "u1", "properties": '{"tier": "bronze"}'}])
    events.put_users(datasetArn=users_dataset, users=[{"userId": "u3", "properties": '{"TIER": "a"}'},
                                                      {"userId": "u3", "properties": '{"tier": "b"}'}])
    out = unique("out")
    job = export_job(personalize, users_dataset, f"s3://new/{out}/", unique("exp"), mode="ALL")
    _, rows = read_export(server, "new", f"{out}/{job['jobName']}")
    assert sorted(rows) == [("u1", "bronze"), ("u2", "silver"), ("u3", "b")]
    job = export_job(personalize, users_dataset, f"s3://new/{out}/", unique("exp"), mode="PUT")
    _, rows = read_export(server, "new", f"{out}/{job['jobName']}")
    assert sorted(rows) == [("u1", "bronze"), ("u3", "a"), ("u3", "b")]


def test_prefix_import_reads_every_csv_under_it(server, personalize, unique, interactions_dataset):
    table = interactions_table(1200, seed=3)
    prefix = unique("pre")
    put_local(server, "pfx", f"{prefix}/part1.csv", csv_bytes(table.slice(0, 600)))
    put_local(server, "pfx", f"{prefix}_more/part2.csv", csv_bytes(table.slice(600)))
    put_local(server, "pfx", f"{prefix}/notes.txt", b"not data")
    job = import_job(personalize, interactions_dataset, f"s3://pfx/{prefix}", unique("imp"))
    assert job["status"] == "ACTIVE", job.get("failureReason")
    out = unique("out")
    job = export_job(personalize, interactions_dataset, f"s3://pfx/{out}/", unique("exp"), mode="BULK")
    _, rows = read_export(server, "pfx", f"{out}/{job['jobName']}")
    assert sorted(rows) == sorted(set(as_text_rows(table)))
