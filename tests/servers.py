"""Start and stop the real services the tests talk to (our server, PostgreSQL, SeaweedFS)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

# The S3 server of the tests is the one `serve --s3` manages.
from openpersonalize.s3local import LocalS3 as SeaweedFS  # noqa: F401


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ChildProcess:
    """An ``openpersonalize`` command in its own process group (so a test can kill it the way a
    machine dies), its output appended to ``log_path``."""

    proc: subprocess.Popen | None = None
    log_path: Path
    stop_grace = 10.0  # seconds a clean stop may take before SIGKILL

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, *, kill: bool = False) -> None:
        """Stop the process; ``kill`` simulates a crash (SIGKILL, no clean shutdown)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(self.stop_grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def running_server(data_dir: Path, *, store_url: str | None = None, env: dict[str, str] | None = None):
    """A started server on a free port, stopped at the end: ``yield from running_server(...)`` in
    a fixture."""
    proc = ServerProcess(data_dir=data_dir, port=free_port(), store_url=store_url, env=env)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


class ServerProcess(ChildProcess):
    """``openpersonalize serve`` in a child process, on loopback."""

    def __init__(self, *, data_dir: Path, port: int, store_url: str | None = None,
                 env: dict[str, str] | None = None):
        self.data_dir = Path(data_dir)
        self.port = port
        self.store_url = store_url
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        self.log_path = self.data_dir / "server.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        # One API process unless a test asks for more (tests/test_processes.py): the tests that
        # read a process's own gauges or state need every request to reach the same one. The
        # fork server of job processes starts at the first job (most test servers run none).
        env = {"OPENPERSONALIZE_PROCESSES": "1", "OPENPERSONALIZE_WARM_JOB_PROCESSES": "false", **os.environ, **self.env, "OPENPERSONALIZE_DATA_DIR": str(self.data_dir),
               "OPENPERSONALIZE_PORT": str(self.port), "OPENPERSONALIZE_HOST": "127.0.0.1"}
        if self.store_url:
            env["OPENPERSONALIZE_STORE_URL"] = self.store_url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "openpersonalize.cli", "serve"], env=env,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.endpoint + "/", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start in {timeout}s:\n{self.log()}")



def reset_store(url: str) -> None:
    """Drop every table of a shared test database so the run starts empty."""
    from sqlalchemy import create_engine

    import openpersonalize.store.records  # noqa: F401  (its tables join the metadata)
    from openpersonalize.store.metadata import metadata

    engine = create_engine(url)
    metadata.drop_all(engine)
    engine.dispose()
