"""Each recipe's declared :class:`Capabilities`, checked against its trained model.

Parametrised over every trainable recipe (``registry.trainable()``), so a new recipe (its module
plus one line in ``registry.FAMILIES``) is checked here without touching this file: the query of
its declared recipe type answers and the others raise ``UnsupportedQuery``; its minimum-data rule
is what ``train`` enforces; ``train`` reports its metric protocol's metrics; a recipe that takes in
new data between trainings (``refresh``) really learns the new users and items; exploration and
rankingInfluence change a model's answers exactly when declared. The registry and the legacy
HRNN mapping are checked too. ``tests/runtime/test_capabilities.py`` does the same through the
running service.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pytest

from openpersonalize.recipes import checks, registry
from openpersonalize.recipes.base import (
    Algorithm,
    ColumnRoles,
    HyperParameters,
    TooLittleData,
    TrainingData,
    UnsupportedQuery,
)
from openpersonalize.recipes.capabilities import FOLD_IN, METRIC_PROTOCOLS, REFIT, RUNTIME_CALL, Capabilities
from openpersonalize.recipes.catalogue import RECIPES
from openpersonalize.recipes.factorization import Exploration, PersonalizationModel
from openpersonalize.recipes.registry import (
    CAPABILITIES,
    LEGACY,
    RECIPE_BY_NAME,
    REGISTRY,
    algorithm_for,
    capabilities,
    resolve,
    trainable,
)
from openpersonalize.recipes.training import train
from tests.recipes.conftest import SETTINGS

ALL = trainable()
SEMANTIC = "aws-semantic-similarity"
# MiniLM takes ~15 s per fit on two cores; no capability depends on the text encoder, so the fits
# made here use the TF-IDF + LSA encoder (the shared ``trained`` fixture keeps MiniLM).
LSA = ("OPENPERSONALIZE_SEMANTIC_ENCODER", "lsa")

STANDARD_METRICS = {
    "coverage", "mean_reciprocal_rank_at_25", "normalized_discounted_cumulative_gain_at_5",
    "normalized_discounted_cumulative_gain_at_10", "normalized_discounted_cumulative_gain_at_25",
    "precision_at_5", "precision_at_10", "precision_at_25"}
# What evaluation.solution_metrics reports per protocol (a train() without event weights or
# optimizationObjective).
PROTOCOL_METRICS = {
    "next-items": STANDARD_METRICS,
    "ranking": STANDARD_METRICS,
    "related-items": STANDARD_METRICS,
    "trending": STANDARD_METRICS | {"trend_prediction_accuracy"},
    "item-text": {"item_popularity", "item_freshness", "item_similarity"},
    "segments": {"hits_at_1_percent", "recall_at_1_percent", "coverage"},
    "actions": {"coverage", "normalized_discounted_cumulative_gain_at_5",
                "normalized_discounted_cumulative_gain_at_10", "normalized_discounted_cumulative_gain_at_25",
                "precision", "recall", "auc"},
}
# The protocols that can measure a recipe type (a ranking protocol cannot measure related items).
PROTOCOLS_OF_TYPE = {
    "USER_PERSONALIZATION": {"next-items", "trending"},
    "PERSONALIZED_RANKING": {"ranking"},
    "RELATED_ITEMS": {"related-items", "item-text"},
    "USER_SEGMENTATION": {"segments"},
    "PERSONALIZED_ACTIONS": {"actions"},
}

# The question each recipe type answers, asked of a model trained on the synthetic world.
QUERIES = {
    "USER_PERSONALIZATION": lambda m, w: m.recommend(w.user("u-A-01"), 5),
    "PERSONALIZED_RANKING": lambda m, w: m.rank(w.user("u-A-01"), np.arange(6)),
    "RELATED_ITEMS": lambda m, w: m.similar_items(w.item("A-03"), 5),
    "USER_SEGMENTATION": lambda m, w: m.users_for_items(np.array([w.item("A-03")]), 5),
    "PERSONALIZED_ACTIONS": lambda m, w: m.actions_for_user(w.user("u-A-01"), 2),
}
# One model class serves User-Personalization and Personalized-Ranking (PersonalizationModel's
# docstring); the service tells the two apart by the declared recipe type (runtime_call).
SHARED_MODEL_TYPES = {"USER_PERSONALIZATION", "PERSONALIZED_RANKING"}

NEW_USERS = [f"u-new-{k}" for k in range(6)]
NEW_ITEMS = ["A-new-0", "A-new-1"]


@pytest.fixture(scope="module")
def fitted(trained, world):
    """``trained`` of tests/recipes/conftest.py, but Semantic-Similarity fitted with the LSA encoder."""
    own = {}

    def get(recipe: str):
        if resolve(recipe) != SEMANTIC:
            return trained(recipe)
        if recipe not in own:
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv(*LSA)
                own[recipe] = train(recipe, world.data, {}, seed="arn:test", settings=SETTINGS)
        return own[recipe]

    return get


def can(recipe: str) -> Capabilities:
    return capabilities(recipe)


def refusal(rule, data: TrainingData) -> str | None:
    """The reason a minimum-data rule gives for ``data``, None when it accepts it."""
    try:
        rule(data)
    except TooLittleData as exc:
        return exc.reason
    return None


def rebuilt(data: TrainingData, users, items, times, **tables) -> TrainingData:
    """New TrainingData from raw records, keeping ``data``'s metadata tables unless replaced."""
    keep = {"items_table": data.items, "item_columns": data.item_columns, "actions": data.actions,
            "action_interactions": data.action_interactions}
    keep.update(tables)
    return TrainingData.from_records(users, items, times, **keep)


