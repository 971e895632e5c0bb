"""Process-tree helpers the benches share: a server's jobs run in processes forked from a fork
server that is itself the server's child, so their memory is found below the server, not beside it."""

from __future__ import annotations

import threading
from pathlib import Path


def descendants(root: int) -> list[int]:
    """Pids of every process below ``root`` (from /proc/<pid>/task/<tid>/children)."""
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                kids = [int(p) for p in (task / "children").read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as the benches print them beside their figures."""
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def peak_rss_kb(pid: int) -> int:
    """The kernel's VmHWM (peak resident memory) of a process in kB; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Sampler:
    """Calls :meth:`sample` every ``interval`` seconds on a thread while in its ``with`` block,
    and once more at its end."""

    def __init__(self, interval: float):
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while True:
            stopping = self._stop.is_set()
            self.sample()
            if stopping:
                return
            self._stop.wait(self.interval)


class PeakSampler(Sampler):
    """While in its ``with`` block, samples the peak memory of the processes that appear below
    ``root`` (the job started meanwhile; the ones already there, like the fork server, are not
    it). ``peak_kb`` is the highest VmHWM seen."""

    def __init__(self, root: int, interval: float = 0.02):
        super().__init__(interval)
        self.root, self.peak_kb = root, 0
        self._known = set(descendants(root))

    def sample(self) -> None:
        for pid in descendants(self.root):
            if pid not in self._known:
                self.peak_kb = max(self.peak_kb, peak_rss_kb(pid))
