"""Races in the metadata store, on both backends.

A rule that reads before it writes (a quota: count, then insert; a uniqueness rule the primary key
cannot express: look, then insert) holds under concurrency only when the read and the write are
one step for every writer. ``Store.serialised(key)`` is that step: a transaction that holds the
lock ``key`` from its first statement, in this process and in every other using the database.

Each racing thread opens a Store of its own, as a separate server process would (on SQLite its
in-process write lock is then no help), and sixteen are released together by a barrier. The last
tests race the control plane's create operations themselves over such stores.
"""

from __future__ import annotations

import threading
import time

import pytest

from openpersonalize.config import Settings
from openpersonalize.control import ControlPlane
from openpersonalize.control.base import Context
from openpersonalize.errors import ServiceError
from openpersonalize.store.metadata import Conflict, Store

from .interleaving import while_the_job_row_is_held

N = 16


def race(stores: list[Store], work) -> list:
    """``work(store, i)`` on one thread per store, released together; its return value or the
    exception it raised, per thread."""
    barrier = threading.Barrier(len(stores))
    outcomes: list = [None] * len(stores)

    def run(i: int) -> None:
        barrier.wait(timeout=30)
        try:
            outcomes[i] = work(stores[i], i)
        except Exception as exc:  # noqa: BLE001 (the outcome under test)
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a racing thread did not finish"
    return outcomes


@pytest.fixture
def stores(open_store) -> list[Store]:
    return [open_store() for _ in range(N)]


def _insert(store: Store, arn: str, kind: str = "thing", name: str = "x", group: str | None = None, conn=None):
    store.insert(arn=arn, kind=kind, name=name, doc={"name": name}, status="ACTIVE", group_arn=group, conn=conn)


def test_a_quota_read_and_its_insert_are_one_step(stores):
    def create(store: Store, i: int) -> bool:
        with store.serialised("create:thing") as conn:
            if store.count("thing", conn=conn) >= 5:
                return False
            time.sleep(0.002)  # widen the window between the read and the write
            _insert(store, f"arn:thing/{i}", conn=conn)
            return True

    outcomes = race(stores, create)
    assert outcomes.count(True) == 5 and outcomes.count(False) == N - 5, outcomes
    assert stores[0].count("thing") == 5


def test_a_uniqueness_rule_by_query_admits_one(stores):
    """One row per group among rows whose ARNs differ (as event trackers: the ARN is random)."""
    def create(store: Store, i: int) -> str | None:
        with store.serialised("create:tracker") as conn:
            existing = store.query("tracker", group_arn="arn:g", conn=conn)
            if existing:
                return existing[0].arn
            _insert(store, f"arn:tracker/{i}", kind="tracker", group="arn:g", conn=conn)
            return None

    outcomes = race(stores, create)
    assert outcomes.count(None) == 1, outcomes
    winner = stores[0].query("tracker")
    assert len(winner) == 1 and set(outcomes) == {None, winner[0].arn}


def test_a_primary_key_race_is_a_conflict_for_every_loser(stores):
    outcomes = race(stores, lambda store, i: _insert(store, "arn:same"))
    assert outcomes.count(None) == 1
    assert all(isinstance(o, Conflict) for o in outcomes if o is not None), outcomes


def test_count_filters_as_query_does(store):
    for i, (status, group) in enumerate([("ACTIVE", "g"), ("CREATE PENDING", "g"), ("ACTIVE", "h")]):
        store.insert(arn=f"arn:s/{i}", kind="solution", name=str(i), doc={}, status=status, group_arn=group)
    _insert(store, "arn:other")
    assert store.count("solution") == 3
    assert store.count(("solution", "thing")) == 4
    assert store.count("solution", group_arn="g") == 2
    assert store.count("solution", statuses=("ACTIVE",)) == 2
    with store.connect() as conn:
        assert store.count("solution", group_arn="g", statuses=("ACTIVE",), conn=conn) == 1


def test_a_failed_serialised_transaction_writes_nothing_and_lets_the_next_in(open_store):
    first, second = open_store(), open_store()
    with pytest.raises(RuntimeError):
        with first.serialised("create:thing") as conn:
            _insert(first, "arn:thing/1", conn=conn)
            raise RuntimeError("abandon")
    started = time.monotonic()
    with second.serialised("create:thing") as conn:
        assert second.count("thing", conn=conn) == 0
        _insert(second, "arn:thing/2", conn=conn)
    assert time.monotonic() - started < 5
    assert [r.arn for r in first.query("thing")] == ["arn:thing/2"]


def test_readers_do_not_wait_for_a_serialised_writer(open_store):
    writer, reader = open_store(), open_store()
    _insert(writer, "arn:thing/0")
    with writer.serialised("create:thing") as conn:
        _insert(writer, "arn:thing/1", conn=conn)
        started = time.monotonic()
        assert [r.arn for r in reader.query("thing")] == ["arn:thing/0"]  # not yet committed
        assert reader.get("arn:thing/0") is not None
        assert time.monotonic() - started < 5
    assert reader.count("thing") == 2


