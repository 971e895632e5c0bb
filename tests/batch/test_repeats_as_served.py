"""Repeat behaviour as a user meets it: default solution config, no filter, batch inference,
GetRecommendations and GetPersonalizedRanking agree with what training measured."""

from __future__ import annotations

import time

import numpy as np
import pytest

from openpersonalize import synthetic
from tests.batch.conftest import Lab, import_generated, train_versions, wait
from tests.conftest import make_client

N = 25


def trained_lab(server, personalize, cat, name: str) -> Lab:
    prefix = f"{name}-{int(time.time() * 1000) % 10**8}"
    lab = Lab(server, personalize, cat, prefix)
    synthetic.write_csvs(cat, lab.bucket_dir / prefix / "data")
    lab.group = personalize.create_dataset_group(name=f"{prefix}-g")["datasetGroupArn"]
    import_generated(personalize, lab.group, prefix, f"s3://batch/{prefix}/data", kinds=("Interactions",))
    lab.versions = train_versions(personalize, lab.group, prefix,
                                  ("aws-user-personalization", "aws-personalized-ranking"))
    return lab


@pytest.fixture(scope="module")
def ratings(server, personalize):
    """Each user has each item once, as in a ratings data set."""
    cat = synthetic.generate(n_users=200, n_items=150, interactions_per_user=20, seed=8, distinct=True)
    return trained_lab(server, personalize, cat, "norepeat")


@pytest.fixture(scope="module")
def shop(server, personalize):
    """Users re-buy their staples: 60 % of purchases after the first are repeats."""
    cat = synthetic.generate_staples(n_users=200, n_items=150, interactions_per_user=30, seed=9, repeat_share=0.6)
    return trained_lab(server, personalize, cat, "staples")


def histories(cat) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for u, i in zip(cat.users, cat.items):
        out.setdefault(str(cat.user_ids[u]), set()).add(str(cat.item_ids[i]))
    return out


def batch_seen_share(lab: Lab, users: list[str]) -> float:
    uri = lab.put(lab.name("in.json"), [{"userId": u} for u in users])
    doc, out = lab.inference("aws-user-personalization", uri, numResults=N)
    assert doc["status"] == "ACTIVE", doc
    had = histories(lab.cat)
    seen = slots = 0
    for line in lab.output(out + uri.rsplit("/", 1)[1] + ".out"):
        items = line["output"]["recommendedItems"]
        assert len(items) == N
        seen += sum(i in had[line["input"]["userId"]] for i in items)
        slots += len(items)
    return seen / slots


def campaign(lab: Lab, recipe: str) -> str:
    arn = lab.c.create_campaign(name=lab.name("c"), solutionVersionArn=lab.versions[recipe])["campaignArn"]
    assert wait(lambda: lab.c.describe_campaign(campaignArn=arn)["campaign"])["status"] == "ACTIVE"
    return arn


def test_no_repeats_in_the_data_means_none_in_any_answer(ratings, server):
    users = [str(u) for u in ratings.cat.user_ids[:60]]
    assert batch_seen_share(ratings, users) == 0.0
    runtime = make_client("personalize-runtime", server.endpoint)
    had = histories(ratings.cat)
    arn = campaign(ratings, "aws-user-personalization")
    for u in users[:10]:
        got = [r["itemId"] for r in runtime.get_recommendations(campaignArn=arn, userId=u, numResults=N)["itemList"]]
        assert len(got) == N and not set(got) & had[u]
    # Ranking: the user's own items get no probability and go last.
    ranking = campaign(ratings, "aws-personalized-ranking")
    u = users[0]
    own = sorted(had[u])[:3]
    others = [str(i) for i in ratings.cat.item_ids if str(i) not in had[u]][:5]
    ranked = runtime.get_personalized_ranking(campaignArn=ranking, userId=u, inputList=own + others)["personalizedRanking"]
    assert {r["itemId"] for r in ranked[-3:]} == set(own)
    assert all(r.get("score", 0.0) == 0.0 for r in ranked[-3:])


def test_repeat_heavy_data_gets_seen_items_in_their_measure(shop):
    users = [str(u) for u in shop.cat.user_ids[:80]]
    share = batch_seen_share(shop, users)
    # The true share is 0.6; a list holds at most ceil(R_u x 25) of the user's items and users
    # have fewer distinct items than that, so the share sits a little under it.
    assert 0.3 <= share <= 0.7, share


def test_solution_metrics_score_the_served_lists(ratings, shop):
    for lab in (ratings, shop):
        metrics = lab.c.get_solution_metrics(solutionVersionArn=lab.versions["aws-user-personalization"])["metrics"]
        assert 0.0 < metrics["normalized_discounted_cumulative_gain_at_10"] <= 1.0
