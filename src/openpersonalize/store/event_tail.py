"""Users' newest real-time events, kept in memory for real-time requests.

A request scores a user on the events recorded after its model's data (``after``, a record id).
Rather than query the store per request, each process keeps (in the records accessor its
``ProcessState`` owns, state.py), per dataset and ``after``, the rows
recorded since then (an :class:`EventTail`: the newest ``TAIL_PER_USER`` per user, anonymous rows
by session), reads it forward at most every ``max_age`` seconds, and rebuilds it every
``REBUILD_SECONDS`` (deletions made by other processes show then) in the background of the
current one. With more than ``TAIL_ROWS`` rows after ``after``, there is no tail (callers query
per user).

Record ids come from one sequence; on PostgreSQL a transaction may commit after a later id was
already read. Reading forward therefore re-reads the ids of the last ``COMMIT_LAG_SECONDS`` of
records (by their ``created`` time) and takes those it has not seen. SQLite commits in id order.
"""

from __future__ import annotations

import json
import logging
import threading
import time

from sqlalchemy import and_, func, select

from ..inline import blocking
from ..signals import process_signals

log = logging.getLogger("openpersonalize.store")

TAIL_ROWS = 200_000
TAIL_PER_USER = 100
REBUILD_SECONDS = 60.0
COMMIT_LAG_SECONDS = 5.0
MAX_TAILS = 16
PAGE = 10_000


def commit_lag(store) -> float:
    """How late (seconds after its ``created`` time) a record may commit: none where the store's
    backend commits in id order (SQLite); PostgreSQL transactions may finish in any order."""
    return 0.0 if store.dialect.commits_in_id_order else COMMIT_LAG_SECONDS


class EventTail:
    """The rows after record id ``after`` of one dataset. Requests read ``rows`` without a lock:
    each user's list is replaced, never changed in place."""

    def __init__(self, after: int, lag: float):
        self.after = after
        self.lag = lag
        self.floor = after  # every row with an id up to here is taken (or will never commit)
        self.taken: dict[int, float] = {}  # ids above ``floor`` already taken -> created
        self.built = time.monotonic()
        self.synced = float("-inf")
        self.used = self.built
        self.rebuilding = False
        self.generation = 0  # bumped by appends through this process
        self.rows: dict[str, list[tuple[int, dict]]] = {}  # by user (or session): (id, row), id order
        self.size = 0
        self.overflow = False
        self.lock = threading.Lock()

    def take(self, rows) -> None:
        """Add rows ``(id, user_id, session_id, created, row JSON)`` (in id order) not taken yet."""
        added: dict[str, list[tuple[int, dict]]] = {}
        for rid, user_id, session_id, created, row in rows:
            if rid <= self.floor or rid in self.taken:
                continue
            self.taken[rid] = created
            self.size += 1
            who = user_id if user_id is not None else session_id
            if who is not None:
                added.setdefault(who, []).append((rid, json.loads(row)))
        if self.size > TAIL_ROWS:
            self.overflow = True
            return
        for who, new in added.items():
            old = self.rows.get(who, [])
            merged = old + new
            if old and new[0][0] < old[-1][0]:  # a record that committed late
                merged.sort(key=lambda r: r[0])
            self.rows[who] = merged[-TAIL_PER_USER:]

    def recent(self, who: str, limit: int) -> list[dict]:
        return [row for _, row in self.rows.get(who, [])[-limit:]]

    def settle(self) -> None:
        """Raise ``floor`` past the ids whose rows are older than the commit lag."""
        if not self.taken:
            return
        if self.lag <= 0:
            self.floor, self.taken = max(self.floor, max(self.taken)), {}
            return
        horizon = max(self.taken.values()) - 2 * self.lag
        settled = [rid for rid, created in self.taken.items() if created < horizon]
        if settled:
            self.floor = max(self.floor, max(settled))
            self.taken = {rid: c for rid, c in self.taken.items() if rid > self.floor}