def raw(data: TrainingData):
    """The interactions as id lists (users, items, timestamps)."""
    return list(data.user_ids[data.user]), list(data.item_ids[data.item]), list(data.timestamp)


def too_little(world) -> dict[str, TrainingData]:
    """The world's data with one minimum missing each."""
    d = world.data
    users, items, times = raw(d)
    ten = {f"u-{g}-{k:02d}" for g, n in (("A", 4), ("B", 4), ("C", 2)) for k in range(n)}
    picked = [k for k, u in enumerate(users) if u in ten]
    few_users = [users[k] for k in picked] * 8  # over 1,000 interactions from 10 users
    few_items = [items[k] for k in picked] * 8
    few_times = [times[k] + rep * 10 for rep in range(8) for k in picked]
    rng = np.random.default_rng(3)
    n_one_off = 100 * d.n_users  # active users become fewer than 1 % of all users
    return {
        "few interactions": d.subset(np.arange(d.n_interactions) < 900),
        "few active users": rebuilt(d, few_users, few_items, few_times),
        "small active share": rebuilt(d, users + [f"one-off-{k}" for k in range(n_one_off)],
                                      items + list(rng.choice(d.item_ids, n_one_off)),
                                      times + [int(times[-1]) + k for k in range(n_one_off)]),
        "no item text": dataclasses.replace(d, items=None, item_columns=ColumnRoles()),
        "no actions": dataclasses.replace(d, actions=None, action_interactions=None),
    }


def grown(world) -> TrainingData:
    """The world's data plus new users of taste A who also use two new A items."""
    d = world.data
    users, items, times = raw(d)
    a_items = [f"A-{k:02d}" for k in range(8)]
    t = int(d.timestamp.max())
    for k, u in enumerate(NEW_USERS):
        for j, i in enumerate(a_items[k % 3: k % 3 + 6] + NEW_ITEMS):
            users.append(u)
            items.append(i)
            times.append(t + 60 * (k * 10 + j + 1))
    table = d.items
    extra = pa.table({"ITEM_ID": NEW_ITEMS, "GENRE": ["A"] * 2,
                      "DESCRIPTION": ["rocket galaxy orbit planet launch nebula"] * 2,
                      "TITLE": ["Star voyage new 1", "Star voyage new 2"], "CREATION_TIMESTAMP": [t, t]})
    return rebuilt(d, users, items, times, items_table=pa.concat_tables([table, extra.cast(table.schema)]))


