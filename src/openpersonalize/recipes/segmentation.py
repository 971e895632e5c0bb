"""Item-Affinity and Item-Attribute-Affinity: the users most likely to interact with items.

Both score every user with the collaborative core of :mod:`.factorization` (EASE or ALS with
``hidden_dimension`` factors) against the mean of the query items' columns. Item-Attribute-
Affinity receives its items as the indices an attribute expression selects (the filter engine
compiles the expression to an item mask; ``np.flatnonzero(mask)`` gives the indices).
"""

from __future__ import annotations

import numpy as np

from .base import model_class
from .capabilities import Capabilities
from .checks import enough_interactions
from .factorization import ITEM_TO_ITEM, CollaborativeAlgorithm, CollaborativeModel
from .scoring import topk


@model_class
class AffinityModel(CollaborativeModel):
    def _all_users(self):
        if not hasattr(self, "_X"):
            self._X = self.history_matrix(np.arange(self.n_users))
        return self._X

    def user_scores(self, item_indices: np.ndarray) -> np.ndarray:
        """Affinity of every user to the item set (float32, -inf for users without history)."""
        items = np.asarray(item_indices, dtype=np.int64)
        items = items[(items >= 0) & (items < self.n_items)]
        X = self._all_users()
        if len(items) == 0:
            return np.full(self.n_users, -np.inf, np.float32)
        a = self.arrays
        if self.meta["backend"] in ITEM_TO_ITEM:
            B = self.item_weights()
            cols = B[:, items]
            col = np.asarray(cols.mean(axis=1)).ravel()
            s = np.asarray(X @ col, dtype=np.float32).ravel()
        else:
            s = np.asarray(a["user_factors"]) @ np.asarray(a["item_factors"])[items].mean(axis=0)
        s[np.diff(X.indptr) == 0] = -np.inf
        return s.astype(np.float32)

    def users_for_items(self, item_indices: np.ndarray, n: int, users_mask: np.ndarray | None = None,
                        exclude_interacted: bool = False) -> tuple[np.ndarray, np.ndarray]:
        s = self.user_scores(item_indices)
        exclude = None
        if exclude_interacted:
            X = self._all_users().tocsc()
            exclude = np.unique(np.concatenate(
                [X.indices[X.indptr[i]:X.indptr[i + 1]] for i in np.asarray(item_indices) if 0 <= i < self.n_items]
                or [np.empty(0, np.int32)]))
        return topk(s, n, users_mask, exclude)


class ItemAffinity(CollaborativeAlgorithm):
    capabilities = {"aws-item-affinity": Capabilities(
        "USER_SEGMENTATION", enough_interactions, "segments", segment_queries_per_file=500)}
    model_cls = AffinityModel


class ItemAttributeAffinity(CollaborativeAlgorithm):
    capabilities = {"aws-item-attribute-affinity": Capabilities(
        "USER_SEGMENTATION", enough_interactions, "segments", segment_queries_per_file=10,
        attribute_queries=True)}
    model_cls = AffinityModel
