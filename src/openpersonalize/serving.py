"""Real-time serving: deployed models, the filter data aligned with them, and how a request sees
what users just did.

``Deployment``: a campaign's (or recommender's) model, memory-mapped once per process, with the
dataset group's filter data aligned to it (rebuilt every ``view_refresh_seconds``, so new
items' metadata shows up quickly, or at the next request when this process deleted a dataset of
the group or changed its schema) and compiled filters. ``deployment`` finds or loads one; the
deployments themselves are held by the process's ``ProcessState`` (state.py), which bounds their
number and lets one go when its campaign, filter, dataset or solution version is deleted or
updated. ``recent_events`` reads the events a user sent after the model's training data was read,
from the event log through the process's records accessor (and its caches), so the next request
reflects them without retraining.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from dataclasses import dataclass, field, replace

import numpy as np

from .batch.filtering import GroupView
from .data.interactions import load_group
from .data.rows import data_mark, group_datasets
from .errors import InvalidInputException, ResourceNotFoundException
from .filters import Histories, compile_filter
from .inline import blocking
from .recipes.registry import served_recipe
from .state import ProcessState
from .store.models import MANIFEST, load_model, local_model_dir, model_arn_of

log = logging.getLogger("openpersonalize.serving")

RECENT_EVENTS = 100


@dataclass
class Deployment:
    """One served model and the group data its filters need."""

    key: str
    version_arn: str
    group_arn: str
    recipe: str
    recipe_type: str
    model: object
    records_until: int
    interactions_arn: str | None
    exclude_event_types: tuple = ()  # a domain use case's built-in exclusion (e.g. purchased items)
    model_arn: str = ""  # the model folder loaded: the version's own, or its latest automatic update
    _view: object = None
    _view_time: float = 0.0
    _refreshing: bool = False
    _filters: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _building: threading.Lock = field(default_factory=threading.Lock)
    _expired: int = 0  # bumped by expire_view: the next refresh builds a new view even with the same data mark
    _owner: object = None  # weakref to the ProcessState that holds this deployment (None: nobody does)
    _used: int = 0  # when it last served a request, on its owner's clock (least recently used goes first)

    def view(self, store, settings):
        """The group's data aligned with the model. Built on first use; after ``view_refresh_seconds``
        it is rebuilt in the background while requests keep using the current one, so no request
        waits for a rebuild."""
        with self._lock:
            view, age = self._view, time.time() - self._view_time
            if view is not None and age >= settings.view_refresh_seconds and not self._refreshing:
                self._refreshing = True
                threading.Thread(target=self._refresh_or_replace, args=(store, settings), daemon=True).start()
        if view is not None:
            return view
        blocking(f"building the filter data of {self.key}")
        with self._building:  # concurrent first calls wait for one build
            return self._view if self._view is not None else self._refresh(store, settings)

    def _refresh(self, store, settings):
        try:
            expired = self._expired
            datasets = group_datasets(store, settings, self.group_arn)
            mark = data_mark(datasets)
            with self._lock:
                view = self._view
                if view is not None and view.mark == mark and view.expired == expired:
                    self._view_time = time.time()  # nothing arrived: keep it, and its filters
                    return view
            schemas = {kind: ds.schema for kind, ds in datasets.items()}
            view = GroupView(load_group(store, settings, self.group_arn), schemas, self.model)
            view.schemas, view.mark, view.expired = schemas, mark, expired
            with self._lock:
                self._view, self._view_time = view, time.time()
                self._filters.clear()
            return view
        finally:
            with self._lock:
                self._refreshing = False

    def _refresh_or_replace(self, store, settings) -> None:
        """In the background: when the solution version's model was updated in place (a new
        ``_modelArn``), build a whole new deployment of it and swap it in, so that each request
        sees one model and the view aligned with it; otherwise rebuild the view."""
        try:
            row = store.get(self.version_arn)
            current = model_arn_of(row) if row is not None and row.kind == "solution-version" else self.model_arn
            if current != self.model_arn:
                owner = self._owner() if self._owner is not None else None
                model = owner.model(current, lambda: load_model(settings, current)) if owner is not None \
                    else load_model(settings, current)
                new = replace(self, model=model, model_arn=current,
                              records_until=int(row.doc.get("_recordsUntil") or 0), _view=None, _view_time=0.0,
                              _refreshing=False, _filters={}, _lock=threading.Lock(),
                              _building=threading.Lock())
                new._refresh(store, settings)
                if owner is not None:
                    owner.replace(self, new)
                log.info("%s now serves %s", self.key, current)
                return  # this deployment is retired: no point rebuilding its view
        except Exception:
            log.exception("updating the deployment of %s failed; it keeps serving %s", self.key, self.model_arn)
        self._refresh(store, settings)

    def compiled(self, store, settings, filter_row):
        """A filter row's expression compiled against the current view, and the view."""
        return self.compiled_expression(store, settings, filter_row.doc["filterExpression"],
                                        key=(filter_row.arn, filter_row.updated))

    def compiled_expression(self, store, settings, expression: str, key=None):
        """An expression compiled once per view (its bound masks are cached with it), and the view."""
        view = self.view(store, settings)
        key = expression if key is None else key
        with self._lock:
            found = self._filters.get(key)
        if found is None:
            found = compile_filter(expression, view.schemas)
            with self._lock:
                self._filters[key] = found
        return found, view

    def forget_filter(self, filter_arn: str) -> None:
        """Drop the compiled forms of a filter (it was deleted)."""
        with self._lock:
            for key in [k for k in self._filters if isinstance(k, tuple) and k[0] == filter_arn]:
                del self._filters[key]

    def expire_view(self) -> None:
        """The group's datasets changed in a way the data mark does not show (a deletion, a new
        schema): the next request starts a rebuild in the background, and keeps the current view
        until it is done."""
        with self._lock:
            self._expired += 1
            self._view_time = 0.0


