"""Each recipe's declared :class:`Capabilities`, checked against the running service.

One dataset group of generated data (the batch ``lab``) trains one version of every custom recipe
it supports: every trainable recipe except those needing an Actions dataset (Next-Best-Action has
its own tests). Tests are parametrised over those recipes and check both ways that the service
does what the recipe declares, through boto3: a declared capability works, an undeclared one is
refused with InvalidInputException or is absent from the output. The legacy HRNN recipes are
also compared with aws-user-personalization, at runtime and in batch.

The module runs its own server: one group holds more solutions and campaigns than the default
quotas allow, two workers train side by side, jobs run in the worker thread (no process start per
job) and Semantic-Similarity uses its TF-IDF + LSA encoder (no capability depends on the encoder;
MiniLM would add ~15 s of CPU).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from openpersonalize import synthetic
from openpersonalize.recipes.capabilities import Capabilities
from openpersonalize.recipes.registry import LEGACY, capabilities, trainable
from tests.batch.conftest import lab, wait  # noqa: F401  (the trained dataset group, on this module's server)
from tests.conftest import make_client
from tests.servers import running_server

# Every custom recipe the generated data (interactions, Items with a name and a text, Users) can
# train: computed from the registry, so a new recipe is checked here without editing this file.
NEEDS = tuple(r for r in trainable() if capabilities(r).recipe_type != "PERSONALIZED_ACTIONS")
SERVING = [r for r in NEEDS if capabilities(r).serves_campaigns]
USER_LISTS = [r for r in NEEDS if capabilities(r).recipe_type == "USER_PERSONALIZATION"]

EXPLORE = {"explorationWeight": "1", "explorationItemAgeCutOff": "1000"}  # generated items: < 500 days old
NO_EXPLORE = {"explorationWeight": "0", "explorationItemAgeCutOff": "1000"}
POPULAR = {"POPULARITY": 1.0}
THEMES = {"fieldsForThemeGeneration": {"itemName": "TITLE"}}
GENRES = ("Comedy", "Drama", "Action", "Horror", "Romance", "Documentary", "Animation", "Thriller")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from running_server(tmp_path_factory.mktemp("capabilities"), env={
        "OPENPERSONALIZE_MAX_DATASET_GROUPS": "100", "OPENPERSONALIZE_MAX_PENDING_JOBS": "1000",
        "OPENPERSONALIZE_MAX_SOLUTIONS_PER_GROUP": "100", "OPENPERSONALIZE_MAX_CAMPAIGNS_PER_GROUP": "200",
        "OPENPERSONALIZE_WORKERS": "2", "OPENPERSONALIZE_JOB_ISOLATION": "thread",
        "OPENPERSONALIZE_SEMANTIC_ENCODER": "lsa", "OPENPERSONALIZE_AUTO_TRAINING_ENABLED": "false",
        "OPENPERSONALIZE_MODEL_REFRESH_SECONDS": "0"})


@pytest.fixture(scope="module")
def personalize(server):
    return make_client("personalize", server.endpoint)


@pytest.fixture(scope="module")
def rt(server):
    return make_client("personalize-runtime", server.endpoint)


class Service:
    """The lab plus cached campaigns and batch outputs, so each is made once per module."""

    def __init__(self, lab, rt):
        self.lab, self.c, self.rt = lab, lab.c, rt
        self.users = [str(u) for u in lab.cat.user_ids[:8]]
        self.items = [str(i) for i in lab.cat.item_ids[10:16]]
        self._campaigns: dict[str, str] = {}
        self._batches: dict[str, tuple[dict, list[dict]]] = {}

    def create_campaign(self, recipe: str, **config) -> str:
        return self.c.create_campaign(name=self.lab.name("c"), solutionVersionArn=self.lab.versions[recipe],
                                      campaignConfig=config)["campaignArn"]

    def campaign(self, recipe: str, **config) -> str:
        """An ACTIVE campaign on the recipe's version with this campaignConfig."""
        key = json.dumps([recipe, config], sort_keys=True)
        if key not in self._campaigns:
            arn = self.create_campaign(recipe, **config)
            assert wait(lambda: self.c.describe_campaign(campaignArn=arn)["campaign"])["status"] == "ACTIVE"
            self._campaigns[key] = arn
        return self._campaigns[key]

    def ask(self, recipe: str, campaign: str, user: str | None = None, item: str | None = None, **extra) -> list[dict]:
        """The entries of the recipe's own runtime call (a user's list, an item's related items,
        or a ranking of ``items``)."""
        can = capabilities(recipe)
        user = user or self.users[0]
        if can.runtime_call == "GetPersonalizedRanking":
            return self.rt.get_personalized_ranking(campaignArn=campaign, userId=user, inputList=self.items,
                                                    **extra)["personalizedRanking"]
        where = {"itemId": item or self.items[0]} if can.needs_item else {"userId": user}
        return self.rt.get_recommendations(campaignArn=campaign, numResults=10, **where, **extra)["itemList"]

    def batch_lines(self, recipe: str) -> list[dict]:
        if not capabilities(recipe).batch_inference:  # no input format: the job must be refused anyway
            return [{"userId": u} for u in self.users[:2]]
        required, _ = capabilities(recipe).batch_input_fields
        line = {"userId": self.users[0], "itemList": self.items, "itemId": self.items[0]}
        lines = [{k: v for k, v in line.items() if k in required}]
        lines += [{**lines[0], "userId": u} if "userId" in required else {"itemId": i}
                  for u, i in zip(self.users[1:4], self.items[1:4])]
        return lines

    def batch(self, recipe: str, **kw) -> tuple[dict, list[dict]]:
        """A finished batch inference job on the recipe's version and its output lines; the input
        has good lines of the recipe's input format, then a line without its required fields."""
        key = json.dumps([recipe, kw], sort_keys=True)
        if key not in self._batches:
            uri = self.lab.put(f"{self.lab.name('in')}/lines.json", self.batch_lines(recipe) + [{"colour": "red"}])
            job, out = self.lab.inference(recipe, uri, numResults=10, **kw)
            rows = self.lab.output(out + "lines.json.out") if job["status"] == "ACTIVE" else []
            self._batches[key] = (job, rows)
        return self._batches[key]


