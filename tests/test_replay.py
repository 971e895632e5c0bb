"""openpersonalize evaluate: versions scored on the events that arrived after their training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from openpersonalize import synthetic
from tests.batch.conftest import generated_group, train_versions
from tests.conftest import make_client


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    cat = synthetic.generate(n_users=200, n_items=150, interactions_per_user=15, seed=4)
    with generated_group(tmp_path_factory.mktemp("replay"), "replay", cat) as (server, c, group, _):
        versions = train_versions(c, group, "replay", ("aws-user-personalization", "aws-popularity-count"))
        tracker = c.create_event_tracker(name="site", datasetGroupArn=group)["trackingId"]
        yield type("Lab", (), {"server": server, "cat": cat, "versions": versions, "tracker": tracker, "c": c})


def send(lab, pattern: bool, seed: int) -> None:
    """Three later events per user: items of the user's tastes (the training data's pattern) or
    items drawn at random."""
    rng = np.random.default_rng(seed)
    events = make_client("personalize-events", lab.server.endpoint)
    cat = lab.cat
    for u in range(0, len(cat.user_ids), 2):
        liked = [i for i in cat.item_ids if set(cat.genre_of(i)) & set(cat.user_genres[u])]
        pool = liked if pattern else list(cat.item_ids)
        chosen = rng.choice(pool, 3, replace=False)
        events.put_events(trackingId=lab.tracker, userId=str(cat.user_ids[u]), sessionId=f"s{u}", eventList=[
            {"eventType": "click", "itemId": str(item), "sentAt": 1_900_000_000 + k} for k, item in enumerate(chosen)])


def evaluate(lab, *extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENPERSONALIZE_", "AWS_"))}
    args = [sys.executable, "-m", "openpersonalize.cli", "evaluate", "--endpoint-url", lab.server.endpoint, "--json"]
    for arn in lab.versions.values():
        args += ["--solution-version", arn]
    out = subprocess.run(args + list(extra), capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_evaluate_ranks_versions_on_the_events_that_came_later(lab):
    start = time.time()
    send(lab, pattern=False, seed=1)
    middle = time.time()
    send(lab, pattern=True, seed=2)

    later = evaluate(lab, "--since", str(middle))
    assert later["usersWithEvents"] == 100 and later["events"] == 300
    ranked = [v["recipe"] for v in later["versions"]]
    assert ranked == ["aws-user-personalization", "aws-popularity-count"], later
    personalized, popular = (v["metrics"]["normalized_discounted_cumulative_gain_at_10"] for v in later["versions"])
    assert personalized > 1.5 * popular, later

    noise = evaluate(lab, "--since", str(start), "--until", str(middle))
    assert noise["events"] == 300
    best_on_noise = max(v["metrics"]["normalized_discounted_cumulative_gain_at_10"] for v in noise["versions"])
    assert best_on_noise < personalized  # random later events: nobody predicts them as well

    # The table a person reads.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENPERSONALIZE_", "AWS_"))}
    table = subprocess.run([sys.executable, "-m", "openpersonalize.cli", "evaluate", "--endpoint-url",
                            lab.server.endpoint, "--solution-version", lab.versions["aws-user-personalization"],
                            "--since", str(middle)], capture_output=True, text=True, env=env, timeout=120).stdout
    assert "NDCG@10" in table and "aws-user-personalization" in table


def test_evaluate_refuses_what_it_cannot_score(lab):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENPERSONALIZE_", "AWS_"))}
    out = subprocess.run([sys.executable, "-m", "openpersonalize.cli", "evaluate", "--endpoint-url",
                          lab.server.endpoint, "--solution-version", "arn:aws:personalize:us-east-1:0:solution/x/y"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 1 and "No solution version" in out.stderr and "Traceback" not in out.stderr


# -- explain ------------------------------------------------------------------------------------------


def explain(lab, campaign: str, user: str, item: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENPERSONALIZE_", "AWS_"))}
    out = subprocess.run([sys.executable, "-m", "openpersonalize.cli", "explain", campaign, "--user-id", user,
                          "--item-id", item, "--json", "--endpoint-url", lab.server.endpoint],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_explanations_name_history_items_by_the_models_own_arithmetic(lab):
    from openpersonalize.config import Settings
    from openpersonalize.store.models import load_model

    c, cat = lab.c, lab.cat
    version = lab.versions["aws-user-personalization"]
    campaign = c.create_campaign(name="explained", solutionVersionArn=version, campaignConfig={
        "itemExplorationConfig": {"explorationWeight": "0"}})["campaignArn"]
    from tests.data.helpers import wait
    wait(lambda: c.describe_campaign(campaignArn=campaign)["campaign"])
    runtime = make_client("personalize-runtime", lab.server.endpoint)
    model = load_model(Settings(data_dir=str(lab.server.data_dir)), version)
    for u in (1, 3, 5):  # users without later events (those went to even users)
        user = str(cat.user_ids[u])
        item = runtime.get_recommendations(campaignArn=campaign, userId=user, numResults=5)["itemList"][0]["itemId"]
        doc = explain(lab, campaign, user, item)
        assert doc["rule"] == "model" and doc["contributions"], doc
        history = {str(cat.item_ids[i]) for i in cat.items[cat.users == u]}
        named = [x["itemId"] for x in doc["contributions"]]
        assert set(named) <= history  # only the user's own history explains
        parts = [x["contribution"] for x in doc["contributions"]]
        assert parts == sorted(parts, reverse=True)
        # The model's arithmetic, computed here from its arrays: EASE scores are w . B[history, item].
        if model.meta["backend"] == "ease":
            hist = model.history(model.user_position(user))
            i = int(model.item_index([item])[0])
            expected = {}
            for h, w in zip(hist, model._weights(hist)):
                name = str(model.item_ids[h])
                expected[name] = expected.get(name, 0.0) + float(w * model.arrays["B"][h, i])
            for name, part in zip(named, parts):
                assert abs(expected[name] - part) < 1e-5
            assert named[0] == max(expected, key=expected.get)
    c.delete_campaign(campaignArn=campaign)


def test_an_explored_item_is_explained_by_the_rule(lab):
    c, cat = lab.c, lab.cat
    campaign = c.create_campaign(name="exploring", solutionVersionArn=lab.versions["aws-user-personalization"],
                                 campaignConfig={"itemExplorationConfig": {"explorationWeight": "1",
                                                                           "explorationItemAgeCutOff": "100000"}})[
        "campaignArn"]
    from tests.data.helpers import wait
    wait(lambda: c.describe_campaign(campaignArn=campaign)["campaign"])
    runtime = make_client("personalize-runtime", lab.server.endpoint)
    user = str(cat.user_ids[7])
    item = runtime.get_recommendations(campaignArn=campaign, userId=user, numResults=5)["itemList"][0]["itemId"]
    doc = explain(lab, campaign, user, item)
    assert doc["rule"] == "exploration" and "fresh item" in doc["explanation"], doc
    c.delete_campaign(campaignArn=campaign)
