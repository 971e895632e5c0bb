"""Shared fixtures: a real server on 127.0.0.1 in its own process, and real boto3 clients.

``OPENPERSONALIZE_TEST_STORE_URL`` points the whole suite at another metadata store (CI runs it
once more against PostgreSQL); by default each server gets its own SQLite file.
"""

from __future__ import annotations

import json
import os
import uuid

import boto3
import pytest
from botocore.config import Config

from tests.servers import reset_store, running_server

CREDENTIALS = dict(region_name="us-east-1", aws_access_key_id="AKIDTEST", aws_secret_access_key="secret")
# No retries: a test must see the first answer, and never wait on backoff.
CLIENT_CONFIG = Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=60)  # no retries


@pytest.fixture(scope="session")
def store_url() -> str | None:
    return os.environ.get("OPENPERSONALIZE_TEST_STORE_URL") or None


@pytest.fixture(scope="session")
def server(tmp_path_factory, store_url):
    """One server for the session, with raised quotas so tests do not trip over each other."""
    data_dir = tmp_path_factory.mktemp("server")
    if store_url:
        reset_store(store_url)
    yield from running_server(data_dir, store_url=store_url,
                              env={"OPENPERSONALIZE_MAX_DATASET_GROUPS": "10000",
                              "OPENPERSONALIZE_MAX_PENDING_JOBS": "10000"})


def make_client(service: str, endpoint: str, **overrides):
    kwargs = {**CREDENTIALS, **overrides}
    return boto3.client(service, endpoint_url=endpoint, config=CLIENT_CONFIG, **kwargs)


@pytest.fixture(scope="session")
def personalize(server):
    return make_client("personalize", server.endpoint)


@pytest.fixture(scope="session")
def runtime(server):
    return make_client("personalize-runtime", server.endpoint)


@pytest.fixture(scope="session")
def events(server):
    return make_client("personalize-events", server.endpoint)


@pytest.fixture
def unique():
    """A factory of names no other test uses (names are unique per account and region)."""
    return lambda prefix="t": f"{prefix}-{uuid.uuid4().hex[:10]}"


INTERACTIONS_SCHEMA = {
    "type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema",
    "fields": [
        {"name": "USER_ID", "type": "string"},
        {"name": "ITEM_ID", "type": "string"},
        {"name": "TIMESTAMP", "type": "long"},
        {"name": "EVENT_TYPE", "type": "string"},
        {"name": "EVENT_VALUE", "type": ["null", "float"]},
    ],
    "version": "1.0",
}
ITEMS_SCHEMA = {
    "type": "record", "name": "Items", "namespace": "com.amazonaws.personalize.schema",
    "fields": [
        {"name": "ITEM_ID", "type": "string"},
        {"name": "GENRES", "type": ["null", "string"], "categorical": True},
        {"name": "PRICE", "type": ["null", "float"]},
        {"name": "CREATION_TIMESTAMP", "type": "long"},
    ],
    "version": "1.0",
}
USERS_SCHEMA = {
    "type": "record", "name": "Users", "namespace": "com.amazonaws.personalize.schema",
    "fields": [
        {"name": "USER_ID", "type": "string"},
        {"name": "TIER", "type": "string", "categorical": True},
    ],
    "version": "1.0",
}


@pytest.fixture
def group(personalize, unique):
    """A fresh dataset group (custom domain)."""
    arn = personalize.create_dataset_group(name=unique("dg"))["datasetGroupArn"]
    return arn


@pytest.fixture
def interactions_dataset(personalize, unique, group):
    schema = personalize.create_schema(name=unique("s"), schema=json.dumps(INTERACTIONS_SCHEMA))["schemaArn"]
    return personalize.create_dataset(name=unique("d"), schemaArn=schema, datasetGroupArn=group,
                                      datasetType="Interactions")["datasetArn"]


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory):
    """A real S3-compatible server (SeaweedFS) on loopback for the session."""
    import shutil
    import tempfile

    from tests.servers import SeaweedFS

    # Its own temporary folder: pytest may prune basetemp folders of a concurrent run.
    folder = tempfile.mkdtemp(prefix="seaweedfs-")
    weed = SeaweedFS(folder)
    weed.start()
    yield weed
    weed.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory, seaweedfs):
    """A second server whose s3:// paths go to SeaweedFS, configured through the standard
    AWS_ENDPOINT_URL_S3 / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY variables. It keeps its own
    SQLite store: sharing the session's store would let each server's workers run the other's jobs."""
    data_dir = tmp_path_factory.mktemp("s3server")
    env = {"OPENPERSONALIZE_MAX_DATASET_GROUPS": "10000", "OPENPERSONALIZE_MAX_PENDING_JOBS": "10000",
           "OPENPERSONALIZE_STORE_URL": f"sqlite:///{data_dir / 'metadata.db'}", **seaweedfs.env()}
    yield from running_server(data_dir, env=env)
