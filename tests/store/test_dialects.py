"""The dialect a store URL selects, and the behaviour each one promises (store/dialects.py)."""

from __future__ import annotations

import pytest

from openpersonalize.store import event_tail
from openpersonalize.store.dialects import PostgresDialect, SQLiteDialect, dialect_for
from openpersonalize.store.metadata import Store


@pytest.mark.parametrize("url, dialect", [
    ("sqlite:///metadata.db", SQLiteDialect),
    ("sqlite+pysqlite:///:memory:", SQLiteDialect),
    ("postgresql+psycopg://op@127.0.0.1:5432/postgres", PostgresDialect),
    ("postgresql://op@db/personalize", PostgresDialect),
])
def test_the_url_selects_the_dialect(url, dialect):
    assert type(dialect_for(url)) is dialect


def test_other_backends_are_refused():
    with pytest.raises(ValueError, match="SQLite or PostgreSQL"):
        dialect_for("mysql+pymysql://u@h/db")


def test_the_store_follows_its_dialect(store, url):
    sqlite = url.startswith("sqlite")
    assert store.dialect.name == store.engine.dialect.name == ("sqlite" if sqlite else "postgresql")
    assert store.is_sqlite is sqlite  # the server recovers orphaned jobs only on an embedded store
    assert (store._write_lock is not None) is sqlite  # one writer per SQLite file
    # Rows commit in id order on SQLite only: the event tail looks back for late commits elsewhere.
    assert event_tail.commit_lag(store) == (0.0 if sqlite else event_tail.COMMIT_LAG_SECONDS)


def test_the_sqlite_connection_is_set_up_for_concurrent_use(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'metadata.db'}")
    try:
        with store.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    finally:
        store.close()
