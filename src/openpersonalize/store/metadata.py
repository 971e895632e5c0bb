"""The metadata store: every resource, its tags, and the job queue, in SQLite or PostgreSQL.

Each resource is one row: its ARN, kind, name, status, timestamps, the ARNs of the parents that
list operations filter on, and ``doc``, the resource as its Describe call returns it (JSON). Keeping
the whole description in one document means a new member of the model needs no migration, and the
list summaries are projections of it.

A rule that reads before it writes (a quota: count, then insert; one event tracker per dataset
group: look, then insert) runs inside :meth:`Store.serialised`: a transaction that holds a named
lock from its first statement, so that every writer holding the same lock, in this process or any
other, reads what the previous one committed and writes before the next one reads.

Jobs have a second row in ``jobs``: the queue the runner claims from. Claiming finds the oldest
claimable job and takes it with a conditional UPDATE, so that with several workers each job runs
exactly once; on PostgreSQL the row found is also locked (``FOR UPDATE SKIP LOCKED``) so that
concurrent claimers take different jobs.

The code here is the same for both backends; what differs (engine setup, write serialisation, the
named locks, the claim's row lock) is in ``dialects.py``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from ..inline import blocking
from ..signals import process_signals
from .dialects import Dialect, dialect_for

metadata = MetaData()

resources = Table(
    "resources",
    metadata,
    Column("arn", String(512), primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("name", String(256), nullable=False),
    Column("status", String(64)),
    Column("created", Float, nullable=False),
    Column("updated", Float, nullable=False),
    # The parents that list operations filter on (datasetGroupArn, solutionArn, ...).
    Column("group_arn", String(512)),
    Column("parent_arn", String(512)),
    Column("doc", Text, nullable=False),
    Column("tags", Text, nullable=False, default="{}"),
    Index("ix_resources_kind_created", "kind", "created"),
    Index("ix_resources_group", "group_arn"),
    Index("ix_resources_parent", "parent_arn"),
)

jobs = Table(
    "jobs",
    metadata,
    Column("arn", String(512), primary_key=True),
    Column("kind", String(64), nullable=False),
    # queued -> running -> done; "cancel" marks a running job that should stop.
    Column("state", String(16), nullable=False),
    Column("worker", String(128)),
    Column("heartbeat", Float),
    Column("attempts", Integer, nullable=False, default=0),
    Column("enqueued", Float, nullable=False),
    Column("progress", Text),
    Index("ix_jobs_state", "state", "enqueued"),
)


@dataclass
class Row:
    arn: str
    kind: str
    name: str
    status: str | None
    created: float
    updated: float
    group_arn: str | None
    parent_arn: str | None
    doc: dict
    tags: dict

    @classmethod
    def from_mapping(cls, m) -> "Row":
        return cls(m["arn"], m["kind"], m["name"], m["status"], m["created"], m["updated"],
                   m["group_arn"], m["parent_arn"], json.loads(m["doc"]), json.loads(m["tags"]))


class Conflict(Exception):
    """A row with the same ARN already exists."""


class Store:
    """Metadata access. Thread-safe: every method opens its own transaction."""

    def __init__(self, url: str):
        self.url = url
        self.dialect: Dialect = dialect_for(url)
        self.engine: Engine = self.dialect.create_engine(url)
        metadata.create_all(self.engine)
        # With one writer per database (SQLite), waiting on our own lock avoids "database is locked".
        self._write_lock = threading.RLock() if self.dialect.serialises_writes else None
        self._recent: dict[str, tuple[float, Row | None]] = {}  # get_recent's copies
        self._open = threading.local()  # .depth: this thread's open transactions; .wrote: rows written
        # The other API processes of this server drop their copies when a row write commits.
        self.signals = process_signals()

    @property
    def is_sqlite(self) -> bool:
        """An embedded SQLite store, which belongs to the one server process using it."""
        return self.dialect.name == "sqlite"

    def ping(self) -> None:
        """Raise unless the store answers a query (the readiness check)."""
        with self.connect() as conn:
            conn.execute(select(1)).scalar()

    def connect(self):
        """A connection for reads (``with store.connect() as c``)."""
        blocking("reading the store")
        return self.engine.connect()

    @contextmanager
    def transaction(self) -> Iterator:
        blocking("writing the store")
        depth = getattr(self._open, "depth", 0)
        self._open.depth = depth + 1
        try:
            if self._write_lock is None:
                with self.engine.begin() as conn:
                    yield conn
            else:
                with self._write_lock, self.engine.begin() as conn:
                    yield conn
            if depth == 0 and getattr(self._open, "wrote", False):
                self.signals.bump("rows")  # committed: now the others may read it
        finally:
            self._open.depth = depth
            if depth == 0:
                self._open.wrote = False

    def _row_written(self, arn: str) -> None:
        """A resource row changes: drop this process's copy, and tell the others at the commit."""
        self._recent.pop(arn, None)
        if getattr(self._open, "depth", 0):
            self._open.wrote = True
        else:  # a connection of the caller's own: committed by the caller, soon
            self.signals.bump("rows")

    @contextmanager
    def serialised(self, key: str) -> Iterator:
        """A transaction (``with store.serialised(key) as conn``) that holds the lock ``key`` from
        its first statement to its end. Holders of the same key, in this process or any other
        using the database, run one after another, and each one's reads on ``conn`` see every
        row its predecessors committed: a rule checked on ``conn`` still holds when its insert
        on ``conn`` commits. Reads from outside are not held up. Not to be nested in another
        transaction of this store.

        The control plane takes ``create:<kind>`` around the checks and the insert of each
        create, so that names and quotas hold under concurrency."""
        if getattr(self._open, "depth", 0):
            # On SQLite it would wait for the database lock that this thread's own open
            # transaction may hold.
            raise RuntimeError("Store.serialised() inside another transaction of the same store")
        with self.transaction() as conn:
            self.dialect.serialise(conn, key)
            yield conn

    def on(self, conn) -> "StoreReads":
        """The store's reads (``get``, ``query``, ``count``) on ``conn`` (on a connection of their
        own when None): for code that takes a store and must read inside a transaction."""
        return StoreReads(self, conn)

    def close(self) -> None:
        self.engine.dispose()

    # -- resources ------------------------------------------------------------------------

    def insert(self, *, arn: str, kind: str, name: str, doc: dict, status: str | None = None,
               group_arn: str | None = None, parent_arn: str | None = None,
               tags: dict | None = None, job: bool = False, conn=None) -> None:
        if conn is not None:
            self._row_written(arn)
        now = doc.get("creationDateTime") or time.time()
        values = dict(arn=arn, kind=kind, name=name, status=status, created=now, updated=now,
                      group_arn=group_arn, parent_arn=parent_arn, doc=json.dumps(doc),
                      tags=json.dumps(tags or {}))
        try:
            if conn is not None:
                conn.execute(insert(resources).values(**values))
                if job:
                    conn.execute(insert(jobs).values(arn=arn, kind=kind, state="queued", attempts=0,
                                                     enqueued=now))
                return
            with self.transaction() as c:
                self.insert(arn=arn, kind=kind, name=name, doc=doc, status=status,
                            group_arn=group_arn, parent_arn=parent_arn, tags=tags, job=job, conn=c)
        except IntegrityError as exc:
            raise Conflict(arn) from exc

    def get(self, arn: str, conn=None, *, for_update: bool = False) -> Row | None:
        """The row; with ``for_update`` (on ``conn``) locked until ``conn``'s transaction ends, so
        that a document read to be rewritten is not rewritten by another transaction meanwhile."""
        stmt = select(resources).where(resources.c.arn == arn)
        if for_update:
            stmt = stmt.with_for_update()
        if conn is not None:
            m = conn.execute(stmt).mappings().first()
        else:
            with self.connect() as c:
                m = c.execute(stmt).mappings().first()
        return Row.from_mapping(m) if m else None

    def get_recent(self, arn: str, max_age: float) -> Row | None:
        """``get``, answered from this process's copy while it is at most ``max_age`` seconds old.
        Writes through this Store drop the copy at once; a change made by another process shows
        up within ``max_age``. For hot read paths (a real-time request reads its campaign and
        filter rows); the returned row must not be modified."""
        if self.signals.changed("rows"):  # another process of this server wrote rows
            self._recent.clear()
        now = time.monotonic()
        hit = self._recent.get(arn)
        if hit is not None and now - hit[0] <= max_age:
            return hit[1]
        row = self.get(arn)
        if len(self._recent) > 10_000:
            self._recent.clear()
        self._recent[arn] = (now, row)
        return row

    def update_doc(self, arn: str, changes: dict, *, conn=None, expect_status: tuple | None = None) -> Row | None:
        """Merge ``changes`` into the document (a value of None removes the member).

        ``status`` in ``changes`` also updates the status column. With ``expect_status`` the update
        happens only while the status is one of those values; returns the new row or None.
        """
        if conn is None:
            # The read below and the write after it hold against other processes too (serve's
            # API processes, workers): a serialised transaction on this ARN. Nested, the outer
            # transaction decides.
            nested = getattr(self._open, "depth", 0)
            with (self.transaction() if nested else self.serialised("update:" + arn)) as c:
                return self.update_doc(arn, changes, conn=c, expect_status=expect_status)
        self._row_written(arn)
        row = self.get(arn, conn=conn, for_update=True)
        if row is None or (expect_status is not None and row.status not in expect_status):
            return None
        now = time.time()
        doc = dict(row.doc)
        for key, value in changes.items():
            if value is None:
                doc.pop(key, None)
            else:
                doc[key] = value
        doc["lastUpdatedDateTime"] = now
        status = changes.get("status", row.status)
        if status != row.status:  # the console shows each resource's transitions
            doc["_statusHistory"] = [*(row.doc.get("_statusHistory") or [{"status": row.status, "at": row.created}]),
                                     {"status": status, "at": now}][-HISTORY_LENGTH:]
        conn.execute(update(resources).where(resources.c.arn == arn)
                     .values(doc=json.dumps(doc), status=status, updated=now))
        row.doc, row.status, row.updated = doc, status, now
        return row

    def set_tags(self, arn: str, tags: dict, conn=None) -> None:
        if conn is None:
            with self.transaction() as c:
                return self.set_tags(arn, tags, conn=c)
        conn.execute(update(resources).where(resources.c.arn == arn).values(tags=json.dumps(tags)))

    def delete(self, arn: str, conn=None) -> None:
        if conn is None:
            with self.transaction() as c:
                return self.delete(arn, conn=c)
        self._row_written(arn)
        conn.execute(delete(resources).where(resources.c.arn == arn))
        conn.execute(delete(jobs).where(jobs.c.arn == arn))

    def query(self, kind: str | tuple[str, ...], *, group_arn: str | None = None,
              parent_arn: str | None = None, statuses: tuple[str, ...] | None = None,
              after: tuple[float, str] | None = None, limit: int | None = None, conn=None) -> list[Row]:
        """Resources of a kind, newest first (ties broken by ARN), optionally after a position."""
        stmt = _matching(select(resources), kind, group_arn, parent_arn, statuses)
        if after is not None:
            created, arn = after
            stmt = stmt.where(or_(resources.c.created < created,
                                  and_(resources.c.created == created, resources.c.arn > arn)))
        stmt = stmt.order_by(resources.c.created.desc(), resources.c.arn.asc())
        if limit is not None:
            stmt = stmt.limit(limit)
        if conn is not None:
            return [Row.from_mapping(m) for m in conn.execute(stmt).mappings()]
        with self.connect() as c:
            return [Row.from_mapping(m) for m in c.execute(stmt).mappings()]

    def count(self, kind: str | tuple[str, ...], *, group_arn: str | None = None,
              parent_arn: str | None = None, statuses: tuple[str, ...] | None = None, conn=None) -> int:
        """How many resources ``query`` would return with these filters."""
        stmt = _matching(select(func.count()).select_from(resources), kind, group_arn, parent_arn, statuses)
        if conn is not None:
            return int(conn.execute(stmt).scalar_one())
        with self.connect() as c:
            return int(c.execute(stmt).scalar_one())

    # -- jobs -----------------------------------------------------------------------------

    def claim_job(self, worker: str, lease_seconds: float, max_attempts: int,
                  exclude_kinds: tuple[str, ...] = ()) -> tuple[str, str, int] | None:
        """Take the oldest queued job (or one whose worker stopped beating) for ``worker``.

        Returns ``(arn, kind, attempt)`` or None. A job found abandoned after ``max_attempts``
        starts is returned with its attempt count so the runner can fail it with a reason.
        """
        now = time.time()
        stale = now - lease_seconds
        claimable = or_(jobs.c.state == "queued",
                        and_(jobs.c.state.in_(("running", "cancel")), jobs.c.heartbeat < stale))
        with self.transaction() as conn:
            stmt = select(jobs.c.arn, jobs.c.kind, jobs.c.attempts).where(claimable)
            if exclude_kinds:
                stmt = stmt.where(jobs.c.kind.not_in(exclude_kinds))
            stmt = self.dialect.claim_candidates(stmt.order_by(jobs.c.enqueued.asc()).limit(1))
            found = conn.execute(stmt).first()
            if found is None:
                return None
            arn, kind, attempts = found
            result = conn.execute(update(jobs).where(and_(jobs.c.arn == arn, claimable))
                                  .values(state="running", worker=worker, heartbeat=now,
                                          attempts=attempts + 1))
            if result.rowcount != 1:
                return None
            return arn, kind, attempts + 1

    def heartbeat(self, arn: str, worker: str, progress: dict | None = None) -> str | None:
        """Renew the lease; returns the job state (``cancel`` asks the job to stop) or None if lost."""
        with self.transaction() as conn:
            values = {"heartbeat": time.time()}
            if progress is not None:
                values["progress"] = json.dumps(progress)
            result = conn.execute(update(jobs).where(and_(jobs.c.arn == arn, jobs.c.worker == worker))
                                  .values(**values))
            if result.rowcount != 1:
                return None
            return conn.execute(select(jobs.c.state).where(jobs.c.arn == arn)).scalar()

    def finish_job(self, arn: str, conn, worker: str | None = None) -> bool:
        """Mark a job done; with ``worker``, only if that worker still holds it (a worker whose
        lease expired must not overwrite the outcome of the worker that took the job over)."""
        stmt = update(jobs).where(jobs.c.arn == arn)
        if worker is not None:
            stmt = stmt.where(and_(jobs.c.worker == worker, jobs.c.state.in_(("running", "cancel"))))
        return conn.execute(stmt.values(state="done")).rowcount == 1

    def record_outcome(self, arn: str, changes: dict, worker: str) -> bool:
        """Finish ``worker``'s job and merge ``changes`` into its resource's document, in one
        transaction; False (and nothing written) when the worker no longer holds the job.

        Lock order: ``update:<arn>`` (as every other rewrite of the document), the resource's
        row, then the job's row, as deletion and StopSolutionVersion take them. Finishing the job
        first deadlocked against a DeleteFilter racing the filter's own activation on
        PostgreSQL, and one of the two failed."""
        with self.serialised("update:" + arn) as conn:
            self.get(arn, conn=conn, for_update=True)  # the resource's row first: see above
            if not self.finish_job(arn, conn, worker=worker):
                return False
            self.update_doc(arn, changes, conn=conn)
            return True

    def job_state(self, arn: str, conn=None) -> dict | None:
        stmt = select(jobs).where(jobs.c.arn == arn)
        if conn is not None:
            m = conn.execute(stmt).mappings().first()
        else:
            with self.connect() as c:
                m = c.execute(stmt).mappings().first()
        if m is None:
            return None
        out = dict(m)
        out["progress"] = json.loads(out["progress"]) if out["progress"] else None
        return out

    def request_cancel(self, arn: str, conn) -> None:
        conn.execute(update(jobs).where(and_(jobs.c.arn == arn, jobs.c.state == "running"))
                     .values(state="cancel"))
        conn.execute(update(jobs).where(and_(jobs.c.arn == arn, jobs.c.state == "queued"))
                     .values(state="done"))

    def orphan_running_jobs(self) -> int:
        """Make every running job claimable at once (used when one process owns the store)."""
        with self.transaction() as conn:
            result = conn.execute(update(jobs).where(jobs.c.state.in_(("running", "cancel")))
                                  .values(heartbeat=0.0))
            return result.rowcount


HISTORY_LENGTH = 50  # status transitions kept per resource


def _matching(stmt, kind: str | tuple[str, ...], group_arn: str | None, parent_arn: str | None,
              statuses: tuple[str, ...] | None):
    kinds = (kind,) if isinstance(kind, str) else kind
    stmt = stmt.where(resources.c.kind.in_(kinds))
    if group_arn is not None:
        stmt = stmt.where(resources.c.group_arn == group_arn)
    if parent_arn is not None:
        stmt = stmt.where(resources.c.parent_arn == parent_arn)
    if statuses is not None:
        stmt = stmt.where(resources.c.status.in_(statuses))
    return stmt


class StoreReads:
    """A store's reads on one connection (:meth:`Store.on`)."""

    def __init__(self, store: Store, conn):
        self.store, self.conn = store, conn

    def get(self, arn: str) -> Row | None:
        return self.store.get(arn, conn=self.conn)

    def query(self, kind, **filters) -> list[Row]:
        return self.store.query(kind, conn=self.conn, **filters)

    def count(self, kind, **filters) -> int:
        return self.store.count(kind, conn=self.conn, **filters)
