"""Next-Best-Action: the actions a user is most likely to take.

Users are described by ALS factors of their item interactions. For every action with at least
``MIN_EVENTS`` TAKEN and ``MIN_EVENTS`` NOT_TAKEN/VIEWED action interactions within six weeks of
the newest one, an L2-regularised logistic regression on those factors predicts whether a user
takes the action within ``action_optimization_period`` days of first meeting it. Other actions
score 0.0 and are ordered by VALUE, as the spec says.
"""

from __future__ import annotations

import numpy as np

from .base import (Algorithm, HyperParameters, Model, TrainingSettings, TooLittleData, TrainingData, index_in, model_class,
                   sorter_of)
from .capabilities import FOLD_IN, Capabilities
from .checks import enough_actions
from .factorization import fit_als
from .features import normalize_rows
from .scoring import interaction_matrix

MIN_EVENTS = 50
WINDOW = 42 * 86400  # six weeks
FACTORS = 16
DAY = 86400


def normalise_event(e: object) -> str:
    return str(e or "").strip().upper().replace(" ", "_")


def _column(table, *names, default=np.nan) -> np.ndarray:
    for name in names:
        if table is not None and name in table.column_names:
            return np.array([default if v is None else v for v in table.column(name).to_pylist()], dtype=np.float64)
    return np.full(0 if table is None else table.num_rows, default, dtype=np.float64)


@model_class
class ActionModel(Model):
    @property
    def action_ids(self) -> np.ndarray:
        return self.arrays["action_ids"]

    def propensity(self, user: int) -> np.ndarray:
        a = self.arrays
        f = np.asarray(a["user_features"][user]) if 0 <= user < self.n_users else np.asarray(a["mean_feature"])
        z = np.asarray(a["W"]) @ np.r_[f, 1.0].astype(np.float32)
        p = 1.0 / (1.0 + np.exp(-z))
        return np.where(np.asarray(a["eligible"]), p, 0.0).astype(np.float32)

    def actions_for_user(self, user: int, n: int, candidates_mask: np.ndarray | None = None,
                         now: float | None = None, taken_at: np.ndarray | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
        a = self.arrays
        p = self.propensity(user)
        ok = np.ones(len(p), bool) if candidates_mask is None else np.asarray(candidates_mask, bool).copy()
        if now is not None:
            ok &= ~(np.asarray(a["action_expiry"]) < now)
            if taken_at is not None and "action_repeat_days" in a:
                # Taken within the action's REPEAT_FREQUENCY days: not offered again yet.
                with np.errstate(invalid="ignore"):
                    ok &= ~(np.asarray(taken_at) > now - np.asarray(a["action_repeat_days"]) * 86400.0)
        value = np.nan_to_num(np.asarray(a["action_value"]), nan=0.0)
        idx = np.flatnonzero(ok)
        order = idx[np.lexsort((idx, -value[idx], -p[idx]))][:n]
        return order.astype(np.int64), p[order]


def logistic(X: np.ndarray, y: np.ndarray, l2: float = 1.0, iterations: int = 15) -> np.ndarray:
    """IRLS for L2-regularised logistic regression (last column of X is the intercept)."""
    w = np.zeros(X.shape[1])
    reg = l2 * np.eye(X.shape[1])
    reg[-1, -1] = 1e-6
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(X @ w)))
        g = X.T @ (p - y) + reg @ w
        H = (X.T * (p * (1 - p))) @ X + reg
        step = np.linalg.solve(H, g)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    return w


