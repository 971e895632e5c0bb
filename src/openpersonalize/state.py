"""What a server process keeps between requests, in one object its Service owns.

A :class:`ProcessState` is made once per ``Service`` (api/app.py) and reaches the code that needs
it through the request ``Context`` (``ctx.state``): the runtime (serving.py) and the event calls
(events.py). Job bodies do not use it. It holds:

* **deployments** (serving.py): per campaign or recommender ARN, its model, the dataset group's
  filter data aligned with it and the filters compiled against that. At most
  ``runtime_max_deployments`` (config.py) are kept; past that the least recently used one is let
  go, and its next request loads it again. The lock that makes concurrent first requests of an
  ARN wait for one load exists only while a load is under way.
* **models**: one object per model folder however many deployments serve it, held weakly: a
  model that no deployment uses any more is freed with the last of them.
* **the event log's caches** (store/records.py, through ``records``): users' recent events, each
  dataset's newest record id and the event tails of store/event_tail.py.
* the serving process's one-time BLAS thread limit.

Control operations of this process that change what those copies were made from call the
``forget_*`` methods, so that the change shows at the next request and the memory of a deleted
resource is released at once: ``forget_campaign`` (DeleteCampaign, UpdateCampaign, and for
recommenders UpdateRecommender, StopRecommender, DeleteRecommender), ``forget_filter``
(DeleteFilter, and DeleteDatasetGroup for its filters), ``forget_dataset`` (DeleteDataset,
UpdateDataset), ``forget_group`` (DeleteDatasetGroup), ``forget_version`` (DeleteSolution, for its
versions). The timers that remain are for changes this process cannot see: other API processes
and job workers (``runtime_events_cache_seconds``, ``event_tail.REBUILD_SECONDS``, an automatic
model update picked up within ``view_refresh_seconds``), and data arriving in a group (imports,
PutItems, PutUsers), which ``view_refresh_seconds`` takes into the filter data at most that often
so that a stream of writes does not keep rebuilding it.

The resource rows a request reads (``Store.get_recent``) are the Store's own copies: every write
through that Store, the job runner's included, drops its copy at once.

``sizes()`` tells what is held; ``metrics()`` gives the same as Prometheus gauges for
``GET /metrics`` (values of this process, not of the cluster):
``openpersonalize_process_deployments`` (and ``_deployments_limit``),
``openpersonalize_process_loading`` (loads under way), ``openpersonalize_process_models`` and
``openpersonalize_process_model_bytes`` (live model objects and the bytes of their arrays, which
are memory-mapped), ``openpersonalize_process_event_tails``.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from .config import Settings
from .inline import blocking
from .signals import process_signals
from .store.metadata import Store
from .store.records import Records


class HeldDeployment(Protocol):
    """What the owner needs of a deployment (serving.Deployment is the one kind there is); an
    interface here keeps serving.py above this module in the import graph."""

    key: str
    version_arn: str
    group_arn: str
    model: object
    _used: int

    def forget_filter(self, filter_arn: str) -> None: ...

    def expire_view(self) -> None: ...


class ProcessState:
    """Deployments, models and event caches of one server process (see the module docstring)."""

    def __init__(self, settings: Settings, store: Store):
        self.settings = settings
        self.store = store
        self.max_deployments = max(1, int(settings.runtime_max_deployments))
        self.blas_limited = False  # serving.py limits BLAS to one thread once
        self._lock = threading.Lock()  # held to change what is held; a lookup needs none
        self._deployments: dict[str, HeldDeployment] = {}
        self._clock = itertools.count(1)  # stamps each use of a deployment (``_used``), for the LRU order
        self._loading: dict[str, list] = {}  # key -> [lock, callers using it], while a load is under way
        self._models: weakref.WeakValueDictionary[str, object] = weakref.WeakValueDictionary()
        self._records: Records | None = None
        self.signals = process_signals()  # the other API processes of this server (signals.py)

    # -- deployments ------------------------------------------------------------------------

    def deployed(self, key: str, version_arn: str) -> HeldDeployment | None:
        """The deployment under ``key`` when it serves ``version_arn``, now the most recently used.
        The request path: one dictionary read, and a stamp."""
        if self.signals.changed("state"):
            # Another API process let go of something (a deleted campaign, a filter, a dataset's
            # new schema, deleted events): which, it does not say, so this one lets go of every
            # deployment; each loads again at its next request (the models are memory-mapped).
            with self._lock:
                self._deployments.clear()
        found = self._deployments.get(key)
        if found is None or found.version_arn != version_arn:
            return None
        found._used = next(self._clock)
        return found

    @contextmanager
    def loading(self, key: str) -> Iterator[None]:
        """Held while the deployment of ``key`` loads: concurrent first requests wait for one load.
        The lock is removed when its last user leaves."""
        with self._lock:
            entry = self._loading.get(key)
            if entry is None:
                entry = self._loading[key] = [threading.Lock(), 0]
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._lock:
                entry[1] -= 1
                if entry[1] == 0 and self._loading.get(key) is entry:
                    del self._loading[key]

    def keep(self, dep: HeldDeployment) -> None:
        """Hold ``dep`` under its key (replacing the one there); past ``max_deployments`` the least
        recently used deployments are let go."""
        dep._used = next(self._clock)
        with self._lock:
            self._deployments[dep.key] = dep
            excess = len(self._deployments) - self.max_deployments
            if excess > 0:
                held = self._deployments
                for key in heapq.nsmallest(excess, held, key=lambda k: held[k]._used):
                    del held[key]

    def replace(self, old: HeldDeployment, new: HeldDeployment) -> bool:
        """Put ``new`` in the place of ``old`` if ``old`` is still the one held (an automatic model
        update picked up in the background); a forgotten deployment is not brought back."""
        with self._lock:
            if self._deployments.get(old.key) is not old:
                return False
            new._used = old._used
            self._deployments[old.key] = new
            return True

    def model(self, model_arn: str, load: Callable[[], object]):
        """The model of ``model_arn``: the object already loaded here if a deployment still uses
        it, else ``load()``'s."""
        with self._lock:
            found = self._models.get(model_arn)
        if found is None:
            loaded = load()
            with self._lock:
                found = self._models.setdefault(model_arn, loaded)
        return found

    def deployments(self) -> list[HeldDeployment]:
        """The deployments held, least recently used first."""
        with self._lock:
            held = list(self._deployments.values())
        return sorted(held, key=lambda dep: dep._used)

    # -- the event log ----------------------------------------------------------------------

    @property
    def records(self) -> Records:
        """The store's records accessor with this process's event caches."""
        found = self._records
        if found is None:
            blocking("reading the store")  # its first use checks the tables
            made = Records(self.store)
            with self._lock:
                if self._records is None:
                    self._records = made
                found = self._records
        return found

    # -- invalidation -----------------------------------------------------------------------

    def forget_campaign(self, arn: str) -> None:
        """A campaign or recommender was deleted, updated or stopped: let its deployment go (a
        request that still serves it loads it again, with the new row)."""
        with self._lock:
            self._deployments.pop(arn, None)
        self.signals.bump("state")

    forget_recommender = forget_campaign

    def forget_version(self, arn: str) -> None:
        """A solution version was deleted: let go of every deployment that serves it."""
        self._forget_where(lambda dep: dep.version_arn == arn)

    def forget_group(self, arn: str) -> None:
        """A dataset group was deleted: let go of every deployment on it."""
        self._forget_where(lambda dep: dep.group_arn == arn)

    def forget_filter(self, arn: str) -> None:
        """A filter was deleted: drop it, compiled, from every deployment."""
        for dep in self.deployments():
            dep.forget_filter(arn)
        self.signals.bump("state")

    def forget_dataset(self, arn: str, group_arn: str | None) -> None:
        """A dataset was deleted or got a new schema: drop its cached events and event tails, and
        have the deployments on its group rebuild their filter data (in the background, at their
        next request; they serve the current one meanwhile)."""
        records = self._records
        if records is not None:
            records.forget_cached(arn)
        for dep in self.deployments():
            if dep.group_arn == group_arn:
                dep.expire_view()
        self.signals.bump("state")

    def job_finished(self, kind: str, group_arn: str | None) -> None:
        """A job of this process's runner ended. A data deletion job removed users' events: drop
        what this process cached of its group's datasets at once (another process's jobs show at
        the next rebuild of the event tails)."""
        if kind == "data-deletion-job" and group_arn:
            for dataset in self.store.query("dataset", group_arn=group_arn):
                self.forget_dataset(dataset.arn, group_arn)

    def clear(self) -> None:
        """Let go of everything (the service stops)."""
        with self._lock:
            self._deployments.clear()
            self._records = None

    def _forget_where(self, condition: Callable[[HeldDeployment], bool]) -> None:
        self.signals.bump("state")
        with self._lock:
            for key in [k for k, dep in self._deployments.items() if condition(dep)]:
                del self._deployments[key]

    # -- what is held -----------------------------------------------------------------------

    def sizes(self) -> dict[str, int]:
        """Counts and bytes of what this process holds (``model_bytes``: the arrays of the live
        models, memory-mapped; ``deployed_model_bytes``: of the models the deployments hold)."""
        with self._lock:
            deployments = list(self._deployments.values())
            loading = len(self._loading)
            models = list(self._models.values())
        deployed = {id(dep.model): dep.model for dep in deployments}
        records = self._records
        return {"deployments": len(deployments), "deployments_limit": self.max_deployments,
                "loading": loading, "models": len(models), "model_bytes": sum(map(_model_bytes, models)),
                "deployed_model_bytes": sum(map(_model_bytes, deployed.values())),
                "event_tails": len(records.tails.tails) if records is not None else 0}


def _model_bytes(model) -> int:
    return sum(int(getattr(a, "nbytes", 0)) for a in (getattr(model, "arrays", None) or {}).values())


__all__ = ["ProcessState"]
