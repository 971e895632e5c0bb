"""Metric attributions that compute, and A/B comparison of attribution sources, against a real
server: events with known true conversion rates go in through PutEvents, and the published S3
reports, ``/metrics`` and ``openpersonalize compare`` must say what went in."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import urllib.request

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import make_client
from tests.data.helpers import wait, wait_for
from tests.servers import ServerProcess, free_port

ROLE = "arn:aws:iam::123456789012:role/personalize"
SCHEMA = {"type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema", "version": "1.0",
          "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
                     {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"},
                     {"name": "EVENT_VALUE", "type": ["null", "float"]},
                     {"name": "IMPRESSION", "type": ["null", "string"]},
                     {"name": "RECOMMENDATION_ID", "type": ["null", "string"]},
                     {"name": "EVENT_ATTRIBUTION_SOURCE", "type": ["null", "string"]}]}
RATES = {"campaign-a": 0.10, "campaign-b": 0.16}
IMPRESSIONS = 1500


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    folder = tmp_path_factory.mktemp("attribution")
    server = ServerProcess(data_dir=folder, port=free_port(),
                           env={"OPENPERSONALIZE_METRICS_PUBLISH_SECONDS": "1", "OPENPERSONALIZE_PROFILE": "test"})
    server.start()
    try:
        c = make_client("personalize", server.endpoint)
        group = c.create_dataset_group(name="shop")["datasetGroupArn"]
        schema = c.create_schema(name="ix", schema=json.dumps(SCHEMA))["schemaArn"]
        dataset = c.create_dataset(name="ix", schemaArn=schema, datasetGroupArn=group,
                                   datasetType="Interactions")["datasetArn"]
        bucket = folder / "s3" / "shop"
        bucket.mkdir(parents=True)
        rows = ["USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE,IMPRESSION,RECOMMENDATION_ID,EVENT_ATTRIBUTION_SOURCE"]
        rows += [f"u{k % 40},i{(k * 7) % 30},{1_700_000_000 + k},view,,,," for k in range(400)]
        (bucket / "history.csv").write_text("\n".join(rows) + "\n")
        job = c.create_dataset_import_job(jobName="history", datasetArn=dataset, roleArn=ROLE,
                                          dataSource={"dataLocation": "s3://shop/history.csv"})["datasetImportJobArn"]
        assert wait(lambda: c.describe_dataset_import_job(datasetImportJobArn=job)["datasetImportJob"])["status"] == "ACTIVE"
        attribution = c.create_metric_attribution(
            name="impact", datasetGroupArn=group,
            metrics=[{"eventType": "purchase", "metricName": "PURCHASES", "expression": "SAMPLECOUNT()"},
                     {"eventType": "purchase", "metricName": "REVENUE", "expression": "SUM(Interactions.EVENT_VALUE)"}],
            metricsOutputConfig={"roleArn": ROLE, "s3DataDestination": {"path": "s3://shop/metrics/"}})[
            "metricAttributionArn"]
        tracker = c.create_event_tracker(name="site", datasetGroupArn=group)["trackingId"]
        yield type("Lab", (), {"server": server, "c": c, "group": group, "dataset": dataset, "attribution": attribution,
                               "tracker": tracker, "reports": folder / "s3" / "shop" / "metrics",
                               "events": make_client("personalize-events", server.endpoint)})
    finally:  # a setup that fails stops its server too
        server.stop()


def send(lab, events: list[dict], user: str = "shopper") -> None:
    for start in range(0, len(events), 10):
        lab.events.put_events(trackingId=lab.tracker, userId=user, sessionId="s", eventList=events[start:start + 10])


def simulate(seed: int = 7) -> tuple[list[dict], dict]:
    """Impressions from two sources with known conversion rates: a view event per impression
    (with the shown list and its recommendationId), a purchase with a value when it converts."""
    rng = np.random.default_rng(seed)
    events, truth = [], {s: {"purchases": 0, "revenue": 0.0} for s in RATES}
    t = 1_800_000_000
    for source, rate in RATES.items():
        for k in range(IMPRESSIONS):
            rid = f"RID-{source}-{k}"
            attributed = {"metricAttribution": {"eventAttributionSource": source}, "recommendationId": rid}
            events.append({"eventType": "view", "itemId": f"i{k % 30}", "sentAt": t, "impression": ["i1", "i2"],
                           **attributed})
            if rng.random() < rate:
                value = float(rng.integers(5, 50))
                events.append({"eventType": "purchase", "itemId": f"i{k % 30}", "sentAt": t + 1, "eventValue": value,
                               **attributed})
                truth[source]["purchases"] += 1
                truth[source]["revenue"] += value
            t += 2
    return events, truth


def reports(lab, method: str) -> list[dict]:
    out = []
    for path in sorted(lab.reports.glob(f"AggregatedAttributionMetrics - {method} - *.csv")):
        out.extend(csv.DictReader(io.StringIO(path.read_text())))
    return out


def totals(rows: list[dict], metric: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in rows:
        if r["METRIC_NAME"] == metric:
            out[r["EVENT_ATTRIBUTION_SOURCE"]] = out.get(r["EVENT_ATTRIBUTION_SOURCE"], 0.0) + float(r["VALUE"])
    return out


def test_published_reports_metrics_and_compare_say_what_went_in(lab):
    events, truth = simulate()
    send(lab, events)
    expected = {s: float(t["purchases"]) for s, t in truth.items()}
    rows = wait_for(lambda: (r := reports(lab, "PutEvents")) and totals(r, "PURCHASES") == expected and r)
    assert set(rows[0]) == {"METRIC_NAME", "EVENT_TYPE", "VALUE", "MATH_FUNCTION", "EVENT_ATTRIBUTION_SOURCE",
                            "TIMESTAMP"}
    revenue = totals(rows, "REVENUE")
    assert {s: round(v, 3) for s, v in revenue.items()} == {s: round(t["revenue"], 3) for s, t in truth.items()}
    assert {r["MATH_FUNCTION"] for r in rows} == {"samplecount", "sum"} and {r["EVENT_TYPE"] for r in rows} == {"purchase"}
    assert all(int(r["TIMESTAMP"]) % 900 == 0 for r in rows)  # 15-minute intervals

    text = urllib.request.urlopen(lab.server.endpoint + "/metrics", timeout=30).read().decode()
    shown = {s.labels["source"]: s.value for f in text_string_to_metric_families(text) for s in f.samples
             if s.name == "openpersonalize_attribution_value" and s.labels["metric"] == "PURCHASES"}
    assert shown == expected

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENPERSONALIZE_", "AWS_"))}
    out = subprocess.run([sys.executable, "-m", "openpersonalize.cli", "compare", "--dataset-group-arn", lab.group,
                          "--event-type", "purchase", "--since", "2027-01-15T08:00:00Z", "--json",
                          "--endpoint-url", lab.server.endpoint], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    by = {s["source"]: s for s in doc["sources"]}
    for source, rate in RATES.items():
        s = by[source]
        assert s["impressions"] == IMPRESSIONS and s["conversions"] == truth[source]["purchases"]
        assert s["low"] <= rate <= s["high"], s  # the true rate is inside the interval
    pair = doc["comparisons"][0]
    true_difference = RATES[pair["b"]] - RATES[pair["a"]]
    assert pair["low"] <= true_difference <= pair["high"] and pair["significant"], pair
    table = subprocess.run([sys.executable, "-m", "openpersonalize.cli", "compare", "--dataset-group-arn", lab.group,
                            "--event-type", "purchase", "--endpoint-url", lab.server.endpoint],
                           capture_output=True, text=True, env=env, timeout=60).stdout
    assert "campaign-a" in table and "significant at 5%" in table


def test_recommendation_ids_attribute_to_their_campaign_and_updates_take_effect(lab):
    c = lab.c
    solution = c.create_solution(name="pop", datasetGroupArn=lab.group,
                                 recipeArn="arn:aws:personalize:::recipe/aws-popularity-count")["solutionArn"]
    version = c.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    assert wait(lambda: c.describe_solution_version(solutionVersionArn=version)["solutionVersion"])["status"] == "ACTIVE"
    campaign = c.create_campaign(name="live", solutionVersionArn=version)["campaignArn"]
    wait(lambda: c.describe_campaign(campaignArn=campaign)["campaign"])
    runtime = make_client("personalize-runtime", lab.server.endpoint)
    rid = runtime.get_recommendations(campaignArn=campaign, userId="u1")["recommendationId"]

    c.update_metric_attribution(metricAttributionArn=lab.attribution, removeMetrics=["REVENUE"])
    before = len(list(lab.reports.glob("*PutEvents*")))
    send(lab, [{"eventType": "purchase", "itemId": "i3", "sentAt": 1_900_000_000, "eventValue": 9.0,
                "recommendationId": rid},
               {"eventType": "purchase", "itemId": "i4", "sentAt": 1_900_000_001, "eventValue": 9.0}])
    wait_for(lambda: len(list(lab.reports.glob("*PutEvents*"))) > before)
    newest = sorted(lab.reports.glob("*PutEvents*"), key=lambda p: int(p.stem.rsplit(" ", 1)[1]))[-1]
    rows = list(csv.DictReader(io.StringIO(newest.read_text())))
    assert {r["METRIC_NAME"] for r in rows} == {"PURCHASES"}  # REVENUE was removed
    assert totals(rows, "PURCHASES") == {campaign: 1.0, "SOURCE_NAME_UNDEFINED": 1.0}


def test_a_bulk_import_publishes_its_own_report(lab):
    rows = ["USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE,IMPRESSION,RECOMMENDATION_ID,EVENT_ATTRIBUTION_SOURCE"]
    rows += [f"u{k},i{k % 30},{1_950_000_000 + k},purchase,2.5,,,{'email' if k % 3 else 'banner'}" for k in range(30)]
    (lab.reports.parent / "more.csv").write_text("\n".join(rows) + "\n")
    job = lab.c.create_dataset_import_job(jobName="more", datasetArn=lab.dataset, roleArn=ROLE, importMode="INCREMENTAL",
                                          publishAttributionMetricsToS3=True,
                                          dataSource={"dataLocation": "s3://shop/more.csv"})["datasetImportJobArn"]
    assert wait(lambda: lab.c.describe_dataset_import_job(datasetImportJobArn=job)["datasetImportJob"])["status"] == "ACTIVE"
    assert totals(reports(lab, "Bulk"), "PURCHASES") == {"email": 20.0, "banner": 10.0}