@pytest.fixture(scope="module")
def svc(lab, rt):
    return Service(lab, rt)


def can(recipe: str) -> Capabilities:
    return capabilities(recipe)


def refused(call) -> bool:
    """True when the call is refused with InvalidInputException; False when it answers."""
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - only InvalidInputException counts as a refusal
        if getattr(exc, "response", {}).get("Error", {}).get("Code") == "InvalidInputException":
            return True
        raise
    return False


def ids(entries: list[dict]) -> list[str]:
    return [e["itemId"] for e in entries]


def overlap(a: list[str], b: list[str]) -> float:
    return len(set(a) & set(b)) / max(len(set(a) | set(b)), 1)


# -- the lab --------------------------------------------------------------------------------------------


def test_the_lab_trains_every_custom_recipe_but_actions(lab):
    """Every custom recipe outside PERSONALIZED_ACTIONS trained ACTIVE on the generated data,
    the named newer and legacy ones included (Semantic-Similarity: the Items have TITLE as
    itemName and a textual DESCRIPTION)."""
    named = {"aws-user-personalization", "aws-user-personalization-v2", "aws-hrnn", "aws-hrnn-metadata",
             "aws-hrnn-coldstart", "aws-trending-now", "aws-sims", "aws-personalized-ranking-v2",
             "aws-semantic-similarity", "aws-item-affinity", "aws-item-attribute-affinity"}
    assert named <= set(lab.versions) == set(NEEDS)
    schema = {f["name"]: f for f in synthetic.ITEMS_SCHEMA["fields"]}
    assert schema["TITLE"].get("itemName") and schema["DESCRIPTION"].get("textual")


# -- runtime calls ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("recipe", NEEDS)
def test_only_the_declared_runtime_call_answers(recipe, svc):
    """A campaign answers its recipe's runtime call and refuses the others (GetRecommendations on
    a ranking campaign, say); segment versions cannot get a campaign at all."""
    if not can(recipe).serves_campaigns:
        assert refused(lambda: svc.create_campaign(recipe))
        return
    campaign, rt, user, items = svc.campaign(recipe), svc.rt, svc.users[0], svc.items
    calls = {
        "GetRecommendations": lambda: rt.get_recommendations(campaignArn=campaign, userId=user, itemId=items[0]),
        "GetPersonalizedRanking": lambda: rt.get_personalized_ranking(campaignArn=campaign, userId=user,
                                                                      inputList=items),
        "GetActionRecommendations": lambda: rt.get_action_recommendations(campaignArn=campaign, userId=user),
    }
    answered = {name: not refused(call) for name, call in calls.items()}
    assert answered == {name: name == can(recipe).runtime_call for name in calls}
    assert svc.ask(recipe, campaign)