def params_of(recipe: str) -> HyperParameters:
    return HyperParameters.parse(RECIPE_BY_NAME[recipe]).replace(_recipe=resolve(recipe))


# -- the registry: one line per recipe --------------------------------------------------------------


def test_every_custom_catalogue_recipe_has_capabilities_and_a_trainer():
    """Every catalogue recipe outside the domain use cases resolves to a registered Algorithm and
    declares capabilities of its catalogue recipe type; those are exactly the trainable ones."""
    custom = [r for r in RECIPES if not r.domain]
    for r in custom:
        assert resolve(r.name) in REGISTRY, r.name
        assert isinstance(algorithm_for(r.name), Algorithm)
        assert r.name in CAPABILITIES, r.name
        assert CAPABILITIES[r.name].recipe_type == r.recipe_type, r.name
        assert capabilities(r.arn) is CAPABILITIES[r.name]
    assert sorted(ALL) == sorted(r.name for r in custom)


def test_the_registry_is_the_families_declarations():
    """REGISTRY and CAPABILITIES come from the Algorithm classes' own ``capabilities``: each
    recipe declared once, by the family that trains it."""
    declared = [name for cls in registry.FAMILIES for name in cls.capabilities]
    assert len(declared) == len(set(declared)) == len(REGISTRY)
    for cls in registry.FAMILIES:
        assert cls.recipes == tuple(cls.capabilities) and cls.recipes, cls.__name__
        for name, caps in cls.capabilities.items():
            assert REGISTRY[name] is cls
            assert CAPABILITIES[name] is caps
            assert name in RECIPE_BY_NAME and RECIPE_BY_NAME[name].recipe_type == caps.recipe_type
    assert not set(LEGACY) & set(REGISTRY)  # legacy names are mapped, never declared


def test_domain_use_cases_have_their_recipes_capabilities():
    """A recommender's capabilities are those of the custom recipe its use case trains."""
    for r in RECIPES:
        if r.domain:
            case = registry.use_case(r.name)
            assert case is not None, r.name
            assert CAPABILITIES[r.name] == capabilities(case.recipe), r.name
            assert CAPABILITIES[r.name].recipe_type == r.recipe_type, r.name


def test_every_recipe_type_has_a_query_and_every_protocol_its_metrics():
    """The tables below cover every runtime recipe type and metric protocol, so a new one cannot
    slip past this suite."""
    assert set(QUERIES) == set(RUNTIME_CALL) == set(PROTOCOLS_OF_TYPE)
    assert set(PROTOCOL_METRICS) == set(METRIC_PROTOCOLS)


# -- legacy recipes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("legacy", sorted(LEGACY))
def test_legacy_capabilities_are_the_successors_but_the_overrides(legacy):
    """A legacy recipe can do what its successor can, except the API rules LEGACY lists (each of
    which really differs from the successor's)."""
    successor, overrides = LEGACY[legacy]
    fields = {f.name for f in dataclasses.fields(Capabilities)}
    assert set(overrides) <= fields
    mine, theirs = capabilities(legacy), capabilities(successor)
    for name in fields - set(overrides):
        assert getattr(mine, name) == getattr(theirs, name), name
    for name, value in overrides.items():
        assert getattr(mine, name) == value != getattr(theirs, name), name
    assert mine == dataclasses.replace(theirs, **overrides)
    assert RECIPE_BY_NAME[legacy].recipe_type == RECIPE_BY_NAME[successor].recipe_type


@pytest.mark.parametrize("legacy", sorted(LEGACY))
def test_legacy_recipes_train_as_their_successor(legacy, world, fitted):
    """Trained on the same data with the same seed, a legacy recipe's model is its successor's:
    same class, same items, same scores."""
    successor = LEGACY[legacy][0]
    mine, theirs = fitted(legacy).model, fitted(successor).model
    assert type(mine) is type(theirs) and mine.recipe == successor
    # HRNN-Metadata's metadata part and HRNN-Coldstart's cold items are their own (tested in
    # tests/recipes/test_sequential.py); without them the model is the successor's.
    # (The softmax temperature was measured with the metadata part: compare scores only
    # where there was none.)
    same_scale = not mine.meta.get("meta_weight")
    arrays = {k: v for k, v in mine.arrays.items() if k != "cold_items"}
    mine = type(mine)(arrays, {**mine.meta, "meta_weight": 0.0})
    for u in ("u-A-01", "u-B-03", "u-C-05"):
        a_idx, a_scores = mine.recommend(world.user(u), 10)
        b_idx, b_scores = theirs.recommend(world.user(u), 10)
        assert a_idx.tolist() == b_idx.tolist()
        if same_scale:
            np.testing.assert_allclose(a_scores, b_scores, rtol=1e-5)
    assert set(fitted(legacy).metrics) == set(fitted(successor).metrics)


