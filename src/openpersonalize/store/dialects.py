"""What differs between the SQLite and the PostgreSQL metadata store, and nothing else.

The rest of ``store/`` is written once against SQLAlchemy Core and asks the store's dialect
object (``Store.dialect``, chosen from the URL by :func:`dialect_for`) wherever the two backends
need different handling:

- how the engine is created: SQLite needs WAL and a busy timeout to share a file between threads
  and processes; PostgreSQL needs a connection pool sized for the worker threads;
- whether this process must serialise its own writes: SQLite has one writer per file;
- how a transaction takes a named lock that serialises it against every other holder, in any
  process (``Store.serialised``, which keeps names and quotas true under concurrent creates);
- how a job is claimed exactly once: PostgreSQL locks the candidate row, SQLite relies on the
  conditional UPDATE that follows;
- how an insert ignores a duplicate key without aborting the transaction;
- whether rows commit in the order of their ids (the event tail reads forward by id).

A table column whose type differs per backend is declared here too (:data:`RECORD_ID`), because
table definitions are shared by every store in the process and cannot ask a store's dialect.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import BigInteger, Insert, Integer, Select, Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url

#: An autoincrementing 64-bit id. SQLite only autoincrements a column declared ``INTEGER PRIMARY
#: KEY`` (an alias of the rowid, 64 bits anyway); ``BIGINT`` there would never be filled in.
RECORD_ID = BigInteger().with_variant(Integer, "sqlite")


class Dialect:
    """The backend-specific behaviour of a store. Subclasses set the class attributes."""

    #: SQLAlchemy's name of the backend ("sqlite", "postgresql").
    name: str
    #: Whether writers in this process must take one lock: the backend allows a single writer,
    #: and waiting on our own lock is cheaper and fairer than retrying "database is locked".
    serialises_writes: bool
    #: Whether a row with a higher id is never visible before one with a lower id (the event
    #: tail then needs no look-back for records that committed late).
    commits_in_id_order: bool

    def create_engine(self, url: str) -> Engine:
        raise NotImplementedError

    def serialise(self, conn, key: str) -> None:
        """Run first in a transaction: make it wait for, and then exclude, every other transaction
        that took ``key``, in any process, until it ends. Its later statements see every row
        committed before it got the lock."""
        raise NotImplementedError

    def claim_candidates(self, stmt: Select) -> Select:
        """The SELECT that finds the next job to claim, as this backend must run it so that two
        claimers never both take the job (the caller then runs a conditional UPDATE)."""
        raise NotImplementedError

    def insert_ignoring_duplicates(self, table: Table) -> Insert:
        """An INSERT into ``table`` whose duplicate-key rows are skipped (rowcount 0) rather than
        raising, so that the rest of the transaction stays valid."""
        raise NotImplementedError


def _counted(stmt: Insert) -> Insert:
    # SQLAlchemy keeps an INSERT's rowcount only when asked: otherwise it releases the cursor
    # first, and psycopg then reports -1 where the caller needs 1 (added) or 0 (a duplicate).
    return stmt.execution_options(preserve_rowcount=True)


class SQLiteDialect(Dialect):
    name = "sqlite"
    serialises_writes = True
    # One writer at a time: a transaction takes its rowids and commits before the next one writes.
    commits_in_id_order = True

    def create_engine(self, url: str) -> Engine:
        # The pool hands a connection to whichever thread checks it out; the 30 s timeout lets
        # another process's write finish instead of failing at once.
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:
            # WAL: readers and the writer do not wait for each other. FULL: every commit is on
            # disk when it returns (PutEvents acknowledged is PutEvents kept, power loss
            # included); NORMAL would survive only a crash of the process. Measured through
            # boto3, the cost is within run-to-run noise (docs/security.md).
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine

    def serialise(self, conn, key: str) -> None:
        # One lock serves every key: the database's write lock, taken by the first statement
        # (the driver would begin a deferred transaction only at the first write, after the
        # reads the lock must cover). In WAL mode readers go on meanwhile; another process's
        # writer waits for it through the busy timeout. Within this process, Store's write lock
        # already queues the writers, so this is what holds against other processes.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    def claim_candidates(self, stmt: Select) -> Select:
        # No row locks in SQLite. In this process the write lock orders claimers; against other
        # processes the conditional UPDATE (rowcount 1 or nothing) is what makes a claim exclusive.
        return stmt

    def insert_ignoring_duplicates(self, table: Table) -> Insert:
        return _counted(sqlite.insert(table).on_conflict_do_nothing())


class PostgresDialect(Dialect):
    name = "postgresql"
    serialises_writes = False
    # Ids come from a sequence when the row is inserted; transactions commit in any order.
    commits_in_id_order = False

    def create_engine(self, url: str) -> Engine:
        # Pre-ping: a server restart or an idle timeout must not fail the next request. The pool
        # covers the request threads plus the job runner's threads of one process.
        # READ COMMITTED whatever the server's default: the store's row locks (a document read
        # FOR UPDATE, a deletion) wait for each other and then go on with the committed row;
        # at REPEATABLE READ the later of two would fail with a serialization error instead.
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20,
                             isolation_level="READ COMMITTED")

    def serialise(self, conn, key: str) -> None:
        # A transaction-scoped advisory lock on a 64-bit hash of the key (a collision between
        # two keys only serialises more than needed), released at commit or rollback, after the
        # commit is visible. At READ COMMITTED each later statement of the holder takes a new
        # snapshot, so it sees what the previous holder committed; it is set here because at
        # REPEATABLE READ or SERIALIZABLE (a server's default may be either) the snapshot would
        # be the one taken before the lock was granted.
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_id(key)})

    def claim_candidates(self, stmt: Select) -> Select:
        # Lock the row found; concurrent claimers skip it and take the next job instead of
        # queueing behind this transaction.
        return stmt.with_for_update(skip_locked=True)

    def insert_ignoring_duplicates(self, table: Table) -> Insert:
        # A failed INSERT would abort the whole PostgreSQL transaction; ON CONFLICT does not.
        return _counted(postgresql.insert(table).on_conflict_do_nothing())


def _lock_id(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


DIALECTS: dict[str, type[Dialect]] = {"sqlite": SQLiteDialect, "postgresql": PostgresDialect}


def dialect_for(url: str) -> Dialect:
    """The dialect of a SQLAlchemy URL (any driver: ``postgresql+psycopg://``, ``sqlite:///``)."""
    backend = make_url(url).get_backend_name()
    try:
        return DIALECTS[backend]()
    except KeyError:
        raise ValueError(f"Unsupported metadata store {backend!r}: use SQLite or PostgreSQL") from None
