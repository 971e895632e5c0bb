"""Fixtures of the data-layer tests."""

from __future__ import annotations

import json

import pytest

from tests.conftest import INTERACTIONS_SCHEMA, ITEMS_SCHEMA, USERS_SCHEMA, make_client


# Clients bound to this suite's server. The root fixtures of the same names are session-scoped and
# would stay bound to whichever server first resolved them (tests/control parametrises ``server``).
@pytest.fixture(scope="session")
def personalize(server):
    return make_client("personalize", server.endpoint)


@pytest.fixture(scope="session")
def events(server):
    return make_client("personalize-events", server.endpoint)


def _dataset(personalize, unique, group, schema: dict, dataset_type: str) -> str:
    schema_arn = personalize.create_schema(name=unique("s"), schema=json.dumps(schema))["schemaArn"]
    return personalize.create_dataset(name=unique("d"), schemaArn=schema_arn, datasetGroupArn=group,
                                      datasetType=dataset_type)["datasetArn"]


@pytest.fixture
def items_dataset(personalize, unique, group):
    return _dataset(personalize, unique, group, ITEMS_SCHEMA, "Items")


@pytest.fixture
def users_dataset(personalize, unique, group):
    return _dataset(personalize, unique, group, USERS_SCHEMA, "Users")


@pytest.fixture
def tracking_id(personalize, unique, group, interactions_dataset):
    return personalize.create_event_tracker(name=unique("tr"), datasetGroupArn=group)["trackingId"]
