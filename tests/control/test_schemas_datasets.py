"""Schemas and datasets through boto3: Avro rules, dataset types, ARNs, dependencies."""

import copy
import json

import pytest

from tests.conftest import INTERACTIONS_SCHEMA, ITEMS_SCHEMA, USERS_SCHEMA


def _schema(personalize, unique, doc, **kw):
    return personalize.create_schema(name=unique("s"), schema=json.dumps(doc), **kw)["schemaArn"]


def test_schema_round_trip(personalize, unique):
    name = unique("s")
    arn = personalize.create_schema(name=name, schema=json.dumps(INTERACTIONS_SCHEMA))["schemaArn"]
    assert arn.endswith(f":schema/{name}")
    described = personalize.describe_schema(schemaArn=arn)["schema"]
    assert json.loads(described["schema"]) == INTERACTIONS_SCHEMA and described["name"] == name
    arns = [s["schemaArn"] for p in personalize.get_paginator("list_schemas").paginate() for s in p["schemas"]]
    assert arn in arns


def _with(field_changes=None, **top):
    doc = copy.deepcopy(INTERACTIONS_SCHEMA)
    doc.update(top)
    if field_changes:
        doc["fields"].append(field_changes)
    return doc


@pytest.mark.parametrize("doc, fragment", [
    ("{not json", "not valid JSON"),
    (json.dumps({"type": "enum", "name": "X", "fields": []}), '"type" is "enum"'),
    (json.dumps(_with({"name": "TAGS", "type": {"type": "array", "items": "string"}})), 'field "TAGS"'),
    (json.dumps(_with({"name": "9BAD", "type": "string"})), '"9BAD"'),
    (json.dumps(_with({"name": "USER_ID_", "type": "string"})), "conflicts"),
    (json.dumps(_with({"name": "SCORE", "type": "int", "categorical": True})), "only on string fields"),
    (json.dumps({"type": "record", "name": "Interactions", "fields": []}), "non-empty"),
])
def test_schema_rejected_with_reason(personalize, unique, doc, fragment):
    with pytest.raises(personalize.exceptions.InvalidInputException) as e:
        personalize.create_schema(name=unique("s"), schema=doc if isinstance(doc, str) else json.dumps(doc))
    assert fragment in e.value.response["Error"]["Message"]


def test_dataset_type_case_insensitive_arn_upper(personalize, unique, group):
    schema = _schema(personalize, unique, INTERACTIONS_SCHEMA)
    arn = personalize.create_dataset(name=unique("d"), schemaArn=schema, datasetGroupArn=group,
                                     datasetType="interactions")["datasetArn"]
    group_name = group.rsplit("/", 1)[1]
    assert arn == f"arn:aws:personalize:us-east-1:000000000000:dataset/{group_name}/INTERACTIONS"
    ds = personalize.describe_dataset(datasetArn=arn)["dataset"]
    assert ds["datasetType"] == "INTERACTIONS" and ds["status"] == "ACTIVE" and ds["schemaArn"] == schema
    listed = personalize.list_datasets(datasetGroupArn=group)["datasets"]
    assert [d["datasetArn"] for d in listed] == [arn]
    with pytest.raises(personalize.exceptions.ResourceAlreadyExistsException):
        personalize.create_dataset(name=unique("d"), schemaArn=schema, datasetGroupArn=group,
                                   datasetType="Interactions")


def test_action_interactions_dataset_has_tracking_id(personalize, unique, group):
    doc = {"type": "record", "name": "ActionInteractions", "fields": [
        {"name": "USER_ID", "type": "string"}, {"name": "ACTION_ID", "type": "string"},
        {"name": "EVENT_TYPE", "type": "string"}, {"name": "TIMESTAMP", "type": "long"}]}
    arn = personalize.create_dataset(name=unique("d"), schemaArn=_schema(personalize, unique, doc),
                                     datasetGroupArn=group, datasetType="Action_Interactions")["datasetArn"]
    tracking = personalize.describe_dataset(datasetArn=arn)["dataset"]["trackingId"]
    assert len(tracking) == 36


