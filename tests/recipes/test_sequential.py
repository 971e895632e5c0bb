"""User-Personalization-v2 and the HRNN recipes learn from the order of events
(recipes/sequential.py), on generated data with a strict sequence rule: item k is followed by
item k + 1 in every user's history. An order-blind model cannot tell the item after a user's
last one from the item before their first; a sequence model can."""

from __future__ import annotations

import numpy as np
import pytest

from openpersonalize.recipes.base import TrainingData
from openpersonalize.recipes.registry import LEGACY
from openpersonalize.recipes.sequential import SequentialModel, significant_best
from openpersonalize.recipes.training import train

from tests.recipes.conftest import SETTINGS

SEQUENTIAL = ["aws-user-personalization-v2", *sorted(LEGACY)]
N_ITEMS = 120


def chains(n_users: int = 400, seed: int = 0, order_matters: bool = True) -> TrainingData:
    """Each user walks k, k+1, k+2, ... (mod N_ITEMS) from a random start, 6 to 12 steps; with
    ``order_matters`` False the same items come in a random order."""
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    for u in range(n_users):
        start, length = int(rng.integers(N_ITEMS)), int(rng.integers(6, 13))
        walk = (start + np.arange(length)) % N_ITEMS
        if not order_matters:
            walk = rng.permutation(walk)
        users += [f"u{u:04d}"] * length
        items += [f"i{k:03d}" for k in walk]
        times += list(1_700_000_000 + 1000 * u + np.arange(length) * 10)
    return TrainingData.from_records(users, items, times)


@pytest.fixture(scope="module")
def sequences():
    return chains()


@pytest.fixture(scope="module")
def models(sequences):
    return {r: train(r, sequences, {}, seed="arn:seq", settings=SETTINGS)
            for r in [*SEQUENTIAL, "aws-user-personalization"]}


def next_item_first(model, data: TrainingData) -> float:
    hits = 0
    for u in range(data.n_users):
        hist = model.history(u)
        want = (int(data.item_ids[hist[-1]][1:]) + 1) % N_ITEMS
        idx, _ = model.recommend(u, 1)
        hits += data.item_ids[idx[0]] == f"i{want:03d}"
    return hits / data.n_users


@pytest.mark.parametrize("recipe", SEQUENTIAL)
def test_sequence_recipes_put_the_next_item_first(recipe, models, sequences):
    result = models[recipe]
    assert isinstance(result.model, SequentialModel)
    assert result.model.meta["seq_weight"] > 0
    assert next_item_first(result.model, sequences) >= 0.8
    assert "sequence-blend" in result.tuned_params["algorithm"]["algorithm"]


def test_the_order_blind_recipe_cannot(models, sequences):
    assert next_item_first(models["aws-user-personalization"].model, sequences) < 0.6


def test_switching_the_transitions_off_loses_the_order(models, sequences):
    """The same model with seq_weight 0 is the collaborative model alone: it fails the rule."""
    model = models["aws-user-personalization-v2"].model
    off = SequentialModel(model.arrays, {**model.meta, "seq_weight": 0.0})
    assert next_item_first(off, sequences) < 0.6


@pytest.mark.parametrize("recipe", SEQUENTIAL)
def test_a_new_event_moves_the_first_item_to_its_successor(recipe, models, sequences):
    model = models[recipe].model
    for u in (0, 5, 9):
        jump = (int(sequences.item_ids[model.history(u)[-1]][1:]) + 40) % N_ITEMS
        hist = np.r_[model.history(u), sequences.item_ids.tolist().index(f"i{jump:03d}")]
        idx, _ = model.recommend(hist, 3)
        assert sequences.item_ids[idx[0]] == f"i{(jump + 1) % N_ITEMS:03d}"


def test_without_order_the_blend_keeps_the_collaborative_model():
    """Shuffled sequences carry no order: validation gives the transitions little or no weight,
    and the lists are as good as User-Personalization's."""
    data = chains(order_matters=False, seed=1)
    v2 = train("aws-user-personalization-v2", data, {}, seed="arn:seq", settings=SETTINGS)
    up = train("aws-user-personalization", data, {}, seed="arn:seq", settings=SETTINGS)
    assert v2.model.meta["seq_weight"] <= 0.6
    key = "normalized_discounted_cumulative_gain_at_10"
    assert v2.metrics[key] >= 0.9 * up.metrics[key]


