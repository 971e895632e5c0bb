"""Related items: SIMS (co-interaction neighbours) and Similar-Items (behaviour + metadata)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Algorithm, HyperParameters, Model, TrainingSettings, TrainingData, model_class
from .capabilities import Capabilities
from .checks import enough_interactions
from .factorization import fit_als
from .features import metadata_embedding, normalize_rows
from .scoring import interaction_matrix, outside_history_percentiles, popularity, topk

COLD_ITEM_INTERACTIONS = 5.0  # below about this many interactions, metadata outweighs behaviour
BLOCK = 512


@model_class
class RelatedItemsModel(Model):
    """Shared fallbacks: an unknown item gets popular items; short lists are filled with them."""

    def _fill(self, item: int, idx: np.ndarray, sc: np.ndarray, n: int, exclude, mask):
        if len(idx) >= n:
            return idx[:n], sc[:n]
        allowed = np.ones(self.n_items, bool) if mask is None else np.asarray(mask, bool).copy()
        allowed[idx] = False
        if 0 <= item < self.n_items:
            allowed[item] = False
        pi, _ = topk(np.asarray(self.arrays["popularity"]), n - len(idx), allowed, exclude)
        return np.r_[idx, pi].astype(np.int64), np.r_[sc, np.zeros(len(pi), np.float32)].astype(np.float32)


@model_class
class NeighbourModel(RelatedItemsModel):
    """Precomputed top neighbours per item (``nbr_idx``/``nbr_score``, -1 padded)."""

    def similar_items(self, item: int, n: int, exclude: np.ndarray | None = None,
                      candidates_mask: np.ndarray | None = None, **options: Any):
        if not 0 <= item < self.n_items:
            return self._fill(item, np.empty(0, np.int64), np.empty(0, np.float32), n, exclude, candidates_mask)
        nb = np.asarray(self.arrays["nbr_idx"][item]).astype(np.int64)
        sc = np.asarray(self.arrays["nbr_score"][item])
        keep = nb >= 0
        if candidates_mask is not None:
            keep &= np.asarray(candidates_mask, bool)[np.maximum(nb, 0)]
        if exclude is not None and len(exclude):
            keep &= ~np.isin(nb, exclude)
        return self._fill(item, nb[keep][:n], sc[keep][:n], n, exclude, candidates_mask)


class Sims(Algorithm):
    """Item-item co-interaction counts (pairs below ``min_cointeraction_count`` dropped),
    divided by the candidate's popularity to the power ``popularity_discount_factor``."""

    capabilities = {"aws-sims": Capabilities("RELATED_ITEMS", enough_interactions, "related-items",
                                             batch_inference=True)}

    def describe(self, data, params, settings):
        return {"algorithm": "cooccurrence-neighbours", "neighbours": str(settings.neighbours)}

    def fit(self, data: TrainingData, params: HyperParameters, settings: TrainingSettings) -> Model:
        keep = _percentile_filter(data, params, settings.seed)
        d = data.subset(keep)
        X = interaction_matrix(d, np.ones(d.n_interactions, np.float32))
        X.data[:] = 1.0
        pop = popularity(data)
        cnt = np.asarray(X.sum(axis=0)).ravel()
        discount = np.power(np.maximum(cnt, 1.0), -float(params.get("popularity_discount_factor", 0.5)))
        min_co = float(params.get("min_cointeraction_count", 3))
        k = min(settings.neighbours, max(data.n_items - 1, 1))
        nbr_idx = np.full((data.n_items, k), -1, np.int32)
        nbr_score = np.zeros((data.n_items, k), np.float32)
        Xt = X.T.tocsr()
        for start in range(0, data.n_items, BLOCK):
            stop = min(start + BLOCK, data.n_items)
            C = (Xt[start:stop] @ X).toarray().astype(np.float32)
            C[np.arange(stop - start), np.arange(start, stop)] = 0.0
            C[C < max(min_co, 1.0)] = 0.0
            S = C * discount[None, :]
            S[S <= 0] = -np.inf
            part = np.argpartition(-S, k - 1, axis=1)[:, :k] if k < S.shape[1] else \
                np.tile(np.arange(S.shape[1]), (stop - start, 1))[:, :k]
            vals = np.take_along_axis(S, part, axis=1)
            order = np.argsort(-vals, axis=1, kind="stable")
            part = np.take_along_axis(part, order, axis=1)
            vals = np.take_along_axis(vals, order, axis=1)
            ok = np.isfinite(vals)
            nbr_idx[start:stop] = np.where(ok, part, -1)
            nbr_score[start:stop] = np.where(ok, vals, 0.0)
        return NeighbourModel({"item_ids": data.item_ids, "user_ids": data.user_ids, "nbr_idx": nbr_idx,
                               "nbr_score": nbr_score, "popularity": pop},
                              {"recipe": params.get("_recipe", ""), "algorithm": "sims"})


