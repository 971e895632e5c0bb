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
        env = {**os.environ, **self.env, "OPENPERSONALIZE_DATA_DIR": str(self.data_dir),
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


def free_port_pair(low: int = 20000, high: int = 45000) -> int:
    """A free port below 55000 whose +10000 gRPC twin is free too (SeaweedFS needs both)."""
    import random

    for _ in range(200):
        port = random.randint(low, high)
        ok = True
        for p in (port, port + 10000):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
        if ok:
            return port
    raise RuntimeError("no free port pair found")


class SeaweedFS:
    """A real S3-compatible server: ``weed server -s3`` on loopback, in its own process group."""

    access_key = "weedkey"
    secret_key = "weedsecret"

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.proc: subprocess.Popen | None = None
        self.s3_port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key)

    def env(self) -> dict[str, str]:
        """What a process needs to use this server the way AWS tools do."""
        return {"AWS_ENDPOINT_URL_S3": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_REGION": "us-east-1"}

    def start(self, timeout: float = 60.0) -> None:
        import shutil

        weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
        self.dir.mkdir(parents=True, exist_ok=True)
        ports = []
        while len(ports) < 4:
            p = free_port_pair()
            if all(abs(p - q) > 1 and abs(p - q) != 10000 for q in ports):
                ports.append(p)
        self.s3_port, master, volume, filer = ports
        log = open(self.dir / "weed.log", "ab")
        self.proc = subprocess.Popen(
            [weed, "server", f"-dir={self.dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3",
             f"-s3.port={self.s3_port}", f"-master.port={master}", f"-volume.port={volume}",
             f"-filer.port={filer}",
             # Its Iceberg and Lance catalogues listen on fixed ports by default; two servers on one
             # machine would collide there, and the tests need neither.
             "-s3.port.iceberg=0", "-s3.port.lance=0",
             # Every bucket is a collection that grows volumes of its own; with the default
             # 8 volumes of 30 GB a few buckets exhaust them and writes fail with InternalError.
             "-volume.max=300", "-master.volumeSizeLimitMB=64"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        client = self.client()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                tail = (self.dir / "weed.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"weed exited with {self.proc.returncode}:\n{tail}")
            try:
                client.create_bucket(Bucket="ready-check")
                return
            except Exception:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"SeaweedFS did not become ready in {timeout}s")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
