"""The job runner: workers claim queued jobs from the store, run their bodies, record the outcome.

Create calls insert the resource in its pending status and a row in the job queue, and return.
A worker claims the oldest job (exactly one worker gets it), moves the resource to its in-progress
status, runs the body while renewing a lease, and ends the resource in its success or failure
status. A job whose worker died (lease expired, or the one-process server restarted) is claimed
again and restarted from the beginning, at most ``job_max_attempts`` times, then failed with a
reason. Bodies write their output under temporary names and publish at the end, so a restart
never finds half an output presented as complete.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable

from .. import jobs_registry  # noqa: F401  (registers every job body)
from ..config import Settings
from ..store.metadata import Store
from .contract import BODIES, CLEANUPS, ISOLATED, STOPPED, STOPPING, JobCancelled, JobContext, JobFailed, status_words
from .isolation import run_in_child, warm

log = logging.getLogger("openpersonalize.jobs")

__all__ = ["JobRunner", "JobContext", "JobFailed", "JobCancelled"]


class JobRunner:
    """Worker threads that run jobs from the store's queue."""

    def __init__(self, store: Store, settings: Settings, *, threads: int | None = None,
                 on_finished: Callable[[str, str | None], None] | None = None, metrics=None):
        """``on_finished(kind, group_arn)`` is called after each job this runner ends (the server
        process uses it to drop what it cached of the data a job changed); ``metrics`` (a
        ``metrics.Metrics``) counts the jobs' outcomes and durations."""
        for module in filter(None, (m.strip() for m in settings.job_modules.split(","))):
            importlib.import_module(module)

        self.store = store
        self.settings = settings
        self.threads = settings.workers if threads is None else threads
        self.on_finished = on_finished
        self.metrics = metrics
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, *, recover: bool = False) -> None:
        """Start the worker threads. ``recover``: this process owns the store, so every job
        marked running belongs to a dead process and is taken over at once."""
        if recover:
            n = self.store.orphan_running_jobs()
            if n:
                log.warning("%d job(s) were running when the server stopped; running them again", n)
        if self.threads and self.settings.job_isolation == "process" and self.settings.warm_job_processes:
            warm()
        for i in range(self.threads):
            t = threading.Thread(target=self._loop, name=f"job-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        if self.threads:
            # A fast lane: light jobs (filters, small imports) never wait behind a long training.
            t = threading.Thread(target=self._loop, kwargs={"light_only": True}, name="job-worker-light",
                                 daemon=True)
            t.start()
            self._threads.append(t)

    def wake(self) -> None:
        """A job was queued: poll now rather than after the idle interval."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout)

    def _loop(self, light_only: bool = False) -> None:
        while not self._stop.is_set():
            try:
                ran = self.run_one(light_only=light_only)
            except Exception:  # the store may be briefly unavailable; never let the worker die
                log.exception("job worker error")
                ran = False
            if not ran:
                self._wake.wait(self.settings.poll_seconds)
                self._wake.clear()

    def run_one(self, light_only: bool = False) -> bool:
        heavy = tuple(sorted(ISOLATED)) if light_only else ()
        claim = self.store.claim_job(self.worker_id, self.settings.job_lease_seconds,
                                     self.settings.job_max_attempts + 1, exclude_kinds=heavy)
        if claim is None:
            return False
        arn, kind, attempt = claim
        self._run(arn, kind, attempt)
        return True

    # -- one job --------------------------------------------------------------------------

    def _run(self, arn: str, kind: str, attempt: int) -> None:
        words = status_words(kind)
        row = self.store.get(arn)
        if row is None:  # deleted while queued
            with self.store.transaction() as conn:
                self.store.finish_job(arn, conn)
            return
        if row.status in (STOPPING, STOPPED):
            self._finish(arn, {"status": STOPPED})
            return
        if attempt > self.settings.job_max_attempts:
            self._clean_up(arn, kind, row.doc, attempt)
            self._finish(arn, {"status": words.failed, "failureReason":
                               f"The job was interrupted {attempt - 1} times (the worker running it "
                               "stopped) and was not started again."})
            return
        self.store.update_doc(arn, {"status": words.running})
        job = JobContext(arn=arn, kind=kind, doc=row.doc, store=self.store, settings=self.settings,
                         attempt=attempt)
        beat = threading.Thread(target=self._heartbeat, args=(job,), daemon=True)
        beat.start()
        started = time.time()
        try:
            body = BODIES.get(kind)
            if body is None:
                raise JobFailed(f"Running {kind.replace('-', ' ')}s is not implemented yet in this "
                                "version of openpersonalize.")
            if kind in ISOLATED and self.settings.job_isolation == "process":
                changes = run_in_child(job)
            else:
                changes = dict(body(job) or {})
            changes["status"] = words.done
            changes["failureReason"] = None
        except JobCancelled:
            changes = {"status": STOPPED}
        except JobFailed as exc:
            changes = {"status": words.failed, "failureReason": str(exc)}
        except Exception as exc:
            log.error("job %s failed:\n%s", arn, traceback.format_exc())
            changes = {"status": words.failed,
                       "failureReason": f"Internal error while running the job: {type(exc).__name__}: {exc}"}
        finally:
            job._done.set()
        current = self.store.get(arn)
        if current is not None and current.status == STOPPING:
            changes = {"status": STOPPED, "failureReason": None}
        seconds = time.time() - started
        fields = {"arn": arn, "kind": kind, "status": changes["status"]}
        if changes.get("failureReason"):
            log.warning("job %s -> %s in %.2fs: %s", arn, changes["status"], seconds, changes["failureReason"],
                        extra=fields)
        else:
            log.info("job %s -> %s in %.2fs", arn, changes["status"], seconds, extra=fields)
        if self.metrics is not None:
            self.metrics.job_finished(kind, changes["status"], seconds)
        if changes["status"] != words.done:
            self._clean_up(arn, kind, row.doc, attempt)
        self._finish(arn, changes)
        if self.on_finished is not None:
            try:
                self.on_finished(kind, row.group_arn)
            except Exception:  # a cache that could not be dropped is refreshed by its timer
                log.exception("after job %s", arn)

    def _clean_up(self, arn: str, kind: str, doc: dict, attempt: int) -> None:
        """Remove what every attempt of a job that did not succeed wrote, before its outcome is
        recorded (a crash in between runs the job again, which cleans up again). Skipped when
        another worker has taken the job over: its attempt's files are not ours to remove."""
        cleanup = CLEANUPS.get(kind)
        if cleanup is None or self.store.heartbeat(arn, self.worker_id) is None:
            return
        try:
            cleanup(JobContext(arn=arn, kind=kind, doc=doc, store=self.store, settings=self.settings,
                               attempt=attempt))
        except Exception:  # the outcome stands; what could not be removed is logged
            log.exception("cleaning up after job %s", arn)

    def _finish(self, arn: str, changes: dict) -> None:
        if not self.store.record_outcome(arn, changes, self.worker_id):
            log.warning("job %s was taken over by another worker or deleted; dropping this outcome", arn)

    def _heartbeat(self, job: JobContext) -> None:
        interval = max(0.2, min(5.0, self.settings.job_lease_seconds / 3))
        while not job._done.wait(interval):
            try:
                state = self.store.heartbeat(job.arn, self.worker_id, job._progress)
            except Exception:
                log.exception("heartbeat failed for %s", job.arn)
                continue
            if state in ("cancel", None):
                job._cancel.set()
