"""``openpersonalize demo``: the whole path through boto3, on data generated here.

It starts a server on the embedded default (SQLite and a local data folder), generates a small
catalogue with known tastes, and, with the same boto3 calls a Personalize user makes: creates a
dataset group, schemas and datasets, imports the CSVs, trains User-Personalization and
Item-Affinity, serves real-time recommendations from a campaign (showing events count at once),
runs a batch inference job, a batch segment job and a dataset export job, and prints where each
output is and a few of its lines.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path

from . import synthetic
from .config import Settings

ROLE = "arn:aws:iam::000000000000:role/PersonalizeDemo"


class _Server:
    """The API server in a background thread of this process."""

    def __init__(self, settings: Settings):
        import uvicorn

        from .api.app import Service, create_app

        self.settings = settings
        self.server = uvicorn.Server(uvicorn.Config(create_app(Service(settings)), host="127.0.0.1",
                                                    port=settings.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("the demo server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


def _step(text: str):
    print(f"\n== {text}", flush=True)


def _wait(describe, what: str, timeout: float = 600):
    """Poll like AWS client code does, printing each status as it changes."""
    started = time.time()
    last = None
    print(f"   {what}:", end="", flush=True)
    while True:
        doc = describe()
        if doc["status"] != last:
            print(("" if last is None else " ->") + f" {doc['status']}", end="", flush=True)
            last = doc["status"]
        if last in ("ACTIVE", "CREATE FAILED", "COMPLETED", "FAILED"):
            break
        if time.time() - started > timeout:
            raise RuntimeError(f"{what} still {last} after {timeout}s")
        time.sleep(0.2)
    print(f" ({time.time() - started:.1f}s)", flush=True)
    if last in ("CREATE FAILED", "FAILED"):
        raise RuntimeError(f"{what} failed: {doc.get('failureReason')}")
    return doc


def _show(path: Path, lines: int = 3) -> None:
    print(f"   output: {path}")
    with open(path) as f:
        for k, line in enumerate(f):
            if k == lines:
                break
            print("   | " + (line.rstrip()[:160] + ("..." if len(line.rstrip()) > 160 else "")))


def run(data_dir: str, port: int, users: int = 1000, items: int = 400) -> int:
    import logging

    import boto3

    logging.getLogger("openpersonalize").setLevel(logging.WARNING)  # the demo prints its own progress
    data = Path(data_dir).resolve()
    data.mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env(data_dir=str(data), port=port, store_url="", workers=2)
    bucket = data / "s3" / "demo"
    stamp = time.strftime("%Y%m%d%H%M%S")
    started = time.time()
    print(f"openpersonalize demo: data folder {data}")
    with _Server(settings):
        endpoint = f"http://127.0.0.1:{port}"
        kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="demo",
                  aws_secret_access_key="demo")
        personalize = boto3.client("personalize", **kw)
        events = boto3.client("personalize-events", **kw)

        _step(f"Generating {users} users and {items} items with known tastes")
        cat = synthetic.generate(n_users=users, n_items=items, interactions_per_user=30)
        paths = synthetic.write_csvs(cat, bucket / stamp / "data")
        print(f"   {len(cat.users)} interactions -> s3://demo/{stamp}/data/ ({paths['interactions'].parent})")

        _step("Dataset group, schemas, datasets")
        group = personalize.create_dataset_group(name=f"demo-{stamp}")["datasetGroupArn"]
        print(f"   {group}")
        datasets = {}
        for kind, schema in (("Interactions", synthetic.INTERACTIONS_SCHEMA), ("Items", synthetic.ITEMS_SCHEMA),
                             ("Users", synthetic.USERS_SCHEMA)):
            arn = personalize.create_schema(name=f"demo-{stamp}-{kind}", schema=json.dumps(schema))["schemaArn"]
            datasets[kind] = personalize.create_dataset(name=f"demo-{stamp}-{kind}", schemaArn=arn,
                                                        datasetGroupArn=group, datasetType=kind)["datasetArn"]
            print(f"   {datasets[kind]}")

        _step("Importing the CSVs (CreateDatasetImportJob)")
        for kind, csv in (("Interactions", "interactions.csv"), ("Items", "items.csv"), ("Users", "users.csv")):
            job = personalize.create_dataset_import_job(
                jobName=f"demo-{stamp}-{kind}", datasetArn=datasets[kind], roleArn=ROLE,
                dataSource={"dataLocation": f"s3://demo/{stamp}/data/{csv}"})["datasetImportJobArn"]
            _wait(lambda: personalize.describe_dataset_import_job(datasetImportJobArn=job)["datasetImportJob"],
                  f"import {csv}")

        _step("Real-time events (PutEvents) for a new user")
        tracker = personalize.create_event_tracker(name=f"demo-{stamp}", datasetGroupArn=group)["trackingId"]
        comedy = [str(i) for k, i in enumerate(cat.item_ids) if cat.item_genres[k][0] == "Comedy"][:5]
        events.put_events(trackingId=tracker, userId="new-visitor", sessionId="demo-session",
                          eventList=[{"eventType": "click", "itemId": i, "sentAt": time.time()} for i in comedy])
        print(f"   new-visitor clicked {len(comedy)} comedies: {', '.join(comedy)}")

        _step("Training (CreateSolutionVersion)")
        versions = {}
        for recipe in ("aws-user-personalization", "aws-item-affinity"):
            solution = personalize.create_solution(name=f"demo-{stamp}-{recipe}", datasetGroupArn=group,
                                                   recipeArn=f"arn:aws:personalize:::recipe/{recipe}",
                                                   performAutoTraining=False)["solutionArn"]
            versions[recipe] = personalize.create_solution_version(solutionArn=solution)["solutionVersionArn"]
        for recipe, arn in versions.items():
            _wait(lambda: personalize.describe_solution_version(solutionVersionArn=arn)["solutionVersion"],
                  f"train {recipe}")
        metrics = personalize.get_solution_metrics(solutionVersionArn=versions["aws-user-personalization"])["metrics"]
        print("   user-personalization metrics: " + ", ".join(
            f"{k}={metrics[k]:.3f}" for k in ("normalized_discounted_cumulative_gain_at_10", "precision_at_10",
                                              "coverage") if k in metrics))

        _step("Real-time recommendations (CreateCampaign, GetRecommendations)")
        runtime = boto3.client("personalize-runtime", **kw)
        campaign = personalize.create_campaign(name=f"demo-{stamp}",
                                               solutionVersionArn=versions["aws-user-personalization"],
                                               campaignConfig={"itemExplorationConfig": {"explorationWeight": "0"}})
        campaign = campaign["campaignArn"]
        _wait(lambda: personalize.describe_campaign(campaignArn=campaign)["campaign"], "campaign")

        def top_genres(what: str) -> None:
            listed = runtime.get_recommendations(campaignArn=campaign, userId="new-visitor", numResults=10)["itemList"]
            counts = Counter(cat.genre_of(i["itemId"])[0] for i in listed)
            print(f"   {what}: " + ", ".join(f"{n} {genre}" for genre, n in counts.most_common()))

        top_genres("new-visitor's top 10 after the comedy clicks")
        horror = [str(i) for k, i in enumerate(cat.item_ids) if cat.item_genres[k][0] == "Horror"][:8]
        events.put_events(trackingId=tracker, userId="new-visitor", sessionId="demo-session",
                          eventList=[{"eventType": "click", "itemId": i, "sentAt": time.time()} for i in horror])
        top_genres(f"after {len(horror)} horror clicks (PutEvents, no retraining)")
        timings = []
        for user in cat.user_ids[:200]:
            t = time.perf_counter()
            runtime.get_recommendations(campaignArn=campaign, userId=str(user))
            timings.append(time.perf_counter() - t)
        print(f"   200 GetRecommendations through boto3: median {sorted(timings)[100] * 1000:.1f} ms per call")

        _step("Batch inference job (CreateBatchInferenceJob)")
        lines = [{"userId": str(u)} for u in cat.user_ids[:200]] + [{"userId": "new-visitor"}]
        (bucket / stamp / "batch").mkdir(parents=True, exist_ok=True)
        (bucket / stamp / "batch" / "users.json").write_text("".join(json.dumps(x) + "\n" for x in lines))
        job = personalize.create_batch_inference_job(
            jobName=f"demo-{stamp}-users", solutionVersionArn=versions["aws-user-personalization"], numResults=10,
            roleArn=ROLE, jobInput={"s3DataSource": {"path": f"s3://demo/{stamp}/batch/users.json"}},
            jobOutput={"s3DataDestination": {"path": f"s3://demo/{stamp}/batch-out/"}})["batchInferenceJobArn"]
        _wait(lambda: personalize.describe_batch_inference_job(batchInferenceJobArn=job)["batchInferenceJob"],
              f"batch inference, {len(lines)} users")
        _show(bucket / stamp / "batch-out" / "users.json.out")

        _step("Batch segment job (CreateBatchSegmentJob)")
        (bucket / stamp / "segments").mkdir(parents=True, exist_ok=True)
        queries = [{"itemId": str(cat.item_ids[0])}, {"itemId": str(cat.item_ids[1])}]
        (bucket / stamp / "segments" / "items.json").write_text("".join(json.dumps(x) + "\n" for x in queries))
        job = personalize.create_batch_segment_job(
            jobName=f"demo-{stamp}-segments", solutionVersionArn=versions["aws-item-affinity"], numResults=8,
            roleArn=ROLE, jobInput={"s3DataSource": {"path": f"s3://demo/{stamp}/segments/items.json"}},
            jobOutput={"s3DataDestination": {"path": f"s3://demo/{stamp}/segments-out/"}})["batchSegmentJobArn"]
        _wait(lambda: personalize.describe_batch_segment_job(batchSegmentJobArn=job)["batchSegmentJob"],
              "batch segment, 2 items")
        _show(bucket / stamp / "segments-out" / "items.json.out")

        _step("Dataset export job (CreateDatasetExportJob, ingestionMode ALL)")
        job = personalize.create_dataset_export_job(
            jobName=f"demo-{stamp}-export", datasetArn=datasets["Interactions"], ingestionMode="ALL", roleArn=ROLE,
            jobOutput={"s3DataDestination": {"path": f"s3://demo/{stamp}/export/"}})["datasetExportJobArn"]
        _wait(lambda: personalize.describe_dataset_export_job(datasetExportJobArn=job)["datasetExportJob"],
              "export interactions")
        parts = sorted((bucket / stamp / "export").rglob("*.csv"))
        for part in parts[:1]:
            _show(part)
        print(f"   {len(parts)} part file(s) under s3://demo/{stamp}/export/")

    print(f"\nDone in {time.time() - started:.0f}s. Every s3://demo/... path above is a file under {bucket}.")
    return 0