@pytest.mark.parametrize("recipe", SERVING)
def test_entries_carry_score_iff_scored(recipe, svc):
    """Campaign answers carry ``score`` on every entry when the recipe is scored, on none otherwise."""
    entries = svc.ask(recipe, svc.campaign(recipe))
    assert entries and {"score" in e for e in entries} == {can(recipe).scored}


@pytest.mark.parametrize("recipe", SERVING)
def test_entries_carry_reason_iff_reasons(recipe, svc):
    """Campaign answers carry ``reason`` on every entry when the recipe gives reasons, never otherwise."""
    entries = svc.ask(recipe, svc.campaign(recipe))
    assert entries and {"reason" in e for e in entries} == {can(recipe).reasons}


@pytest.mark.parametrize("recipe", [r for r in NEEDS if capabilities(r).runtime_call == "GetRecommendations"])
def test_user_and_item_rules(recipe, svc):
    """Without a userId GetRecommendations answers iff the recipe is user_optional (the same list
    for everyone); needs_user recipes refuse it and personalise; needs_item recipes refuse a
    call without itemId."""
    c, rt, campaign, users = can(recipe), svc.rt, svc.campaign(recipe), svc.users
    nobody = lambda: rt.get_recommendations(campaignArn=campaign, numResults=10)  # noqa: E731
    user_only = lambda: rt.get_recommendations(campaignArn=campaign, userId=users[0], numResults=10)  # noqa: E731
    item_only = lambda: rt.get_recommendations(campaignArn=campaign, itemId=svc.items[0], numResults=10)  # noqa: E731
    assert refused(nobody) == (not c.user_optional)
    assert refused(user_only) == c.needs_item
    assert refused(item_only) == c.needs_user
    lists = [ids(rt.get_recommendations(campaignArn=campaign, userId=u, itemId=svc.items[0],
                                        numResults=10)["itemList"]) for u in users[:4]]
    if c.user_optional:
        assert all(lst == ids(nobody()["itemList"]) for lst in lists)
    elif c.needs_user:
        assert len({tuple(lst) for lst in lists}) > 1  # personalised


@pytest.mark.parametrize("recipe", SERVING)
def test_item_exploration_config_accepted_and_honoured_iff_exploration(recipe, svc):
    """CreateCampaign takes itemExplorationConfig only for exploring recipes; then weight 1 (all
    items new enough) changes the answers of weight 0."""
    if not can(recipe).exploration:
        assert refused(lambda: svc.create_campaign(recipe, itemExplorationConfig=EXPLORE))
        return
    explore = svc.campaign(recipe, itemExplorationConfig=EXPLORE)
    plain = svc.campaign(recipe, itemExplorationConfig=NO_EXPLORE)
    changed = [ids(svc.ask(recipe, explore, u)) != ids(svc.ask(recipe, plain, u)) for u in svc.users]
    assert sum(changed) >= len(svc.users) // 2, changed


@pytest.mark.parametrize("recipe", SERVING)
def test_ranking_influence_accepted_and_honoured_iff_declared(recipe, svc):
    """campaignConfig.rankingInfluence is accepted only for recipes that declare it; then
    POPULARITY 1.0 reorders some related-items answers."""
    if not can(recipe).ranking_influence:
        assert refused(lambda: svc.create_campaign(recipe, rankingInfluence=POPULAR))
        return
    influenced, plain = svc.campaign(recipe, rankingInfluence=POPULAR), svc.campaign(recipe)
    changed = [ids(svc.ask(recipe, influenced, item=i)) != ids(svc.ask(recipe, plain, item=i)) for i in svc.items]
    assert any(changed)


@pytest.mark.parametrize("recipe", SERVING)
def test_metadata_columns_without_enabling_iff_metadata_by_default(recipe, svc):
    """metadataColumns on a campaign created without enableMetadataWithRecommendations answers
    only for recipes that return metadata by default; with it enabled, every recipe answers."""
    columns = {"ITEMS": ["GENRES"]}
    plain = svc.campaign(recipe)
    assert refused(lambda: svc.ask(recipe, plain, metadataColumns=columns)) == (not can(recipe).metadata_by_default)
    enabled = svc.campaign(recipe, enableMetadataWithRecommendations=True)
    for campaign in ([plain] if can(recipe).metadata_by_default else []) + [enabled]:
        entries = svc.ask(recipe, campaign, metadataColumns=columns)
        assert entries and all(e["metadata"]["GENRES"] for e in entries)


