"""Dataset rows kept in the SQL store: real-time records, and the list of each dataset's bulk files.

``put_records``: one row per record accepted by PutEvents, PutUsers, PutItems, PutActions or
PutActionInteractions. It is written in the request's transaction, so an accepted record is
durable when the call returns. ``row`` holds the record as schema column -> typed value (JSON).
``user_id`` is the real user (NULL for anonymous events, whose USER_ID is their session id), so
that data deletion jobs find every record of a user. A repeated ``eventId`` in one dataset is
ignored (a unique index), which makes client retries harmless.

``dataset_files``: the Parquet files that make up a dataset's bulk rows, as one JSON list with a
generation number. Jobs write new files under fresh names, then publish them by swapping this list
with a compare-and-set on the generation, so readers see either the old or the new data set,
never a mix, and a failed job leaves the dataset exactly as it was.

A ``Records`` also caches what real-time requests read (users' recent events, each dataset's
newest record id, the event tails of event_tail.py). A server process keeps one for its requests
(``ProcessState.records``, state.py), which drops a dataset's entries when it is deleted
(``forget_cached``); a job's accessor never reads its caches.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from .dialects import RECORD_ID
from .event_tail import TAIL_PER_USER, EventTails
from .metadata import Store, metadata

put_records = Table(
    "put_records",
    metadata,
    Column("id", RECORD_ID, primary_key=True, autoincrement=True),
    Column("dataset_arn", String(512), nullable=False),
    Column("entity_id", String(256)),
    Column("user_id", String(256)),
    Column("session_id", String(256)),
    Column("event_id", String(256)),
    Column("created", Float, nullable=False),
    Column("row", Text, nullable=False),
    Index("ix_put_records_dataset", "dataset_arn", "id"),
    Index("ix_put_records_user", "dataset_arn", "user_id"),
    Index("ux_put_records_event", "dataset_arn", "event_id", unique=True),
)

dataset_files = Table(
    "dataset_files",
    metadata,
    Column("dataset_arn", String(512), primary_key=True),
    Column("generation", Integer, nullable=False),
    Column("parts", Text, nullable=False),
    Column("updated", Float, nullable=False),
)


@dataclass
class PutRecord:
    """One real-time record to store."""

    row: dict
    entity_id: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    event_id: str | None = None


@dataclass
class BulkState:
    """A dataset's bulk files: ``parts`` are dicts with ``file`` (relative to the data root),
    ``rows``, ``batch`` (the import that wrote it; later batches replace earlier rows with the
    same ID in Items, Users and Actions) and ``time`` (when it was published)."""

    generation: int
    parts: list[dict]


class Records:
    """Access to ``put_records`` and ``dataset_files`` through a metadata ``Store``, with the
    caches of real-time reads (records appended or deleted through this object show at once)."""

    def __init__(self, store: Store):
        self.store = store
        metadata.create_all(store.engine, tables=[put_records, dataset_files], checkfirst=True)
        self.tails = EventTails(store, put_records)
        self._recent_events: dict[tuple[str, str], dict] = {}  # (dataset, user) -> (after, limit) -> (time, rows)
        self._newest_record: dict[str, tuple[float, int]] = {}  # dataset -> (time, newest id)

    # -- real-time records ----------------------------------------------------------------

    def append(self, dataset_arn: str, records: Iterable[PutRecord]) -> int:
        """Store records in one transaction; returns how many were new (repeated eventIds are not)."""
        records = list(records)
        now = time.time()
        values = [dict(dataset_arn=dataset_arn, entity_id=r.entity_id, user_id=r.user_id,
                       session_id=r.session_id, event_id=r.event_id, created=now,
                       row=json.dumps(r.row, separators=(",", ":"))) for r in records]
        if not values:
            return 0
        stmt = self.store.dialect.insert_ignoring_duplicates(put_records)
        added = 0
        with self.store.transaction() as conn:
            for v in values:  # one statement per row: rowcount tells which were duplicates
                try:
                    added += conn.execute(stmt, v).rowcount
                except IntegrityError:
                    pass
        self._forget_recent(dataset_arn, records)  # after the commit: a read now sees the records
        return added

    def _forget_recent(self, dataset_arn: str, records: list[PutRecord]) -> None:
        """This process's copies of recent events that the new records make out of date."""
        cache = self._recent_events
        if cache:
            for r in records:
                for who in {r.user_id, r.session_id, r.entity_id} - {None}:
                    cache.pop((dataset_arn, who), None)
        self._newest_record.pop(dataset_arn, None)
        self.tails.changed(dataset_arn)  # the next read takes these records in

    def forget_cached(self, dataset_arn: str) -> None:
        """Drop everything cached about a dataset (it was deleted, or its schema changed)."""
        for key in [k for k in self._recent_events if k[0] == dataset_arn]:
            self._recent_events.pop(key, None)
        self._newest_record.pop(dataset_arn, None)
        self.tails.changed(dataset_arn, deleted=True)  # its tails go, and one being built is not kept

    def recent(self, dataset_arn: str, after: int, user: str, limit: int, max_age: float = 0.0) -> list[dict]:
        """The newest ``limit`` rows of ``user`` (or of the session ``user``, where no user id was
        given) after record id ``after``, oldest first. With ``max_age``, an answer up to that many
        seconds old may be reused, from the dataset's tail in memory (event_tail.py) while it is
        small enough; records appended through this Store, or through another API process of the
        same server (signals.py), show at once."""
        signals = self.tails.signals
        deleted, appended = signals.changed("deletions"), signals.changed("records")
        if deleted or appended:  # by another API process of this server: nothing cached holds
            self._recent_events.clear()
            self._newest_record.clear()
            if deleted:
                self.tails.drop()
            else:
                self.tails.stale()
        if max_age > 0 and limit <= TAIL_PER_USER:
            tail = self.tails.get(dataset_arn, after, max_age)
            if tail is not None:
                return tail.recent(user, limit)
        return self._recent_of_user(dataset_arn, after, user, limit, max_age)

    def _recent_of_user(self, dataset_arn: str, after: int, user: str, limit: int, max_age: float) -> list[dict]:
        cache = self._recent_events
        now = time.monotonic()
        if max_age > 0:
            hit = cache.get((dataset_arn, user), {}).get((after, limit))
            if hit is not None and now - hit[0] <= max_age:
                return hit[1]
            # Nothing recorded after ``after`` at all (a model trained on everything so far): no
            # per-user query. The dataset's newest id is itself reused for ``max_age``.
            newest = self._newest_record
            seen = newest.get(dataset_arn)
            if seen is None or now - seen[0] > max_age:
                seen = newest[dataset_arn] = (now, self.last_id(dataset_arn))
            if seen[1] <= after:
                return []
        with self.store.connect() as conn:
            rows = [json.loads(r[0]) for r in conn.execute(_RECENT, {"dataset": dataset_arn, "after": after,
                                                                     "user": user, "limit": limit})][::-1]
        if max_age > 0:
            if len(cache) > 50_000:
                cache.clear()
            cache.setdefault((dataset_arn, user), {})[(after, limit)] = (now, rows)
        return rows

    def iter_rows(self, dataset_arn: str, batch: int = 5000, until_id: int | None = None, after_id: int = 0
                  ) -> Iterator[list[tuple[int, float, str | None, str | None, dict]]]:
        """Batches of ``(id, created, user_id, session_id, row)`` in insertion order.

        Paged by id, so memory stays bounded and rows added while reading are not half-seen
        (``until_id`` fixes the end; default: the newest id when reading starts).
        """
        if until_id is None:
            until_id = self.last_id(dataset_arn)
        after = after_id
        while True:
            stmt = (select(put_records.c.id, put_records.c.created, put_records.c.user_id,
                           put_records.c.session_id, put_records.c.row)
                    .where(and_(put_records.c.dataset_arn == dataset_arn, put_records.c.id > after,
                                put_records.c.id <= until_id))
                    .order_by(put_records.c.id).limit(batch))
            with self.store.connect() as conn:
                rows = conn.execute(stmt).all()
            if not rows:
                return
            yield [(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]
            after = rows[-1][0]

    def last_id(self, dataset_arn: str) -> int:
        with self.store.connect() as conn:
            value = conn.execute(select(func.max(put_records.c.id))
                                 .where(put_records.c.dataset_arn == dataset_arn)).scalar()
        return int(value or 0)

    def count(self, dataset_arn: str) -> int:
        with self.store.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(put_records)
                                    .where(put_records.c.dataset_arn == dataset_arn)).scalar() or 0)

    def delete_users(self, dataset_arn: str, user_ids: list[str]) -> int:
        """Delete the records of these users, and the anonymous records of their sessions."""
        deleted = 0
        with self.store.transaction() as conn:
            for start in range(0, len(user_ids), 500):
                chunk = user_ids[start:start + 500]
                sessions = select(put_records.c.session_id).where(and_(
                    put_records.c.dataset_arn == dataset_arn, put_records.c.user_id.in_(chunk),
                    put_records.c.session_id.is_not(None))).distinct()
                session_ids = [s for (s,) in conn.execute(sessions)]
                deleted += conn.execute(delete(put_records).where(and_(
                    put_records.c.dataset_arn == dataset_arn, put_records.c.user_id.in_(chunk)))).rowcount
                for s in range(0, len(session_ids), 500):
                    deleted += conn.execute(delete(put_records).where(and_(
                        put_records.c.dataset_arn == dataset_arn, put_records.c.user_id.is_(None),
                        put_records.c.session_id.in_(session_ids[s:s + 500])))).rowcount
        self.tails.changed(dataset_arn, deleted=True)  # after the commit: a tail read now leaves them out
        return deleted

    def session_aliases(self, dataset_arn: str) -> dict[str, str]:
        """sessionId -> userId, from events that carried both (the latest user wins)."""
        stmt = (select(put_records.c.session_id, put_records.c.user_id)
                .where(and_(put_records.c.dataset_arn == dataset_arn,
                            put_records.c.session_id.is_not(None), put_records.c.user_id.is_not(None)))
                .order_by(put_records.c.id))
        with self.store.connect() as conn:
            return {s: u for s, u in conn.execute(stmt)}

    # -- bulk files -------------------------------------------------------------------------

    def bulk_state(self, dataset_arn: str) -> BulkState:
        with self.store.connect() as conn:
            row = conn.execute(select(dataset_files.c.generation, dataset_files.c.parts)
                               .where(dataset_files.c.dataset_arn == dataset_arn)).first()
        if row is None:
            return BulkState(0, [])
        return BulkState(int(row[0]), json.loads(row[1]))

    def publish(self, dataset_arn: str, expected_generation: int, parts: list[dict]) -> bool:
        """Replace the file list if nobody else published since ``expected_generation``."""
        now = time.time()
        with self.store.transaction() as conn:
            if expected_generation == 0:
                try:
                    conn.execute(insert(dataset_files).values(
                        dataset_arn=dataset_arn, generation=1, parts=json.dumps(parts), updated=now))
                    return True
                except IntegrityError:
                    return False
            result = conn.execute(update(dataset_files).where(and_(
                dataset_files.c.dataset_arn == dataset_arn,
                dataset_files.c.generation == expected_generation)).values(
                generation=expected_generation + 1, parts=json.dumps(parts), updated=now))
            return result.rowcount == 1

    def forget_dataset(self, dataset_arn: str) -> list[dict]:
        """Remove every record and the file list of a dataset; returns the files to delete."""
        state = self.bulk_state(dataset_arn)
        with self.store.transaction() as conn:
            conn.execute(delete(put_records).where(put_records.c.dataset_arn == dataset_arn))
            conn.execute(delete(dataset_files).where(dataset_files.c.dataset_arn == dataset_arn))
        return state.parts


def _recent_statement():
    # Built once: constructing a statement costs more than running it on an indexed table.
    t = put_records.c
    user = bindparam("user")
    return (select(t.row).where(and_(t.dataset_arn == bindparam("dataset"), t.id > bindparam("after"),
                                     or_(t.user_id == user, and_(t.user_id.is_(None), t.session_id == user))))
            .order_by(t.id.desc()).limit(bindparam("limit")))


_RECENT = _recent_statement()
