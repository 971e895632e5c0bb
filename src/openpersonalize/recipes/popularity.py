"""Popularity-Count and Trending-Now: one ranking for everyone, masks applied per request."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Algorithm, HyperParameters, Model, TrainingSettings, TrainingData, model_class
from .capabilities import REFIT, Capabilities
from .checks import enough_interactions
from .scoring import popularity, topk

TREND_WINDOWS = {"30 minutes": 1800, "1 hour": 3600, "2 hours": 7200, "3 hours": 10800, "1 day": 86400}


@model_class
class RankingListModel(Model):
    """A fixed score per item (``item_score``); recommendations ignore the user."""

    def recommend(self, user: int | np.ndarray, n: int, exclude: np.ndarray | None = None,
                  candidates_mask: np.ndarray | None = None, **options: Any) -> tuple[np.ndarray, np.ndarray]:
        return topk(np.asarray(self.arrays["item_score"]), n, candidates_mask, exclude)

    def recommend_batch(self, users, n, mask=None, exclude_seen=False):
        if mask is None or mask.ndim == 1:
            i, s = self.recommend(-1, n, candidates_mask=mask)
            idx = np.full((len(users), n), -1, np.int64)
            sc = np.full((len(users), n), np.nan, np.float32)
            idx[:, :len(i)] = i
            sc[:, :len(s)] = s
            return idx, sc
        return super().recommend_batch(users, n, mask)


class PopularityCount(Algorithm):
    """Items by number of distinct users who interacted (event weights scale the count)."""

    capabilities = {"aws-popularity-count": Capabilities(
        "USER_PERSONALIZATION", enough_interactions, "next-items", user_optional=True, batch_inference=True)}

    def describe(self, data, params, settings):
        return {"algorithm": "distinct-user-count"}

    def fit(self, data: TrainingData, params: HyperParameters, settings: TrainingSettings) -> Model:
        score = popularity(data)
        # Ties broken by the newest interaction, so a fresh item wins over a stale one.
        latest = np.zeros(data.n_items)
        np.maximum.at(latest, data.item, data.timestamp.astype(np.float64))
        score = score + (latest / max(latest.max(), 1.0)) * 1e-3
        return RankingListModel({"item_ids": data.item_ids, "user_ids": data.user_ids,
                                 "item_score": score.astype(np.float32)},
                                {"recipe": params.get("_recipe", ""), "algorithm": "popularity-count"})


def trend_scores(item: np.ndarray, timestamp: np.ndarray, n_items: int, window: int,
                 anchor: float) -> tuple[np.ndarray, np.ndarray]:
    """(increase, current count) per item between the windows ending at ``anchor``."""
    cur = (timestamp > anchor - window) & (timestamp <= anchor)
    prev = (timestamp > anchor - 2 * window) & (timestamp <= anchor - window)
    c = np.bincount(item[cur], minlength=n_items).astype(np.float64)
    p = np.bincount(item[prev], minlength=n_items).astype(np.float64)
    return c - p, c


class TrendingNow(Algorithm):
    """Largest increase in interactions between the last two ``trend_discovery_frequency``
    windows; items with no increase follow by current-window count, then all-time count."""

    # No batch inference at AWS; served models are refit (cheap) to follow the trend.
    capabilities = {"aws-trending-now": Capabilities(
        "USER_PERSONALIZATION", enough_interactions, "trending", user_optional=True, refresh=REFIT)}

    def describe(self, data, params, settings):
        return {"algorithm": "window-increase", "trend_window_seconds": str(self._window(params))}

    def _window(self, params: HyperParameters) -> int:
        return TREND_WINDOWS[params.get("trend_discovery_frequency", "2 hours")]

    def fit(self, data: TrainingData, params: HyperParameters, settings: TrainingSettings) -> Model:
        window = self._window(params)
        anchor = float(data.timestamp.max()) if data.n_interactions else 0.0
        inc, cur = trend_scores(data.item, data.timestamp, data.n_items, window, anchor)
        total = np.bincount(data.item, minlength=data.n_items).astype(np.float64)
        # Lexicographic (increase, current, total) folded into one float32-safe score.
        pos = np.maximum(inc, 0)
        score = np.where(pos > 0, 2.0 + pos / (pos.max() + 1), 0.0)
        score += np.where(cur > 0, 1.0 + cur / (cur.max() + 1), 0.0) * (pos == 0)
        score += (total / (total.max() + 1)) * (score == 0)
        return RankingListModel({"item_ids": data.item_ids, "user_ids": data.user_ids,
                                 "item_score": score.astype(np.float32)},
                                {"recipe": params.get("_recipe", ""), "algorithm": "trending-now",
                                 "window": window, "anchor": anchor})
