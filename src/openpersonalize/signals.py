"""Change counters shared by the API processes of one ``openpersonalize serve``.

Each process keeps copies for the runtime's hot path (resource rows for a second, users' new
events, store/event_tail.py). A write made through one process drops that process's copies at
once; the other processes of the same server learn of it here: the writer bumps a counter after
its commit, and a reader compares the counter with the value it last saw (a read of shared
memory, no system call) before it trusts its copy. So a PutEvents answered by one process shows
in the next GetRecommendations answered by any other, as it does with one process.

The counters live in a small file that ``serve`` creates and names to its API processes
(``OPENPERSONALIZE_SIGNALS_FILE``); a process without it (one process, job workers, tests that
build a Service) has no shared counters and every call here costs nothing. Writers on several
processes may race on a counter: each writes a new value, so a reader sees a change whichever
write lands last, which is all it needs.
"""

from __future__ import annotations

import itertools
import mmap
import os
import struct

ENV = "OPENPERSONALIZE_SIGNALS_FILE"
#: The counters: resource rows written, event records appended, event records deleted, and what
#: a process holds for serving let go of (a deleted campaign, a changed dataset: state.py).
NAMES = ("rows", "records", "deletions", "state")
_SLOT = struct.Struct("<Q")


class Signals:
    """The shared counters of this process's server, or none (``Signals(None)``)."""

    def __init__(self, path: str | None):
        self.path = path or None
        self._map = None
        self._seen: dict[str, int] = {}
        self._next = itertools.count(1)
        if self.path:
            try:
                fd = os.open(self.path, os.O_RDWR)
            except OSError:  # gone (its server ended, or a cleaner took it): nothing to share
                return
            try:
                self._map = mmap.mmap(fd, _SLOT.size * len(NAMES))
            finally:
                os.close(fd)
            self._seen = {name: self._read(name) for name in NAMES}

    @classmethod
    def from_env(cls) -> Signals:
        return cls(os.environ.get(ENV))

    @staticmethod
    def create(path: str) -> str:
        """Make the file of a new server's counters (all zero); returns its path."""
        with open(path, "wb") as f:
            f.write(bytes(_SLOT.size * len(NAMES)))
        return path

    @property
    def shared(self) -> bool:
        return self._map is not None

    def _read(self, name: str) -> int:
        return _SLOT.unpack_from(self._map, _SLOT.size * NAMES.index(name))[0]

    def bump(self, name: str) -> None:
        """Something of ``name`` changed and is committed: tell the other processes."""
        if self._map is None:
            return
        # A value no other process writes (pid and a counter): a race still leaves a change.
        value = (os.getpid() << 32) | (next(self._next) & 0xFFFFFFFF)
        _SLOT.pack_into(self._map, _SLOT.size * NAMES.index(name), value)
        # ``_seen`` stays as it was: another process's bump since this one last looked must still
        # show (this process then drops its own copies once more, which costs a read).

    def changed(self, name: str) -> bool:
        """Whether another process bumped ``name`` since this process last asked."""
        if self._map is None:
            return False
        value = self._read(name)
        if value == self._seen[name]:
            return False
        self._seen[name] = value
        return True


#: This process's counters, read once from the environment.
_process: Signals | None = None


def process_signals() -> Signals:
    global _process
    if _process is None:
        _process = Signals.from_env()
    return _process
