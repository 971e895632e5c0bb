"""Semantic-Similarity: items like an item by the meaning of their name and textual fields.

The encoder is all-MiniLM-L6-v2 run in numpy (:mod:`.minilm`) when its weights package is
installed (extra ``semantic``), else TF-IDF + LSA over the same text; the manifest records which.
Campaign ``rankingInfluence`` (POPULARITY, FRESHNESS in [0, 1]) adds up to ``INFLUENCE`` x the
item's normalised popularity / freshness to the cosine similarity.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .base import Algorithm, HyperParameters, Model, TrainingSettings, TooLittleData, TrainingData, model_class
from .capabilities import Capabilities
from .checks import enough_item_text
from .factorization import item_created
from .features import item_documents, lsa, tfidf
from .neighbors import RelatedItemsModel
from .scoring import popularity, topk

INFLUENCE = 0.5
LSA_DIM = 128


@model_class
class SemanticModel(RelatedItemsModel):
    def similar_items(self, item: int, n: int, exclude: np.ndarray | None = None,
                      candidates_mask: np.ndarray | None = None,
                      ranking_influence: dict[str, float] | None = None, **options: Any):
        if not 0 <= item < self.n_items or not np.asarray(self.arrays["has_text"])[item]:
            return self._fill(item, np.empty(0, np.int64), np.empty(0, np.float32), n, exclude, candidates_mask)
        emb = self.arrays["embedding"]
        s = np.asarray(emb @ emb[item], dtype=np.float32)
        s[~np.asarray(self.arrays["has_text"])] = -np.inf
        s[item] = -np.inf
        influence = ranking_influence or {}
        s = s + INFLUENCE * float(influence.get("POPULARITY", 0.0)) * self.arrays["pop_norm"]
        s = s + INFLUENCE * float(influence.get("FRESHNESS", 0.0)) * self.arrays["fresh_norm"]
        idx, sc = topk(s, n, candidates_mask, exclude)
        return self._fill(item, idx, sc, n, exclude, candidates_mask)


def item_texts(data: TrainingData) -> list[str]:
    """itemName then the textual fields, one string per item index ('' without a row)."""
    texts = [""] * data.n_items
    if data.items is None:
        return texts
    rows = data.item_table_rows()
    cols = [c for c in ((data.item_columns.item_name,) + data.item_columns.textual) if c]
    seen: list[str] = []
    for c in cols:
        if c in data.items.column_names and c not in seen:
            seen.append(c)
    values = [data.items.column(c).to_pylist() for c in seen]
    for i in np.flatnonzero(rows >= 0):
        parts = [str(v[rows[i]]) for v in values if v[rows[i]] not in (None, "")]
        texts[i] = ". ".join(parts)
    return texts


def encode(data: TrainingData, texts: list[str], seed: int) -> tuple[np.ndarray, str]:
    """Embeddings and the encoder's name."""
    from . import minilm

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: nothing may be downloaded
    model = None if os.environ.get("OPENPERSONALIZE_SEMANTIC_ENCODER") == "lsa" else minilm.load()
    if model is not None:
        return model.encode(texts), "all-MiniLM-L6-v2"
    docs = item_documents(data, categorical=False)
    return lsa(tfidf(docs), LSA_DIM, seed), "tfidf-lsa"


class SemanticSimilarity(Algorithm):
    capabilities = {"aws-semantic-similarity": Capabilities(
        "RELATED_ITEMS", enough_item_text, "item-text", batch_inference=True, ranking_influence=True,
        metadata_by_default=True, incremental_update=True)}

    def describe(self, data, params, settings):
        from . import minilm

        return {"algorithm": "text-embedding-cosine",
                "encoder": "all-MiniLM-L6-v2" if minilm.model_dir() else "tfidf-lsa"}

    def fit(self, data: TrainingData, params: HyperParameters, settings: TrainingSettings) -> Model:
        texts = item_texts(data)
        has_text = np.array([bool(t.strip()) for t in texts])
        if not has_text.any():
            raise TooLittleData("Create failed. Items dataset has no itemName or textual values.")
        emb, encoder = encode(data, texts, settings.seed)
        pop = popularity(data) if data.n_interactions else np.zeros(data.n_items, np.float32)
        pop_norm = np.log1p(pop) / max(np.log1p(pop).max(), 1e-9)
        created = item_created(data)
        if np.isfinite(created).any():
            lo, hi = np.nanmin(created), np.nanmax(created)
            fresh = np.nan_to_num((created - lo) / max(hi - lo, 1.0), nan=0.0)
        else:
            fresh = np.zeros(data.n_items)
        return SemanticModel(
            {"item_ids": data.item_ids, "user_ids": data.user_ids, "embedding": emb.astype(np.float32),
             "has_text": has_text, "popularity": pop, "pop_norm": pop_norm.astype(np.float32),
             "fresh_norm": fresh.astype(np.float32)},
            {"recipe": params.get("_recipe", ""), "algorithm": "semantic-similarity", "encoder": encoder})
