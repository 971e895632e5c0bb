"""The filter job against a real store: ACTIVE, or CREATE FAILED when the schemas changed since
CreateFilter in a way that breaks the expression."""

from __future__ import annotations

import json

import pytest

from openpersonalize.config import Settings
from openpersonalize.errors import InvalidInputException, LimitExceededException
from openpersonalize.filters.lifecycle import check_new_filter, group_schemas
from openpersonalize.jobs.runner import JobRunner
from openpersonalize.store.metadata import Store

GROUP = "arn:aws:personalize:us-east-1:000000000000:dataset-group/g"


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'metadata.db'}")
    store.insert(arn=GROUP, kind="dataset-group", name="g", doc={"name": "g"}, status="ACTIVE")
    yield store
    store.close()


def _add_dataset(store: Store, dataset_type: str, fields: list[dict]) -> None:
    record = {"ITEMS": "Items", "USERS": "Users"}[dataset_type]
    schema_arn = f"arn:aws:personalize:us-east-1:000000000000:schema/{record}"
    schema = json.dumps({"type": "record", "name": record, "fields": fields})
    store.insert(arn=schema_arn, kind="schema", name=record, doc={"schema": schema})
    store.insert(arn=f"arn:aws:personalize:us-east-1:000000000000:dataset/g/{dataset_type}", kind="dataset",
                 name=record, group_arn=GROUP, status="ACTIVE",
                 doc={"datasetType": dataset_type, "schemaArn": schema_arn})


def _create_and_run(store: Store, name: str, expression: str) -> dict:
    arn = f"arn:aws:personalize:us-east-1:000000000000:filter/{name}"
    store.insert(arn=arn, kind="filter", name=name, group_arn=GROUP, status="CREATE PENDING", job=True,
                 doc={"name": name, "datasetGroupArn": GROUP, "filterExpression": expression,
                      "status": "CREATE PENDING"})
    runner = JobRunner(store, Settings(), threads=0)
    assert runner.run_one()
    return store.get(arn).doc


def test_job_activates_a_valid_filter(store):
    _add_dataset(store, "ITEMS", [{"name": "ITEM_ID", "type": "string"},
                                  {"name": "GENRES", "type": "string", "categorical": True}])
    assert set(group_schemas(store, GROUP)) == {"ITEMS"}
    doc = _create_and_run(store, "ok", 'INCLUDE ItemID WHERE Items.GENRES IN ($G)')
    assert doc["status"] == "ACTIVE" and "failureReason" not in doc


def test_job_fails_when_a_dataset_created_since_lacks_the_field(store):
    expression = 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("buy") IF CurrentUser.AGE < 18'
    check_new_filter(store, GROUP, expression)  # no Users dataset yet: accepted
    _add_dataset(store, "USERS", [{"name": "USER_ID", "type": "string"},
                                  {"name": "TIER", "type": "string", "categorical": True}])
    with pytest.raises(InvalidInputException):
        check_new_filter(store, GROUP, expression)
    doc = _create_and_run(store, "late", expression)
    assert doc["status"] == "CREATE FAILED"
    assert doc["failureReason"] == ("Invalid filterExpression: 'CurrentUser.AGE' at position 59 (line 1, "
                                    "column 60): the Users schema has no field AGE (its fields: USER_ID, TIER).")


def test_group_field_quota_counts_live_filters_only(store):
    fields = [f"F{i}" for i in range(21)]
    _add_dataset(store, "ITEMS", [{"name": "ITEM_ID", "type": "string"}]
                 + [{"name": f, "type": ["null", "double"]} for f in fields])
    for i, chunk in enumerate((fields[:10], fields[10:20])):
        doc = _create_and_run(store, f"f{i}", "INCLUDE ItemID WHERE " + " AND ".join(f"Items.{f} > 0" for f in chunk))
        assert doc["status"] == "ACTIVE"
    with pytest.raises(LimitExceededException, match="would use 21 distinct dataset fields"):
        check_new_filter(store, GROUP, "INCLUDE ItemID WHERE Items.F20 > 0")
    store.update_doc("arn:aws:personalize:us-east-1:000000000000:filter/f1", {"status": "CREATE FAILED"})
    check_new_filter(store, GROUP, "INCLUDE ItemID WHERE Items.F20 > 0")
