"""The job runner against a real store: exactly-once claims, progress, crash recovery, stopping.

These drive ``JobRunner`` in-process with job bodies registered for the test, because a crash in
the middle of a body is the thing under test.
"""

import threading
import time

import pytest

from openpersonalize.config import Settings
from openpersonalize.jobs import contract as bodies
from openpersonalize.jobs.runner import JobFailed, JobRunner
from openpersonalize.store.metadata import Store


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path / 'meta.db'}")
    yield s
    s.close()


def settings(**kw):
    return Settings(poll_seconds=0.05, job_lease_seconds=1.0, **kw)


def queue(store, arn, kind="test-job"):
    store.insert(arn=arn, kind=kind, name=arn, doc={"status": "CREATE PENDING"}, status="CREATE PENDING", job=True)


def wait_status(store, arn, statuses, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        row = store.get(arn)
        if row.status in statuses:
            return row
        time.sleep(0.05)
    raise AssertionError(f"{arn} stuck in {store.get(arn).status}")


@pytest.fixture
def body():
    calls = []

    def register(fn):
        bodies.BODIES["test-job"] = fn
        return fn

    yield register, calls
    bodies.BODIES.pop("test-job", None)


def test_each_job_runs_exactly_once_across_runners(store, body):
    register, calls = body
    lock = threading.Lock()

    @register
    def count(job):
        with lock:
            calls.append(job.arn)
        time.sleep(0.01)
        return {"numDeleted": 1}

    for i in range(20):
        queue(store, f"job-{i}")
    runners = [JobRunner(store, settings(), threads=2) for _ in range(2)]
    for r in runners:
        r.start()
    for i in range(20):
        row = wait_status(store, f"job-{i}", ("ACTIVE",))
        assert row.doc["numDeleted"] == 1 and "failureReason" not in row.doc
    for r in runners:
        r.stop()
    assert sorted(calls) == sorted(f"job-{i}" for i in range(20))


def test_failure_reason_and_unknown_kind(store, body):
    register, _ = body

    @register
    def fail(job):
        raise JobFailed("interactions.csv line 3: TIMESTAMP \"x\" is not a long")

    queue(store, "bad")
    queue(store, "nobody", kind="no-such-kind")
    runner = JobRunner(store, settings(), threads=1)
    runner.start()
    assert wait_status(store, "bad", ("CREATE FAILED",)).doc["failureReason"].startswith("interactions.csv line 3")
    assert "not implemented yet" in wait_status(store, "nobody", ("CREATE FAILED",)).doc["failureReason"]
    runner.stop()


def test_job_of_a_dead_worker_is_taken_over(store, body):
    register, calls = body
    started = threading.Event()

    @register
    def slow_once(job):
        calls.append(job.attempt)
        if job.attempt == 1:
            started.set()
            time.sleep(3)  # the worker "dies" here: it never finishes nor beats again
        return {}

    queue(store, "crash")
    dying = JobRunner(store, settings(), threads=1)
    dying._heartbeat = lambda job: None  # a dead process sends no heartbeats
    dying.start()
    assert started.wait(10)
    dying._stop.set()
    rescuer = JobRunner(store, settings(), threads=1)
    rescuer.start()
    wait_status(store, "crash", ("ACTIVE",))
    rescuer.stop()
    assert calls == [1, 2]


@pytest.fixture
def cleanup():
    """A cleanup registered for ``test-job``: the ARNs it was called for."""
    cleaned = []
    bodies.CLEANUPS["test-job"] = lambda job: cleaned.append((job.arn, job.attempt))
    yield cleaned
    bodies.CLEANUPS.pop("test-job", None)


def test_job_interrupted_too_often_fails_with_reason(store, cleanup):
    queue(store, "cursed")
    for _ in range(3):  # three workers claim it and die before finishing
        assert store.claim_job("dead-worker", lease_seconds=0, max_attempts=3)
        store.orphan_running_jobs()
    runner = JobRunner(store, settings(job_max_attempts=2), threads=1)
    runner.start()
    assert "interrupted" in wait_status(store, "cursed", ("CREATE FAILED",)).doc["failureReason"]
    runner.stop()
    # The body never ran again, so only the runner can remove what the dead attempts wrote.
    assert cleanup == [("cursed", 4)]


def test_cleanup_runs_when_a_job_fails_and_not_when_it_succeeds(store, body, cleanup):
    register, _ = body

    @register
    def fails_on_request(job):
        if job.arn == "bad":
            raise JobFailed("no")
        return {}

    queue(store, "good")
    queue(store, "bad")
    runner = JobRunner(store, settings(), threads=1)
    runner.start()
    wait_status(store, "good", ("ACTIVE",))
    wait_status(store, "bad", ("CREATE FAILED",))
    runner.stop()
    assert cleanup == [("bad", 1)]


def test_cancel_stops_a_running_body(store, body):
    register, _ = body

    @register
    def loop(job):
        for i in range(400):
            job.progress(i, 400)
            job.check_cancelled()
            time.sleep(0.025)
        return {}

    queue(store, "long")
    runner = JobRunner(store, settings(), threads=1)
    runner.start()
    wait_status(store, "long", ("CREATE IN_PROGRESS",))
    time.sleep(0.5)
    assert store.job_state("long")["progress"]["total"] == 400
    with store.transaction() as conn:
        store.update_doc("long", {"status": "CREATE STOPPING"}, conn=conn)
        store.request_cancel("long", conn)
    wait_status(store, "long", ("CREATE STOPPED",))
    runner.stop()


def test_a_worker_that_lost_its_lease_cannot_overwrite_the_outcome(store, body):
    register, _ = body

    @register
    def sleepy(job):
        if job.attempt == 1:
            time.sleep(2.5)
            return {"numDeleted": 111}
        return {"numDeleted": 2}

    queue(store, "contested")
    slow = JobRunner(store, settings(), threads=1)
    slow._heartbeat = lambda job: None
    slow.start()
    wait_status(store, "contested", ("CREATE IN_PROGRESS",))
    fast = JobRunner(store, settings(), threads=1)
    fast.start()
    assert wait_status(store, "contested", ("ACTIVE",)).doc["numDeleted"] == 2
    time.sleep(2.5)  # the slow worker finishes late
    assert store.get("contested").doc["numDeleted"] == 2
    slow.stop()
    fast.stop()


@pytest.mark.parametrize("mode, status, check", [
    ("ok", "ACTIVE", lambda doc: doc["numDeleted"] != __import__("os").getpid()),  # ran in another process
    ("fail", "CREATE FAILED", lambda doc: doc["failureReason"] == "the data says no"),
    ("raise", "CREATE FAILED", lambda doc: doc["failureReason"].startswith("Internal error") and "boom" in doc["failureReason"]),
    ("crash", "CREATE FAILED", lambda doc: "exit code 3" in doc["failureReason"]),
])
def test_isolated_bodies_run_in_a_child_process(store, mode, status, check):
    import tests.job_bodies  # noqa: F401

    store.insert(arn=f"iso-{mode}", kind="test-isolated", name="x", doc={"status": "CREATE PENDING", "mode": mode},
                 status="CREATE PENDING", job=True)
    runner = JobRunner(store, settings(job_modules="tests.job_bodies"), threads=1)
    runner.start()
    row = wait_status(store, f"iso-{mode}", (status,), timeout=60)
    runner.stop()
    assert check(row.doc), row.doc


def test_stopping_an_isolated_body_ends_its_process(store):
    import tests.job_bodies  # noqa: F401

    store.insert(arn="iso-slow", kind="test-isolated", name="x", doc={"status": "CREATE PENDING", "mode": "slow"},
                 status="CREATE PENDING", job=True)
    runner = JobRunner(store, settings(job_modules="tests.job_bodies"), threads=1)
    runner.start()
    deadline = time.time() + 60
    while not (store.job_state("iso-slow")["progress"] or {}).get("done") and time.time() < deadline:
        time.sleep(0.1)
    with store.transaction() as conn:
        store.update_doc("iso-slow", {"status": "CREATE STOPPING"}, conn=conn)
        store.request_cancel("iso-slow", conn)
    wait_status(store, "iso-slow", ("CREATE STOPPED",), timeout=20)
    runner.stop()
