"""What the job queue is doing, read from the metadata store: for ``GET /metrics`` (Prometheus
text format) and ``openpersonalize jobs``.

Describe calls have no member for a job's progress (their shape is AWS's), so progress is shown
here: every running job's records done and total, as its worker's last heartbeat stored them.
Every serve process reads the same store, so any of them behind a load balancer gives the whole
cluster's picture.

Metrics (all gauges):

* ``openpersonalize_jobs{kind, state}``: jobs in the queue table by kind and state (``queued``,
  ``running``, ``cancel``, ``done``).
* ``openpersonalize_job_records_done{arn, kind, worker}`` and ``openpersonalize_job_records_total``
  (when known): progress of each running job.
* ``openpersonalize_job_heartbeat_age_seconds{arn, kind, worker}``: seconds since the job's
  worker last renewed its lease; above ``job_lease_seconds`` another worker takes the job over.
* ``openpersonalize_job_attempts{arn, kind, worker}``: starts of each running job so far.

The serving process adds what it holds itself (``ProcessState.metrics``, state.py):
``openpersonalize_process_deployments``, ``..._deployments_limit``, ``..._loading``,
``..._models``, ``..._model_bytes`` and ``..._event_tails``; those are of that one process.
"""

from __future__ import annotations

import json
import time

from sqlalchemy import func, select

from .store.metadata import Store, jobs

ACTIVE_STATES = ("queued", "running", "cancel")


def job_rows(store: Store, states: tuple[str, ...] | None = ACTIVE_STATES) -> list[dict]:
    """Rows of the job queue (oldest first), with ``progress`` decoded; all rows when ``states`` is None."""
    stmt = select(jobs).order_by(jobs.c.enqueued.asc(), jobs.c.arn.asc())
    if states is not None:
        stmt = stmt.where(jobs.c.state.in_(states))
    with store.connect() as conn:
        rows = [dict(m) for m in conn.execute(stmt).mappings()]
    for row in rows:
        try:
            row["progress"] = json.loads(row["progress"]) if row["progress"] else None
        except ValueError:
            row["progress"] = None
    return rows


def job_counts(store: Store) -> dict[tuple[str, str], int]:
    stmt = select(jobs.c.kind, jobs.c.state, func.count()).group_by(jobs.c.kind, jobs.c.state)
    with store.connect() as conn:
        return {(kind, state): int(n) for kind, state, n in conn.execute(stmt)}


def _label(value: object) -> str:
    text = str(value if value is not None else "")
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels) -> str:
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in labels.items()) + "}"


def render(store: Store, now: float | None = None) -> str:
    """The metrics in Prometheus text exposition format (version 0.0.4)."""
    now = time.time() if now is None else now
    out: list[str] = []

    def family(name: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} gauge")
        out.extend(f"{name}{labels} {value}" for labels, value in samples)

    counts = job_counts(store)
    family("openpersonalize_jobs", "Jobs in the queue by kind and state.",
           [(_labels(kind=k, state=s), n) for (k, s), n in sorted(counts.items())])
    running = job_rows(store, ("running", "cancel"))
    done, total, age, attempts = [], [], [], []
    for r in running:
        labels = _labels(arn=r["arn"], kind=r["kind"], worker=r["worker"])
        progress = r["progress"] or {}
        if progress.get("done") is not None:
            done.append((labels, progress["done"]))
        if progress.get("total") is not None:
            total.append((labels, progress["total"]))
        if r["heartbeat"]:
            age.append((labels, round(max(0.0, now - r["heartbeat"]), 3)))
        attempts.append((labels, r["attempts"]))
    family("openpersonalize_job_records_done", "Records a running job has done.", done)
    family("openpersonalize_job_records_total", "Records a running job has in all (when known).", total)
    family("openpersonalize_job_heartbeat_age_seconds", "Seconds since a running job's worker last renewed its "
           "lease.", age)
    family("openpersonalize_job_attempts", "How many times a running job has been started.", attempts)
    return "\n".join(out) + "\n"


def format_jobs(rows: list[dict], now: float | None = None) -> str:
    """A plain-text table of job rows for ``openpersonalize jobs``."""
    now = time.time() if now is None else now
    header = ("STATE", "KIND", "PROGRESS", "WORKER", "BEAT", "TRY", "ARN")
    table = [header]
    for r in rows:
        progress = r["progress"] or {}
        if progress.get("done") is None:
            shown = "-"
        elif progress.get("total"):
            shown = f"{progress['done']}/{progress['total']} ({100.0 * progress['done'] / progress['total']:.0f}%)"
        else:
            shown = str(progress["done"])
        beat = f"{now - r['heartbeat']:.0f}s" if r["heartbeat"] and r["state"] != "queued" else "-"
        table.append((r["state"], r["kind"], shown, r["worker"] or "-", beat, str(r["attempts"]), r["arn"]))
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1]
                     for row in table) + "\n"
