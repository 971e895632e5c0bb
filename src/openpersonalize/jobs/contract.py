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
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the contract needs no store or settings code to run
    from ..config import Settings
    from ..store.metadata import Store

BODIES: dict[str, Callable[[JobContext], dict | None]] = {}
ISOLATED: set[str] = set()


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
    _done: threading.Event = field(default_factory=threading.Event)
    on_progress: Callable[[dict], Any] | None = None  # set in a child process: sends progress to the parent

    def progress(self, done: int, total: int | None = None, **extra: Any) -> None:
        """Record how far the job is; the runner's heartbeat publishes it."""
        self._progress = {"done": done, "total": total, **extra}
        if self.on_progress is not None:
            self.on_progress(self._progress)

    def check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise JobCancelled()


def job_body(kind: str, *, isolated: bool = False):
    """Register the decorated function as the body of jobs of ``kind``."""

    def register(fn: Callable) -> Callable:
        BODIES[kind] = fn
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
