"""CreateFilter, DescribeFilter, ListFilters and DeleteFilter through boto3 against the real server."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import INTERACTIONS_SCHEMA, ITEMS_SCHEMA, USERS_SCHEMA


def _dataset(personalize, unique, group, schema: dict, dataset_type: str) -> str:
    schema_arn = personalize.create_schema(name=unique("s"), schema=json.dumps(schema))["schemaArn"]
    return personalize.create_dataset(name=unique("d"), schemaArn=schema_arn, datasetGroupArn=group,
                                      datasetType=dataset_type)["datasetArn"]


@pytest.fixture
def full_group(personalize, unique, group):
    """A group with Items (GENRES, PRICE, CREATION_TIMESTAMP), Users (TIER) and Interactions."""
    _dataset(personalize, unique, group, ITEMS_SCHEMA, "Items")
    _dataset(personalize, unique, group, USERS_SCHEMA, "Users")
    _dataset(personalize, unique, group, INTERACTIONS_SCHEMA, "Interactions")
    return group


def _settled(personalize, arn: str) -> dict:
    """The filter once its job has run (the runner wakes on Create calls)."""
    deadline = time.time() + 30
    while True:
        desc = personalize.describe_filter(filterArn=arn)["filter"]
        if desc["status"] not in ("CREATE PENDING", "CREATE IN_PROGRESS") or time.time() > deadline:
            return desc
        time.sleep(0.05)


def _error(excinfo) -> tuple[str, str]:
    err = excinfo.value.response["Error"]
    return err["Code"], err["Message"]


def test_create_describe_becomes_active(personalize, unique, full_group):
    name = unique("f")
    expression = ('INCLUDE ItemID WHERE Items.GENRES IN ($GENRES) | '
                  'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")')
    arn = personalize.create_filter(name=name, datasetGroupArn=full_group, filterExpression=expression)["filterArn"]
    assert arn == f"arn:aws:personalize:us-east-1:000000000000:filter/{name}"
    first = personalize.describe_filter(filterArn=arn)["filter"]
    assert first["status"] in ("CREATE PENDING", "CREATE IN_PROGRESS", "ACTIVE")
    desc = _settled(personalize, arn)
    assert desc["status"] == "ACTIVE" and "failureReason" not in desc
    assert desc["filterExpression"] == expression and desc["datasetGroupArn"] == full_group
    assert desc["name"] == name and desc["creationDateTime"] <= desc["lastUpdatedDateTime"]


def test_every_spec_example_on_a_group_without_datasets(personalize, unique, group):
    # Fields of datasets that do not exist yet are not checked (spec §2, Proposed).
    examples = [
        'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", "stream")',
        'INCLUDE ItemID WHERE Items.PRICE <= $MAX_PRICE AND Items.CREATION_TIMESTAMP > $SINCE',
        'EXCLUDE ItemID WHERE Items.GENRES IN ("Horror") IF CurrentUser.AGE < 18',
        'EXCLUDE ActionID WHERE Action_Interactions.EVENT_TYPE IN ("NOT_TAKEN")',
        'INCLUDE UserID WHERE Users.MEMBERSHIP_STATUS IN ($TIER)',
    ]
    arns = [personalize.create_filter(name=unique("f"), datasetGroupArn=group, filterExpression=e)["filterArn"]
            for e in examples]
    assert [_settled(personalize, a)["status"] for a in arns] == ["ACTIVE"] * len(examples)


@pytest.mark.parametrize("expression, message", [
    ('EXCLUDE ItemID WHER Interactions.EVENT_TYPE IN ("click")',
     "Invalid filterExpression: unexpected 'WHER' at position 15 (line 1, column 16); expected WHERE."),
    ('INCLUDE ItemID WHERE Items.COLOR IN ("red")',
     "Invalid filterExpression: 'Items.COLOR' at position 21 (line 1, column 22): the Items schema has no "
     "field COLOR (its fields: ITEM_ID, GENRES, PRICE, CREATION_TIMESTAMP)."),
    ('INCLUDE ItemID WHERE Items.PRICE IN ("3")',
     "Invalid filterExpression: 'Items.PRICE' at position 21 (line 1, column 22): PRICE is a float field; "
     "IN compares strings, use =, !=, <, <=, > or >= for numbers."),
    ('EXCLUDE ItemID WHERE Items.GENRES IN ("a") IF CurrentUser.AGE < 18',
     "Invalid filterExpression: 'CurrentUser.AGE' at position 46 (line 1, column 47): the Users schema has "
     "no field AGE (its fields: USER_ID, TIER)."),
    ('EXCLUDE ItemID WHERE Interactions.EVENT_VALUE IN ("1")',
     "Invalid filterExpression: 'Interactions.EVENT_VALUE' at position 21 (line 1, column 22): Interactions "
     "conditions can only use EVENT_TYPE."),
])
def test_invalid_expression_is_rejected_at_once(personalize, unique, full_group, expression, message):
    name = unique("f")
    with pytest.raises(personalize.exceptions.InvalidInputException) as e:
        personalize.create_filter(name=name, datasetGroupArn=full_group, filterExpression=expression)
    assert _error(e) == ("InvalidInputException", message)
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.describe_filter(filterArn=f"arn:aws:personalize:us-east-1:000000000000:filter/{name}")


def test_twenty_distinct_fields_per_group(personalize, unique, group):
    wide = {"type": "record", "name": "Items", "fields": [{"name": "ITEM_ID", "type": "string"}]
            + [{"name": f"F{i}", "type": ["null", "double"]} for i in range(22)]}
    _dataset(personalize, unique, group, wide, "Items")

    def expression(fields):
        return "INCLUDE ItemID WHERE " + " AND ".join(f"Items.F{i} > 0" for i in fields)

    for chunk in (range(0, 10), range(10, 20), range(5, 15)):
        personalize.create_filter(name=unique("f"), datasetGroupArn=group, filterExpression=expression(chunk))
    with pytest.raises(personalize.exceptions.LimitExceededException) as e:
        personalize.create_filter(name=unique("f"), datasetGroupArn=group, filterExpression=expression([20]))
    code, message = _error(e)
    assert "would use 21 distinct dataset fields" in message and "Items.F20" in message
    assert "the limit is 20" in message
    with pytest.raises(personalize.exceptions.InvalidInputException) as e:
        personalize.create_filter(name=unique("f"), datasetGroupArn=group, filterExpression=expression(range(11)))
    assert "it uses 11 distinct dataset fields" in _error(e)[1] and "at most 10" in _error(e)[1]


def test_list_paginates_under_capital_filters_and_delete(personalize, unique, full_group):
    arns = {personalize.create_filter(name=unique("f"), datasetGroupArn=full_group,
                                      filterExpression=f'INCLUDE ItemID WHERE Items.GENRES IN ("g{i}")')["filterArn"]
            for i in range(3)}
    pages = list(personalize.get_paginator("list_filters").paginate(
        datasetGroupArn=full_group, PaginationConfig={"PageSize": 1}))
    assert len(pages) == 3 and all(len(p["Filters"]) == 1 for p in pages)
    listed = [f for p in pages for f in p["Filters"]]
    assert {f["filterArn"] for f in listed} == arns
    assert all("filterExpression" not in f and f["datasetGroupArn"] == full_group for f in listed)
    victim = sorted(arns)[0]
    personalize.delete_filter(filterArn=victim)
    with pytest.raises(personalize.exceptions.ResourceNotFoundException) as e:
        personalize.describe_filter(filterArn=victim)
    assert victim in _error(e)[1]
    remaining = [f["filterArn"] for f in personalize.list_filters(datasetGroupArn=full_group)["Filters"]]
    assert sorted(remaining) == sorted(arns - {victim})


def test_duplicate_name_and_unknown_group(personalize, unique, full_group):
    name = unique("f")
    personalize.create_filter(name=name, datasetGroupArn=full_group,
                              filterExpression='INCLUDE ItemID WHERE Items.PRICE < 10')
    with pytest.raises(personalize.exceptions.ResourceAlreadyExistsException):
        personalize.create_filter(name=name, datasetGroupArn=full_group,
                                  filterExpression='INCLUDE ItemID WHERE Items.PRICE < 10')
    missing = "arn:aws:personalize:us-east-1:000000000000:dataset-group/nope-nope"
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.create_filter(name=unique("f"), datasetGroupArn=missing,
                                  filterExpression='INCLUDE ItemID WHERE Items.PRICE < 10')
