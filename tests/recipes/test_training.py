"""train(): event filtering and weighting, minimum data, HPO budget, UPDATE, exploration."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from openpersonalize.recipes import checks
from openpersonalize.recipes.base import ColumnRoles, HyperParameters, TooLittleData, TrainingData
from openpersonalize.recipes.factorization import Exploration, UserPersonalization
from openpersonalize.recipes.registry import RECIPE_BY_NAME, capabilities
from openpersonalize.recipes.training import prepare, train
from tests.recipes.conftest import SETTINGS

STANDARD_KEYS = {"coverage", "mean_reciprocal_rank_at_25", "normalized_discounted_cumulative_gain_at_5",
                 "normalized_discounted_cumulative_gain_at_10", "normalized_discounted_cumulative_gain_at_25",
                 "precision_at_5", "precision_at_10", "precision_at_25"}


def records(users_with_two: int, singles: int, extra: int = 0) -> TrainingData:
    users, items = [], []
    for u in range(users_with_two):
        users += [f"u{u}", f"u{u}"]
        items += [f"i{u % 50}", f"i{(u + 1) % 50}"]
    for s in range(singles):
        users.append(f"s{s}")
        items.append(f"i{s % 50}")
    for e in range(extra):
        users.append("u0")
        items.append(f"i{e % 50}")
    return TrainingData.from_records(users, items, np.arange(len(users)))


@pytest.mark.parametrize("data, reason", [
    (records(30, 0, 900), checks.FEWER_INTERACTIONS.format(1000)),
    (records(24, 1000), checks.FEWER_ACTIVE_USERS.format(25)),
    (records(30, 4000), checks.FEWER_ACTIVE_SHARE),
])
def test_too_little_data_gives_the_spec_reason(data, reason):
    with pytest.raises(TooLittleData) as err:
        train("aws-user-personalization", data, {})
    assert err.value.reason == reason


def test_enough_data_passes_the_checks():
    capabilities("aws-user-personalization").minimum_data(records(40, 960))  # 1040, 40 active of 1000


def test_semantic_needs_item_text_not_interactions():
    with pytest.raises(TooLittleData) as err:
        capabilities("aws-semantic-similarity").minimum_data(records(1, 0))
    assert err.value.reason == checks.NO_ITEM_TEXT
    table = pa.table({"ITEM_ID": ["a", "b"], "T": ["x", "y"], "D": ["p", "q"]})
    data = TrainingData.from_records([], [], [], items_table=table,
                                     item_columns=ColumnRoles(textual=("D",), item_name="T"))
    capabilities("aws-semantic-similarity").minimum_data(data)


def test_metrics_have_the_spec_keys(trained):
    for recipe in ("aws-user-personalization", "aws-sims", "aws-personalized-ranking", "aws-popularity-count"):
        assert set(trained(recipe).metrics) == STANDARD_KEYS, recipe
    assert set(trained("aws-trending-now").metrics) == STANDARD_KEYS | {"trend_prediction_accuracy"}
    assert set(trained("aws-item-affinity").metrics) == {"hits_at_1_percent", "recall_at_1_percent", "coverage"}
    assert set(trained("aws-semantic-similarity").metrics) == {"item_popularity", "item_freshness",
                                                               "item_similarity"}
    assert {"coverage", "auc", "precision", "recall"} <= set(trained("aws-next-best-action").metrics)
    # A model that learned the groups beats popularity on its own hold-out.
    up = trained("aws-user-personalization").metrics
    pop = trained("aws-popularity-count").metrics
    assert up["normalized_discounted_cumulative_gain_at_25"] > pop["normalized_discounted_cumulative_gain_at_25"]


def test_event_type_and_threshold_filter(world):
    d = world.data
    out, weights = prepare(d, "watch", {"eventValueThreshold": "3"})
    watch = list(d.event_types).index("watch")
    expected = (d.event_type == watch) & (d.event_value >= 3)
    assert out.n_interactions == int(expected.sum()) and weights is None
    assert (out.event_value >= 3).all()


def test_events_config_weights_and_thresholds(world):
    d = world.data
    config = {"eventsConfig": {"eventParametersList": [
        {"eventType": "watch", "weight": 1.0, "eventValueThreshold": 4.0},
        {"eventType": "click", "weight": 0.25}]}}
    out, by_code = prepare(d, None, config)
    click = list(d.event_types).index("click")
    watch = list(d.event_types).index("watch")
    assert by_code == {watch: 1.0, click: 0.25}
    expected = (d.event_type == click) | ((d.event_type == watch) & (d.event_value >= 4))
    assert out.n_interactions == int(expected.sum())
    assert set(np.unique(out.weight).tolist()) == {0.25, 1.0}
    result = train("aws-user-personalization", d, config, seed=3, settings=SETTINGS)
    assert "normalized_discounted_cumulative_gain_with_event_weights_at_k" in result.metrics


def test_hpo_honours_max_number_of_training_jobs(world, monkeypatch):
    fits = []
    original = UserPersonalization.fit

    def counting(self, data, params, settings):
        fits.append(params.get("ease_l2"))
        return original(self, data, params, settings)

    monkeypatch.setattr(UserPersonalization, "fit", counting)
    hpo = {"hpoResourceConfig": {"maxNumberOfTrainingJobs": "3"},
           "algorithmHyperParameterRanges": {"integerHyperParameterRanges": [
               {"name": "bptt", "minValue": 4, "maxValue": 8}]}}
    result = train("aws-user-personalization", world.data, {"hpoConfig": hpo}, perform_hpo=True,
                   seed=1, settings=SETTINGS, compute_metrics=False)
    assert len(result.trials) == 3
    assert len(fits) == 3 + 1  # three trials, then the final fit
    assert all(4 <= t["params"]["bptt"] <= 8 for t in result.trials[1:])
    assert len({t["params"].get("ease_l2") for t in result.trials}) == 3  # a real search
    best = max(result.trials, key=lambda t: t["score"])
    assert result.tuned_params["algorithmHyperParameters"]["bptt"] == str(best["params"]["bptt"])


def test_update_folds_in_new_items_and_users(world):
    d = world.data
    first = train("aws-user-personalization", d, {}, seed=1, settings=SETTINGS, compute_metrics=False).model
    # New item "D-new" (sorts after every old id) co-occurs with A items for new users.
    users = list(d.user_ids[d.user]) + [f"new-{k}" for k in range(20) for _ in range(4)]
    a_items = sorted(world.items_of("A"))[:3]
    items = list(d.item_ids[d.item]) + [x for _ in range(20) for x in
                                        [d.item_ids[a_items[0]], d.item_ids[a_items[1]], d.item_ids[a_items[2]], "D-new"]]
    times = list(d.timestamp) + list(range(d.timestamp.max() + 1, d.timestamp.max() + 81))
    data2 = TrainingData.from_records(users, items, times, items_table=d.items, item_columns=d.item_columns)
    result = train("aws-user-personalization", data2, {}, training_mode="UPDATE", previous=first,
                   seed=1, settings=SETTINGS, compute_metrics=False)
    model = result.model
    assert model.n_items == first.n_items + 1 and model.n_users == first.n_users + 20
    new = int(model.item_index(["D-new"])[0])
    np.testing.assert_array_equal(np.asarray(model.arrays["B"])[:first.n_items, :first.n_items],
                                  np.asarray(first.arrays["B"]))
    idx, _ = model.recommend(np.array(a_items), 3, exclude=np.array(a_items))
    assert new in idx.tolist()
    u = int(model.user_index(["new-3"])[0])
    assert len(model.history(u)) == 4


def test_exploration_gives_new_items_their_share(world, trained):
    model = trained("aws-user-personalization").model
    u = world.user("u-A-02")
    cold = set(model.item_index(world.cold_items).tolist())
    plain, _ = model.recommend(u, 10)
    assert not cold & set(plain.tolist())
    for weight, expected in ((0.3, 3), (0.5, 5)):
        idx, scores = model.recommend(u, 10, exploration=Exploration(weight, 30))
        got = [i for i in idx.tolist() if i in cold]
        assert len(got) == expected and len(set(idx.tolist())) == 10
        # The explored items match the user's taste by metadata.
        assert all(world.item_group[model.item_ids[i]] == "A" for i in got)
    idx, _ = model.recommend(u, 10, exploration=Exploration(0.5, 0.5))  # cut-off excludes them
    assert not cold & set(idx.tolist())


def test_hyperparameters_are_typed():
    p = HyperParameters.parse(RECIPE_BY_NAME["aws-user-personalization"], {"bptt": "8", "recency_mask": "false"})
    assert p["bptt"] == 8 and p["recency_mask"] is False and p["hidden_dimension"] == 149
    assert p.as_strings()["recency_mask"] == "false"
    with pytest.raises(ValueError):
        HyperParameters.parse(RECIPE_BY_NAME["aws-user-personalization"], {"bptt": "99"})


def test_semantic_falls_back_to_lsa_and_records_the_encoder(world, monkeypatch):
    from openpersonalize.recipes import minilm

    monkeypatch.setenv("OPENPERSONALIZE_SEMANTIC_ENCODER", "lsa")
    model = train("aws-semantic-similarity", world.data, {}, settings=SETTINGS, compute_metrics=False).model
    assert model.meta["encoder"] == "tfidf-lsa"
    idx, _ = model.similar_items(world.item("B-cold-1"), 6)
    assert sum(world.item_group[model.item_ids[i]] == "B" for i in idx) >= 5
    monkeypatch.delenv("OPENPERSONALIZE_SEMANTIC_ENCODER")
    if minilm.model_dir() is not None:
        model = train("aws-semantic-similarity", world.data, {}, settings=SETTINGS, compute_metrics=False).model
        assert model.meta["encoder"] == "all-MiniLM-L6-v2"
        assert model.arrays["embedding"].shape[1] == 384


def test_big_catalogue_path_uses_als_and_folds_in_held_out_users(world, monkeypatch):
    from dataclasses import replace

    from openpersonalize.recipes import factorization

    fits = []
    original = factorization.fit_als
    monkeypatch.setattr(factorization, "fit_als", lambda *a, **k: fits.append(1) or original(*a, **k))
    settings = replace(SETTINGS, ease_max_items=10, local_ease_seconds=0)
    result = train("aws-user-personalization", world.data, {"algorithmHyperParameters": {"hidden_dimension": "32"}},
                   seed=2, settings=settings)
    model = result.model
    assert model.meta["backend"] == "als" and result.tuned_params["algorithm"]["algorithm"] == "implicit-als"
    assert len(fits) == 1  # metrics model, then a fold-in: no second full fit
    assert set(result.metrics) == STANDARD_KEYS
    uf = np.asarray(model.arrays["user_factors"])
    has_history = np.diff(np.asarray(model.arrays["hist_indptr"])) > 0
    assert (np.abs(uf[has_history]).sum(axis=1) > 0).all()  # every user has factors
    for g in "ABC":
        u = world.user(f"u-{g}-05")
        idx, _ = model.recommend(u, 10, exclude=model.history(u))
        assert sum(world.item_group[model.item_ids[i]] == g for i in idx) >= 7


def test_history_length_percentiles_keep_outliers_out_of_the_model(world):
    """A bot that touched every item lies above max_user_history_length_percentile: the model
    learns nothing from it (EASE's weights are those of the data without it). With the percentile
    at 1.0 it counts."""
    d = world.data
    bot_items = list(d.item_ids)
    users = list(d.user_ids[d.user]) + ["bot"] * len(bot_items)
    items = list(d.item_ids[d.item]) + bot_items
    times = list(d.timestamp) + [int(d.timestamp.max()) + 1] * len(bot_items)
    with_bot = TrainingData.from_records(users, items, times, items_table=d.items, item_columns=d.item_columns)
    from dataclasses import replace

    fixed_l2 = replace(SETTINGS, ease_tune_max_items=0)  # l2 from the fitted matrix, not a tuning split

    def weights(data, extra):
        return np.asarray(train("aws-user-personalization", data, {"featureTransformationParameters": extra}, seed=1,
                                settings=fixed_l2, compute_metrics=False).model.arrays["B"])

    everyone = {"max_user_history_length_percentile": "1.0"}
    only_the_bot_out = {"max_user_history_length_percentile": str(1 - 0.5 / with_bot.n_users)}
    without = weights(d, everyone)
    np.testing.assert_allclose(weights(with_bot, only_the_bot_out), without, rtol=1e-5, atol=1e-6)
    assert not np.allclose(weights(with_bot, everyone), without, rtol=1e-5, atol=1e-6)


def test_update_keeps_old_items_when_new_ids_sort_between_them(world):
    d = world.data
    first = train("aws-user-personalization", d, {}, seed=1, settings=SETTINGS, compute_metrics=False).model
    first_id = sorted(d.item_ids)[0]
    users = list(d.user_ids[d.user]) + ["new-0"] * 2
    items = list(d.item_ids[d.item]) + [first_id, "0-sorts-first"]
    times = list(d.timestamp) + [int(d.timestamp.max()) + 1, int(d.timestamp.max()) + 2]
    data2 = TrainingData.from_records(users, items, times, items_table=d.items, item_columns=d.item_columns)
    model = train("aws-user-personalization", data2, {}, training_mode="UPDATE", previous=first,
                  seed=1, settings=SETTINGS, compute_metrics=False).model
    # Not a refit: the old items keep their indices and their weights; the new one comes last.
    assert list(model.item_ids[:first.n_items]) == list(first.item_ids)
    assert model.item_ids[-1] == "0-sorts-first"
    np.testing.assert_array_equal(np.asarray(model.arrays["B"])[:first.n_items, :first.n_items],
                                  np.asarray(first.arrays["B"]))


def test_optimization_objective_lifts_the_rewarding_items(world):
    """optimizationObjective: with a high sensitivity the recommendations are pricier, while they
    stay relevant; the metrics add average_rewards_at_k."""
    from dataclasses import replace

    d = world.data
    rng = np.random.default_rng(4)
    price = np.round(np.exp(rng.normal(3.0, 1.0, size=d.items.num_rows)), 2)
    data = replace(d, items=d.items.append_column("PRICE", pa.array(price)))
    prices = dict(zip(data.items.column("ITEM_ID").to_pylist(), price))
    results = {}
    for sensitivity in ("OFF", "HIGH"):
        config = {"optimizationObjective": {"itemAttribute": "PRICE", "objectiveSensitivity": sensitivity}}
        results[sensitivity] = train("aws-user-personalization", data, config, seed=1, settings=SETTINGS)

    def mean_price(result):
        model, total = result.model, []
        for g in "ABC":
            for k in range(5):
                u = world.user(f"u-{g}-{k:02d}")
                idx, _ = model.recommend(u, 10, exclude=model.history(u))
                total += [prices[model.item_ids[i]] for i in idx]
        return float(np.mean(total))

    assert mean_price(results["HIGH"]) > 1.2 * mean_price(results["OFF"])
    assert "average_rewards_at_k" in results["HIGH"].metrics
    # Still the user's taste: most recommendations come from the user's own group.
    model = results["HIGH"].model
    u = world.user("u-A-03")
    idx, _ = model.recommend(u, 10, exclude=model.history(u))
    assert sum(world.item_group[model.item_ids[i]] == "A" for i in idx) >= 6
