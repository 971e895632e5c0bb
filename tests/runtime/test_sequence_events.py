"""A sequence recipe as a user meets it: trained through the API on data where item k is always
followed by item k + 1, its campaign puts the successor of the user's newest item first, and an
event sent with PutEvents moves the first item to the successor of that event at once."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from tests.batch.conftest import import_datasets, train_versions, wait
from tests.conftest import make_client

N_ITEMS = 80
SCHEMA = {"type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema",
          "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
                     {"name": "TIMESTAMP", "type": "long"}], "version": "1.0"}


def item(k: int) -> str:
    return f"i{k % N_ITEMS:03d}"


@pytest.fixture(scope="module")
def sequence_campaign(server, personalize):
    prefix = f"chains-{int(time.time() * 1000) % 10**8}"
    rng = np.random.default_rng(4)
    lines, last = ["USER_ID,ITEM_ID,TIMESTAMP"], {}
    for u in range(300):
        start, length = int(rng.integers(N_ITEMS)), int(rng.integers(6, 12))
        for step in range(length):
            lines.append(f"u{u:03d},{item(start + step)},{1_700_000_000 + 1000 * u + 10 * step}")
        last[f"u{u:03d}"] = start + length - 1
    folder = Path(server.data_dir) / "s3" / "batch" / prefix
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "interactions.csv").write_text("\n".join(lines) + "\n")
    group = personalize.create_dataset_group(name=f"{prefix}-g")["datasetGroupArn"]
    import_datasets(personalize, group, prefix, f"s3://batch/{prefix}",
                    [("Interactions", SCHEMA, "interactions.csv")])
    version = train_versions(personalize, group, prefix, ["aws-user-personalization-v2"])[
        "aws-user-personalization-v2"]
    campaign = personalize.create_campaign(name=f"{prefix}-c", solutionVersionArn=version)["campaignArn"]
    assert wait(lambda: personalize.describe_campaign(campaignArn=campaign)["campaign"])["status"] == "ACTIVE"
    tracker = personalize.create_event_tracker(name=f"{prefix}-t", datasetGroupArn=group)["trackingId"]
    return campaign, tracker, last, version


def test_the_successor_comes_first_and_follows_events(server, personalize, sequence_campaign):
    campaign, tracker, last, _ = sequence_campaign
    rt = make_client("personalize-runtime", server.endpoint)
    events = make_client("personalize-events", server.endpoint)
    users = sorted(last)[:20]
    first = {u: rt.get_recommendations(campaignArn=campaign, userId=u, numResults=5)["itemList"][0]["itemId"]
             for u in users}
    assert np.mean([first[u] == item(last[u] + 1) for u in users]) >= 0.8
    u = users[0]
    jump = last[u] + 30
    events.put_events(trackingId=tracker, userId=u, sessionId="s-1",
                      eventList=[{"eventType": "click", "itemId": item(jump), "sentAt": time.time()}])
    moved = rt.get_recommendations(campaignArn=campaign, userId=u, numResults=5)["itemList"]
    assert moved[0]["itemId"] == item(jump + 1)


def test_without_recency_bias_the_blend_is_guarded(server, personalize, sequence_campaign):
    """apply_recency_bias false (CreateSolution's algorithmHyperParameters) reaches training: the
    blend is kept only as far as it costs the rest of the history nothing (on these chains a
    random earlier item is a gap the order-blind model fills first), so the lists move from the
    default's."""
    campaign, tracker, last, version = sequence_campaign
    group = personalize.describe_solution_version(solutionVersionArn=version)["solutionVersion"]["datasetGroupArn"]
    sol = personalize.create_solution(
        name=f"guarded-{int(time.time() * 1000) % 10**8}", datasetGroupArn=group, performAutoTraining=False,
        recipeArn="arn:aws:personalize:::recipe/aws-user-personalization-v2",
        solutionConfig={"algorithmHyperParameters": {"apply_recency_bias": "false"}})["solutionArn"]
    guarded = personalize.create_solution_version(solutionArn=sol)["solutionVersionArn"]
    doc = wait(lambda: personalize.describe_solution_version(solutionVersionArn=guarded)["solutionVersion"])
    assert doc["status"] == "ACTIVE", doc
    assert doc["tunedHPOParams"]["algorithmHyperParameters"]["apply_recency_bias"] == "false"
    rt = make_client("personalize-runtime", server.endpoint)
    served = personalize.create_campaign(name=f"{sol.rsplit('/', 1)[1]}-c", solutionVersionArn=guarded)["campaignArn"]
    assert wait(lambda: personalize.describe_campaign(campaignArn=served)["campaign"])["status"] == "ACTIVE"
    users = sorted(last)[20:40]

    def lists(arn):
        return [[i["itemId"] for i in rt.get_recommendations(campaignArn=arn, userId=u, numResults=10)["itemList"]]
                for u in users]
    assert lists(served) != lists(campaign)
