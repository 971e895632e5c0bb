"""Process-tree helpers the benches share: a server's jobs run in processes forked from a fork
server that is itself the server's child, so their memory is found below the server, not beside it."""

from __future__ import annotations

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
