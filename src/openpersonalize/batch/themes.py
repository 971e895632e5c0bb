"""Theme generation for batch inference in THEME_GENERATION mode, with no outside service.

For each input item, the similar items the model found are described by one short theme, and
re-ordered by how well each fits it. The built-in generator is deterministic: a TF-IDF model of
the catalogue's text (item name, the textual field, categorical values) picks the terms that
most distinguish the group from the whole catalogue, and the dominant category (when one is
shared by most of the group) frames them, e.g. ``"Drama: war and loyalty"``. Each item's
relevance is the cosine similarity of its text vector with the theme's, rescaled into
[-0.1, 0.6] like AWS's ``itemsThemeRelevanceScores``.

Another generator (for example one that asks a language model) plugs in through the
``theme_generator`` setting, ``module:callable``, called as ``generator(texts) -> str`` with the
group's item texts; relevance scores still come from the TF-IDF model.
"""

from __future__ import annotations

import importlib
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..data.interactions import load_group
from ..data.rows import group_datasets
from ..jobs.contract import JobFailed

LOW, HIGH = -0.1, 0.6


@dataclass
class ItemTexts:
    """Per item index of the model: its name, free text and categorical values."""

    names: list[str]
    texts: list[str]
    categories: list[list[str]]

    def document(self, i: int) -> str:
        return " ".join(filter(None, [self.names[i], self.names[i], self.texts[i], " ".join(self.categories[i])]))


class ThemeModel:
    """The catalogue's TF-IDF space, fitted once per job."""

    def __init__(self, items: ItemTexts, generator: Callable[[list[str]], str] | None = None):
        # scikit-learn takes most of a second to import; only theme jobs need it, so every other
        # job process (each batch job starts one) does not pay for it.
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.items = items
        self.generator = generator
        self.vectorizer = TfidfVectorizer(stop_words="english", ngram_range=(1, 2), sublinear_tf=True,
                                          min_df=1, max_features=200_000, token_pattern=r"(?u)\b[A-Za-z][A-Za-z]+\b")
        docs = [items.document(i) for i in range(len(items.names))]
        try:
            self.matrix = self.vectorizer.fit_transform(docs).tocsr()
            self.terms = self.vectorizer.get_feature_names_out()
        except ValueError:  # no usable words at all
            self.matrix, self.terms = None, np.array([])

    def theme(self, group: Sequence[int]) -> tuple[str, np.ndarray]:
        """The theme of a group of item indices, and each item's relevance to it."""
        group = [int(i) for i in group if i >= 0]
        if not group:
            return "Similar items", np.zeros(0)
        if self.matrix is None:
            return self._name_from_categories(group) or "Similar items", np.full(len(group), LOW)
        rows = self.matrix[group]
        centroid = np.asarray(rows.mean(axis=0)).ravel()
        terms = self._distinctive_terms(centroid, group)
        theme_vector = np.zeros_like(centroid)
        for t in terms:
            k = self.vectorizer.vocabulary_[t]
            theme_vector[k] = centroid[k]
        if not theme_vector.any():
            theme_vector = centroid
        norm = np.linalg.norm(theme_vector)
        cos = (rows @ theme_vector) / (norm * np.maximum(_row_norms(rows), 1e-12)) if norm > 0 else np.zeros(len(group))
        scores = LOW + (HIGH - LOW) * np.clip(np.asarray(cos).ravel(), 0.0, 1.0)
        if self.generator is not None:
            texts = [self.items.document(i) for i in group]
            return self.generator(texts), scores
        return self._title(terms, group), scores

    def _distinctive_terms(self, centroid: np.ndarray, group: list[int], k: int = 2) -> list[str]:
        order = np.argsort(-centroid, kind="stable")
        chosen: list[str] = []
        # The category frames the title, so its words are not picked again as terms.
        category_words = {w for i in group for c in self.items.categories[i]
                          for w in re.findall(r"[a-z]+", c.lower())}
        for j in order[:50]:
            if centroid[j] <= 0:
                break
            term = str(self.terms[j])
            words = term.split()
            if len(set(words)) < len(words) or set(words) & category_words \
                    or any(set(words) & set(c.split()) for c in chosen):
                continue
            # Prefer a phrase over its own words.
            chosen = [c for c in chosen if not set(c.split()) <= set(words)]
            chosen.append(term)
            if len(chosen) == k:
                break
        return chosen

    def _name_from_categories(self, group: list[int]) -> str | None:
        counts = Counter(c for i in group for c in set(self.items.categories[i]) if c)
        if not counts:
            return None
        value, n = counts.most_common(1)[0]
        return value if n * 2 >= len(group) else None

    def _title(self, terms: list[str], group: list[int]) -> str:
        category = self._name_from_categories(group)
        phrase = " and ".join(terms)
        if category and phrase:
            return f"{category}: {phrase}"
        if phrase:
            return phrase[0].upper() + phrase[1:]
        return category or "Similar items"


