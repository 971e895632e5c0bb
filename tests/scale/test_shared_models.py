"""No shared filesystem: an API process and a worker with different data folders share one
PostgreSQL store and one S3 data root (SeaweedFS). The worker imports and trains; the API process
serves the campaign from the model the worker wrote to S3; a batch job on the worker reads it back."""

from __future__ import annotations

import json

from openpersonalize import synthetic
from tests.batch.conftest import ROLE, import_generated, wait
from tests.conftest import make_client
from tests.scale.test_workers import postgres_url  # noqa: F401  (this module's own PostgreSQL)
from tests.scale.workers import WorkerProcess
from tests.servers import ServerProcess, free_port, reset_store


def test_models_travel_through_the_s3_data_root(postgres_url, seaweedfs, tmp_path):  # noqa: F811
    reset_store(postgres_url)
    s3 = seaweedfs.client()
    s3.create_bucket(Bucket="shared-root")
    s3.create_bucket(Bucket="shared-in")
    cat = synthetic.generate(n_users=150, n_items=80, interactions_per_user=15, seed=21)
    for path in synthetic.write_csvs(cat, tmp_path / "csv").values():
        s3.upload_file(str(path), "shared-in", f"data/{path.name}")
    env = {**seaweedfs.env(), "OPENPERSONALIZE_DATA_ROOT": "s3://shared-root/openpersonalize",
           "OPENPERSONALIZE_AUTO_TRAINING_ENABLED": "false", "OPENPERSONALIZE_MODEL_REFRESH_SECONDS": "0"}
    api = ServerProcess(data_dir=tmp_path / "api", port=free_port(), store_url=postgres_url,
                        env={**env, "OPENPERSONALIZE_WORKERS": "0"})
    worker = WorkerProcess(data_dir=tmp_path / "worker", store_url=postgres_url, env=env, name="worker")
    try:
        api.start()
        worker.start()
        c = make_client("personalize", api.endpoint)
        group = c.create_dataset_group(name="shared")["datasetGroupArn"]
        import_generated(c, group, "shared", "s3://shared-in/data", kinds=("Interactions", "Items"))
        sol = c.create_solution(name="shared", datasetGroupArn=group, performAutoTraining=False,
                                recipeArn="arn:aws:personalize:::recipe/aws-user-personalization")["solutionArn"]
        version = c.create_solution_version(solutionArn=sol)["solutionVersionArn"]
        assert wait(lambda: c.describe_solution_version(solutionVersionArn=version)["solutionVersion"])[
            "status"] == "ACTIVE"

        # The model is in S3, and only the worker has a local copy.
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="shared-root", Prefix="openpersonalize/models/")["Contents"]]
        assert any(k.endswith("/manifest.json") for k in keys), keys
        assert list((tmp_path / "worker").rglob("manifest.json")) and not list((tmp_path / "api").rglob("manifest.json"))

        campaign = c.create_campaign(name="shared", solutionVersionArn=version)["campaignArn"]
        assert wait(lambda: c.describe_campaign(campaignArn=campaign)["campaign"])["status"] == "ACTIVE"
        rt = make_client("personalize-runtime", api.endpoint)
        user = str(cat.user_ids[0])
        online = [i["itemId"] for i in rt.get_recommendations(campaignArn=campaign, userId=user, numResults=10)["itemList"]]
        assert len(online) == 10
        assert list((tmp_path / "api").rglob("manifest.json"))  # fetched from S3 to serve

        s3.put_object(Bucket="shared-in", Key="in/users.json", Body=json.dumps({"userId": user}).encode() + b"\n")
        arn = c.create_batch_inference_job(
            jobName="shared-bi", solutionVersionArn=version, numResults=10, roleArn=ROLE,
            # The campaign explores new items by default (explorationWeight 0.3); a batch job only
            # when asked. Asked the same, both must give the same list.
            batchInferenceJobConfig={"itemExplorationConfig": {"explorationWeight": "0.3",
                                                               "explorationItemAgeCutOff": "30"}},
            jobInput={"s3DataSource": {"path": "s3://shared-in/in/users.json"}},
            jobOutput={"s3DataDestination": {"path": "s3://shared-in/out/"}})["batchInferenceJobArn"]
        assert wait(lambda: c.describe_batch_inference_job(batchInferenceJobArn=arn)["batchInferenceJob"])[
            "status"] == "ACTIVE"
        [line] = [json.loads(x) for x in s3.get_object(Bucket="shared-in", Key="out/users.json.out")["Body"].read()
                  .decode().splitlines()]
        assert line["output"]["recommendedItems"] == online  # the same model on both machines
    finally:
        worker.stop()
        api.stop()
