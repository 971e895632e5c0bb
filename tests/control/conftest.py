"""The control-plane suite runs once per metadata store: SQLite (the embedded default) and a real
PostgreSQL server started for the run. Without PostgreSQL binaries the PostgreSQL half is skipped
locally, but fails under CI, where ``.ci/run`` installs them."""

from __future__ import annotations

import os

import pytest

from tests.postgres import postgres_or_skip
from tests.servers import reset_store, running_server

QUOTAS = {"OPENPERSONALIZE_MAX_DATASET_GROUPS": "10000", "OPENPERSONALIZE_MAX_PENDING_JOBS": "10000"}


@pytest.fixture(scope="session")
def postgres_url():
    if os.environ.get("OPENPERSONALIZE_TEST_STORE_URL"):
        yield os.environ["OPENPERSONALIZE_TEST_STORE_URL"]
        return
    with postgres_or_skip() as url:
        yield url


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def server(request, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp(f"server-{request.param}")
    store_url = None
    if request.param == "postgresql":
        store_url = request.getfixturevalue("postgres_url")
        reset_store(store_url)
    yield from running_server(data_dir, store_url=store_url, env=QUOTAS)


# Clients bound to this suite's parametrised server. The root fixtures of the same names are
# session-scoped and would otherwise stay bound to whichever server resolved them first.
@pytest.fixture(scope="session")
def personalize(server):
    from tests.conftest import make_client

    return make_client("personalize", server.endpoint)
