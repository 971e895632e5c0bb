"""What the server is doing, for ``GET /metrics`` (Prometheus text format, written by
``prometheus_client``) and ``openpersonalize jobs``.

Counted as requests and jobs pass; with several API processes (``serve``'s ``processes``), the
counts of all of them (prometheus_client's multiprocess mode):

* ``openpersonalize_requests_total{operation, status}`` and the histogram
  ``openpersonalize_request_duration_seconds{operation, status}``: every API call, ``operation``
  named as in boto3's models (``ListDatasetGroups``, ``GetRecommendations``); requests that name
  no operation count as ``operation="unknown"``.
* ``openpersonalize_runtime_requests_total{operation, resource, status}``: runtime calls per
  campaign or recommender ARN.
* ``openpersonalize_events_received_total{operation}``: events, items, users and actions
  accepted by PutEvents, PutItems, PutUsers, PutActions and PutActionInteractions.
* ``openpersonalize_jobs_finished_total{kind, status}`` and the histogram
  ``openpersonalize_job_duration_seconds{kind, status}``: jobs this process's workers ended.

Read from the metadata store at each scrape (every server process shares it, so any of them
gives the whole cluster's queue):

* ``openpersonalize_jobs{kind, state}``: the job queue by kind and state (``queued``,
  ``running``, ``cancel``, ``done``): its depth is ``state="queued"``.
* ``openpersonalize_job_records_done{arn, kind, worker}`` and ``..._records_total`` (when known):
  progress of each running job; ``openpersonalize_job_heartbeat_age_seconds`` (above
  ``job_lease_seconds`` another worker takes the job over); ``openpersonalize_job_attempts``.

``openpersonalize_attribution_value{attribution, metric, event_type, source}``: metric
attributions' totals (attribution.py), also from the store.

And what this process holds (``ProcessState.sizes``): ``openpersonalize_process_deployments``,
``..._deployments_limit``, ``..._loading``, ``..._models``, ``..._model_bytes``,
``..._event_tails``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from .store.metadata import Store, jobs

#: Set (to an empty folder) before prometheus_client is imported, in every API process of one
#: server, the counters of each are written there and /metrics adds them up (cli.serve does it).
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
ACTIVE_STATES = ("queued", "running", "cancel")
#: Request latencies: the runtime answers in about a millisecond, control calls in a few.
REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
JOB_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 12 * 3600)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


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


class _QueueCollector:
    """The job queue as gauges, read from the store at each scrape."""

    def __init__(self, store: Store):
        self.store = store

    def collect(self):
        now = time.time()
        queue = GaugeMetricFamily("openpersonalize_jobs", "Jobs in the queue by kind and state.",
                                  labels=["kind", "state"])
        for (kind, state), n in sorted(job_counts(self.store).items()):
            queue.add_metric([kind, state], n)
        yield queue
        labels = ["arn", "kind", "worker"]
        done = GaugeMetricFamily("openpersonalize_job_records_done", "Records a running job has done.", labels=labels)
        total = GaugeMetricFamily("openpersonalize_job_records_total", "Records a running job has in all (when known).",
                                  labels=labels)
        age = GaugeMetricFamily("openpersonalize_job_heartbeat_age_seconds",
                                "Seconds since a running job's worker last renewed its lease.", labels=labels)
        attempts = GaugeMetricFamily("openpersonalize_job_attempts", "How many times a running job has been started.",
                                     labels=labels)
        for r in job_rows(self.store, ("running", "cancel")):
            key = [r["arn"], r["kind"], r["worker"] or ""]
            progress = r["progress"] or {}
            if progress.get("done") is not None:
                done.add_metric(key, progress["done"])
            if progress.get("total") is not None:
                total.add_metric(key, progress["total"])
            if r["heartbeat"]:
                age.add_metric(key, round(max(0.0, now - r["heartbeat"]), 3))
            attempts.add_metric(key, r["attempts"])
        yield from (done, total, age, attempts)


_PROCESS_GAUGES = (("deployments", "Campaigns and recommenders deployed in this process."),
                   ("deployments_limit", "runtime_max_deployments: deployments kept at most."),
                   ("loading", "Deployments loading now."),
                   ("models", "Model objects alive in this process."),
                   ("model_bytes", "Bytes of the arrays of those models (memory-mapped)."),
                   ("event_tails", "Event tails kept for real-time requests."))


class _ProcessCollector:
    """What this process holds, from ``sizes()`` (ProcessState.sizes) at each scrape."""

    def __init__(self, sizes: Callable[[], dict[str, int]]):
        self.sizes = sizes

    def collect(self):
        sizes = self.sizes()
        for key, text in _PROCESS_GAUGES:
            yield GaugeMetricFamily(f"openpersonalize_process_{key}", text, value=sizes[key])


class _AttributionCollector:
    """Metric attributions' running totals (attribution.py), read from the store at each scrape."""

    def __init__(self, store: Store):
        self.store = store

    def collect(self):
        family = GaugeMetricFamily("openpersonalize_attribution_value",
                                   "Metric attribution totals since the attribution was created, by metric, event "
                                   "type and attribution source.",
                                   labels=["attribution", "metric", "event_type", "source"])
        for row in self.store.query("metric-attribution"):
            for t in row.doc.get("_totals") or []:
                family.add_metric([row.arn, t["metric"], t["eventType"], t["source"]], t["value"])
        yield family