class EventTails:
    """The tails of one store, by (dataset, after): at most ``MAX_TAILS`` (the least recently used
    go first); a dataset's all go when its records are deleted through this process."""

    def __init__(self, store, table):
        self.store, self.table = store, table
        self.tails: dict[tuple[str, int], EventTail] = {}
        self.lock = threading.Lock()
        self.first_builds: dict[tuple[str, int], threading.Lock] = {}
        self.deletions: dict[str, int] = {}  # per dataset, deletions made through this process
        self.deleted_elsewhere = 0  # deletions other API processes of this server made
        self.signals = process_signals()  # the other API processes of this server

    def get(self, dataset_arn: str, after: int, max_age: float) -> EventTail | None:
        """The tail, read forward when older than ``max_age``; None when there would be too many
        rows. Raises ``WouldBlock`` (inline.py) before any store read. Past ``REBUILD_SECONDS``, a
        new tail is built in the background while requests keep this one."""
        key = (dataset_arn, after)
        tail = self.tails.get(key)
        now = time.monotonic()
        if tail is None:
            tail = self._first_build(key)
        else:
            if now - tail.built > REBUILD_SECONDS and not tail.rebuilding:
                tail.rebuilding = True
                threading.Thread(target=self._rebuild, args=(key, tail), name="event-tail", daemon=True).start()
            if not tail.overflow and now - tail.synced > max_age:
                self._read_forward(dataset_arn, tail, max_age)
        tail.used = now
        return None if tail.overflow else tail

    def changed(self, dataset_arn: str, *, deleted: bool = False) -> None:
        """Records of the dataset were appended (or, committed, deleted) through this process;
        the server's other API processes hear of it (signals.py)."""
        with self.lock:
            if deleted:  # dropped: the next request reads the dataset afresh
                self.deletions[dataset_arn] = self.deletions.get(dataset_arn, 0) + 1
                for key in [k for k in self.tails if k[0] == dataset_arn]:
                    del self.tails[key]
            else:
                self._stale(dataset_arn)
        self.signals.bump("deletions" if deleted else "records")

    def stale(self) -> None:
        """Another API process appended records: every tail reads forward at its next use."""
        with self.lock:
            self._stale(None)

    def _stale(self, dataset_arn: str | None) -> None:
        """The tails of ``dataset_arn`` (of every dataset: None) read forward at their next use."""
        for (arn, _), tail in self.tails.items():
            if dataset_arn is None or arn == dataset_arn:
                tail.generation += 1
                tail.synced = float("-inf")

    def drop(self) -> None:
        """Another API process deleted records: every tail goes, and one being built (from reads
        made before the deletion, perhaps) is not kept."""
        with self.lock:
            self.deleted_elsewhere += 1
            self.tails.clear()

    def _first_build(self, key) -> EventTail:
        blocking("reading the event log")
        with self.lock:
            building = self.first_builds.setdefault(key, threading.Lock())
        with building:  # concurrent first requests wait for one build
            try:
                return self.tails.get(key) or self._build(key)
            finally:  # built (or failed): the lock's work is done, and it is not kept
                with self.lock:
                    if self.first_builds.get(key) is building:
                        del self.first_builds[key]

    def _rebuild(self, key, current: EventTail) -> None:
        try:
            self._build(key)
        except Exception:
            current.rebuilding = False  # tried again at the next request
            log.exception("rebuilding the event tail of %s failed; the current one stays", key[0])

    def _build(self, key) -> EventTail:
        """A new tail read whole, then published (unless a deletion went through meanwhile)."""
        dataset_arn, after = key
        deletions = (self.deletions.get(dataset_arn, 0), self.deleted_elsewhere)
        tail = EventTail(after, commit_lag(self.store))
        t = self.table.c
        with self.store.connect() as conn:
            count = conn.execute(select(func.count()).select_from(self.table).where(
                and_(t.dataset_arn == dataset_arn, t.id > after))).scalar() or 0
        if count > TAIL_ROWS:
            tail.overflow = True
        else:
            self._read_forward(dataset_arn, tail, 0.0)
        with self.lock:
            if (self.deletions.get(dataset_arn, 0), self.deleted_elsewhere) == deletions:
                self.tails[key] = tail
                if len(self.tails) > MAX_TAILS:  # tails of models no longer served
                    for old in sorted(self.tails, key=lambda k: self.tails[k].used)[:len(self.tails) - MAX_TAILS]:
                        del self.tails[old]
        return tail

    def _read_forward(self, dataset_arn: str, tail: EventTail, max_age: float) -> None:
        blocking("reading the event log")
        with tail.lock:  # one reader at a time
            if max_age > 0 and time.monotonic() - tail.synced <= max_age:
                return  # read by the thread this one waited for
            synced, generation = time.monotonic(), tail.generation
            t = self.table.c
            cursor = tail.floor
            while not tail.overflow:
                stmt = (select(t.id, t.user_id, t.session_id, t.created, t.row)
                        .where(and_(t.dataset_arn == dataset_arn, t.id > cursor))
                        .order_by(t.id).limit(PAGE))
                with self.store.connect() as conn:
                    rows = conn.execute(stmt).all()
                if not rows:
                    break
                tail.take(rows)
                cursor = rows[-1][0]
            tail.settle()
            # Records appended through this process meanwhile may have committed after the query.
            tail.synced = synced if tail.generation == generation else float("-inf")
