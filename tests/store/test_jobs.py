"""The job queue in the metadata store, on both backends: claims are exclusive under concurrent
claimers (threads of one process and of several), oldest first, leases expire, heartbeats carry
progress and cancellation, only the holder finishes a job, orphans are reclaimed at once, and
the attempt count grows with each start so the runner can give up."""

from __future__ import annotations

import threading
import time
from collections import Counter

from sqlalchemy import func, select

from openpersonalize.store.metadata import Store, jobs

from .interleaving import while_the_job_row_is_held

LONG = 3600.0  # a lease that does not expire during a test


def queue(store: Store, arn: str, *, kind: str = "test-job", enqueued: float | None = None) -> None:
    doc = {"status": "CREATE PENDING"}
    if enqueued is not None:
        doc["creationDateTime"] = enqueued
    store.insert(arn=arn, kind=kind, name=arn, doc=doc, status="CREATE PENDING", job=True)


def queued(store: Store) -> int:
    with store.connect() as conn:
        return conn.execute(select(func.count()).select_from(jobs).where(jobs.c.state == "queued")).scalar()


def finish(store: Store, arn: str, worker: str | None = None) -> bool:
    with store.transaction() as conn:
        return store.finish_job(arn, conn, worker=worker)


def test_the_oldest_queued_job_is_claimed_first_and_only_once(store):
    queue(store, "j2", enqueued=2.0)
    queue(store, "j1", enqueued=1.0)
    queue(store, "j3", enqueued=3.0)
    claims = [store.claim_job("w", LONG, 3) for _ in range(4)]
    assert claims == [("j1", "test-job", 1), ("j2", "test-job", 1), ("j3", "test-job", 1), None]
    state = store.job_state("j1")
    assert (state["state"], state["worker"], state["attempts"]) == ("running", "w", 1)
    assert state["heartbeat"] >= time.time() - 60


def test_excluded_kinds_are_left_in_the_queue(store):
    queue(store, "heavy", kind="train", enqueued=1.0)
    queue(store, "light", kind="import", enqueued=2.0)
    assert store.claim_job("w", LONG, 3, exclude_kinds=("train",)) == ("light", "import", 1)
    assert store.claim_job("w", LONG, 3, exclude_kinds=("train",)) is None
    assert store.claim_job("w", LONG, 3) == ("heavy", "train", 1)


def test_concurrent_claimers_take_each_job_exactly_once(open_store):
    # Two Store objects stand for two processes; three threads claim through each.
    stores = [open_store(), open_store()]
    for k in range(40):
        queue(stores[0], f"job-{k:02d}", enqueued=float(k))
    claimed: list[tuple[str, str]] = []
    lock = threading.Lock()
    start = threading.Barrier(6)
    errors: list[BaseException] = []

    def claimer(store: Store, worker: str) -> None:
        try:
            start.wait()
            while True:
                claim = store.claim_job(worker, LONG, 3)
                if claim is None:
                    if queued(store):
                        continue  # lost the race for the job it found (or all were locked)
                    return
                with lock:
                    claimed.append((claim[0], worker))
                assert claim[2] == 1
        except BaseException as exc:  # surfaced by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(stores[k % 2], f"w{k}")) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    counts = Counter(arn for arn, _ in claimed)
    assert counts == Counter({f"job-{k:02d}": 1 for k in range(40)})
    for arn, worker in claimed:  # the row names the worker that got the claim
        assert stores[0].job_state(arn)["worker"] == worker


def test_heartbeat_renews_the_lease_reports_progress_and_the_cancel_request(store):
    queue(store, "j")
    store.claim_job("w", LONG, 3)
    first = store.job_state("j")["heartbeat"]
    time.sleep(0.01)
    assert store.heartbeat("j", "w", {"percent": 40}) == "running"
    state = store.job_state("j")
    assert state["progress"] == {"percent": 40} and state["heartbeat"] > first
    assert store.heartbeat("j", "someone-else") is None
    assert store.heartbeat("missing", "w") is None
    with store.transaction() as conn:
        store.request_cancel("j", conn)
    assert store.heartbeat("j", "w") == "cancel"
    assert store.job_state("j")["progress"] == {"percent": 40}  # a beat without progress keeps it