# -- per recipe: the model does what the recipe declares ------------------------------------------------


@pytest.mark.parametrize("recipe", ALL)
def test_the_declared_query_answers_and_the_others_are_unsupported(recipe, world, fitted):
    """The model answers its recipe type's question and raises UnsupportedQuery for the other
    types' (one class serves both User-Personalization and Personalized-Ranking)."""
    model = fitted(recipe).model
    declared = can(recipe).recipe_type
    idx, scores = QUERIES[declared](model, world)
    assert len(idx) > 0 and len(idx) == len(scores)
    for other, query in QUERIES.items():
        if other == declared:
            continue
        if isinstance(model, PersonalizationModel) and {declared, other} == SHARED_MODEL_TYPES:
            continue
        with pytest.raises(UnsupportedQuery):
            query(model, world)


@pytest.fixture(scope="module")
def short_of(world) -> dict[str, TrainingData]:
    return too_little(world)


@pytest.mark.parametrize("recipe", ALL)
def test_minimum_data_is_what_training_enforces(recipe, world, short_of, monkeypatch):
    """``minimum_data`` accepts the world's data and refuses at least one kind of too little
    data (every interaction-trained recipe: the spec's interaction minimums); train() refuses
    exactly what the rule refuses, with the rule's reason, and trains on the rest (a recipe
    needing data its rule does not ask for fails here)."""
    monkeypatch.setenv(*LSA)
    rule = can(recipe).minimum_data
    assert refusal(rule, world.data) is None
    if can(recipe).metric_protocol != "item-text":  # trained on interactions: the spec's three minimums
        assert refusal(rule, short_of["few interactions"]) == checks.FEWER_INTERACTIONS.format(1000)
        assert refusal(rule, short_of["few active users"]) == checks.FEWER_ACTIVE_USERS.format(25)
        assert refusal(rule, short_of["small active share"]) == checks.FEWER_ACTIVE_SHARE
    refused = 0
    for what, data in short_of.items():
        reason = refusal(rule, data)
        if reason is None:
            model = train(recipe, data, {}, seed="arn:test", settings=SETTINGS, compute_metrics=False).model
            assert model.n_items > 0, what
            continue
        refused += 1
        with pytest.raises(TooLittleData) as err:
            train(recipe, data, {}, seed="arn:test", settings=SETTINGS)
        assert err.value.reason == reason, what
    assert refused, f"{recipe}'s minimum_data refuses none of {sorted(short_of)}"


@pytest.mark.parametrize("recipe", ALL)
def test_train_reports_the_metric_protocols_metrics(recipe, fitted):
    """train() returns exactly the metrics of the declared protocol, a protocol that can measure
    the recipe type (and the trending one exactly for models that follow trends)."""
    protocol = can(recipe).metric_protocol
    assert protocol in PROTOCOLS_OF_TYPE[can(recipe).recipe_type]
    metrics = fitted(recipe).metrics
    assert set(metrics) == PROTOCOL_METRICS[protocol]
    # A model that follows trends (a trend window, which trend_prediction_accuracy reads) is
    # measured by the trending protocol, and only such a model.
    assert ("window" in fitted(recipe).model.meta) == (protocol == "trending")
    assert all(np.isfinite(v) for v in metrics.values())


REFRESHED = [r for r in ALL if capabilities(r).refresh is not None]