def test_batch_and_single_answers_agree(models, sequences):
    model = models["aws-user-personalization-v2"].model
    users = np.arange(0, 40, 7)
    idx, scores = model.recommend_batch(users, 5)
    for row, u in enumerate(users):
        single, s = model.recommend(int(u), 5)
        assert idx[row].tolist() == single.tolist()
        np.testing.assert_allclose(scores[row], s, rtol=1e-4)


# -- HRNN-Coldstart and HRNN-Metadata ---------------------------------------------------------------


def test_coldstart_recommends_cold_items_of_the_users_taste(world):
    """The conformance world has five cold items per taste group (metadata only, created
    recently): HRNN-Coldstart recommends only cold items, its user's group's first (through the
    metadata part); HRNN without the feature recommends warm ones."""
    cold = train("aws-hrnn-coldstart", world.data, {}, seed="arn:seq", settings=SETTINGS).model
    plain = train("aws-hrnn", world.data, {}, seed="arn:seq", settings=SETTINGS).model
    cold_ids = set(world.cold_items)
    for g in "ABC":
        u = world.user(f"u-{g}-03")
        idx, _ = cold.recommend(u, 10)
        ids = [str(cold.item_ids[i]) for i in idx]
        assert set(ids) <= cold_ids
        assert {world.item_group[i] for i in ids[:5]} == {g}
        batch, _ = cold.recommend_batch(np.array([u]), 10)
        assert {str(cold.item_ids[i]) for i in batch[0][:5]} == set(ids[:5])
        warm = [str(plain.item_ids[i]) for i in plain.recommend(u, 10)[0]]
        assert not set(warm) & cold_ids


def test_cold_start_parameters_take_effect(world):
    """cold_start_max_duration: with a year and a day every warm item is recent enough, and the
    warm items with at most cold_start_max_interactions interactions join the candidates."""
    params = {"featureTransformationParameters": {"cold_start_max_duration": "400",
                                                  "cold_start_max_interactions": "10"}}
    model = train("aws-hrnn-coldstart", world.data, params, seed="arn:seq", settings=SETTINGS).model
    counts = np.bincount(world.data.item, minlength=world.data.n_items)
    cold = np.asarray(model.arrays["cold_items"])
    assert set(np.flatnonzero(cold).tolist()) == set(np.flatnonzero(counts <= 10).tolist())
    assert (counts[cold] > 0).any()


def categories(n_users: int = 1000, seed: int = 2) -> TrainingData:
    """80 categories of 40 items; each user buys 5 items of one category, in random order: the
    interactions say little about any one item (about 1.5 each), the category says a lot."""
    import pyarrow as pa

    from openpersonalize.recipes.base import ColumnRoles

    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    for u in range(n_users):
        c = int(rng.integers(80))
        for step, k in enumerate(rng.choice(40, 5, replace=False)):
            users.append(f"u{u:04d}")
            items.append(f"c{c:02d}-{k:02d}")
            times.append(1_700_000_000 + 100 * u + step)
    ids = [f"c{c:02d}-{k:02d}" for c in range(80) for k in range(40)]
    table = pa.table({"ITEM_ID": ids, "CATEGORY": [i[:3] for i in ids]})
    return TrainingData.from_records(users, items, times, items_table=table,
                                     item_columns=ColumnRoles(categorical=("CATEGORY",)))


def test_metadata_recipe_uses_the_item_columns():
    """On data where the category carries the signal, HRNN-Metadata gives its metadata part
    weight and ranks better than HRNN, which is the same model with that part switched off."""
    data = categories()
    meta = train("aws-hrnn-metadata", data, {}, seed="arn:seq", settings=SETTINGS)
    plain = train("aws-hrnn", data, {}, seed="arn:seq", settings=SETTINGS)
    assert meta.model.meta["meta_weight"] > 0 and plain.model.meta.get("meta_weight", 0.0) == 0.0
    key = "normalized_discounted_cumulative_gain_at_10"
    assert meta.metrics[key] > plain.metrics[key]


