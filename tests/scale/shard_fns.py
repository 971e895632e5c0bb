"""Shard functions for the executor suite. They live in a module so executor workers (Ray actors
in other processes) can import them, as they import the real batch scorers."""

import os
import time
import uuid

from openpersonalize.jobs.contract import JobFailed


def echo(prefix: str, fail_on: int = -1):
    """``fn((index, payload)) -> b"prefix index payload build pid\\n"``; JobFailed on ``fail_on``."""
    build = uuid.uuid4().hex[:8]

    def fn(shard):
        index, payload = shard
        if index == fail_on:
            raise JobFailed(f"Line {index}: the data says no.")
        if index % 7 == 3:
            time.sleep(0.01)  # uneven shard times: results must still come back in order
        return f"{prefix} {index} {payload} {build} {os.getpid()}\n".encode()

    return fn


def broken():
    raise JobFailed("Filter arn:x does not exist any more.")
