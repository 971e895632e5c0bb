"""One settings object for the whole server.

Every key can be given on the command line (``--data-dir``) or as an environment variable
(``OPENPERSONALIZE_DATA_DIR``); the command line wins. Defaults give the embedded deployment:
one process, a SQLite file and a local data folder.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

ENV_PREFIX = "OPENPERSONALIZE_"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass
class Settings:
    #: Address the HTTP server binds to.
    host: str = "127.0.0.1"
    #: Port for all three APIs (control plane, runtime, events).
    port: int = 8080
    #: Folder for data files, models and the default SQLite store.
    data_dir: str = "openpersonalize-data"
    #: SQLAlchemy URL of the metadata store; default ``sqlite:///<data_dir>/metadata.db``.
    store_url: str = ""
    #: Region used in ARNs when a request is unsigned.
    region: str = "us-east-1"
    #: Twelve-digit account id used in ARNs.
    account_id: str = "000000000000"
    #: ``AKID:SECRET`` pairs separated by commas. Empty: any signature is accepted.
    access_keys: str = ""
    #: Largest accepted request body, in bytes.
    max_body_bytes: int = 8 * 1024 * 1024
    #: Open HTTP connections at most (api/connections.py). At the cap, a new connection closes
    #: the connection that has waited longest without a request; with none waiting, the new one
    #: is refused (and logged). ``serve`` raises the process's file limit to fit it.
    max_connections: int = 1000
    #: Seconds a connection may take to send a request's headers (from connect, or from the
    #: previous response): slow or silent clients are closed.
    header_timeout_seconds: float = 10.0
    #: Seconds a request may take to send its body once the headers are in.
    body_timeout_seconds: float = 60.0
    #: Seconds an idle keep-alive connection stays open after a response.
    keep_alive_seconds: float = 5.0
    #: API processes of ``openpersonalize serve`` on its one port (0: one per CPU core). The
    #: first also runs the job workers and the timers; the others answer API calls only, so
    #: runtime calls use every core. Models are memory-mapped: the processes share their pages.
    processes: int = 0
    #: Number of job worker threads in this process (0: jobs wait for a separate worker).
    workers: int = 1
    #: Seconds between job queue polls when idle.
    poll_seconds: float = 0.2
    #: A running job whose heartbeat is older than this is taken over by another worker.
    job_lease_seconds: float = 60.0
    #: How many times a job interrupted by a crash is started again before it is failed.
    job_max_attempts: int = 2
    #: Where heavy job bodies run: "process" (a child process per job, the API never waits on
    #: them) or "thread" (inside the worker thread; simpler to debug).
    job_isolation: str = "process"
    #: Start the fork server that job processes come from when the server starts (in the
    #: background), not at the first heavy job: that job then starts in milliseconds too.
    warm_job_processes: bool = True
    #: Extra modules to import (comma-separated) that register job bodies: plugins.
    job_modules: str = ""
    #: Longest batch input line, in bytes: a longer one gets a per-line error without being
    #: held in memory, and the job goes on.
    batch_max_line_bytes: int = 1024 * 1024
    #: Theme generator for THEME_GENERATION batch jobs: "builtin" or "module:callable".
    theme_generator: str = "builtin"
    #: Automatic training (performAutoTraining): on/off, delay before a solution's first automatic
    #: version, length of a "day" in rate(N days) (shorten both only for tests), check interval.
    auto_training_enabled: bool = True
    auto_training_first_delay_seconds: float = 3600.0
    auto_training_day_seconds: float = 86400.0
    auto_training_check_seconds: float = 30.0
    #: Automatic model updates: every this many seconds (two hours; 0: never) campaign-deployed
    #: User-Personalization / Next-Best-Action / Trending-Now models and Top picks / Recommended
    #: for you recommenders take in new items and users, in place (jobs/refresh.py).
    model_refresh_seconds: float = 7200.0
    #: How old (seconds) a campaign's view of its group's data (item metadata for filters, an
    #: updated model) may get before it is rebuilt in the background.
    view_refresh_seconds: float = 30.0
    #: Real-time requests reuse their campaign / recommender / filter rows for this long (seconds)
    #: instead of reading them on every request; changes made through this process show at once.
    runtime_row_cache_seconds: float = 1.0
    #: ... and a user's recent events for this long: events sent through this process count at
    #: the next request, those sent through another API process within this time.
    runtime_events_cache_seconds: float = 0.5
    #: Campaigns and recommenders a server process keeps deployed (model and filter data in
    #: memory) at most; past that the least recently used one is let go and loads again at its
    #: next request. Deleting or updating one lets it go at once (state.py).
    runtime_max_deployments: int = 100
    #: When access keys are configured, /metrics answers a SigV4-signed request or one with
    #: ``Authorization: Bearer <this token>`` (for scrapers that cannot sign); empty: signed only.
    metrics_token: str = ""
    #: Real-time calls on models of up to this many items are answered on the event loop when
    #: all they need is in memory (a thread hand-off would cost more than the call); larger
    #: catalogues are scored on worker threads, which run in parallel.
    inline_max_items: int = 200_000
    #: Domain recommenders are retrained from scratch this many days after their last training
    #: (a "day" is auto_training_day_seconds).
    recommender_retrain_days: float = 7.0
    #: Maximum allowed clock skew for signed requests, in seconds.
    signature_max_skew_seconds: int = 300
    #: Quotas (AWS defaults, raise them freely when self-hosting).
    max_dataset_groups: int = 5
    max_schemas: int = 500
    max_pending_jobs: int = 5
    max_pending_solution_versions: int = 20
    max_solutions_per_group: int = 10
    max_campaigns_per_group: int = 5
    max_recommenders_per_group: int = 5
    max_filters_per_group: int = 30
    max_tags: int = 50

    # -- data: s3:// locations, dataset files, imports (docs/data.md) --------------------------
    #: Where ``s3://`` paths go: ``auto`` (S3 when an endpoint is configured, else embedded
    #: buckets under ``<data_dir>/s3``), ``local`` (always embedded) or ``s3`` (always S3; AWS
    #: itself when no endpoint is set).
    s3_backend: str = "auto"
    #: Set by ``serve --s3``: the managed S3 server that S3 requests on this endpoint go to.
    s3_proxy_url: str = ""
    #: S3 endpoint URL; default: ``AWS_ENDPOINT_URL_S3``, then ``AWS_ENDPOINT_URL``.
    s3_endpoint_url: str = ""
    #: S3 credentials; default: the standard AWS credential chain (``AWS_ACCESS_KEY_ID``, ...).
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    #: S3 region; default: ``AWS_REGION`` / ``AWS_DEFAULT_REGION``.
    s3_region: str = ""
    #: Folder or ``s3://`` prefix holding dataset rows as Parquet; default ``<data_dir>/data``.
    data_root: str = ""
    #: Bytes of CSV parsed at a time by imports; memory use follows this, not the file size.
    import_block_bytes: int = 8 * 1024 * 1024
    #: Parquet compression of dataset files: none, snappy, lz4, zstd, gzip.
    parquet_compression: str = "lz4"
    #: Seconds a replaced dataset file is kept for readers that started before the swap.
    file_grace_seconds: float = 3600.0
    #: The console in the browser at /console/ (console/pages.py).
    console: bool = True
    #: Seconds between publications of metric attributions' PutEvents reports (AWS: 15 minutes).
    metrics_publish_seconds: float = 900.0
    #: Minimum records in an Interactions import job (AWS: 1000).
    min_import_interactions: int = 1000
    #: Minimum interactions, and users with two or more, that training needs (AWS: 1000 and 25).
    min_training_interactions: int = 1000
    min_training_active_users: int = 25
    #: ``test``: the test profile (TEST_PROFILE), for users' own test suites; empty: AWS's rules.
    profile: str = ""
    #: Largest total input of a data deletion job, in bytes (AWS: 100 MB).
    max_deletion_input_bytes: int = 100 * 1024 * 1024

    # -- scale-out: executors and Ray (docs/deploy.md) --------------------------------------
    #: Where batch inference and batch segment jobs score their input: ``local`` (in the job's
    #: process) or ``ray`` (split into shards scored by Ray actors; ``pip install
    #: openpersonalize[ray]``).
    executor: str = "local"
    #: Ray cluster to use with the ``ray`` executor (``ray://host:10001``, ``host:6379`` or
    #: ``auto``); empty: each job starts a local Ray instance of its own.
    ray_address: str = ""
    #: Ray actors scoring one job's shards (each loads the model once); 0: one per CPU the
    #: cluster has, at most 64.
    ray_workers: int = 0
    #: CPUs reserved on the cluster by each scoring actor.
    ray_actor_cpus: float = 1.0
    #: Input records per shard; rounded up to a whole number of scoring chunks, so that a shard
    #: is scored exactly as the local executor scores the same lines.
    shard_records: int = 16384
    #: Shards in flight per actor: bounds the memory held by inputs and outputs under way.
    shards_in_flight: int = 2

    extra: dict = field(default_factory=dict)

    def resolved_store_url(self) -> str:
        if self.store_url:
            return self.store_url
        return f"sqlite:///{Path(self.data_dir).resolve() / 'metadata.db'}"

    def credentials(self) -> dict[str, str]:
        """The configured access keys as ``{access_key_id: secret}``."""
        pairs = {}
        for item in filter(None, (p.strip() for p in self.access_keys.split(","))):
            key, _, secret = item.partition(":")
            pairs[key] = secret
        return pairs

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> "Settings":
        """Settings from ``OPENPERSONALIZE_*`` variables, then explicit overrides."""
        environ = os.environ if environ is None else environ
        profile = overrides.get("profile") or environ.get(ENV_PREFIX + "PROFILE", "")
        if profile and profile not in PROFILES:
            raise ValueError(f"{ENV_PREFIX}PROFILE={profile!r} is not a profile; the profiles are "
                             f"{', '.join(sorted(PROFILES))}")
        values = dict(PROFILES.get(profile, {}))
        for f in dataclasses.fields(cls):
            if f.name == "extra":
                continue
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                try:
                    values[f.name] = _coerce(f.type, raw)
                except ValueError:
                    raise ValueError(f"{ENV_PREFIX}{f.name.upper()}={raw!r} is not a valid {_WORDS[f.type]}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def usable_cores() -> int:
    """The cores this process may run on (a container's or taskset's limit, not the machine's)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


_WORDS = {"int": "whole number", "float": "number"}

#: The test profile (``OPENPERSONALIZE_PROFILE=test``): small generated data trains and imports,
#: quotas do not get in the way of many tests, nothing runs on a timer. These diverge from AWS on
#: purpose (docs/testing.md); explicit variables still win.
TEST_PROFILE = {
    "min_import_interactions": 1,
    "min_training_interactions": 10,
    "min_training_active_users": 2,
    "max_dataset_groups": 1000,
    "max_pending_jobs": 1000,
    "max_pending_solution_versions": 1000,
    "max_solutions_per_group": 1000,
    "max_campaigns_per_group": 1000,
    "max_recommenders_per_group": 1000,
    "max_filters_per_group": 1000,
    "auto_training_enabled": False,
    "model_refresh_seconds": 0.0,
    "metrics_publish_seconds": 0.0,
    "poll_seconds": 0.05,
    "processes": 1,
    "warm_job_processes": False,  # many short-lived servers: only those that run jobs pay for it
}
PROFILES = {"test": TEST_PROFILE}


def _coerce(type_name: str, raw: str):
    if type_name == "int":
        return int(raw)
    if type_name == "float":
        return float(raw)
    if type_name == "bool":
        return raw.lower() in ("1", "true", "yes", "on")
    return raw