@pytest.mark.parametrize("recipe", REFRESHED)
def test_refresh_takes_in_new_users_and_items(recipe, world, fitted):
    """A recipe that declares ``refresh`` learns new users and items without a new version:
    FOLD_IN through ``Algorithm.update`` on the previous model (the old items keep their
    indices when the algorithm folds in), REFIT through a plain fit; the new user gets answers."""
    previous = fitted(recipe).model
    data = grown(world)
    assert (previous.item_index(NEW_ITEMS) < 0).all() and (previous.user_index(NEW_USERS) < 0).all()
    mode = can(recipe).refresh
    assert mode in (FOLD_IN, REFIT)
    if mode == FOLD_IN:
        algorithm = algorithm_for(recipe)
        model = algorithm.update(previous, data, params_of(recipe), SETTINGS)
        if type(algorithm).update is not Algorithm.update:  # a real fold-in, not the refit default
            assert model.item_ids[:previous.n_items].tolist() == previous.item_ids.tolist()
    else:
        model = train(recipe, data, {}, seed="arn:test", settings=SETTINGS, compute_metrics=False).model
    assert (model.item_index(NEW_ITEMS) >= 0).all() and (model.user_index(NEW_USERS) >= 0).all()
    user = int(model.user_index([NEW_USERS[0]])[0])
    if can(recipe).recipe_type == "PERSONALIZED_ACTIONS":
        idx, _ = model.actions_for_user(user, 2)
        assert len(idx) == 2
        return
    idx, _ = model.recommend(user, 10)
    assert len(idx) == 10
    if isinstance(model, PersonalizationModel):  # it learned the new user's taste and the new items
        assert set(model.history(user).tolist()) >= set(model.item_index(NEW_ITEMS).tolist())
        a_items = set(model.item_index([i for i, g in world.item_group.items() if g == "A"] + NEW_ITEMS).tolist())
        unseen, _ = model.recommend(user, 10, exclude=model.history(user))
        assert np.mean([int(i) in a_items for i in unseen]) >= 0.7
        # The new items are scored as A items: higher for users of taste A than for the others.
        new = model.item_index(NEW_ITEMS)

        def rank_of_new(user_id: str) -> float:
            u = int(model.user_index([user_id])[0])
            order = np.argsort(-model.scores_for_history(model.history(u), u), kind="stable")
            return float(np.mean([np.flatnonzero(order == i)[0] for i in new]))

        assert max(rank_of_new(u) for u in ("u-A-01", "u-A-05")) < min(rank_of_new(u) for u in ("u-B-01", "u-C-01"))


@pytest.mark.parametrize("recipe", [r for r in ALL if capabilities(r).exploration])
def test_exploration_changes_the_answer_when_declared(recipe, world, fitted):
    """A recipe declaring exploration shows new items when asked to explore (every item counts
    as new here), so its answers change. (The service passes Exploration only to recipes that
    declare it; tests/runtime/test_capabilities.py checks the other direction.)"""
    model = fitted(recipe).model
    explore = Exploration(weight=1.0, age_cutoff_days=10_000.0)
    changed = 0
    for u in ("u-A-01", "u-B-03", "u-C-05"):
        plain, _ = model.recommend(world.user(u), 10)
        explored, _ = model.recommend(world.user(u), 10, exploration=explore)
        assert len(explored) == 10 and len(set(explored.tolist())) == 10
        changed += plain.tolist() != explored.tolist()
    assert changed >= 2


@pytest.mark.parametrize("recipe", [r for r in ALL if capabilities(r).recipe_type == "RELATED_ITEMS"])
def test_ranking_influence_changes_the_answer_iff_declared(recipe, world, fitted):
    """rankingInfluence (POPULARITY) reorders a related-items answer exactly when the recipe
    declares it; other models ignore the option."""
    model = fitted(recipe).model
    changed = 0
    for item in ("A-03", "B-05", "C-07"):
        plain, _ = model.similar_items(world.item(item), 8)
        influenced, _ = model.similar_items(world.item(item), 8, ranking_influence={"POPULARITY": 1.0})
        changed += plain.tolist() != influenced.tolist()
    assert bool(changed) == can(recipe).ranking_influence
