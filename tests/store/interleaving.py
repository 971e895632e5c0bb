"""Two store operations made to wait for each other inside their transactions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from openpersonalize.store.metadata import Store, jobs


def while_the_job_row_is_held(holder: Store, arn: str, first: tuple[str, Callable],
                              second: tuple[str, Callable]) -> dict:
    """Run ``first``, then ``second`` (each a name and a callable), on threads of their own while
    a transaction of ``holder`` holds the job row of ``arn``: each gets inside its transaction
    and waits there (0.3 s is left for each to get that far), then the row is let go. Returns
    each one's return value or the exception it raised, by name."""
    outcomes: dict = {}

    def start(name: str, work: Callable) -> threading.Thread:
        def body() -> None:
            try:
                outcomes[name] = work()
            except Exception as exc:  # noqa: BLE001 (the outcome under test)
                outcomes[name] = exc
        t = threading.Thread(target=body)
        t.start()
        return t

    with holder.transaction() as conn:
        conn.execute(jobs.update().where(jobs.c.arn == arn).values(heartbeat=time.time()))
        threads = [start(*first)]
        time.sleep(0.3)
        threads.append(start(*second))
        time.sleep(0.3)
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "an operation did not finish"
    return outcomes
