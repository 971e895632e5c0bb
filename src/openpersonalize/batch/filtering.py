"""Filters in batch jobs: the group's data aligned with the model, and per-line masks.

Catalogue rows are the model's item (and user) indices, so a mask applies straight to a score
matrix. Users the data knows but the model does not (new since training) get rows after the
model's, so ``IF CurrentUser`` still sees their attributes. Lines are grouped by their
``filterValues``; each group binds the filter once (cached per distinct value set) and shares
that set's static mask; a user's own history exclusions are sparse (line, item) pairs. Only
filters with request-dependent parts get dense per-line masks.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..data.interactions import GroupData, Vocabulary, load_group
from ..data.rows import group_datasets
from ..errors import InvalidInputException
from ..filters import FilterData, Histories, compile_filter
from ..filters.columns import ACTION_HISTORY_WINDOW, Catalogue, normalise_event_type
from ..jobs.contract import JobContext, JobFailed
from ..recipes.scoring import Candidates, RowMasks
from . import jsonl

MASK_BLOCK = 512  # lines per dense mask block (filters with request-dependent parts)


def _aligned(vocab: Vocabulary, ids: np.ndarray) -> dict[str, pa.Array]:
    """``vocab``'s metadata columns re-ordered to ``ids`` (null rows for ids it lacks)."""
    positions = vocab.codes(ids.tolist()) if len(ids) else np.zeros(0, np.int32)
    take = pa.array(positions, mask=positions < 0, type=pa.int64())
    return {name: col.take(take) for name, col in vocab.columns.items()}


class GroupView:
    """A dataset group's filterable data, with rows aligned to a model's indices."""

    def __init__(self, group: GroupData, schemas: dict, model):
        self.model = model
        model_users = np.asarray(model.user_ids)
        data_users = np.asarray(group.users.ids.to_pylist(), dtype=str)
        in_model = model.user_index(data_users) if len(data_users) else np.zeros(0, np.int64)
        extra = data_users[in_model < 0]
        self.user_ids = np.concatenate([model_users, extra]) if len(extra) else model_users
        self.n_model_users = len(model_users)
        self._extra = {u: self.n_model_users + k for k, u in enumerate(extra.tolist())}
        self.item_columns = _aligned(group.items, np.asarray(model.item_ids))  # metadata by model index
        items = Catalogue.from_table(self.item_columns, schemas.get("ITEMS"), size=model.n_items)
        users = Catalogue.from_table(_aligned(group.users, self.user_ids), schemas.get("USERS"),
                                     size=len(self.user_ids))
        # Data-layer user code -> row here; data-layer item code -> model item index.
        user_row = np.full(len(data_users), -1, dtype=np.int64)
        known = in_model >= 0
        user_row[known] = in_model[known]
        user_row[~known] = self.n_model_users + np.arange(int((~known).sum()))
        item_index = model.item_index(group.items.ids.to_pylist()) if len(group.items) else np.zeros(0, np.int64)
        ix = group.interactions
        if ix is not None and len(ix):
            types = np.asarray(list(ix.event_types) + [""], dtype=object)
            events = types[np.where(ix.event_type < 0, len(types) - 1, ix.event_type)]
            rows = user_row[ix.user]
            self.histories = Histories.from_pairs(rows, item_index[ix.item], events, len(self.user_ids),
                                                  timestamps=ix.timestamp)
            user_events = FilterData.event_types_per_user(rows, events, len(self.user_ids))
        else:
            self.histories = Histories.empty(len(self.user_ids))
            user_events = None
        actions, self.action_histories, self._taken = self._actions(group, schemas, model, user_row)
        self.data = FilterData(items=items, users=users, actions=actions, user_event_types=user_events)

    def _actions(self, group: GroupData, schemas: dict, model, user_row: np.ndarray):
        """For a Next-Best-Action model: the Actions catalogue by model action index, each user's
        recent action interactions (ActionID filters), and when each user last took each action
        (REPEAT_FREQUENCY) as sorted ``(row * n_actions + action)`` keys with their times."""
        arrays = getattr(model, "arrays", {})
        if "action_ids" not in arrays:
            return None, Histories.empty(len(self.user_ids)), None
        action_ids = np.asarray(arrays["action_ids"], dtype=str)  # sorted
        vocab = group.actions
        actions = Catalogue.from_table(_aligned(vocab, action_ids), schemas.get("ACTIONS"), size=len(action_ids)) \
            if vocab is not None else Catalogue(size=len(action_ids))
        ai = group.action_interactions
        if vocab is None or ai is None or not len(ai):
            return actions, Histories.empty(len(self.user_ids)), None
        ids = np.asarray(vocab.ids.to_pylist(), dtype=str)
        position = np.searchsorted(action_ids, ids)
        found = (position < len(action_ids)) & (action_ids[np.minimum(position, len(action_ids) - 1)] == ids)
        action_index = np.where(found, position, -1)
        types = np.asarray(list(ai.event_types) + [""], dtype=object)
        codes = np.where(ai.event_type < 0, len(types) - 1, ai.event_type)  # null: the "" at the end
        rows = np.where(ai.user >= 0, user_row[np.maximum(ai.user, 0)], -1)
        acts = action_index[ai.item]
        histories = Histories.from_pairs(rows, acts, types[codes], len(self.user_ids),
                                         timestamps=ai.timestamp, window=ACTION_HISTORY_WINDOW)
        taken = np.array([normalise_event_type(str(e)) == "TAKEN" for e in types])[codes]
        sel = taken & (rows >= 0) & (acts >= 0)
        keys = rows[sel].astype(np.int64) * len(action_ids) + acts[sel]
        times = np.asarray(ai.timestamp, dtype=np.float64)[sel]
        order = np.lexsort((times, keys))
        keys, times = keys[order], times[order]
        last = np.r_[keys[1:] != keys[:-1], True] if len(keys) else np.zeros(0, bool)
        return actions, histories, (keys[last], times[last], len(action_ids))

    def action_taken_at(self, row: int) -> np.ndarray | None:
        """Per action (model index), when user ``row`` last took it (NaN: never)."""
        if self._taken is None or row < 0:
            return None
        keys, times, n = self._taken
        lo, hi = np.searchsorted(keys, [row * n, (row + 1) * n])
        out = np.full(n, np.nan)
        out[keys[lo:hi] - row * n] = times[lo:hi]
        return out

    def user_rows(self, model_users: np.ndarray, ids: list[str]) -> np.ndarray:
        """Rows of requesting users: their model index, or their row after the model's."""
        rows = np.asarray(model_users, dtype=np.int64).copy()
        for k in np.flatnonzero(rows < 0):
            rows[k] = self._extra.get(ids[k], -1)
        return rows