def deployment(store, settings, key: str, model_arn: str, trained, state=None) -> Deployment:
    """The deployment of a model under ``key`` (a campaign or recommender ARN), held by ``state``
    (the process's ``ProcessState``; without one, a deployment that nobody keeps, for tools).
    ``trained`` is the row that trained it (a solution version, or the recommender itself), or a
    function that reads it (called only when the deployment is not held yet)."""
    if state is None:
        state = ProcessState(settings, store)
    found = state.deployed(key, model_arn)
    if found is not None:
        if found.model.n_items > settings.inline_max_items:
            blocking(f"scoring {found.model.n_items:,} items")
        return found
    blocking(f"loading the model of {key}")
    with state.loading(key):  # concurrent first calls wait for one load
        return state.deployed(key, model_arn) or _deploy(state, store, settings, key, model_arn, trained)


def _deploy(state, store, settings, key: str, model_arn: str, trained) -> Deployment:
    if callable(trained):
        trained = trained()
    _single_threaded_blas(state, settings)
    served = served_recipe(trained.doc)
    name = served.name
    loaded = model_arn_of(trained)  # a recommender's row names its current model the same way
    if not (local_model_dir(settings, loaded) / MANIFEST).exists():
        raise ResourceNotFoundException(f"The model of {model_arn} is missing from the data folder.")
    group_arn = trained.group_arn
    model = state.model(loaded, lambda: load_model(settings, loaded))  # shared with other deployments of it
    dep = Deployment(key=key, version_arn=model_arn, group_arn=group_arn, recipe=name, model_arn=loaded,
                     recipe_type=served.capabilities.recipe_type, model=model,
                     records_until=int(trained.doc.get("_recordsUntil") or 0),
                     interactions_arn=_interactions_arn(store, group_arn),
                     exclude_event_types=tuple(trained.doc.get("_excludeEventTypes") or ()))
    dep._owner = weakref.ref(state)
    state.keep(dep)
    return dep