class NextBestAction(Algorithm):
    capabilities = {"aws-next-best-action": Capabilities(
        "PERSONALIZED_ACTIONS", enough_actions, "actions", scored=True, refresh=FOLD_IN)}

    def describe(self, data, params, settings):
        return {"algorithm": "als-user-factors+logistic-per-action", "factors": str(FACTORS)}

    def fit(self, data: TrainingData, params: HyperParameters, settings: TrainingSettings) -> Model:
        if data.actions is None:
            raise TooLittleData("Create failed. Next-Best-Action needs an Actions dataset.")
        action_ids = np.unique(np.asarray(data.actions.column("ACTION_ID").to_pylist(), dtype=str))
        order = np.argsort(np.asarray(data.actions.column("ACTION_ID").to_pylist(), dtype=str), kind="stable")
        ids_sorted = np.asarray(data.actions.column("ACTION_ID").to_pylist(), dtype=str)[order]
        first = np.r_[True, ids_sorted[1:] != ids_sorted[:-1]]
        rows = order[first]  # one table row per action id
        value = _column(data.actions, "VALUE")[rows] if data.actions.num_rows else np.zeros(0)
        expiry = _column(data.actions, "EXPIRATION_TIMESTAMP", "ACTION_EXPIRATION_TIMESTAMP", default=np.inf)
        expiry = expiry[rows] if len(expiry) else np.full(len(action_ids), np.inf)
        repeat = _column(data.actions, "REPEAT_FREQUENCY")
        repeat = repeat[rows] if len(repeat) else np.full(len(action_ids), np.nan)

        X = interaction_matrix(data)
        k = min(FACTORS, max(min(X.shape) - 1, 1))
        U, _ = fit_als(X, k, settings, iterations=10)
        feats = normalize_rows(np.asarray(U, np.float32))
        feats[np.diff(X.indptr) == 0] = 0.0
        W = np.zeros((len(action_ids), k + 1), np.float32)
        eligible = np.zeros(len(action_ids), bool)
        ai = data.action_interactions
        if ai is not None and ai.num_rows:
            self._fit_actions(data, ai, action_ids, feats, int(params.get("action_optimization_period", 14)), W,
                              eligible)
        return ActionModel(
            {"item_ids": data.item_ids, "user_ids": data.user_ids, "action_ids": action_ids,
             "action_value": value.astype(np.float64), "action_expiry": expiry.astype(np.float64),
             "action_repeat_days": repeat.astype(np.float64),
             "W": W, "eligible": eligible, "user_features": feats,
             "mean_feature": feats.mean(axis=0).astype(np.float32) if len(feats) else np.zeros(k, np.float32)},
            {"recipe": params.get("_recipe", ""), "algorithm": "next-best-action",
             "eligible_actions": int(eligible.sum())})

    def _fit_actions(self, data, ai, action_ids, feats, period_days, W, eligible) -> None:
        users = index_in(data.user_ids, np.asarray(ai.column("USER_ID").to_pylist(), dtype=str),
                        sorter_of(data.user_ids))
        acts_raw = np.asarray(ai.column("ACTION_ID").to_pylist(), dtype=str)
        acts = np.searchsorted(action_ids, acts_raw)
        acts = np.where((acts < len(action_ids)) & (action_ids[np.minimum(acts, len(action_ids) - 1)] == acts_raw),
                        acts, -1)
        events = np.array([normalise_event(e) for e in ai.column("EVENT_TYPE").to_pylist()])
        ts = np.asarray(ai.column("TIMESTAMP").to_pylist(), dtype=np.int64)
        recent = (ts >= ts.max() - WINDOW) & (acts >= 0)
        taken = events == "TAKEN"
        for a in np.unique(acts[recent]):
            sel = recent & (acts == a)
            sel &= users >= 0
            if (taken & sel).sum() < MIN_EVENTS or (~taken & sel).sum() < MIN_EVENTS:
                continue
            u, t, tk = users[sel], ts[sel], taken[sel]
            first_seen = {}
            for uu, tt in zip(u, t):
                first_seen[uu] = min(tt, first_seen.get(uu, tt))
            label = {uu: 0.0 for uu in first_seen}
            for uu, tt, k in zip(u, t, tk):
                if k and tt <= first_seen[uu] + period_days * DAY:
                    label[uu] = 1.0
            us = np.fromiter(label, dtype=np.int64)
            y = np.fromiter(label.values(), dtype=np.float64)
            if y.min() == y.max():
                continue
            Xf = np.c_[feats[us], np.ones(len(us))].astype(np.float64)
            W[a] = logistic(Xf, y)
            eligible[a] = True
