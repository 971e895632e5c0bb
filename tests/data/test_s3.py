"""The same data paths against a real S3-compatible server (SeaweedFS)."""

from __future__ import annotations

import collections
import json

import pytest

from tests.conftest import INTERACTIONS_SCHEMA, make_client
from tests.data.helpers import (
    as_text_rows,
    csv_bytes,
    export_job,
    float_text,
    import_job,
    interactions_table,
    parse_csv,
)


@pytest.fixture(scope="module")
def clients(s3_server):
    return (make_client("personalize", s3_server.endpoint), make_client("personalize-events", s3_server.endpoint))


@pytest.fixture(scope="module")
def bucket(seaweedfs):
    s3 = seaweedfs.client()
    s3.create_bucket(Bucket="data")
    return s3


def test_round_trip_on_s3(clients, bucket, unique):
    personalize, events = clients
    group = personalize.create_dataset_group(name=unique("dg"))["datasetGroupArn"]
    schema = personalize.create_schema(name=unique("s"), schema=json.dumps(INTERACTIONS_SCHEMA))["schemaArn"]
    dataset = personalize.create_dataset(name=unique("d"), schemaArn=schema, datasetGroupArn=group,
                                         datasetType="Interactions")["datasetArn"]
    tracking = personalize.create_event_tracker(name=unique("tr"), datasetGroupArn=group)["trackingId"]
    table = interactions_table(1300, seed=5)
    prefix = unique("in")
    bucket.put_object(Bucket="data", Key=f"{prefix}/a.csv", Body=csv_bytes(table.slice(0, 700)))
    bucket.put_object(Bucket="data", Key=f"{prefix}/b.csv", Body=csv_bytes(table.slice(700)))
    job = import_job(personalize, dataset, f"s3://data/{prefix}/", unique("imp"))
    assert job["status"] == "ACTIVE", job.get("failureReason")
    sent = []
    for k in range(5):
        events.put_events(trackingId=tracking, userId="u1", sessionId="s1", eventList=[
            {"eventType": "click", "itemId": f"i{k}", "sentAt": 1_700_000_000 + k, "eventValue": 1.5}])
        sent.append(("u1", f"i{k}", str(1_700_000_000 + k), "click", float_text(1.5)))

    out = unique("out")
    kms = "arn:aws:kms:us-east-1:000000000000:key/11111111-2222-3333-4444-555555555555"
    job = export_job(personalize, dataset, f"s3://data/{out}", unique("exp"), mode="ALL", kmsKeyArn=kms)
    assert job["status"] == "ACTIVE", job.get("failureReason")
    assert job["jobOutput"]["s3DataDestination"]["kmsKeyArn"] == kms
    keys = [o["Key"] for o in bucket.list_objects_v2(Bucket="data", Prefix=f"{out}/")["Contents"]]
    assert keys == [f"{out}/{job['jobName']}/part-00000.csv"]
    header, rows = parse_csv(bucket.get_object(Bucket="data", Key=keys[0])["Body"].read())
    assert header == ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"]
    assert collections.Counter(rows) == collections.Counter(set(as_text_rows(table)) | set(sent))


def test_missing_object_and_bucket_fail_clearly(clients, bucket, unique):
    personalize, _ = clients
    group = personalize.create_dataset_group(name=unique("dg"))["datasetGroupArn"]
    schema = personalize.create_schema(name=unique("s"), schema=json.dumps(INTERACTIONS_SCHEMA))["schemaArn"]
    dataset = personalize.create_dataset(name=unique("d"), schemaArn=schema, datasetGroupArn=group,
                                         datasetType="Interactions")["datasetArn"]
    job = import_job(personalize, dataset, "s3://data/nothing-here.csv", unique("imp"))
    assert job["status"] == "CREATE FAILED"
    assert job["failureReason"].startswith("Invalid Data location. s3://data/nothing-here.csv names no object")
    job = export_job(personalize, dataset, "s3://no-such-bucket/x/", unique("exp"))
    assert job["status"] == "CREATE FAILED"
    assert "names bucket no-such-bucket, which does not exist" in job["failureReason"]
