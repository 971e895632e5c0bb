"""Batch segment jobs through boto3."""

import numpy as np

NEEDS = ("aws-item-affinity", "aws-item-attribute-affinity")


def test_item_affinity(lab):
    item = "i0012"
    genres = set(lab.cat.genre_of(item))
    uri = lab.put("seg/items.json", [{"itemId": item}, {"itemId": "no-such-item"}, {"item": "x"}])
    job, out = lab.segment("aws-item-affinity", uri, numResults=20)
    assert job["status"] == "ACTIVE", job
    rows = lab.output(out + "items.json.out")
    users = rows[0]["output"]["recommendedUsers"]
    assert rows[0]["input"] == {"itemId": item} and rows[0]["output"]["usersList"] == users and len(users) == 20
    share = np.mean([bool(set(lab.cat.user_genres[int(u[1:])]) & genres) for u in users])
    assert share > 0.7
    assert rows[1]["output"]["recommendedUsers"] == []
    assert "missing itemId" in rows[2]["error"]


def test_item_attribute_affinity_and_user_filter(lab):
    c = lab.c
    gold = c.create_filter(name=lab.name("f"), datasetGroupArn=lab.group,
                           filterExpression="INCLUDE UserID WHERE Users.TIER IN ($TIER)")["filterArn"]
    from tests.batch.conftest import wait
    wait(lambda: c.describe_filter(filterArn=gold)["filter"])
    uri = lab.put("seg/attrs.json", ['{"itemAttributes": "ITEMS.GENRES = \\"Horror\\""}',
                                     '{"itemAttributes": "items.GENRES = \\"Horror\\" and ITEMS.PRICE = 9999"}',
                                     '{"itemAttributes": "ITEMS.DESCRIPTION = \\"x\\""}'])
    job, out = lab.segment("aws-item-attribute-affinity", uri, numResults=15)
    rows = lab.output(out + "attrs.json.out")
    assert "input" not in rows[0] and rows[0]["itemAttributes"] == 'ITEMS.GENRES = "Horror"'
    users = rows[0]["output"]["recommendedUsers"]
    assert len(users) == 15
    assert np.mean(["Horror" in lab.cat.user_genres[int(u[1:])] for u in users]) > 0.7
    assert rows[1]["output"]["recommendedUsers"] == []
    assert "textual" in rows[2]["error"]

    uri = lab.put("seg/gold.json", [{"itemId": "i0003", "filterValues": {"TIER": '"gold"'}}])
    job, out = lab.segment("aws-item-affinity", uri, numResults=10, filterArn=gold)
    users = lab.output(out + "gold.json.out")[0]["output"]["recommendedUsers"]
    assert users and all(lab.cat.user_tiers[int(u[1:])] == "gold" for u in users)
