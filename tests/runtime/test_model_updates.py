"""Automatic model updates: items sent with PutItems reach a campaign's model (and batch jobs on
its solution version) without a new solution version, as Personalize's two-hourly update does.

The server here updates every second instead of every two hours."""

from __future__ import annotations

import json
import time

import pytest

from tests.batch.conftest import lab, wait  # noqa: F401  (the trained dataset group, on this module's server)
from tests.runtime.test_recommenders import vod  # noqa: F401  (a VIDEO_ON_DEMAND group)
from tests.conftest import make_client
from tests.servers import running_server

NEEDS = ("aws-user-personalization", "aws-popularity-count")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from running_server(tmp_path_factory.mktemp("updates"), env={
        "OPENPERSONALIZE_MODEL_REFRESH_SECONDS": "1", "OPENPERSONALIZE_AUTO_TRAINING_CHECK_SECONDS": "0.2",
        "OPENPERSONALIZE_VIEW_REFRESH_SECONDS": "0.5", "OPENPERSONALIZE_AUTO_TRAINING_ENABLED": "false",
        "OPENPERSONALIZE_AUTO_TRAINING_DAY_SECONDS": "1", "OPENPERSONALIZE_RECOMMENDER_RETRAIN_DAYS": "6"})


@pytest.fixture(scope="module")
def personalize(server):
    return make_client("personalize", server.endpoint)


def until(check, timeout=60.0):
    deadline = time.time() + timeout
    while True:
        value = check()
        if value or time.time() > deadline:
            return value
        time.sleep(0.2)


def test_new_items_reach_the_served_model(lab, server, personalize):
    c = personalize
    rt = make_client("personalize-runtime", server.endpoint)
    events = make_client("personalize-events", server.endpoint)
    version = lab.versions["aws-user-personalization"]
    campaign = c.create_campaign(name=lab.name("c"), solutionVersionArn=version,
                                 campaignConfig={"itemExplorationConfig": {"explorationWeight": "0.0"}})["campaignArn"]
    # A popularity-count campaign is not updated in place: that recipe waits for retraining.
    popular = c.create_campaign(name=lab.name("c"), solutionVersionArn=lab.versions["aws-popularity-count"])[
        "campaignArn"]
    for arn in (campaign, popular):
        assert wait(lambda: c.describe_campaign(campaignArn=arn)["campaign"])["status"] == "ACTIVE"
    only_new = lab.filter('INCLUDE ItemID WHERE Items.GENRES IN ("brand-new")')
    user = str(lab.cat.user_ids[3])

    def recommended(arn):
        return [i["itemId"] for i in rt.get_recommendations(campaignArn=arn, userId=user, filterArn=only_new)["itemList"]]

    assert recommended(campaign) == []  # no item of that genre exists yet
    before = c.describe_solution_version(solutionVersionArn=version)["solutionVersion"]["lastUpdatedDateTime"]
    time.sleep(2)  # several refresh periods pass; with no new data nothing is updated, or even written
    assert c.describe_solution_version(solutionVersionArn=version)["solutionVersion"]["lastUpdatedDateTime"] == before
    assert c.list_solution_versions(solutionArn=c.describe_solution_version(
        solutionVersionArn=version)["solutionVersion"]["solutionArn"])["solutionVersions"][0]["solutionVersionArn"] == version

    items = next(d["datasetArn"] for d in c.list_datasets(datasetGroupArn=lab.group)["datasets"]
                 if d["datasetType"] == "ITEMS")
    newest = int(lab.cat.timestamps.max())
    events.put_items(datasetArn=items, items=[{"itemId": "fresh-1", "properties": json.dumps(
        {"title": "Fresh", "genres": "brand-new", "description": "just arrived", "price": 9.5,
         "creationTimestamp": newest})}])

    # The item is in the item data at once, but only a model that knows it can recommend it.
    assert until(lambda: recommended(campaign) == ["fresh-1"]), "the update never reached the campaign"
    assert recommended(popular) == []

    # No new solution version, the old one still ACTIVE; batch jobs on it use the updated model.
    solution = c.describe_solution_version(solutionVersionArn=version)["solutionVersion"]
    assert solution["status"] == "ACTIVE"
    assert len(c.list_solution_versions(solutionArn=solution["solutionArn"])["solutionVersions"]) == 1
    source = lab.put("updates/in.json", [{"userId": user}])
    job, out = lab.inference("aws-user-personalization", source, filterArn=only_new)
    assert job["status"] == "ACTIVE", job
    [line] = lab.output(out + "in.json.out")
    assert line["output"]["recommendedItems"] == ["fresh-1"]

    # Data that does not change the group leaves the model alone.
    served = server.data_dir / "models"
    folders = sorted(p.name for p in served.rglob("update-*"))
    time.sleep(2)
    assert sorted(p.name for p in served.rglob("update-*")) == folders and len(folders) == 1

    # Each further change brings a further update; only the newest three folders are kept.
    for k in range(2, 6):
        events.put_items(datasetArn=items, items=[{"itemId": f"fresh-{k}", "properties": json.dumps(
            {"title": "Fresh", "genres": "brand-new", "description": "arrived", "price": 1.0,
             "creationTimestamp": newest})}])
        assert until(lambda: f"fresh-{k}" in recommended(campaign)), k
    kept = sorted(p.name for p in served.rglob("update-*"))
    assert len(kept) == 3 and folders[0] not in kept


