"""Executors: where the shards of a big job are worked on.

A sharded job has a *driver* (``batch/driver.py``, in the worker that claimed the job) and a
*task*: a small, picklable recipe (``module:callable`` plus arguments) that builds, once per
executor worker, the function turning one shard into its output (picklable: batch jobs return
their output bytes and a count of bad lines). Building is where the expensive
set-up happens (loading the model, binding the filter), so each executor worker pays it once per
job, not once per shard.

``Executor.map(task, shards)`` returns the outputs lazily and **in shard order**, with a bounded
number of shards under way, so that the driver can write them one after the other into the job's
temporary output and memory stays bounded whatever the input size.

Executors register by name (the ``executor`` setting):

* ``local``: every shard in the calling process, one after the other, in shards of one scoring
  unit (the shard function itself may use a few threads).
* ``ray``: shards spread over Ray actors (``pip install openpersonalize[ray]``), on the cluster
  at ``ray_address`` or on a local Ray instance started on demand. Ray is imported only here and
  only when the executor is used.

A new executor is one class with ``@register``; ``tests/scale/test_executors.py`` runs the same
suite against every registered one.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from ..config import Settings

log = logging.getLogger("openpersonalize.jobs")


@dataclass(frozen=True)
class Task:
    """How to build the shard function: ``factory(*args)`` returns ``fn(shard) -> output``."""

    factory: str  # "package.module:callable"
    args: tuple = ()

    def build(self) -> Callable[[Any], Any]:
        module, _, name = self.factory.partition(":")
        return getattr(importlib.import_module(module), name)(*self.args)


class ExecutorUnavailable(RuntimeError):
    """The configured executor cannot run here (for example Ray is not installed)."""


class Executor(ABC):
    """Runs a task's shard function over shards; see the module docstring."""

    name: ClassVar[str]

    def __init__(self, settings: Settings):
        self.settings = settings

    @abstractmethod
    def map(self, task: Task, shards: Iterable[Any]) -> Iterator[Any]:
        """The outputs of ``task`` over ``shards``, in shard order, computed with bounded lookahead.

        An exception raised by the shard function (or while building it) is raised here, as
        itself. Closing the iterator early releases the executor's workers.
        """

    def check(self) -> None:
        """Raise ``ExecutorUnavailable`` when this executor cannot run in this process."""

    def shard_records(self, unit: int) -> int:
        """Records per shard for a job that scores ``unit`` records at a time: the whole number
        of units nearest above the ``shard_records`` setting (a shard's cost of transport and
        set-up is then small beside its scoring)."""
        return max(1, -(-self.settings.shard_records // unit)) * unit


EXECUTORS: dict[str, type[Executor]] = {}


def register(cls: type[Executor]) -> type[Executor]:
    """Register an executor class under its ``name``."""
    EXECUTORS[cls.name] = cls
    return cls


def get_executor(settings: Settings) -> Executor:
    name = (settings.executor or "local").lower()
    if name not in EXECUTORS:
        raise ExecutorUnavailable(f"Unknown executor {settings.executor!r}; known: {', '.join(sorted(EXECUTORS))}.")
    return EXECUTORS[name](settings)


@register
class LocalExecutor(Executor):
    """Every shard in this process, in order."""

    name = "local"

    def shard_records(self, unit: int) -> int:
        return unit  # nothing to ship: the smallest shard keeps memory and progress fine-grained

    def map(self, task: Task, shards: Iterable[Any]) -> Iterator[Any]:
        fn = None
        for shard in shards:
            if fn is None:  # built on the first shard: an input with no shard costs nothing
                fn = task.build()
            yield fn(shard)


class ShardWorker:
    """A Ray actor: builds the task's function on its first shard, then applies it to each."""

    def __init__(self, task: Task):
        self.task = task
        self.fn = None

    def run(self, shard) -> Any:
        if self.fn is None:
            self.fn = self.task.build()
        return self.fn(shard)

    def pid(self) -> int:
        return os.getpid()


_ray_lock = threading.Lock()


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ExecutorUnavailable("The ray executor needs Ray on the worker: pip install 'openpersonalize[ray]'.") from None
    return ray


def connect_ray(settings: Settings):
    """The ``ray`` module, connected to ``ray_address`` (or to a local instance it starts)."""
    ray = _import_ray()
    with _ray_lock:
        if not ray.is_initialized():
            options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
            if settings.ray_address:
                log.info("connecting to the Ray cluster at %s", settings.ray_address)
                ray.init(address=settings.ray_address, **options)
            else:
                log.info("starting a local Ray instance for this process")
                ray.init(include_dashboard=False, **options)
    return ray


@register
class RayExecutor(Executor):
    """Shards spread over Ray actors, at most ``shards_in_flight`` per actor.

    Actors are asked for as shards need them (a one-shard job starts one actor), each reserves
    ``ray_actor_cpus`` CPUs, and all are ended when the map ends. A shard goes to the least busy
    actor that has *started*: an actor still waiting for CPUs (the cluster is busy with other
    jobs) never holds shards back, so jobs sharing a full cluster cannot wait on each other.
    Shard functions are pure, so a shard whose actor died (a lost node) runs again on the
    restarted actor.
    """

    name = "ray"

    def check(self) -> None:
        _import_ray()

    def workers(self, ray) -> int:
        if self.settings.ray_workers > 0:
            return self.settings.ray_workers
        cpus = float(ray.cluster_resources().get("CPU", 1))
        return max(1, min(64, int(cpus // max(self.settings.ray_actor_cpus, 0.01))))

    def map(self, task: Task, shards: Iterable[Any]) -> Iterator[Any]:
        ray = connect_ray(self.settings)
        n = self.workers(ray)
        actor_class = ray.remote(ShardWorker).options(num_cpus=self.settings.ray_actor_cpus, max_restarts=2,
                                                      max_task_retries=2)
        actors: list = []
        starting: dict = {}  # readiness ref -> actor not known to have started yet
        busy: dict[int, int] = {}  # index in actors -> shards handed to it and not yet collected
        window = n * max(1, self.settings.shards_in_flight)
        under_way: deque = deque()  # (result ref, actor index), in shard order

        def started(block: bool) -> None:
            if not starting:
                return
            done, _ = ray.wait(list(starting), num_returns=1 if block else len(starting),
                               timeout=None if block else 0)
            for ref in done:
                actor = starting.pop(ref)
                self._get(ray, ref)  # raises if the actor could not start
                busy[actors.index(actor)] = 0

        def collect() -> Any:
            ref, k = under_way.popleft()
            busy[k] -= 1
            return self._get(ray, ref)

        try:
            for shard in shards:
                if len(under_way) >= window:
                    yield collect()
                if len(actors) < n:
                    actor = actor_class.remote(task)
                    actors.append(actor)
                    starting[actor.pid.remote()] = actor
                started(block=False)
                if not busy:
                    started(block=True)
                k = min(busy, key=lambda j: (busy[j], j))
                busy[k] += 1
                under_way.append((actors[k].run.remote(shard), k))
            while under_way:
                yield collect()
        finally:
            under_way.clear()
            starting.clear()
            for actor in actors:
                ray.kill(actor)

    @staticmethod
    def _get(ray, ref):
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, Exception):  # the shard function's own exception, as itself
                raise cause from None
            raise
