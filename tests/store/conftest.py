"""The store conformance suite runs every test once per backend: SQLite on a file of the test's
own, and a real PostgreSQL server started for the run. Without PostgreSQL binaries the PostgreSQL
half is skipped locally, but fails under CI, where ``.ci/run`` installs them.

Each PostgreSQL test gets a schema of its own (first on the connection's ``search_path``), so the
tests share one server, and may run against a database that other suites use
(``OPENPERSONALIZE_TEST_STORE_URL``), without seeing each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import openpersonalize.store.records  # noqa: F401  (its tables join the metadata the Store creates)
from openpersonalize.store.metadata import Store
from tests.postgres import postgres_or_skip


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A PostgreSQL server for the whole run: the one CI points the suites at, or a fresh one."""
    given = os.environ.get("OPENPERSONALIZE_TEST_STORE_URL", "")
    if given.startswith("postgresql"):
        yield given
        return
    with postgres_or_skip() as url:
        yield url


def _fresh_schema(server_url: str) -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = make_url(server_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> Iterator[str]:
    """The URL of an empty store database of the parametrised backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'metadata.db'}"
        return
    yield from _fresh_schema(request.getfixturevalue("postgres_server_url"))


@pytest.fixture
def open_store(url) -> Iterator[Callable[[], Store]]:
    """Opens another Store on the test's database, as another process would; all are closed after."""
    opened: list[Store] = []

    def make() -> Store:
        opened.append(Store(url))
        return opened[-1]

    yield make
    for s in opened:
        s.close()


@pytest.fixture
def store(open_store) -> Store:
    return open_store()
