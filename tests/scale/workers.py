"""``openpersonalize worker`` in a child process (its own process group, so a test can kill it
the way a machine dies: SIGKILL, no clean shutdown)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.servers import ChildProcess


class WorkerProcess(ChildProcess):
    stop_grace = 15.0

    def __init__(self, *, data_dir: Path, store_url: str, env: dict[str, str] | None = None, name: str = "worker"):
        self.data_dir = Path(data_dir)
        self.store_url = store_url
        self.env = env or {}
        self.log_path = self.data_dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> None:
        env = {**os.environ, **self.env, "OPENPERSONALIZE_DATA_DIR": str(self.data_dir),
               "OPENPERSONALIZE_STORE_URL": self.store_url}
        self.data_dir.mkdir(parents=True, exist_ok=True)
        start = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "openpersonalize.cli", "worker"], env=env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log()}")
            if " running " in self.log()[start:]:  # "worker <id> running N thread(s)"
                return
            time.sleep(0.1)
        raise RuntimeError(f"worker did not start in {timeout}s:\n{self.log()}")
