"""List operations: opaque tokens, stable newest-first order, parent filters."""

import json

import pytest

from tests.conftest import INTERACTIONS_SCHEMA


def test_pages_are_stable_while_resources_are_created(personalize, unique):
    created = [personalize.create_schema(name=unique("ps"), schema=json.dumps(INTERACTIONS_SCHEMA))["schemaArn"]
               for _ in range(7)]
    first = personalize.list_schemas(maxResults=3)
    assert len(first["schemas"]) == 3 and first["nextToken"]
    newer = personalize.create_schema(name=unique("ps"), schema=json.dumps(INTERACTIONS_SCHEMA))["schemaArn"]
    seen = [s["schemaArn"] for s in first["schemas"]]
    token = first["nextToken"]
    while token:
        page = personalize.list_schemas(maxResults=3, nextToken=token)
        seen += [s["schemaArn"] for s in page["schemas"]]
        token = page.get("nextToken")
    assert newer not in seen  # created after the first page: not shifted into later pages
    assert len(seen) == len(set(seen))
    assert seen[:7] == list(reversed(created))  # newest first


def test_bad_and_foreign_tokens(personalize, unique):
    with pytest.raises(personalize.exceptions.InvalidNextTokenException) as e:
        personalize.list_dataset_groups(nextToken="garbage")
    assert e.value.response["Error"]["Message"] == "The token is not valid."
    for _ in range(2):
        personalize.create_schema(name=unique("ps"), schema=json.dumps(INTERACTIONS_SCHEMA))
    token = personalize.list_schemas(maxResults=1)["nextToken"]
    with pytest.raises(personalize.exceptions.InvalidNextTokenException):
        personalize.list_dataset_groups(nextToken=token)


def test_filters_page_under_capital_f(personalize, unique, group):
    arns = [personalize.create_filter(name=unique("f"), datasetGroupArn=group,
                                      filterExpression='EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")')[
        "filterArn"] for _ in range(3)]
    pages = list(personalize.get_paginator("list_filters").paginate(datasetGroupArn=group,
                                                                    PaginationConfig={"PageSize": 1}))
    assert sorted(f["filterArn"] for p in pages for f in p["Filters"]) == sorted(arns)
    assert len(pages) == 3