# -- batch jobs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("recipe", NEEDS)
def test_batch_inference_iff_declared_with_scores_iff_scored(recipe, svc):
    """CreateBatchInferenceJob accepts a version iff batch_inference; the job reads the recipe's
    input fields (a line without them is an error naming them) and its outputs carry ``scores``
    iff the recipe is scored."""
    if not can(recipe).batch_inference:
        assert refused(lambda: svc.batch(recipe))
        return
    job, rows = svc.batch(recipe)
    assert job["status"] == "ACTIVE", job
    *good, bad = rows
    assert len(good) == len(svc.batch_lines(recipe)) and all(r["error"] is None for r in good)
    assert all(r["output"]["recommendedItems"] for r in good)
    assert {"scores" in r["output"] for r in good} == {can(recipe).scored}
    required, _ = can(recipe).batch_input_fields
    assert bad["output"] is None and all(field in bad["error"] for field in required)


@pytest.mark.parametrize("recipe", [r for r in USER_LISTS if capabilities(r).batch_inference])
def test_batch_exploration_applies_iff_exploration(recipe, svc):
    """batchInferenceJobConfig.itemExplorationConfig changes a batch job's items only for
    exploring recipes; the others refuse it or (as today) ignore it."""
    _, plain = svc.batch(recipe)
    config = {"itemExplorationConfig": EXPLORE}
    if not can(recipe).exploration and refused(lambda: svc.batch(recipe, batchInferenceJobConfig=config)):
        return
    job, explored = svc.batch(recipe, batchInferenceJobConfig=config)
    assert job["status"] == "ACTIVE", job
    changed = [a["output"]["recommendedItems"] != b["output"]["recommendedItems"]
               for a, b in zip(plain[:-1], explored[:-1])]
    assert any(changed) == can(recipe).exploration, changed


@pytest.mark.parametrize("recipe", NEEDS)
def test_theme_generation_iff_declared(recipe, svc):
    """THEME_GENERATION mode is accepted only for recipes that declare theme_generation (and
    then gives themes)."""
    if not can(recipe).theme_generation:
        assert refused(lambda: svc.batch(recipe, batchInferenceJobMode="THEME_GENERATION",
                                         themeGenerationConfig=THEMES))
        return
    job, rows = svc.batch(recipe, batchInferenceJobMode="THEME_GENERATION", themeGenerationConfig=THEMES)
    assert job["status"] == "ACTIVE", job
    assert all(r["output"]["theme"] for r in rows[:-1])


def segment_queries(svc, recipe: str, count: int) -> list[dict]:
    """``count`` queries of the recipe's kind: item attributes or item ids."""
    if can(recipe).attribute_queries:
        return [{"itemAttributes": f'ITEMS.GENRES = "{GENRES[k % len(GENRES)]}"'} for k in range(count)]
    catalogue = svc.lab.cat.item_ids
    return [{"itemId": str(catalogue[k % len(catalogue)])} for k in range(count)]


@pytest.mark.parametrize("recipe", NEEDS)
def test_segment_jobs_read_at_most_the_declared_queries_per_file(recipe, svc):
    """CreateBatchSegmentJob accepts a version iff segment_queries_per_file is set; a file of
    exactly that many queries ends ACTIVE (queries of the wrong kind are line errors: item ids or
    attributes, as attribute_queries says), one more query fails the job naming the limit."""
    lab, limit = svc.lab, can(recipe).segment_queries_per_file
    if limit is None:
        uri = lab.put(f"{lab.name('seg')}/q.json", segment_queries(svc, "aws-item-affinity", 2))
        assert refused(lambda: lab.segment(recipe, uri))
        return
    wrong = {"itemId": svc.items[0]} if can(recipe).attribute_queries else {"itemAttributes": 'ITEMS.GENRES = "Drama"'}
    folder = lab.name("seg")
    uri = lab.put(f"{folder}/full/q.json", segment_queries(svc, recipe, limit - 1) + [wrong])
    job, out = lab.segment(recipe, uri, numResults=5)
    assert job["status"] == "ACTIVE", job
    rows = lab.output(out + "q.json.out")
    assert len(rows) == limit
    assert all(r["error"] is None and len(r["output"]["recommendedUsers"]) == 5 for r in rows[:-1])
    assert all(("itemAttributes" in r) == can(recipe).attribute_queries for r in rows[:-1])
    assert rows[-1]["error"] and ("itemAttributes" if can(recipe).attribute_queries else "itemId") in rows[-1]["error"]
    uri = lab.put(f"{folder}/over/q.json", segment_queries(svc, recipe, limit + 1))
    job, _ = lab.segment(recipe, uri, numResults=5)
    assert job["status"] == "CREATE FAILED" and str(limit) in job["failureReason"], job


