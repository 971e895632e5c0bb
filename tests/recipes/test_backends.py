"""The collaborative backends (dense EASE, neighbourhood EASE, ALS): each one, forced by the
training settings, answers every query of the recipes that use it; and the cost plan picks the
one the data's size affords."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp

from openpersonalize.recipes import cost
from openpersonalize.recipes.base import Model, TrainingSettings
from openpersonalize.recipes.factorization import ease
from openpersonalize.recipes.local_ease import local_ease
from openpersonalize.recipes.training import train

from tests.recipes.conftest import SETTINGS

FORCED = {
    "ease": SETTINGS,
    "local-ease": replace(SETTINGS, ease_max_items=0),
    "als": replace(SETTINGS, ease_max_items=0, local_ease_seconds=0),
}


@pytest.fixture(scope="module")
def models(world):
    return {b: {r: train(r, world.data, {}, seed="arn:backend", settings=s)
                for r in ("aws-user-personalization", "aws-personalized-ranking", "aws-item-affinity")}
            for b, s in FORCED.items()}


def share(found, wanted) -> float:
    found = [int(i) for i in found]
    return sum(i in wanted for i in found) / max(len(found), 1)


@pytest.mark.parametrize("backend", sorted(FORCED))
def test_the_forced_backend_trains_and_says_so(models, backend):
    result = models[backend]["aws-user-personalization"]
    assert result.model.meta["backend"] == backend
    assert result.tuned_params["algorithm"]["chosen_because"]
    assert result.metrics["normalized_discounted_cumulative_gain_at_10"] > 0.3


@pytest.mark.parametrize("backend", sorted(FORCED))
def test_every_query_answers_by_taste(models, world, backend, tmp_path):
    model = models[backend]["aws-user-personalization"].model
    for g in "ABC":
        u = world.user(f"u-{g}-04")
        idx, scores = model.recommend(u, 10)
        assert share(idx, world.items_of(g)) >= 0.8 and np.all(np.diff(scores) <= 1e-7)
    users = np.array([world.user("u-A-01"), world.user("u-C-09")])
    bi, _ = model.recommend_batch(users, 8)
    assert [r.tolist() for r in bi] == [model.recommend(int(u), 8)[0].tolist() for u in users]
    # A history sent since training (ad hoc), and the blocked product the metrics use.
    hist = np.array(sorted(world.items_of("B"))[:5])
    single = model.scores_for_history(hist)
    np.testing.assert_allclose(model.scores_for_histories([hist])[0], single, rtol=1e-4, atol=1e-5)
    # Saved and loaded (memory-mapped) it answers the same.
    model.save(tmp_path / "m")
    again = Model.load(tmp_path / "m")
    assert again.recommend(users[0], 10)[0].tolist() == model.recommend(users[0], 10)[0].tolist()


@pytest.mark.parametrize("backend", sorted(FORCED))
def test_ranking_and_segments(models, world, backend):
    ranking = models[backend]["aws-personalized-ranking"].model
    u = world.user("u-B-02")
    b_items = sorted(world.items_of("B") - set(ranking.history(u).tolist()))[:5]
    order, _ = ranking.rank(u, np.array(sorted(world.items_of("A"))[:5] + b_items))
    assert set(order[:5].tolist()) == set(b_items)
    segments = models[backend]["aws-item-affinity"].model
    users, _ = segments.users_for_items(np.array(sorted(world.items_of("C"))), 20)
    assert share(users, world.users_of("C")) >= 0.85


@pytest.mark.parametrize("backend", sorted(FORCED))
def test_update_training_takes_new_items(models, world, backend):
    from openpersonalize.recipes.base import TrainingData

    d = world.data
    first = models[backend]["aws-user-personalization"].model
    users = list(d.user_ids[d.user]) + ["u-new"] * 3
    items = list(d.item_ids[d.item]) + ["A-00", "A-01", "A-brand-new"]
    times = list(d.timestamp) + [int(d.timestamp.max()) + k for k in (1, 2, 3)]
    data2 = TrainingData.from_records(users, items, times, items_table=d.items, item_columns=d.item_columns)
    model = train("aws-user-personalization", data2, {}, training_mode="UPDATE", previous=first, seed=1,
                  settings=FORCED[backend], compute_metrics=False).model
    u = int(np.searchsorted(model.user_ids, "u-new"))
    idx, _ = model.recommend(u, 5)
    groups = [world.item_group.get(str(model.item_ids[i]), "A") for i in idx]
    assert groups.count("A") >= 4


def test_neighbourhood_ease_equals_ease_when_every_item_is_a_neighbour():
    """With k at least the catalogue, each regression sees every co-occurring item: the weights
    are EASE's wherever the items co-occur."""
    rng = np.random.default_rng(0)
    X = sp.csr_matrix((rng.random((300, 40)) < 0.2).astype(np.float32))
    dense, _ = ease(X, 5.0, 0.2)
    sparse = local_ease(X, 5.0, 0.2, k=40).toarray()
    G = (X.T @ X).toarray()
    co = (G > 0) | np.eye(40, dtype=bool)
    assert co.all()  # this data: every pair co-occurs, so the regressions are the same
    np.testing.assert_allclose(sparse, dense, rtol=2e-3, atol=2e-5)