def test_recommenders_take_new_items_and_retrain(server, personalize, vod):
    """Top picks folds new items in at each update; Most popular only learns them when it is
    retrained from scratch (every recommender_retrain_days; a few seconds on this server)."""
    cat, group = vod
    c = personalize
    rt = make_client("personalize-runtime", server.endpoint)
    events = make_client("personalize-events", server.endpoint)
    arns = {use_case: c.create_recommender(name=f"u-{use_case[8:]}", datasetGroupArn=group,
                                           recipeArn=f"arn:aws:personalize:::recipe/{use_case}")["recommenderArn"]
            for use_case in ("aws-vod-top-picks", "aws-vod-most-popular")}
    for arn in arns.values():
        assert wait(lambda: c.describe_recommender(recommenderArn=arn)["recommender"])["status"] == "ACTIVE"
    only_new = c.create_filter(name="vod-new", datasetGroupArn=group,
                               filterExpression='INCLUDE ItemID WHERE Items.GENRES IN ("brand-new")')["filterArn"]
    assert wait(lambda: c.describe_filter(filterArn=only_new)["filter"])["status"] == "ACTIVE"
    user = str(cat.user_ids[100])  # not one of the watchers below: Top picks hides what was watched

    def recommended(use_case):
        return [i["itemId"] for i in rt.get_recommendations(recommenderArn=arns[use_case], userId=user,
                                                            filterArn=only_new)["itemList"]]

    assert recommended("aws-vod-top-picks") == [] and recommended("aws-vod-most-popular") == []
    datasets = {d["datasetType"]: d["datasetArn"] for d in c.list_datasets(datasetGroupArn=group)["datasets"]}
    events.put_items(datasetArn=datasets["ITEMS"], items=[{"itemId": "fresh-vod", "properties": json.dumps(
        {"title": "Fresh", "genres": "brand-new", "description": "new", "price": 1.0,
         "creationTimestamp": int(cat.timestamps.max())})}])
    tracker = c.create_event_tracker(name="vod-tracker", datasetGroupArn=group)["trackingId"]
    for u in cat.user_ids[:40]:  # everyone watches it: the most popular item from now on
        events.put_events(trackingId=tracker, userId=str(u), sessionId=f"s-{u}", eventList=[
            {"eventType": "Watch", "itemId": "fresh-vod", "sentAt": int(cat.timestamps.max()) + 60}])
    assert until(lambda: recommended("aws-vod-top-picks") == ["fresh-vod"]), "Top picks never saw the item"
    assert until(lambda: recommended("aws-vod-most-popular") == ["fresh-vod"]), "Most popular was not retrained"
    assert c.describe_recommender(recommenderArn=arns["aws-vod-most-popular"])["recommender"]["status"] == "ACTIVE"
