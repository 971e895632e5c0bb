"""The registry of job bodies: what each kind of job does once a worker has claimed it.

A body is a function ``body(job: JobContext) -> dict`` that does the work and returns the members
to add to the resource's description when it succeeds (for example ``numDeleted``). It raises
``JobFailed`` with a reason the user can act on. Kinds with no registered body fail with a reason
that says so, so no job is ever left waiting for code that does not exist.

Heavy bodies (training, batch scoring) register with ``isolated=True``: the runner then runs them
in a child process (setting ``job_isolation``), so that their Python work never holds the API
server's interpreter lock, and a stop request can end them at once.
"""

from __future__ import annotations

from collections.abc import Callable

BODIES: dict[str, Callable] = {}
ISOLATED: set[str] = set()


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