def test_cancelling_a_queued_job_removes_it_from_the_queue(store):
    queue(store, "j")
    with store.transaction() as conn:
        store.request_cancel("j", conn)
    assert store.job_state("j")["state"] == "done"
    assert store.claim_job("w", LONG, 3) is None


def test_a_cancelled_running_job_is_finished_by_its_worker(store):
    queue(store, "j")
    store.claim_job("w", LONG, 3)
    with store.transaction() as conn:
        store.request_cancel("j", conn)
    assert store.job_state("j")["state"] == "cancel"
    assert store.claim_job("other", LONG, 3) is None  # its lease still holds
    assert finish(store, "j", worker="w")
    assert store.job_state("j")["state"] == "done"
    with store.transaction() as conn:
        store.request_cancel("j", conn)  # too late: nothing changes
    assert store.job_state("j")["state"] == "done"


def test_only_the_holder_finishes_a_job(store):
    queue(store, "j")
    assert store.claim_job("w1", 0.2, 3) == ("j", "test-job", 1)
    assert not finish(store, "j", worker="w2")
    time.sleep(0.3)  # w1 stops beating: its lease expires and w2 takes the job over
    assert store.claim_job("w2", 0.2, 3) == ("j", "test-job", 2)
    assert store.heartbeat("j", "w1") is None
    assert not finish(store, "j", worker="w1")  # the late worker must not overwrite the outcome
    assert store.job_state("j")["state"] == "running"
    assert finish(store, "j", worker="w2")
    assert not finish(store, "j", worker="w2")  # done already
    assert store.job_state("j")["state"] == "done"


def test_finish_without_a_worker_always_applies(store):
    queue(store, "j")
    assert finish(store, "j")
    assert store.job_state("j")["state"] == "done"
    assert store.claim_job("w", LONG, 3) is None


def test_a_job_whose_lease_is_live_is_not_reclaimed(store):
    queue(store, "j")
    store.claim_job("w1", LONG, 3)
    assert store.claim_job("w2", LONG, 3) is None
    assert store.job_state("j")["worker"] == "w1"


def test_orphaned_jobs_are_claimable_at_once(store):
    queue(store, "running", enqueued=1.0)
    queue(store, "cancelling", enqueued=2.0)
    queue(store, "finished", enqueued=3.0)
    queue(store, "waiting", enqueued=4.0)
    for _ in range(3):
        store.claim_job("gone", LONG, 3)
    with store.transaction() as conn:
        store.request_cancel("cancelling", conn)
        store.finish_job("finished", conn)
    assert store.orphan_running_jobs() == 2
    claims = [store.claim_job("new", LONG, 3) for _ in range(4)]
    assert claims == [("running", "test-job", 2), ("cancelling", "test-job", 2), ("waiting", "test-job", 1), None]
    assert store.job_state("finished")["state"] == "done"
    assert store.job_state("cancelling")["state"] == "running"  # a new start runs it afresh


def test_each_start_counts_so_the_runner_can_give_up(store):
    queue(store, "cursed")
    attempts = []
    for _ in range(4):  # each claimer dies before finishing
        attempts.append(store.claim_job("dead", lease_seconds=LONG, max_attempts=3)[2])
        store.orphan_running_jobs()
    assert attempts == [1, 2, 3, 4]
    assert store.job_state("cursed")["attempts"] == 4


def test_an_outcome_and_the_deletion_of_its_resource_do_not_deadlock(open_store):
    """A worker records a job's outcome while the API deletes the resource (DeleteFilter racing
    the filter's activation). Both lock the resource's row and the job's row; in opposite orders
    PostgreSQL would abort one of them as a deadlock. A third transaction holds the job's row so
    that both are inside their transactions at once when it lets go."""
    worker, api, holder = open_store(), open_store(), open_store()
    queue(worker, "j")
    assert worker.claim_job("w", LONG, 3) is not None
    outcomes = while_the_job_row_is_held(
        holder, "j", ("record", lambda: worker.record_outcome("j", {"status": "ACTIVE"}, "w")),
        ("delete", lambda: api.delete("j")))
    assert not isinstance(outcomes["record"], Exception), outcomes
    assert not isinstance(outcomes["delete"], Exception), outcomes
    assert api.get("j") is None