def _row_norms(rows) -> np.ndarray:
    return np.sqrt(np.asarray(rows.multiply(rows).sum(axis=1)).ravel())


def load_generator(spec: str) -> Callable[[list[str]], str] | None:
    """A custom generator from ``module:callable``; empty or ``builtin``: None."""
    if not spec or spec == "builtin":
        return None
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def apply_theme(result: dict, model: ThemeModel, item_index: Callable[[list[str]], np.ndarray],
                query_item: int) -> dict:
    """Turn an ordinary related-items output into the themed shape (no ``scores``)."""
    ids = result["recommendedItems"]
    indices = item_index(ids)
    group = [query_item] + [int(i) for i in indices] if query_item >= 0 else [int(i) for i in indices]
    title, scores = model.theme(group)
    item_scores = scores[1:] if query_item >= 0 else scores
    order = np.argsort(-item_scores, kind="stable") if len(ids) else np.array([], dtype=int)
    return {"recommendedItems": [ids[k] for k in order], "theme": title,
            "itemsThemeRelevanceScores": [round(float(item_scores[k]), 4) for k in order]}


class ThemeWriter:
    """Themes for one job: the catalogue's texts aligned with the model's items."""

    def __init__(self, model, theme_model: ThemeModel):
        self.model = model
        self.theme_model = theme_model

    @classmethod
    def for_job(cls, job, group_arn: str, model, name_field: str) -> "ThemeWriter":
        datasets = group_datasets(job.store, job.settings, group_arn)
        items_ds = datasets.get("ITEMS")
        if items_ds is None:
            raise JobFailed("Theme generation needs an Items dataset with the item name field.")
        schema = items_ds.schema
        name = schema.field(name_field)
        if name is None or name.type != "string":
            raise JobFailed(f"themeGenerationConfig.fieldsForThemeGeneration.itemName '{name_field}' is not a "
                            "string field of the Items schema.")
        group = load_group(job.store, job.settings, group_arn)
        ids = [str(i) for i in model.item_ids]
        positions = group.items.codes(ids)

        def column(field_name: str) -> list:
            col = group.items.columns.get(field_name)
            if col is None:
                return [None] * len(ids)
            values = col.to_pylist()
            return [values[p] if p >= 0 else None for p in positions]

        names = [v or "" for v in column(name.name)]
        textual = [f.name for f in schema.fields if f.textual]
        texts = [v or "" for v in column(textual[0])] if textual else [""] * len(ids)
        cat_fields = [f.name for f in schema.fields if f.categorical]
        cat_values = [column(f) for f in cat_fields]
        categories = [[c for values in cat_values if values[k] for c in str(values[k]).split("|")]
                      for k in range(len(ids))]
        return cls(model, ThemeModel(ItemTexts(names, texts, categories),
                                     load_generator(job.settings.theme_generator)))

    def themed(self, item_id: str, result: dict) -> dict:
        query = int(self.model.item_index([item_id])[0])
        return apply_theme(result, self.theme_model, self.model.item_index, query)
