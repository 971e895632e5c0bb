"""The recipe conformance suite: every registered recipe, on data whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from openpersonalize.recipes.base import Model
from openpersonalize.recipes.registry import RECIPE_BY_NAME, resolve, trainable

ALL = trainable()
TYPES = {name: RECIPE_BY_NAME[resolve(name)].recipe_type for name in ALL}
# HRNN-Coldstart recommends cold items only (a handful in this world, most with equal scores):
# tests/recipes/test_sequential.py checks it on its own terms.
PERSONAL = [r for r in ALL if TYPES[r] == "USER_PERSONALIZATION"
            and resolve(r) not in ("aws-popularity-count", "aws-trending-now") and r != "aws-hrnn-coldstart"]
RELATED = [r for r in ALL if TYPES[r] == "RELATED_ITEMS"]
RANKING = [r for r in ALL if TYPES[r] == "PERSONALIZED_RANKING"]
SEGMENT = [r for r in ALL if TYPES[r] == "USER_SEGMENTATION"]


def share(found, wanted: set[int]) -> float:
    found = [int(i) for i in found]
    return sum(i in wanted for i in found) / max(len(found), 1)


def test_every_catalogue_recipe_outside_domains_trains():
    custom = {r.name for r in RECIPE_BY_NAME.values() if not r.domain}
    assert custom == set(ALL)


@pytest.mark.parametrize("recipe", PERSONAL)
def test_users_get_items_of_their_taste(recipe, world, trained):
    model = trained(recipe).model
    for g in "ABC":
        wanted = world.items_of(g)
        for k in (1, 7):
            u = world.user(f"u-{g}-{k:02d}")
            idx, scores = model.recommend(u, 10, exclude=model.history(u))
            assert len(idx) == 10
            assert share(idx, wanted) >= 0.8, (g, idx)
            assert np.all(np.diff(scores) <= 1e-7)
            assert 0 < scores.sum() <= 1.0 + 1e-6  # softmax over the catalogue


@pytest.mark.parametrize("recipe", PERSONAL)
def test_history_query_and_cold_user(recipe, world, trained):
    model = trained(recipe).model
    a_items = sorted(world.items_of("A"))[:6]
    idx, _ = model.recommend(np.array(a_items), 10, exclude=np.array(a_items))
    assert share(idx, world.items_of("A")) >= 0.8
    # No history at all: the most popular items (by distinct users).
    idx, _ = model.recommend(np.array([], dtype=np.int64), 5)
    pop = np.asarray(model.arrays["popularity"])
    assert set(idx.tolist()) == set(np.argsort(-pop, kind="stable")[:5].tolist())


@pytest.mark.parametrize("recipe", PERSONAL)
def test_batch_matches_single(recipe, world, trained):
    model = trained(recipe).model
    users = np.array([world.user("u-A-03"), world.user("u-B-04"), world.user("u-C-05")])
    bi, bs = model.recommend_batch(users, 7)
    for row, u in enumerate(users):
        si, ss = model.recommend(int(u), 7)
        assert bi[row].tolist() == si.tolist()
        np.testing.assert_allclose(bs[row], ss, rtol=1e-4)


@pytest.mark.parametrize("recipe", RANKING)
def test_ranking_puts_taste_first(recipe, world, trained):
    model = trained(recipe).model
    u = world.user("u-B-02")
    b_items = sorted(world.items_of("B") - set(model.history(u).tolist()))[:5]
    others = sorted(world.items_of("A"))[:5]
    pool = np.array(others + b_items + [-1])
    order, scores = model.rank(u, pool)
    assert set(order[:5].tolist()) == set(b_items)
    assert order[-1] == -1
    assert abs(scores.sum() - 1.0) < 1e-4


@pytest.mark.parametrize("recipe", RELATED)
def test_similar_items_share_the_group(recipe, world, trained):
    model = trained(recipe).model
    for g in "ABC":
        for item in (f"{g}-00", f"{g}-05"):
            i = world.item(item)
            idx, _ = model.similar_items(i, 8)
            assert i not in idx.tolist()
            assert share(idx, world.items_of(g)) >= 0.75, (recipe, item, idx)


@pytest.mark.parametrize("recipe", ["aws-similar-items", "aws-semantic-similarity"])
def test_cold_items_find_their_group_through_metadata(recipe, world, trained):
    model = trained(recipe).model
    for g in "ABC":
        i = world.item(f"{g}-cold-0")
        idx, _ = model.similar_items(i, 6)
        assert share(idx, world.items_of(g)) >= 0.8, (g, idx)


def test_popularity_count_returns_the_most_popular(world, trained):
    model = trained("aws-popularity-count").model
    d = world.data
    pairs = np.unique(np.c_[d.user, d.item], axis=0)
    counts = np.bincount(pairs[:, 1], minlength=d.n_items)
    idx, _ = model.recommend(-1, 5)
    assert counts[idx].tolist() == sorted(counts, reverse=True)[:5]


def test_trending_now_finds_the_burst(world, trained):
    model = trained("aws-trending-now").model
    idx, _ = model.recommend(-1, 3)
    assert idx[0] == world.item(world.burst_item)
    pop, _ = trained("aws-popularity-count").model.recommend(-1, 3)
    assert world.item(world.burst_item) not in pop.tolist()


@pytest.mark.parametrize("recipe", SEGMENT)
def test_segments_are_the_taste_group(recipe, world, trained):
    model = trained(recipe).model
    for g in "ABC":
        items = np.array(sorted(world.items_of(g)))
        if recipe == "aws-item-attribute-affinity":
            genre = np.asarray(world.data.items.column("GENRE").to_pylist())
            ids = np.asarray(world.data.items.column("ITEM_ID").to_pylist())
            items = model.item_index(ids[genre == g])
        users, _ = model.users_for_items(items, 20)
        assert len(users) == 20
        assert share(users, world.users_of(g)) >= 0.85, (g, users)


def test_next_best_action_follows_the_taker(world, trained):
    model = trained("aws-next-best-action").model
    ids = model.arrays["action_ids"].tolist()
    for g in "AB":
        idx, scores = model.actions_for_user(world.user(f"u-{g}-03"), 3)
        assert ids[idx[0]] == f"act-{g}"
        assert 0.5 < scores[0] <= 1.0
        assert scores[-1] == 0.0  # act-C has no action interactions: score 0, ordered by VALUE
    idx, _ = model.actions_for_user(world.user("u-C-01"), 3, now=None)
    assert len(idx) == 3


# -- contract checks shared by every recipe ------------------------------------------------------


def query(model: Model, recipe: str, world, n: int, mask=None):
    kind = TYPES[recipe]
    if kind == "RELATED_ITEMS":
        return model.similar_items(world.item("A-03"), n, candidates_mask=mask)
    if kind == "USER_SEGMENTATION":
        return model.users_for_items(np.array([world.item("A-03")]), n, mask)
    if kind == "PERSONALIZED_ACTIONS":
        return model.actions_for_user(world.user("u-A-01"), n, mask)
    if kind == "PERSONALIZED_RANKING":
        return model.rank(world.user("u-A-01"), np.arange(model.n_items))
    return model.recommend(world.user("u-A-01"), n, candidates_mask=mask)


@pytest.mark.parametrize("recipe", ALL)
def test_save_load_round_trip(recipe, world, trained, tmp_path):
    model = trained(recipe).model
    model.save(tmp_path / "m")
    loaded = Model.load(tmp_path / "m")
    assert type(loaded) is type(model)
    assert all(isinstance(a, np.memmap) for a in loaded.arrays.values())
    a_idx, a_sc = query(model, recipe, world, 10)
    b_idx, b_sc = query(loaded, recipe, world, 10)
    assert a_idx.tolist() == b_idx.tolist()
    np.testing.assert_allclose(a_sc, b_sc, rtol=1e-5)
    model.save(tmp_path / "m")  # replacing a saved model works too
    assert Model.load(tmp_path / "m").meta == loaded.meta


# HRNN-Coldstart's candidates are the cold items alone, so fewer than asked may pass a mask.
@pytest.mark.parametrize("recipe", [r for r in ALL if TYPES[r] != "PERSONALIZED_RANKING" and r != "aws-hrnn-coldstart"])
def test_masks_are_obeyed_and_filled(recipe, world, trained):
    model = trained(recipe).model
    kind = TYPES[recipe]
    size = {"USER_SEGMENTATION": model.n_users,
            "PERSONALIZED_ACTIONS": len(model.arrays.get("action_ids", []))}.get(kind, model.n_items)
    rng = np.random.default_rng(1)
    mask = rng.random(size) < 0.5
    n = min(10, int(mask.sum()) - 1)
    idx, _ = query(model, recipe, world, n, mask)
    assert len(idx) == n
    assert mask[idx].all()
    # Fewer pass than asked: exactly those that pass (or fewer), never a masked one.
    few = np.zeros(size, bool)
    few[rng.choice(size, 2, replace=False)] = True
    idx, _ = query(model, recipe, world, n, few)
    assert len(idx) <= 2 and few[idx].all()


def test_vocabularies_in_any_order(world):
    """The data layer codes items in first-seen order; lookups must not assume sorted ids."""
    from openpersonalize.recipes.base import TrainingSettings, TrainingData
    from openpersonalize.recipes.training import train

    d = world.data
    rng = np.random.default_rng(5)
    perm_i, perm_u = rng.permutation(d.n_items), rng.permutation(d.n_users)
    inv_i, inv_u = np.argsort(perm_i), np.argsort(perm_u)
    shuffled = TrainingData(d.user_ids[perm_u], d.item_ids[perm_i], inv_u[d.user].astype(np.int32),
                            inv_i[d.item].astype(np.int32), d.timestamp, d.event_type, d.event_types,
                            d.event_value, None, d.items, d.item_columns, None, d.user_columns,
                            d.actions, d.action_interactions)
    settings = TrainingSettings(num_threads=1, als_iterations=4)
    for recipe in ("aws-similar-items", "aws-next-best-action"):
        model = train(recipe, shuffled, {}, settings=settings, compute_metrics=False).model
        assert model.item_index(["A-03", "nope"]).tolist() == [int(inv_i[world.item("A-03")]), -1]
        assert model.user_ids[model.user_index(["u-B-01"])[0]] == "u-B-01"
        for user in ("u-B-01", "u-A-04", "u-zz-unknown", "", str(model.user_ids[-1])):
            assert model.user_position(user) == int(model.user_index([user])[0])
        if recipe == "aws-similar-items":
            idx, _ = model.similar_items(int(model.item_index(["A-cold-1"])[0]), 6)
            assert sum(model.item_ids[i].startswith("A-") for i in idx) >= 5
        else:
            idx, _ = model.actions_for_user(int(model.user_index(["u-A-04"])[0]), 1)
            assert model.arrays["action_ids"][idx[0]] == "act-A"


@pytest.mark.parametrize("recipe", ["aws-user-personalization", "aws-user-personalization-v2"])
def test_history_scoring_in_blocks_matches_single(recipe, world, trained):
    model = trained(recipe).model
    hists = [model.history(world.user("u-A-01")), np.array([], np.int64), np.array(sorted(world.items_of("C"))[:40])]
    S = model.scores_for_histories(hists)
    for k, h in enumerate(hists):
        np.testing.assert_allclose(S[k], model.scores_for_history(h), rtol=1e-4, atol=1e-6)