# -- solutions --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("recipe", NEEDS)
def test_incremental_update_solution_iff_declared(recipe, svc):
    """CreateSolution with performIncrementalUpdate is accepted only for recipes that declare
    incremental_update."""
    c = svc.c
    create = lambda: c.create_solution(  # noqa: E731
        name=svc.lab.name("inc"), datasetGroupArn=svc.lab.group, recipeArn=f"arn:aws:personalize:::recipe/{recipe}",
        performIncrementalUpdate=True, performAutoTraining=False)
    assert refused(create) == (not can(recipe).incremental_update)


@pytest.mark.parametrize("recipe", NEEDS)
def test_training_mode_update_iff_declared(recipe, svc):
    """CreateSolutionVersion with trainingMode UPDATE is accepted only for recipes that declare
    training_update, and then trains a version that serves."""
    c = svc.c
    solution = c.describe_solution_version(solutionVersionArn=svc.lab.versions[recipe])["solutionVersion"]["solutionArn"]
    arn = []
    assert refused(lambda: arn.append(c.create_solution_version(solutionArn=solution, trainingMode="UPDATE")[
        "solutionVersionArn"])) == (not can(recipe).training_update)
    if arn:
        doc = wait(lambda: c.describe_solution_version(solutionVersionArn=arn[0])["solutionVersion"])
        assert doc["status"] == "ACTIVE" and doc["trainingMode"] == "UPDATE", doc


# -- legacy recipes -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("legacy", sorted(r for r in LEGACY if r in NEEDS))
def test_legacy_recipe_serves_like_its_successor(legacy, svc):
    """A legacy HRNN version behaves as its successor's, but for the API rules LEGACY lists: a
    campaign answers with the same entries (scores; a reason only where the recipe gives
    reasons), its top items overlap the successor's strongly, and a campaign with
    itemExplorationConfig explores; batch inference gives the same shape of output (scores) and
    the same items."""
    successor = LEGACY[legacy][0]
    assert can(legacy).exploration
    runs = {}
    for recipe in (legacy, successor):
        plain = svc.campaign(recipe, itemExplorationConfig=NO_EXPLORE) if can(recipe).exploration \
            else svc.campaign(recipe)
        explore = svc.campaign(recipe, itemExplorationConfig=EXPLORE) if can(recipe).exploration else plain
        runs[recipe] = {u: (svc.ask(recipe, plain, u), svc.ask(recipe, explore, u)) for u in svc.users}
    for u in svc.users:
        (mine, mine_explored), (theirs, _) = runs[legacy][u], runs[successor][u]
        assert len(mine) == len(theirs)
        assert [sorted(set(e) - {"reason"}) for e in mine] == [sorted(set(e) - {"reason"}) for e in theirs]
        assert all(("reason" in e) == can(legacy).reasons for e in mine_explored + mine)
        assert all(isinstance(e["score"], float) for e in mine + mine_explored)
    assert sum(ids(runs[legacy][u][0]) != ids(runs[legacy][u][1]) for u in svc.users) >= len(svc.users) // 2
    assert np.mean([overlap(ids(runs[legacy][u][0]), ids(runs[successor][u][0])) for u in svc.users]) >= 0.7

    (job, rows), (their_job, their_rows) = svc.batch(legacy), svc.batch(successor)
    assert job["status"] == their_job["status"] == "ACTIVE"
    assert [sorted(r) for r in rows] == [sorted(r) for r in their_rows]
    assert [sorted(r["output"] or {}) for r in rows] == [sorted(r["output"] or {}) for r in their_rows]
    good = [(a["output"], b["output"]) for a, b in zip(rows, their_rows) if a["error"] is None]
    assert good and all(len(a["scores"]) == len(b["scores"]) == len(a["recommendedItems"]) for a, b in good)
    assert np.mean([overlap(a["recommendedItems"], b["recommendedItems"]) for a, b in good]) >= 0.7
