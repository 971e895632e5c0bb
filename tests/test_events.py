"""personalize-events through boto3: PutEvents and friends, their checks, and concurrency."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tests.data.conftest import (  # noqa: F401  (fixtures)
    events,
    items_dataset,
    personalize,
    tracking_id,
    users_dataset,
)
from tests.data.helpers import export_job, parse_csv


def exported(server, personalize, unique, dataset, mode="PUT") -> list[tuple]:
    out = unique("out")
    job = export_job(personalize, dataset, f"s3://ev/{out}/", unique("exp"), mode=mode)
    assert job["status"] == "ACTIVE", job.get("failureReason")
    folder = Path(server.data_dir) / "s3" / "ev" / out / job["jobName"]
    rows = []
    for part in sorted(folder.glob("part-*.csv")):
        rows.extend(parse_csv(part.read_bytes())[1])
    return rows


def event(k: int, **extra) -> dict:
    return {"eventType": "click", "itemId": f"i{k}", "sentAt": 1_700_000_000 + k, **extra}


def test_sixteen_threads_put_events_every_event_once(server, personalize, events, unique,
                                                     interactions_dataset, tracking_id):
    errors = []

    def worker(t: int):
        try:
            for call in range(5):
                batch = [event(t * 1000 + call * 10 + k, eventValue=float(k)) for k in range(10)]
                events.put_events(trackingId=tracking_id, userId=f"user{t}", sessionId=f"s{t}", eventList=batch)
        except Exception as exc:  # reported below: a thread's assertion would be lost
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    rows = exported(server, personalize, unique, interactions_dataset)
    assert len(rows) == 16 * 5 * 10 == len(set(rows))
    assert {r[1] for r in rows} == {f"i{t * 1000 + c * 10 + k}" for t in range(16) for c in range(5) for k in range(10)}


def test_put_events_maps_members_to_columns(server, personalize, events, unique, group):
    schema = {"type": "record", "name": "Interactions", "fields": [
        {"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
        {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"},
        {"name": "EVENT_VALUE", "type": ["null", "float"]}, {"name": "IMPRESSION", "type": ["null", "string"]},
        {"name": "RECOMMENDATION_ID", "type": ["null", "string"]},
        {"name": "EVENT_ATTRIBUTION_SOURCE", "type": ["null", "string"]},
        {"name": "DEVICE_TYPE", "type": ["null", "string"], "categorical": True},
        {"name": "NUM_RATINGS", "type": ["null", "int"]}]}
    schema_arn = personalize.create_schema(name=unique("s"), schema=json.dumps(schema))["schemaArn"]
    dataset = personalize.create_dataset(name=unique("d"), schemaArn=schema_arn, datasetGroupArn=group,
                                         datasetType="Interactions")["datasetArn"]
    tracking = personalize.create_event_tracker(name=unique("tr"), datasetGroupArn=group)["trackingId"]
    events.put_events(trackingId=tracking, sessionId="sess-1", eventList=[
        {"eventId": "e1", "eventType": "watch", "itemId": "i9", "sentAt": 1_700_000_123.9, "eventValue": 0.5,
         "properties": json.dumps({"deviceType": "tv", "numRatings": "7"}), "recommendationId": "RID-1",
         "impression": ["i9", "i7"], "metricAttribution": {"eventAttributionSource": "carousel"}},
        {"eventType": "click", "sentAt": 1_700_000_200, "properties": json.dumps({"itemId": "i3"})}])
    # A retried event (same eventId) is stored once.
    events.put_events(trackingId=tracking, userId="u1", sessionId="sess-1", eventList=[
        {"eventId": "e1", "eventType": "watch", "itemId": "i9", "sentAt": 1_700_000_123}])
    rows = exported(server, personalize, unique, dataset)
    assert sorted(rows) == [
        ("sess-1", "i3", "1700000200", "click", "", "", "", "", "", ""),
        ("sess-1", "i9", "1700000123", "watch", "0.5", "i9|i7", "RID-1", "carousel", "tv", "7")]


@pytest.mark.parametrize("mutate, member, rule", [
    (lambda e: e.update(properties="{not json"), "eventList.1.properties", "is not valid JSON"),
    (lambda e: e.update(properties='{"color": "red"}'), "eventList.1.properties.color",
     "is not a field of the dataset's schema"),
    (lambda e: e.update(properties='{"eventValue": "high"}'), "eventList.1.properties.eventValue",
     "is not a number"),
    (lambda e: e.update(properties=json.dumps({"itemId": "x" * 300})), "eventList.1.properties.itemId",
     "is longer than 256 characters"),
])
def test_put_events_bad_input(events, tracking_id, mutate, member, rule):
    e = event(1)
    e.pop("itemId")
    mutate(e)
    with pytest.raises(events.exceptions.InvalidInputException) as exc:
        events.put_events(trackingId=tracking_id, sessionId="s", eventList=[e])
    message = exc.value.response["Error"]["Message"]
    assert f"Invalid {member}:" in message and rule in message


def test_put_events_limits_and_unknown_tracker(events, tracking_id):
    with pytest.raises(events.exceptions.InvalidInputException) as exc:
        events.put_events(trackingId=tracking_id, sessionId="s", eventList=[event(k) for k in range(11)])
    assert "eventList" in exc.value.response["Error"]["Message"]
    with pytest.raises(events.exceptions.InvalidInputException) as exc:
        events.put_events(trackingId="00000000-0000-4000-8000-000000000000", sessionId="s", eventList=[event(1)])
    assert "is not the tracking ID of an event tracker" in exc.value.response["Error"]["Message"]


def test_put_items_and_users_checks(server, personalize, events, unique, items_dataset, users_dataset,
                                    interactions_dataset):
    events.put_items(datasetArn=items_dataset, items=[
        {"itemId": "a", "properties": json.dumps({"genres": "x|y", "price": "2.5", "creationTimestamp": 1_600_000_000})},
        {"itemId": "b"}])
    assert sorted(exported(server, personalize, unique, items_dataset)) == [
        ("a", "x|y", "2.5", "1600000000"), ("b", "", "", "")]
    with pytest.raises(events.exceptions.InvalidInputException) as exc:
        events.put_items(datasetArn=items_dataset, items=[{"itemId": "c", "properties": '{"price": [1]}'}])
    assert "Invalid items.1.properties.price: '[1]' is not a finite number" in exc.value.response["Error"]["Message"]
    with pytest.raises(events.exceptions.InvalidInputException) as exc:
        events.put_users(datasetArn=items_dataset, users=[{"userId": "u"}])
    assert "is a ITEMS dataset; PutUsers writes to a USERS dataset" in exc.value.response["Error"]["Message"]
    with pytest.raises(events.exceptions.ResourceNotFoundException):
        events.put_users(datasetArn=users_dataset + "X", users=[{"userId": "u"}])
    with pytest.raises(events.exceptions.InvalidInputException):
        events.put_users(datasetArn=users_dataset, users=[{"userId": f"u{k}"} for k in range(11)])
    # A bad record anywhere in the call stores none of them.
    with pytest.raises(events.exceptions.InvalidInputException):
        events.put_users(datasetArn=users_dataset, users=[{"userId": "ok", "properties": '{"tier": "a"}'},
                                                          {"userId": "bad", "properties": '{"age": 3}'}])
    assert exported(server, personalize, unique, users_dataset) == []


def test_put_action_interactions_and_actions(server, personalize, events, unique, group):
    def make(schema: dict, kind: str) -> str:
        arn = personalize.create_schema(name=unique("s"), schema=json.dumps(schema))["schemaArn"]
        return personalize.create_dataset(name=unique("d"), schemaArn=arn, datasetGroupArn=group,
                                          datasetType=kind)["datasetArn"]

    actions = make({"type": "record", "name": "Actions", "fields": [
        {"name": "ACTION_ID", "type": "string"}, {"name": "VALUE", "type": ["null", "long"]},
        {"name": "CHANNEL", "type": ["null", "string"], "categorical": True}]}, "Actions")
    interactions = make({"type": "record", "name": "ActionInteractions", "fields": [
        {"name": "USER_ID", "type": "string"}, {"name": "ACTION_ID", "type": "string"},
        {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"}]}, "Action_Interactions")
    events.put_actions(datasetArn=actions, actions=[{"actionId": "a1", "properties": '{"value": 3, "channel": "web"}'}])
    tracking = personalize.describe_dataset(datasetArn=interactions)["dataset"]["trackingId"]
    events.put_action_interactions(trackingId=tracking, actionInteractions=[
        {"actionId": "a1", "userId": "u1", "sessionId": "s1", "timestamp": 1_700_000_000, "eventType": "Taken"}])
    with pytest.raises(events.exceptions.InvalidInputException) as exc:
        events.put_action_interactions(trackingId=tracking, actionInteractions=[
            {"actionId": "a1", "sessionId": "s1", "timestamp": 1, "eventType": "Viewed", "properties": '{"x": 1}'}])
    assert "is not a field of the dataset's schema" in exc.value.response["Error"]["Message"]
