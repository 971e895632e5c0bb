"""The executor suite: every registered executor (``local``, ``ray``) against the same contract.

Outputs come back in shard order, the task's function is built once per executor worker, the
shard function's exceptions arrive as themselves, and shards are pulled with bounded lookahead.
"""

from __future__ import annotations

import pytest

from openpersonalize.config import Settings
from openpersonalize.jobs.executors import EXECUTORS, Task, get_executor
from openpersonalize.jobs.contract import JobFailed

ECHO = "tests.scale.shard_fns:echo"


@pytest.fixture(params=sorted(EXECUTORS))
def executor(request):
    if request.param == "ray":
        address = request.getfixturevalue("ray_address")
        return get_executor(Settings(executor="ray", ray_address=address, ray_workers=2, shards_in_flight=2))
    return get_executor(Settings(executor=request.param))


def parse(lines):
    return [line.decode().split() for line in lines]


def test_outputs_come_back_in_shard_order(executor):
    shards = [(i, "x" * (i % 5 + 1)) for i in range(40)]
    rows = parse(executor.map(Task(ECHO, ("out",)), iter(shards)))
    assert [(r[0], int(r[1]), r[2]) for r in rows] == [("out", i, p) for i, p in shards]


def test_the_function_is_built_once_per_worker(executor):
    rows = parse(executor.map(Task(ECHO, ("b",)), [(i, "p") for i in range(30)]))
    builds = {(r[3], r[4]) for r in rows}  # (build id, process id)
    processes = {pid for _, pid in builds}
    assert len(builds) == len(processes)  # one build per process
    assert len(processes) <= max(1, executor.settings.ray_workers)


def test_a_shard_error_arrives_as_itself_after_the_outputs_before_it(executor):
    outputs = executor.map(Task(ECHO, ("e", 5)), [(i, "p") for i in range(12)])
    got = []
    with pytest.raises(JobFailed) as err:
        for out in outputs:
            got.append(out)
    assert str(err.value) == "Line 5: the data says no."
    assert [int(r[1]) for r in parse(got)] == [0, 1, 2, 3, 4]


def test_a_build_error_arrives_as_itself(executor):
    with pytest.raises(JobFailed, match="^Filter arn:x does not exist any more.$"):
        list(executor.map(Task("tests.scale.shard_fns:broken"), [(0, "p")]))


def test_shards_are_pulled_with_bounded_lookahead(executor):
    pulled = []

    def shards():
        for i in range(200):
            pulled.append(i)
            yield i, "p"

    outputs = executor.map(Task(ECHO, ("l",)), shards())
    first = next(outputs)
    assert first.startswith(b"l 0 ")
    bound = 1 if executor.name == "local" else executor.settings.ray_workers * executor.settings.shards_in_flight + 1
    assert len(pulled) <= bound
    outputs.close()  # ending early releases the executor's workers
    assert len(pulled) < 200


def test_no_shard_no_output(executor):
    assert list(executor.map(Task("tests.scale.shard_fns:broken"), [])) == []