def test_plan_follows_the_size_and_the_machine(monkeypatch):
    settings = TrainingSettings()
    monkeypatch.setattr(cost, "gemm_rate", lambda: 50e9)
    dense = np.full(1000, 100)  # 1e7 co-occurrence products: thousands per item
    assert cost.plan(2_000, dense, settings).backend == "ease"
    assert cost.plan(2_000, dense, settings).tune_l2
    # Sparse co-occurrence (fewer pairs per item than a neighbourhood holds): neighbourhood EASE.
    assert cost.plan(2_000, np.full(1000, 10), settings).backend == "local-ease"
    assert cost.plan(20_000, np.full(10_000, 10), settings).backend == "local-ease"
    assert cost.plan(100_000, np.full(200_000, 50), settings).backend == "als"
    # A machine ten times slower keeps dense EASE for smaller catalogues only.
    monkeypatch.setattr(cost, "gemm_rate", lambda: 5e9)
    assert cost.plan(6_000, dense, settings).backend == "local-ease"
    # Memory decides too: 20,000 items of dense EASE need more than a 2 GB budget.
    monkeypatch.setattr(cost, "gemm_rate", lambda: 1e15)
    assert cost.plan(20_000, dense, settings).backend == "local-ease"
    assert cost.plan(20_000, dense, replace(settings, training_memory_mb=16_000)).backend == "ease"


def test_a_given_hidden_dimension_asks_for_a_factor_model(world):
    """hidden_dimension sizes ALS's factors: naming it in the solution config trains ALS with
    that many factors whatever the catalogue's size; without it the cost plan decides."""
    result = train("aws-user-personalization", world.data, {"algorithmHyperParameters": {"hidden_dimension": "40"}},
                   seed=3, settings=SETTINGS, compute_metrics=False)
    assert result.model.meta["backend"] == "als" and np.asarray(result.model.arrays["item_factors"]).shape[1] == 40
    assert "hidden_dimension given" in result.tuned_params["algorithm"]["chosen_because"]
    default = train("aws-user-personalization", world.data, {}, seed=3, settings=SETTINGS, compute_metrics=False)
    assert default.model.meta["backend"] == "ease"


@pytest.mark.parametrize("backend", sorted(FORCED))
def test_explain_splits_the_raw_score_into_history_parts(models, world, backend):
    """The parts of every history item sum to the raw score the backend computes for an ad-hoc
    history (EASE: w . B[h, i]; ALS: the folded-in vector's dot product), boost included."""
    model = models[backend]["aws-user-personalization"].model
    hist = np.array(sorted(world.items_of("B"))[:5] + sorted(world.items_of("B"))[:2])  # repeats sum
    raw = model.scores_for_history(hist)
    finite = np.flatnonzero(np.isfinite(raw))
    for item in np.argsort(-raw)[:3].tolist() + [int(finite[np.argmin(raw[finite])])]:
        found = model.explain(hist, item)
        assert {h for h, _ in found["parts"]} <= set(hist.tolist())
        assert abs(sum(p for _, p in found["parts"]) + found["boost"] - raw[item]) < 1e-3 * max(1.0, abs(raw[item]))
        parts = [p for _, p in found["parts"]]
        assert parts == sorted(parts, reverse=True)
