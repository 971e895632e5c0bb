"""A/B test of two campaigns, end to end, on generated data (docs/experiments.md).

    python examples/ab_test.py [--visits 1500] [--endpoint-url URL]

Without --endpoint-url it starts a local server of its own (openpersonalize.testing). It trains
Popularity-Count (arm A) and User-Personalization (arm B), deploys a campaign for each, and
simulates shoppers: each is assigned to an arm by a hash of their user ID (sticky: the same arm
on every visit), sees that arm's recommendations, and buys an item of their taste among them
with some probability. Every event carries the recommendationId it answers, so it is attributed
to the campaign that made the list. At the end it prints `openpersonalize compare`'s table.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import time

import numpy as np

from openpersonalize import synthetic
from openpersonalize.client import ServerClient
from openpersonalize.commands import compare
from openpersonalize.testing import LocalPersonalize

ROLE = "arn:aws:iam::123456789012:role/personalize"
ATTRIBUTED = [{"name": "IMPRESSION", "type": ["null", "string"]},
              {"name": "RECOMMENDATION_ID", "type": ["null", "string"]},
              {"name": "EVENT_ATTRIBUTION_SOURCE", "type": ["null", "string"]}]


def arm_of(user_id: str, arms: list[str]) -> str:
    """Sticky assignment: a hash of the user ID, so a user sees the same arm on every visit and
    on every machine, with no table to keep."""
    digest = hashlib.sha256(f"ab-test-1:{user_id}".encode()).digest()
    return arms[int.from_bytes(digest[:8], "big") % len(arms)]


def wait(describe) -> dict:
    while (doc := describe())["status"] not in ("ACTIVE", "CREATE FAILED"):
        time.sleep(0.3)
    if doc["status"] != "ACTIVE":
        raise SystemExit(f"failed: {doc.get('failureReason')}")
    return doc


def setup(server, cat) -> tuple[str, str, dict[str, str]]:
    """A dataset group with the generated history, a metric attribution, and one campaign per arm."""
    p = server.client("personalize")
    group = p.create_dataset_group(name="ab-shop")["datasetGroupArn"]
    schema = dict(synthetic.INTERACTIONS_SCHEMA, fields=synthetic.INTERACTIONS_SCHEMA["fields"] + ATTRIBUTED)
    schema_arn = p.create_schema(name="ab-interactions", schema=json.dumps(schema))["schemaArn"]
    dataset = p.create_dataset(name="ab-interactions", schemaArn=schema_arn, datasetGroupArn=group,
                               datasetType="Interactions")["datasetArn"]
    text = io.StringIO()
    w = csv.writer(text)
    w.writerow(["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"] + [f["name"] for f in ATTRIBUTED])
    for u, i, t, e, v in zip(cat.users, cat.items, cat.timestamps, cat.event_types, cat.event_values):
        w.writerow([cat.user_ids[u], cat.item_ids[i], int(t), e, v, "", "", ""])
    server.put_object("s3://ab-shop/interactions.csv", text.getvalue())
    job = p.create_dataset_import_job(jobName="ab-history", datasetArn=dataset, roleArn=ROLE,
                                      dataSource={"dataLocation": "s3://ab-shop/interactions.csv"})
    wait(lambda: p.describe_dataset_import_job(datasetImportJobArn=job["datasetImportJobArn"])["datasetImportJob"])
    p.create_metric_attribution(
        name="ab-impact", datasetGroupArn=group,
        metrics=[{"eventType": "purchase", "metricName": "PURCHASES", "expression": "SAMPLECOUNT()"}],
        metricsOutputConfig={"roleArn": ROLE, "s3DataDestination": {"path": "s3://ab-shop/metrics/"}})
    campaigns = {}
    for arm, recipe in (("A", "aws-popularity-count"), ("B", "aws-user-personalization")):
        solution = p.create_solution(name=f"ab-{arm}", datasetGroupArn=group,
                                     recipeArn=f"arn:aws:personalize:::recipe/{recipe}")["solutionArn"]
        version = p.create_solution_version(solutionArn=solution)["solutionVersionArn"]
        wait(lambda: p.describe_solution_version(solutionVersionArn=version)["solutionVersion"])
        arn = p.create_campaign(name=f"ab-{arm}", solutionVersionArn=version)["campaignArn"]
        wait(lambda: p.describe_campaign(campaignArn=arn)["campaign"])
        campaigns[arm] = arn
    tracker = p.create_event_tracker(name="ab-site", datasetGroupArn=group)["trackingId"]
    return group, tracker, campaigns


def simulate(server, cat, tracker: str, campaigns: dict[str, str], visits: int, seed: int = 1) -> None:
    """Shoppers visit, see their arm's list, and buy an item of their taste with probability 0.5."""
    runtime, events = server.client("personalize-runtime"), server.client("personalize-events")
    rng = np.random.default_rng(seed)
    now = int(time.time())
    for k in range(visits):
        u = int(rng.integers(len(cat.user_ids)))
        user = str(cat.user_ids[u])
        campaign = campaigns[arm_of(user, sorted(campaigns))]
        answer = runtime.get_recommendations(campaignArn=campaign, userId=user, numResults=10)
        shown = [item["itemId"] for item in answer["itemList"]]
        rid = answer["recommendationId"]
        batch = [{"eventType": "view", "sentAt": now + k, "itemId": shown[0], "impression": shown,
                  "recommendationId": rid}]
        liked = [i for i in shown if set(cat.genre_of(i)) & set(cat.user_genres[u])]
        if liked and rng.random() < 0.5:
            batch.append({"eventType": "purchase", "sentAt": now + k, "itemId": liked[0], "eventValue": 1.0,
                          "recommendationId": rid})
        events.put_events(trackingId=tracker, userId=user, sessionId=f"s{u}", eventList=batch)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--visits", type=int, default=1500)
    parser.add_argument("--endpoint-url", help="a running server (default: start one here)")
    args = parser.parse_args()
    cat = synthetic.generate(n_users=300, n_items=200, interactions_per_user=20, seed=3)
    server = LocalPersonalize.at(args.endpoint_url) if args.endpoint_url else LocalPersonalize().start()
    try:
        group, tracker, campaigns = setup(server, cat)
        simulate(server, cat, tracker, campaigns, args.visits)
        print(f"arm A = {campaigns['A']}\narm B = {campaigns['B']}\n")
        return compare(ServerClient.from_environment(server.endpoint), group, "purchase")
    finally:
        server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