def _percentile_filter(data: TrainingData, params: HyperParameters, seed: int) -> np.ndarray:
    """Interactions kept after the SIMS history-length and item-count percentile rules.

    Users outside the history-length percentiles are dropped (bots, one-offs); items below the
    minimum count percentile are dropped; items above the maximum keep a random sample of their
    interactions down to that count, so they stay candidates without drowning the others.
    """
    keep = np.ones(data.n_interactions, bool)
    if data.n_interactions == 0:
        return keep
    outside = outside_history_percentiles(np.bincount(data.user, minlength=data.n_users), params)
    if outside is not None:
        keep &= ~outside[data.user]
    cnt = np.bincount(data.item[keep], minlength=data.n_items)
    seen = cnt[cnt > 0]
    if len(seen) == 0:
        return keep
    lo_i = np.quantile(seen, params.get("min_item_interaction_count_percentile", 0.0))
    hi_i = max(np.quantile(seen, params.get("max_item_interaction_count_percentile", 1.0)), 1)
    keep &= cnt[data.item] >= lo_i
    over = np.flatnonzero(cnt > hi_i)
    if len(over):
        rng = np.random.default_rng(seed)
        r = rng.random(data.n_interactions)
        frac = np.ones(data.n_items)
        frac[over] = hi_i / cnt[over]
        keep &= r < frac[data.item]
    return keep


@model_class
class EmbeddingSimilarityModel(RelatedItemsModel):
    """Cosine in two spaces, blended per pair by how much behaviour each item has:
    sim = c_i c_j cos_behaviour + (1 - c_i c_j) cos_metadata, c = n / (n + COLD_ITEM_INTERACTIONS)."""

    def similarity(self, item: int) -> np.ndarray:
        a = self.arrays
        cf, md, conf = a["cf"], a["md"], np.asarray(a["confidence"])
        w = conf[item] * conf
        return w * (cf @ cf[item]) + (1.0 - w) * (md @ md[item])

    def similar_items(self, item: int, n: int, exclude: np.ndarray | None = None,
                      candidates_mask: np.ndarray | None = None, **options: Any):
        if not 0 <= item < self.n_items:
            return self._fill(item, np.empty(0, np.int64), np.empty(0, np.float32), n, exclude, candidates_mask)
        s = self.similarity(item)
        s[item] = -np.inf
        s[s <= 0] = -np.inf  # unrelated items come from the popularity fill instead
        idx, sc = topk(s, n, candidates_mask, exclude)
        return self._fill(item, idx, sc, n, exclude, candidates_mask)


class SimilarItems(Algorithm):
    """ALS item factors (``item_id_hidden_dim``) for behaviour, LSA of categorical and textual
    metadata (``item_metadata_hidden_dim``) for items with little or no behaviour."""

    capabilities = {"aws-similar-items": Capabilities("RELATED_ITEMS", enough_interactions, "related-items",
                                                      batch_inference=True, theme_generation=True)}

    def describe(self, data, params, settings):
        return {"algorithm": "als-cosine+metadata-lsa",
                "factors": str(params.get("item_id_hidden_dim", 100)),
                "metadata_dim": str(params.get("item_metadata_hidden_dim", 100))}

    def fit(self, data: TrainingData, params: HyperParameters, settings: TrainingSettings) -> Model:
        X = interaction_matrix(data)
        factors = min(int(params.get("item_id_hidden_dim", 100)), max(min(X.shape) - 1, 1))
        _, V = fit_als(X, factors, settings)
        cnt = np.bincount(data.item, minlength=data.n_items).astype(np.float32)
        conf = cnt / (cnt + COLD_ITEM_INTERACTIONS)
        cf = normalize_rows(np.asarray(V, np.float32))
        cf[cnt == 0] = 0.0
        md = metadata_embedding(data, int(params.get("item_metadata_hidden_dim", 100)), settings.seed)
        if not md.any():
            conf = np.ones_like(conf)  # no metadata: behaviour alone
        return EmbeddingSimilarityModel(
            {"item_ids": data.item_ids, "user_ids": data.user_ids, "cf": cf, "md": md,
             "confidence": conf.astype(np.float32), "popularity": popularity(data)},
            {"recipe": params.get("_recipe", ""), "algorithm": "similar-items"})

