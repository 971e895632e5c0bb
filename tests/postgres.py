"""A throwaway PostgreSQL server on loopback for the store tests.

Uses the Debian ``postgresql`` package's binaries. PostgreSQL refuses to run as root, so when the
tests run as root the cluster is created and started as the ``postgres`` user.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path


def find_bin_dir() -> str | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(candidate, "initdb")):
            return candidate
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


class PostgresServer:
    def __init__(self, port: int):
        self.port = port
        self.bin_dir = find_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="op-pg-"))
        self.as_postgres = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://op@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def start(self, timeout: float = 30.0) -> None:
        if self.bin_dir is None:
            raise RuntimeError("PostgreSQL binaries not found (install the Debian package postgresql)")
        if self.as_postgres:
            shutil.chown(self.root, user="postgres")
        data = self.root / "pg"
        self._run(f"{self.bin_dir}/initdb", "-D", str(data), "-A", "trust", "-U", "op")
        self._run(f"{self.bin_dir}/pg_ctl", "-D", str(data), "-o",
                  f"-k {self.root} -h 127.0.0.1 -p {self.port} -c fsync=off", "-l",
                  str(self.root / "log"), "start")
        import psycopg

        deadline = time.time() + timeout
        while True:
            try:
                psycopg.connect(f"host=127.0.0.1 port={self.port} user=op dbname=postgres").close()
                return
            except psycopg.OperationalError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        try:
            self._run(f"{self.bin_dir}/pg_ctl", "-D", str(self.root / "pg"), "stop", "-m", "immediate")
        except Exception:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def postgres_or_skip():
    """A fresh PostgreSQL server for a fixture, yielding its URL; without the binaries the test
    is skipped, except under CI (``CI=true``), where that is a failure."""
    import pytest

    from tests.servers import free_port

    if find_bin_dir() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is required under CI (apt-get install postgresql)")
        pytest.skip("PostgreSQL binaries not installed")
    pg = PostgresServer(free_port())
    pg.start()
    try:
        yield pg.url
    finally:
        pg.stop()
