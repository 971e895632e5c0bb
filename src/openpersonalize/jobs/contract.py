"""The job contract: what a job body receives, how it fails, and how it registers.

This module sits at the bottom of the import graph: job bodies (imports, training, batch jobs,
exports ...) import it, and the runner (``jobs/runner.py``) consumes what they register here, so
no body ever imports the runner.

A body is a function ``body(job: JobContext) -> dict`` registered with :func:`job_body`. It does
the work and returns the members to add to the resource's description when it succeeds (for
example ``numDeleted``). It raises :class:`JobFailed` with a reason the user can act on; the
runner records that reason as ``failureReason``. Kinds with no registered body fail with a reason
that says so, so no job is ever left waiting for code that does not exist.

Heavy bodies (training, batch scoring) register with ``isolated=True``: the runner then runs them
in a child process (setting ``job_isolation``), so that their Python work never holds the API
server's interpreter lock, and a stop request can end them at once.

A body that writes output registers a ``cleanup(job)`` too: the runner calls it whenever
a job of that kind ends without succeeding, so that what any attempt wrote goes even when the body
itself could not remove it (its process was killed, or it never ran again after a crash).

Bodies mark their stages with :meth:`JobContext.reached`; the fault-injection tests crash the
process at a named stage through ``OPENPERSONALIZE_CRASH_AT`` (see ``crash_if_asked``).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the contract needs no store or settings code to run
    from ..config import Settings
    from ..store.metadata import Store

BODIES: dict[str, Callable[[JobContext], dict | None]] = {}
ISOLATED: set[str] = set()
CLEANUPS: dict[str, Callable[[JobContext], None]] = {}
CRASH_AT = "OPENPERSONALIZE_CRASH_AT"


class JobFailed(Exception):
    """The job cannot succeed; ``str(exc)`` is the failureReason shown to the user."""


class JobCancelled(Exception):
    """The job was asked to stop (StopSolutionVersionCreation)."""


@dataclass
class JobContext:
    """What a body gets: its resource (``arn``, ``kind``, ``doc``), the store and settings, which
    attempt this is (a restarted job starts again from nothing), and ways to report progress and
    notice a stop request."""

    arn: str
    kind: str
    doc: dict
    store: Store
    settings: Settings
    attempt: int
    _cancel: threading.Event = field(default_factory=threading.Event)
    _progress: dict | None = None
    _since: float | None = None
    _done: threading.Event = field(default_factory=threading.Event)
    on_progress: Callable[[dict], Any] | None = None  # set in a child process: sends progress to the parent

    def progress(self, done: int, total: int | None = None, **extra: Any) -> None:
        """Record how far the job is; the runner's heartbeat publishes it (with ``since``, when
        progress was first reported, from which the time left is estimated)."""
        self._since = self._since or time.time()
        self._progress = {"done": done, "total": total, "since": self._since, **extra}
        if self.on_progress is not None:
            self.on_progress(self._progress)

    def check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise JobCancelled()

    def reached(self, stage: str) -> None:
        """The body has reached ``stage`` (``written``: output complete under temporary names,
        ``published`` ...): a point where a crash must leave nothing half-done."""
        target = os.environ.get(CRASH_AT)
        if target and self.attempt == 1:
            crash_if_asked(target, f"{self.kind}:{stage}")


def crash_if_asked(target: str, point: str) -> None:
    """Crash like a dying machine when ``target`` names ``point``: ``<kind>:<stage>`` kills this
    process's whole group (the server and its job processes), ``<kind>:<stage>:process`` only the
    process running the body. For the fault-injection tests only; never set in service."""
    if target.removesuffix(":process") != point:
        return
    if target.endswith(":process"):
        os.kill(os.getpid(), signal.SIGKILL)
    os.killpg(os.getpgrp(), signal.SIGKILL)


def job_body(kind: str, *, isolated: bool = False, cleanup: Callable[[JobContext], None] | None = None):
    """Register the decorated function as the body of jobs of ``kind`` (and ``cleanup`` as what
    removes every attempt's output when such a job ends without succeeding)."""

    def register(fn: Callable) -> Callable:
        BODIES[kind] = fn
        if cleanup is not None:
            CLEANUPS[kind] = cleanup
        if isolated:
            ISOLATED.add(kind)
        else:
            ISOLATED.discard(kind)
        return fn

    return register


@dataclass(frozen=True)
class StatusWords:
    """The statuses a kind of job moves through (data deletion jobs use AWS's other words)."""

    pending: str
    running: str
    done: str
    failed: str


CREATE_STATUSES = StatusWords("CREATE PENDING", "CREATE IN_PROGRESS", "ACTIVE", "CREATE FAILED")
STATUSES_BY_KIND = {"data-deletion-job": StatusWords("PENDING", "IN_PROGRESS", "COMPLETED", "FAILED")}
STOPPING, STOPPED = "CREATE STOPPING", "CREATE STOPPED"


def status_words(kind: str) -> StatusWords:
    return STATUSES_BY_KIND.get(kind, CREATE_STATUSES)