def _single_threaded_blas(state, settings) -> None:
    """Requests score one user at a time: a matrix-vector product gains nothing from a BLAS
    thread pool, and on a small machine the pool's spinning threads fight the request threads
    (4x slower on 2 cores). Heavy jobs run in their own processes (``job_isolation`` process),
    so the serving process keeps one BLAS thread. The limit is the process's; ``state`` only
    remembers that it was set."""
    if state.blas_limited or settings.job_isolation != "process":
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, "blas")
    state.blas_limited = True


def _interactions_arn(store, group_arn: str) -> str | None:
    rows = [r for r in store.query("dataset", group_arn=group_arn) if r.doc["datasetType"] == "INTERACTIONS"]
    return rows[0].arn if rows else None


def recent_events(state, dep: Deployment, user: str, limit: int = RECENT_EVENTS, max_age: float = 0.0) -> list[dict]:
    """The user's (or session's) events recorded after the model's training data, oldest first.
    ``max_age``: how old (seconds) a reused answer may be; events sent through this process
    always show at once."""
    if dep.interactions_arn is None or not user:
        return []
    return state.records.recent(dep.interactions_arn, dep.records_until, user, limit, max_age)


def history_of(dep: Deployment, user_index: int, events: list[dict]) -> np.ndarray:
    """Item indices of the user's training history followed by the new events' known items."""
    base = dep.model.history(user_index) if user_index >= 0 else np.empty(0, np.int32)
    if not events:
        return np.asarray(base)
    new = dep.model.item_index([e.get("ITEM_ID") or "" for e in events])
    return np.concatenate([np.asarray(base, dtype=np.int64), new[new >= 0].astype(np.int64)])


def builtin_exclusion(store, settings, dep: Deployment, user_id: str | None, user_index: int,
                      events: list[dict]) -> np.ndarray | None:
    """A domain use case's own exclusion (items the user bought or watched), as a mask."""
    if not dep.exclude_event_types or not user_id:
        return None
    expression = "EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN (" + \
        ", ".join('"' + t.replace('"', '') + '"' for t in dep.exclude_event_types) + ")"
    compiled, view = dep.compiled_expression(store, settings, expression)
    return _mask(dep, view, compiled.bind(view.data, {}), user_id, user_index, events, None)


def filter_mask(store, settings, dep: Deployment, filter_arn: str, values: dict | None, user_id: str | None,
                user_index: int, events: list[dict], current_item: int | None = None) -> np.ndarray:
    """The items (or actions) a filter lets through for one request."""
    row = store.get_recent(filter_arn, settings.runtime_row_cache_seconds)
    if row is None or row.kind != "filter":
        raise ResourceNotFoundException(f"Filter {filter_arn} does not exist.")
    if row.status != "ACTIVE":
        raise InvalidInputException(f"Invalid filterArn: filter {filter_arn} is {row.status}, not ACTIVE.")
    if row.group_arn != dep.group_arn:
        raise InvalidInputException(f"Invalid filterArn: filter {filter_arn} belongs to dataset group "
                                    f"{row.group_arn}, not to {dep.group_arn} of this campaign.")
    compiled, view = dep.compiled(store, settings, row)
    return _mask(dep, view, compiled.bind(view.data, values or {}), user_id, user_index, events, current_item)


def _mask(dep: Deployment, view, bound, user_id, user_index: int, events: list[dict], current_item) -> np.ndarray:
    rows = view.user_rows(np.array([user_index]), [user_id or ""])
    actions = bound.compiled.target == "ActionID"
    source = view.action_histories if actions else view.histories
    history = source.take(rows) if rows[0] >= 0 else Histories.empty(1)
    if events and not actions:  # what the user did since the filter data was read
        items = dep.model.item_index([e.get("ITEM_ID") or "" for e in events]).astype(np.int64)
        types = [e.get("EVENT_TYPE") or "" for e in events]
        old_items = history.entities
        old_types = [history.event_types[c] for c in history.events]
        history = Histories.single(np.concatenate([old_items, items]), old_types + types, window=None)
    user_row = int(rows[0]) if rows[0] >= 0 else None
    return np.asarray(bound.mask(user=user_row, history=history, current_item=current_item))
