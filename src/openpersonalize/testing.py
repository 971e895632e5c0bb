"""Test your own Personalize code against a real local server (a pytest plugin).

Installing openpersonalize registers this module with pytest (entry point ``pytest11``), which
gives every test suite these fixtures:

* ``personalize_server``: a server of its own, started once per test session on a free loopback
  port, in a temporary folder, with the test profile (``OPENPERSONALIZE_PROFILE=test``: small
  data imports and trains, quotas are out of the way, nothing runs on a timer; docs/testing.md).
  It has ``endpoint``, ``data_dir``, ``client(service)``, ``put_object(uri, data)`` and ``log()``.
* ``personalize``, ``personalize_runtime``, ``personalize_events``: boto3 clients of it.

The same class works outside a test run (pytest must be importable: this module is the plugin)::

    with LocalPersonalize() as server:
        client = server.client("personalize")
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from botocore.credentials import Credentials

CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


class LocalPersonalize:
    """An ``openpersonalize serve`` process on loopback, for tests."""

    def __init__(self, data_dir: str | Path | None = None, *, profile: str = "test", env: dict | None = None,
                 start_timeout: float = 60.0):
        self._temporary = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="openpersonalize-"))
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.profile, self.env, self.start_timeout = profile, dict(env or {}), start_timeout
        self.proc: subprocess.Popen | None = None

    @classmethod
    def at(cls, endpoint: str) -> LocalPersonalize:
        """The same helpers (``client``, ``put_object``) for a server already running at
        ``endpoint``; ``stop`` leaves it alone."""
        server = cls.__new__(cls)
        server._temporary, server.data_dir, server.proc = False, None, None
        server.endpoint, server.port = endpoint.rstrip("/"), None
        return server

    def start(self) -> LocalPersonalize:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("OPENPERSONALIZE_")}
        environ.update({"OPENPERSONALIZE_DATA_DIR": str(self.data_dir), "OPENPERSONALIZE_HOST": "127.0.0.1",
                        "OPENPERSONALIZE_PORT": str(self.port), "OPENPERSONALIZE_PROFILE": self.profile,
                        **self.env})
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "server.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "openpersonalize.cli", "serve"], env=environ,
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.time() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                message = f"openpersonalize serve exited with {self.proc.returncode}:\n{self.log()}"
                self.stop()
                raise RuntimeError(message)
            try:
                with urllib.request.urlopen(self.endpoint + "/ready", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                pass
            if time.time() > deadline:
                message = f"openpersonalize serve did not start within {self.start_timeout:.0f} s:\n{self.log()}"
                self.stop()
                raise RuntimeError(message)
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if self._temporary:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> LocalPersonalize:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def client(self, service: str = "personalize", **kwargs):
        """A boto3 client of ``service`` (personalize, personalize-runtime, personalize-events)."""
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint, **{**CREDENTIALS, **kwargs})

    def put_object(self, uri: str, data: bytes | str) -> str:
        """Store ``data`` at ``s3://bucket/key`` where the server's jobs read it; returns ``uri``."""
        from .client import ServerClient

        bucket, _, key = uri[len("s3://"):].partition("/")
        body = data.encode() if isinstance(data, str) else data
        client = ServerClient(self.endpoint, Credentials(CREDENTIALS["aws_access_key_id"],
                                                         CREDENTIALS["aws_secret_access_key"]), "us-east-1")
        client.upload(f"/openpersonalize/objects/{bucket}/{key}", io.BytesIO(body), len(body))
        return uri

    def log(self) -> str:
        if self.data_dir is None:
            return ""
        path = self.data_dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def personalize_server():
    with LocalPersonalize() as server:
        yield server


@pytest.fixture(scope="session")
def personalize(personalize_server):
    return personalize_server.client("personalize")


@pytest.fixture(scope="session")
def personalize_runtime(personalize_server):
    return personalize_server.client("personalize-runtime")


@pytest.fixture(scope="session")
def personalize_events(personalize_server):
    return personalize_server.client("personalize-events")