def regions(n_users: int = 1200, seed: int = 5, with_users: bool = True) -> TrainingData:
    """20 regions with 30 items of their own; each user makes 2 interactions in their region's
    items and 2 anywhere, in random order: a user's history hardly tells their region, the Users
    dataset's REGION column does."""
    import pyarrow as pa

    from openpersonalize.recipes.base import ColumnRoles

    rng = np.random.default_rng(seed)
    users, items, times, region_of = [], [], [], {}
    for u in range(n_users):
        r = int(rng.integers(20))
        region_of[f"u{u:04d}"] = f"r{r:02d}"
        picks = [f"r{r:02d}-{k:02d}" for k in rng.choice(30, 2, replace=False)]
        picks += [f"r{int(x):02d}-{int(k):02d}" for x, k in zip(rng.integers(20, size=2), rng.integers(30, size=2))]
        for step, k in enumerate(rng.permutation(len(picks))):
            users.append(f"u{u:04d}")
            items.append(picks[k])
            times.append(1_700_000_000 + 100 * u + step)
    table = pa.table({"USER_ID": list(region_of), "REGION": list(region_of.values())}) if with_users else None
    return TrainingData.from_records(users, items, times, users_table=table,
                                     user_columns=ColumnRoles(categorical=("REGION",)) if with_users else None)


def test_metadata_recipe_uses_the_user_columns():
    """HRNN-Metadata gives the Users dataset's categorical columns weight where they carry the
    signal: its lists hold far more of the user's region's items than the same recipe trained
    without the Users dataset (the feature switched off)."""
    with_users, without = regions(), regions(with_users=False)
    on = train("aws-hrnn-metadata", with_users, {}, seed="arn:seq", settings=SETTINGS).model
    off = train("aws-hrnn-metadata", without, {}, seed="arn:seq", settings=SETTINGS).model
    assert on.meta["user_weight"] > 0 and off.meta.get("user_weight", 0.0) == 0.0

    truth = {u: r for u, r in zip(with_users.users.column("USER_ID").to_pylist(),
                                   with_users.users.column("REGION").to_pylist())}

    def share(data, model):
        hits = []
        for u in range(0, data.n_users, 5):
            idx, _ = model.recommend(u, 10)
            region = truth[str(data.user_ids[u])]
            hits.append(np.mean([str(data.item_ids[i]).startswith(region) for i in idx if i >= 0]))
        return float(np.mean(hits))

    assert share(with_users, on) > share(without, off) + 0.2, (share(with_users, on), share(without, off))


# -- without recency bias: the guard -----------------------------------------------------------------


def test_a_blend_that_loses_the_random_hold_out_is_not_kept_under_the_guard():
    """significant_best: the blend wins the newest interactions clearly; under the guard, whether
    it is kept depends on the interactions held out at random from earlier in the histories."""
    rng = np.random.default_rng(0)
    n = 2000
    blind, blend = (0.0, 0.0), (0.4, 0.6)
    newest = {blind: rng.random(n) * 0.1}
    newest[blend] = newest[blind] + 0.05
    earlier_blind = rng.random(n) * 0.3
    same = {blind: earlier_blind, blend: earlier_blind + rng.normal(0, 1e-3, n)}
    worse = {blind: earlier_blind, blend: earlier_blind - 0.02}
    assert significant_best(newest, blind) == blend  # no guard: the newest alone decides
    assert significant_best(newest, blind, same) == blend
    assert significant_best(newest, blind, worse) == blind
    # users with nothing held out earlier (NaN) do not count either way
    def gaps(gains):
        return {c: np.where(np.arange(n) % 2 == 0, np.nan, v) for c, v in gains.items()}
    assert significant_best(newest, blind, gaps(same)) == blend
    assert significant_best(newest, blind, gaps(worse)) == blind


def test_without_recency_bias_the_chains_get_a_light_blend(models, sequences):
    """On the chains a random earlier item is a gap in the user's walk, which the order-blind
    model ranks first; with apply_recency_bias false the transitions may only weigh as much as
    costs that ranking nothing, and the successor still comes before the predecessor."""
    params = {"algorithmHyperParameters": {"apply_recency_bias": "false"}}
    guarded = train("aws-user-personalization-v2", sequences, params, seed="arn:seq", settings=SETTINGS).model
    default = models["aws-user-personalization-v2"].model
    assert guarded.meta["seq_weight"] < default.meta["seq_weight"]
    assert guarded.meta["seq_weight"] <= 0.2
    assert next_item_first(guarded, sequences) > next_item_first(models["aws-user-personalization"].model,
                                                                 sequences)