def test_the_holder_sees_what_the_previous_holder_committed(open_store):
    """A holder's reads start after the lock is taken: a row committed by the previous holder
    while this one waited is counted (PostgreSQL's default READ COMMITTED, SQLite's BEGIN
    IMMEDIATE)."""
    first, second = open_store(), open_store()
    inside, seen = threading.Event(), []

    def late() -> None:
        inside.wait(10)
        with second.serialised("create:thing") as conn:
            seen.append(second.count("thing", conn=conn))

    t = threading.Thread(target=late)
    t.start()
    with first.serialised("create:thing") as conn:
        inside.set()
        time.sleep(0.2)  # the other is waiting for the lock now
        _insert(first, "arn:thing/1", conn=conn)
    t.join(30)
    assert seen == [1]


# -- the control plane's create operations, over one store per caller ---------------------------


def _contexts(stores: list[Store], **quotas) -> list[Context]:
    settings = Settings.from_env({}, workers=0, **quotas)
    return [Context(settings=settings, store=s, region="us-east-1") for s in stores]


def _errors(outcomes) -> set[tuple[str, str]]:
    """The distinct failures: the AWS error code and message, or any other exception."""
    return {(o.code, o.message) if isinstance(o, ServiceError) else (type(o).__name__, str(o))
            for o in outcomes if isinstance(o, Exception)}


def test_event_tracker_races_over_separate_stores(stores):
    plane = ControlPlane()
    ctxs = _contexts(stores)
    group = plane.create_dataset_group(ctxs[0], {"name": "g"})["datasetGroupArn"]
    outcomes = race(stores, lambda s, i: plane.create_event_tracker(ctxs[i], {"name": "et", "datasetGroupArn": group}))
    won = [o for o in outcomes if isinstance(o, dict)]
    assert len(won) == 1, outcomes
    tracker = won[0]["eventTrackerArn"]
    assert _errors(outcomes) == {("ResourceAlreadyExistsException",
                                  f"Another resource with name et already exists: {tracker}.")}
    assert [r.arn for r in stores[0].query("event-tracker")] == [tracker]


def test_dataset_group_quota_over_separate_stores(stores):
    plane = ControlPlane()
    ctxs = _contexts(stores, max_dataset_groups=20)
    for i in range(8):
        plane.create_dataset_group(ctxs[0], {"name": f"existing-{i}"})
    outcomes = race(stores, lambda s, i: plane.create_dataset_group(ctxs[i], {"name": f"new-{i}"}))
    assert sum(isinstance(o, dict) for o in outcomes) == 12, outcomes
    assert _errors(outcomes) == {("LimitExceededException", "Cannot create a dataset group. More than 20 dataset "
                                  "groups exist. Please delete some and try again.")}
    assert stores[0].count("dataset-group") == 20


def test_serialised_refuses_to_nest_in_a_transaction(store):
    with store.transaction():
        with pytest.raises(RuntimeError, match="inside another transaction"):
            with store.serialised("create:thing"):
                pass
    with store.serialised("create:thing") as conn:  # the store is usable afterwards
        _insert(store, "arn:thing/1", conn=conn)
    assert store.count("thing") == 1


def test_a_stop_racing_the_jobs_outcome_does_not_write_over_it(open_store):
    """StopSolutionVersionCreation reads the status, then writes CREATE STOPPING; the worker
    records the trained version's outcome meanwhile. Whichever goes first, the other sees what it
    wrote: the stop must not rewrite the document from a read taken before the outcome (that
    left the version CREATE STOPPING for ever, its job done and its metrics lost). A third
    transaction holds the job's row so that both are under way when it lets go."""
    worker, api, holder = open_store(), open_store(), open_store()
    arn = "arn:aws:personalize:us-east-1:000000000000:solution/s/v1"
    worker.insert(arn=arn, kind="solution-version", name="v1", doc={"status": "CREATE IN_PROGRESS"},
                  status="CREATE IN_PROGRESS", job=True)
    assert worker.claim_job("w", 3600.0, 3) is not None
    plane, ctx = ControlPlane(), _contexts([api])[0]
    metrics = {"ndcg_at_10": 0.5}
    outcomes = while_the_job_row_is_held(
        holder, arn, ("record", lambda: worker.record_outcome(arn, {"status": "ACTIVE", "_metrics": metrics}, "w")),
        ("stop", lambda: plane.stop_solution_version_creation(ctx, {"solutionVersionArn": arn})))
    assert outcomes["record"] is True, outcomes
    row = api.get(arn)
    assert row.status == "ACTIVE" and row.doc["_metrics"] == metrics, (row.status, outcomes)
    # Usually the outcome goes first and the stop finds the version ACTIVE; on SQLite the two
    # may take the database lock in either order, and a stop that went first is then simply
    # followed by the outcome. Either way nothing is written from a stale read.
    stop = outcomes["stop"]
    assert stop == {} or (isinstance(stop, ServiceError) and stop.code == "ResourceInUseException"
                          and "is ACTIVE" in stop.message), stop