class Metrics:
    """The instruments of one server process, in a registry of its own (several services in one
    process, as in tests, do not mix their counts)."""

    def __init__(self, store: Store | None = None, sizes: Callable[[], dict[str, int]] | None = None):
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.requests = Counter("openpersonalize_requests", "API requests by operation and HTTP status.",
                                ["operation", "status"], registry=r)
        self.latency = Histogram("openpersonalize_request_duration_seconds",
                                 "Time from a request's arrival to its answer, by operation and HTTP status.",
                                 ["operation", "status"], buckets=REQUEST_BUCKETS, registry=r)
        self.runtime = Counter("openpersonalize_runtime_requests", "Runtime requests per campaign or recommender.",
                               ["operation", "resource", "status"], registry=r)
        self.events = Counter("openpersonalize_events_received",
                              "Records accepted by PutEvents, PutItems, PutUsers, PutActions and PutActionInteractions.",
                              ["operation"], registry=r)
        self.jobs = Counter("openpersonalize_jobs_finished", "Jobs this process's workers ended, by kind and status.",
                            ["kind", "status"], registry=r)
        self.job_seconds = Histogram("openpersonalize_job_duration_seconds", "How long jobs ran, by kind and status.",
                                     ["kind", "status"], buckets=JOB_BUCKETS, registry=r)
        self._children: dict[tuple[str, str], tuple] = {}  # labels() takes a lock: once per pair
        self._read_at_scrape = ([_QueueCollector(store), _AttributionCollector(store)] if store is not None else []) \
            + ([_ProcessCollector(sizes)] if sizes is not None else [])
        for collector in self._read_at_scrape:
            r.register(collector)

    def request(self, operation: str, status: int, seconds: float, resource: str | None = None,
                records: int = 0) -> None:
        code = str(status)
        children = self._children.get((operation, code))
        if children is None:
            children = self._children[(operation, code)] = (self.requests.labels(operation, code),
                                                             self.latency.labels(operation, code))
        children[0].inc()
        children[1].observe(seconds)
        if resource is not None:
            self.runtime.labels(operation, resource, code).inc()
        if records:
            self.events.labels(operation).inc(records)

    def job_finished(self, kind: str, status: str, seconds: float) -> None:
        self.jobs.labels(kind, status).inc()
        self.job_seconds.labels(kind, status).observe(seconds)

    def render(self) -> bytes:
        if not os.environ.get(MULTIPROCESS_ENV):
            return generate_latest(self.registry)
        # Several API processes (serve's ``processes``): the counts of them all, from the files
        # each writes in the shared folder; what is read at the scrape is read once.
        registry = CollectorRegistry(auto_describe=False)
        multiprocess.MultiProcessCollector(registry)
        for collector in self._read_at_scrape:
            registry.register(collector)
        return generate_latest(registry)
