"""Run one job body in a child process.

The child rebuilds the store from the settings, runs the registered body, and sends back its
progress and its outcome through a pipe. The parent keeps the lease (heartbeat) and ends the child
at once when the job is asked to stop. Bodies publish their output atomically, so ending a child
half-way leaves nothing half-written.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import threading
import traceback

from .. import jobs_registry  # noqa: F401  (registers the bodies, in the parent and in the spawned child)
from ..config import Settings
from ..logs import configure as configure_logs
from ..store.metadata import Store
from .contract import BODIES, JobCancelled, JobContext, JobFailed

log = logging.getLogger("openpersonalize.jobs")
# Job processes are forked from a fork server: one process, started with the job runner (warm();
# else at the first job), that has no threads or sockets of the API process and has imported what
# job bodies use (numpy, scipy, pyarrow, implicit) once. A job then starts in milliseconds instead
# of importing them again (about a second: a 3-user batch job or a small training pays it in full).
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["openpersonalize.jobs_registry", "openpersonalize.recipes.registry",
                                 "openpersonalize.batch.inference", "openpersonalize.data.importer",
                                 "implicit.cpu.als", "scipy.sparse", "pyarrow.parquet", "pyarrow.csv"])


def warm() -> None:
    """Start the fork server in the background (its imports take about a second), so that the
    first heavy job starts as fast as the later ones. The fork server takes a lock: a job that
    starts meanwhile waits for the same start instead of beginning another."""
    threading.Thread(target=multiprocessing.forkserver.ensure_running, name="fork-server-start",
                     daemon=True).start()


def run_in_child(job) -> dict:
    """Run ``job``'s body in a child process; returns the body's result or raises like the body."""
    parent, child = _CONTEXT.Pipe(duplex=False)
    proc = _CONTEXT.Process(target=_child_main, name=f"job {job.arn}", daemon=True,
                            args=(job.kind, job.arn, job.attempt, dataclasses.asdict(job.settings),
                                  job.store.url, child, logging.getLogger("openpersonalize").getEffectiveLevel()))
    proc.start()
    child.close()
    try:
        while True:
            if job._cancel.is_set():
                proc.terminate()
                raise JobCancelled()
            if parent.poll(0.2):
                try:
                    kind, payload = parent.recv()
                except EOFError:
                    proc.join(5)
                    raise JobFailed(_died(proc.exitcode)) from None
                if kind == "progress":
                    job._progress = payload
                elif kind == "ok":
                    return payload
                elif kind == "failed":
                    raise JobFailed(payload)
                elif kind == "cancelled":
                    raise JobCancelled()
                else:
                    summary, trace = payload
                    log.error("job %s failed in its process:\n%s", job.arn, trace)
                    raise RuntimeError(summary)
            elif not proc.is_alive() and not parent.poll(0):
                raise JobFailed(_died(proc.exitcode))
    finally:
        parent.close()
        proc.join(5)
        if proc.is_alive():
            proc.kill()


def _died(exitcode: int | None) -> str:
    """The failure reason of a job whose process ended without a word."""
    if exitcode is not None and exitcode < 0:
        try:
            how = f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            how = f"killed by signal {-exitcode}"
        hint = " (the system ends the largest process when memory runs out)" if -exitcode == signal.SIGKILL else ""
        return f"The job's process was {how}{hint}; nothing it wrote was kept. Run the job again."
    return f"The job's process died (exit code {exitcode}) without a result; nothing it wrote was kept."


def _child_main(kind: str, arn: str, attempt: int, settings: dict, store_url: str, conn,
                log_level: int = logging.WARNING) -> None:
    configure_logs(os.environ.get("OPENPERSONALIZE_LOG_FORMAT", "text"), log_level)  # a spawned child starts unconfigured
    for module in filter(None, (m.strip() for m in settings.get("job_modules", "").split(","))):
        importlib.import_module(module)
    store = Store(store_url)
    try:
        row = store.get(arn)
        job = JobContext(arn=arn, kind=kind, doc=row.doc, store=store, settings=Settings(**settings),
                         attempt=attempt, on_progress=lambda p: conn.send(("progress", p)))
        result = dict(BODIES[kind](job) or {})
        conn.send(("ok", result))
    except JobFailed as exc:
        conn.send(("failed", str(exc)))
    except JobCancelled:
        conn.send(("cancelled", None))
    except BaseException as exc:  # report every failure to the parent, never die silently
        conn.send(("error", (f"{type(exc).__name__}: {exc}", traceback.format_exc())))
    finally:
        conn.close()
        store.close()