class LineFilters:
    """The job's filter, ready to give masks for lines of input."""

    def __init__(self, compiled, view: GroupView):
        self.compiled = compiled
        self.view = view

    @classmethod
    def for_job(cls, job: JobContext, filter_arn: str, model) -> "LineFilters":
        row = job.store.get(filter_arn)
        if row is None:
            raise JobFailed(f"Filter {filter_arn} does not exist any more.")
        if row.status != "ACTIVE":
            raise JobFailed(f"Filter {filter_arn} is {row.status}, not ACTIVE.")
        group_arn = row.group_arn
        schemas = {kind: ds.schema for kind, ds in group_datasets(job.store, job.settings, group_arn).items()}
        try:
            compiled = compile_filter(row.doc["filterExpression"], schemas)
        except InvalidInputException as exc:
            raise JobFailed(f"Filter {filter_arn} no longer fits the dataset group: {exc.message}") from None
        group = load_group(job.store, job.settings, group_arn, events=compiled.info.uses_history)
        return cls(compiled, GroupView(group, schemas, model))

    @property
    def target(self) -> str:
        return self.compiled.target

    def item_masks(self, records: list[jsonl.Record], users: np.ndarray, items: np.ndarray | None = None
                   ) -> tuple[RowMasks, list[str | None]]:
        """The candidates of each record (compact: one mask per distinct filter-value set plus
        each user's own history exclusions) and a per-record error (None where fine)."""
        n = self.view.model.n_items
        errors: list[str | None] = [None] * len(records)
        which = np.full(len(records), -1, dtype=np.int64)
        masks: list[Candidates] = []
        slot: dict[int, int] = {}  # id(candidates) -> index in masks
        hidden_rows: list[np.ndarray] = []
        hidden_cols: list[np.ndarray] = []
        ids = [r.obj.get("userId", "") for r in records]
        rows = self.view.user_rows(users, ids)

        def register(candidates: Candidates) -> int:
            if id(candidates) not in slot:
                slot[id(candidates)] = len(masks)
                masks.append(candidates)
            return slot[id(candidates)]

        groups: dict[str, list[int]] = {}
        for k, r in enumerate(records):
            values = r.obj.get("filterValues") or {}
            groups.setdefault(repr(sorted(values.items())), []).append(k)
        for members in groups.values():
            values = records[members[0]].obj.get("filterValues") or {}
            picked = np.asarray(members)
            try:
                bound = self.compiled.bind(self.view.data, values)
                if bound.compact:
                    which[picked] = register(bound.candidates)
                    if bound.uses_history:
                        r, c = bound.history_exclusions(self.view.histories.take(rows[picked]))
                        hidden_rows.append(picked[r])
                        hidden_cols.append(c)
                    continue
                # Request-dependent parts (IF CurrentUser gates, history INCLUDEs, CurrentItem):
                # dense masks per block of lines, equal rows shared.
                seen: dict[bytes, Candidates] = {}
                for start in range(0, len(picked), MASK_BLOCK):
                    block = picked[start:start + MASK_BLOCK]
                    dense = bound.masks(
                        users=rows[block],
                        histories=self.view.histories.take(rows[block]) if bound.uses_history else None,
                        current_items=None if items is None else items[block])
                    for line, mask in zip(block.tolist(), dense):
                        key = mask.tobytes()
                        if key not in seen:
                            seen[key] = Candidates(np.array(mask))
                        which[line] = register(seen[key])
            except InvalidInputException as exc:
                for k in members:
                    errors[k] = f"Line {records[k].line}: {exc.message}"
        empty = np.zeros(0, dtype=np.int64)
        return RowMasks(masks, which, np.concatenate(hidden_rows) if hidden_rows else empty,
                        np.concatenate(hidden_cols) if hidden_cols else empty, n), errors

    def user_mask(self, values: dict | None) -> np.ndarray:
        """For segment jobs: the users (model indices) a UserID filter lets through."""
        bound = self.compiled.bind(self.view.data, values or {})
        mask = bound.masks(batch=1)[0]
        return np.asarray(mask[: self.view.n_model_users])