@pytest.mark.parametrize("doc, dtype, fragment", [
    (INTERACTIONS_SCHEMA, "Items", 'record name "Interactions" does not match dataset type ITEMS'),
    ({"type": "record", "name": "Users", "fields": [{"name": "USER_ID", "type": "string"}]}, "Users",
     "at least 1 metadata field"),
    ({"type": "record", "name": "Interactions", "fields": [{"name": "USER_ID", "type": "string"},
                                                           {"name": "ITEM_ID", "type": "string"}]},
     "Interactions", "needs the field TIMESTAMP"),
    ({"type": "record", "name": "Interactions", "fields": [
        {"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
        {"name": "TIMESTAMP", "type": "string"}]}, "Interactions", "TIMESTAMP must have type long"),
    (INTERACTIONS_SCHEMA, "Clicks", "Invalid datasetType: 'Clicks'"),
])
def test_schema_checked_against_dataset_type(personalize, unique, group, doc, dtype, fragment):
    schema = _schema(personalize, unique, doc)
    with pytest.raises(personalize.exceptions.InvalidInputException) as e:
        personalize.create_dataset(name=unique("d"), schemaArn=schema, datasetGroupArn=group, datasetType=dtype)
    assert fragment in e.value.response["Error"]["Message"]


def test_domain_schema_must_match_group(personalize, unique):
    group = personalize.create_dataset_group(name=unique("dg"), domain="VIDEO_ON_DEMAND")["datasetGroupArn"]
    plain = _schema(personalize, unique, INTERACTIONS_SCHEMA)
    with pytest.raises(personalize.exceptions.InvalidInputException) as e:
        personalize.create_dataset(name=unique("d"), schemaArn=plain, datasetGroupArn=group,
                                   datasetType="Interactions")
    assert "domain" in e.value.response["Error"]["Message"]
    no_event_type = copy.deepcopy(INTERACTIONS_SCHEMA)
    no_event_type["fields"] = [f for f in no_event_type["fields"] if f["name"] != "EVENT_TYPE"]
    vod = _schema(personalize, unique, no_event_type, domain="VIDEO_ON_DEMAND")
    with pytest.raises(personalize.exceptions.InvalidInputException) as e:
        personalize.create_dataset(name=unique("d"), schemaArn=vod, datasetGroupArn=group,
                                   datasetType="Interactions")
    assert "EVENT_TYPE" in e.value.response["Error"]["Message"]
    good = _schema(personalize, unique, INTERACTIONS_SCHEMA, domain="VIDEO_ON_DEMAND")
    personalize.create_dataset(name=unique("d"), schemaArn=good, datasetGroupArn=group, datasetType="Interactions")


def test_delete_dependencies(personalize, unique, group):
    schema = _schema(personalize, unique, ITEMS_SCHEMA)
    ds = personalize.create_dataset(name=unique("d"), schemaArn=schema, datasetGroupArn=group,
                                    datasetType="ITEMS")["datasetArn"]
    with pytest.raises(personalize.exceptions.ResourceInUseException) as e:
        personalize.delete_schema(schemaArn=schema)
    assert ds in e.value.response["Error"]["Message"]
    with pytest.raises(personalize.exceptions.ResourceInUseException) as e:
        personalize.delete_dataset_group(datasetGroupArn=group)
    assert ds in e.value.response["Error"]["Message"]
    personalize.delete_dataset(datasetArn=ds)
    personalize.delete_schema(schemaArn=schema)
    personalize.delete_dataset_group(datasetGroupArn=group)
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.describe_dataset(datasetArn=ds)


def test_update_dataset_schema_evolution(personalize, unique, group):
    schema = _schema(personalize, unique, USERS_SCHEMA)
    ds = personalize.create_dataset(name=unique("d"), schemaArn=schema, datasetGroupArn=group,
                                    datasetType="Users")["datasetArn"]
    wider = copy.deepcopy(USERS_SCHEMA)
    wider["fields"].append({"name": "AGE", "type": ["null", "int"]})
    new = _schema(personalize, unique, wider)
    personalize.update_dataset(datasetArn=ds, schemaArn=new)
    described = personalize.describe_dataset(datasetArn=ds)["dataset"]
    assert described["schemaArn"] == new and described["latestDatasetUpdate"]["status"] == "ACTIVE"
    required = copy.deepcopy(wider)
    required["fields"].append({"name": "COUNTRY", "type": "string", "categorical": True})
    with pytest.raises(personalize.exceptions.InvalidInputException) as e:
        personalize.update_dataset(datasetArn=ds, schemaArn=_schema(personalize, unique, required))
    assert "COUNTRY must be nullable" in e.value.response["Error"]["Message"]


def test_unknown_references(personalize, unique, group):
    missing = "arn:aws:personalize:us-east-1:000000000000:schema/nope"
    with pytest.raises(personalize.exceptions.ResourceNotFoundException) as e:
        personalize.create_dataset(name=unique("d"), schemaArn=missing, datasetGroupArn=group,
                                   datasetType="Interactions")
    assert missing in e.value.response["Error"]["Message"]
