"""The ``openpersonalize`` command.

    openpersonalize serve    the API on one port, with job workers in the same process
    openpersonalize worker   job workers only, sharing the store of a ``serve`` process
    openpersonalize demo     the whole batch path through boto3 on generated data
    openpersonalize cp       copy a local file into an embedded bucket (s3://bucket/key)
    openpersonalize jobs     the job queue: running jobs, their progress and workers
    openpersonalize import-report ARN   what an import ignored or nulled, per column
    openpersonalize coverage print the operation coverage table (docs/coverage.md)

Every option also reads an ``OPENPERSONALIZE_*`` environment variable (``--data-dir`` from
``OPENPERSONALIZE_DATA_DIR``); the command line wins.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import threading
from pathlib import Path

from .config import LOG_FORMAT, Settings


def _settings(args) -> Settings:
    settings = Settings.from_env(host=getattr(args, "host", None), port=getattr(args, "port", None),
                                 data_dir=args.data_dir, store_url=args.store_url,
                                 workers=getattr(args, "workers", None),
                                 executor=getattr(args, "executor", None),
                                 ray_address=getattr(args, "ray_address", None),
                                 ray_workers=getattr(args, "ray_workers", None))
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)  # the SQLite file, local objects, model copies
    return settings


def _check_executor(settings: Settings) -> None:
    """Refuse to start with an executor that cannot run here (rather than fail every job)."""
    from .jobs.executors import ExecutorUnavailable, get_executor

    try:
        get_executor(settings).check()
    except ExecutorUnavailable as exc:
        raise SystemExit(f"openpersonalize: {exc}") from None


def serve(args) -> int:
    import uvicorn

    from .api.app import Service, create_app
    from .api.connections import fit_file_limit, guarded_protocol

    settings = _settings(args)
    _check_executor(settings)
    service = Service(settings)
    logging.getLogger("openpersonalize").info(
        "openpersonalize on http://%s:%d (data %s, store %s)", settings.host, settings.port,
        Path(settings.data_dir).resolve(), settings.resolved_store_url())
    fits = fit_file_limit(settings.max_connections)
    if fits < settings.max_connections:
        logging.getLogger("openpersonalize").warning(
            "the open-file limit fits %d connections, not max_connections %d: capping at %d", fits,
            settings.max_connections, fits)
        settings = dataclasses.replace(settings, max_connections=fits)
    uvicorn.run(create_app(service), host=settings.host, port=settings.port, log_level="warning",
                http=guarded_protocol(settings), timeout_keep_alive=settings.keep_alive_seconds)
    return 0


def worker(args) -> int:
    from .jobs.runner import JobRunner
    from .store.metadata import Store

    settings = _settings(args)
    _check_executor(settings)
    store = Store(settings.resolved_store_url())
    runner = JobRunner(store, settings, threads=max(1, settings.workers))
    runner.start(recover=False)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    logging.getLogger("openpersonalize").info("worker %s running %d thread(s), executor %s", runner.worker_id,
                                              runner.threads, settings.executor)
    stop.wait()
    runner.stop()
    return 0


def demo(args) -> int:
    from .demo import run

    settings = Settings.from_env(data_dir=args.data_dir)
    return run(settings.data_dir, args.port or 18123)


def cp(args) -> int:
    """Copy a local file to an s3:// location of the configured store (embedded or S3)."""
    from .store.files import Storage

    settings = _settings(args)
    storage = Storage(settings)
    with open(args.source, "rb") as src, storage.write_object(args.target, "target") as out:
        while chunk := src.read(1 << 20):
            out.write(chunk)
    print(f"{args.source} -> {args.target}")
    return 0


def jobs(args) -> int:
    """Print the job queue (running and queued jobs; every job with ``--all``)."""
    import json

    from .metrics import format_jobs, job_rows
    from .store.metadata import Store

    settings = _settings(args)
    store = Store(settings.resolved_store_url())
    try:
        rows = job_rows(store, None if args.all else ("queued", "running", "cancel"))
    finally:
        store.close()
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        sys.stdout.write(format_jobs(rows))
    return 0


def import_report(args) -> int:
    """What an import job ignored or nulled, per column (AWS accepts such rows; we say so)."""
    import json

    from .store.metadata import Store

    store = Store(_settings(args).resolved_store_url())
    row = store.get(args.job_arn)
    if row is None or row.kind != "dataset-import-job":
        print(f"no dataset import job {args.job_arn}", file=sys.stderr)
        return 2
    print(json.dumps({"status": row.status, "failureReason": row.doc.get("failureReason"),
                      "report": row.doc.get("_report")}, indent=2))
    return 0


def coverage(args) -> int:
    from .coverage import coverage_markdown

    sys.stdout.write(coverage_markdown())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="openpersonalize", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("--data-dir", help="data folder (OPENPERSONALIZE_DATA_DIR, default ./openpersonalize-data)")
        p.add_argument("--store-url", help="SQLAlchemy URL of the metadata store (OPENPERSONALIZE_STORE_URL)")
        p.add_argument("--workers", type=int, help="job worker threads (OPENPERSONALIZE_WORKERS, default 1)")

    def executor(p):
        p.add_argument("--executor", choices=("local", "ray"),
                       help="where batch jobs score their shards (OPENPERSONALIZE_EXECUTOR, default local)")
        p.add_argument("--ray-address", help="Ray cluster for --executor ray (OPENPERSONALIZE_RAY_ADDRESS; "
                                             "default: a local Ray instance per job)")
        p.add_argument("--ray-workers", type=int, help="Ray actors per job (OPENPERSONALIZE_RAY_WORKERS, "
                                                       "default 0: one per cluster CPU)")

    p = sub.add_parser("serve", help="serve the three APIs and run jobs")
    p.add_argument("--host", help="bind address (OPENPERSONALIZE_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (OPENPERSONALIZE_PORT, default 8080)")
    common(p)
    executor(p)
    p.set_defaults(func=serve)
    p = sub.add_parser("worker", help="run jobs for a server that shares this store")
    common(p)
    executor(p)
    p.set_defaults(func=worker)
    p = sub.add_parser("jobs", help="list running and queued jobs with their progress")
    p.add_argument("--data-dir", help="data folder (OPENPERSONALIZE_DATA_DIR, default ./openpersonalize-data)")
    p.add_argument("--store-url", help="SQLAlchemy URL of the metadata store (OPENPERSONALIZE_STORE_URL)")
    p.add_argument("--all", action="store_true", help="every job, finished ones too")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.set_defaults(func=jobs)
    p = sub.add_parser("demo", help="run the end-to-end demo on generated data")
    p.add_argument("--data-dir", help="data folder (OPENPERSONALIZE_DATA_DIR, default ./openpersonalize-data)")
    p.add_argument("--port", type=int, help="port of the demo's server (default 18123)")
    p.set_defaults(func=demo)
    p = sub.add_parser("cp", help="copy a local file to s3://bucket/key")
    p.add_argument("source")
    p.add_argument("target")
    common(p)
    p.set_defaults(func=cp)
    p = sub.add_parser("import-report", help="show what an import job ignored or nulled, per column")
    p.add_argument("job_arn")
    common(p)
    p.set_defaults(func=import_report)
    p = sub.add_parser("coverage", help="print the operation coverage table")
    p.set_defaults(func=coverage)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
