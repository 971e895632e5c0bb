"""The batch path against a real S3 server (SeaweedFS): import, train, batch inference, segment."""

import json

import pytest

from openpersonalize import synthetic
from tests.batch.conftest import ROLE, import_generated, wait
from tests.conftest import make_client


@pytest.fixture(scope="module")
def s3_lab(s3_server, seaweedfs, tmp_path_factory):
    s3 = seaweedfs.client()
    s3.create_bucket(Bucket="batch-s3")
    cat = synthetic.generate(n_users=200, n_items=100, interactions_per_user=20, seed=3)
    local = synthetic.write_csvs(cat, tmp_path_factory.mktemp("csv"))
    for name, path in local.items():
        s3.upload_file(str(path), "batch-s3", f"data/{path.name}")
    c = make_client("personalize", s3_server.endpoint)
    group = c.create_dataset_group(name="s3-batch")["datasetGroupArn"]
    import_generated(c, group, "s3-batch", "s3://batch-s3/data", kinds=("Interactions", "Items"))
    versions = {}
    for recipe in ("aws-user-personalization", "aws-item-affinity"):
        sol = c.create_solution(name=f"s3-{recipe}", datasetGroupArn=group, performAutoTraining=False,
                                recipeArn=f"arn:aws:personalize:::recipe/{recipe}")["solutionArn"]
        versions[recipe] = c.create_solution_version(solutionArn=sol)["solutionVersionArn"]
    for arn in versions.values():
        assert wait(lambda: c.describe_solution_version(solutionVersionArn=arn)["solutionVersion"])["status"] == "ACTIVE"
    return c, s3, cat, versions


def _read(s3, key):
    return [json.loads(l) for l in s3.get_object(Bucket="batch-s3", Key=key)["Body"].read().decode().splitlines()]


def test_batch_inference_and_segment_on_s3(s3_lab):
    c, s3, cat, versions = s3_lab
    users = [{"userId": str(u)} for u in cat.user_ids[:25]] + ["not json"]
    s3.put_object(Bucket="batch-s3", Key="in/users.json", Body="".join(
        (u if isinstance(u, str) else json.dumps(u)) + "\n" for u in users).encode())
    arn = c.create_batch_inference_job(jobName="s3-bi", solutionVersionArn=versions["aws-user-personalization"],
                                       numResults=7, roleArn=ROLE, jobInput={"s3DataSource": {"path": "s3://batch-s3/in/"}},
                                       jobOutput={"s3DataDestination": {"path": "s3://batch-s3/out/",
                                                                        "kmsKeyArn": "arn:aws:kms:us-east-1:000000000000:key/k1"}})[
        "batchInferenceJobArn"]
    job = wait(lambda: c.describe_batch_inference_job(batchInferenceJobArn=arn)["batchInferenceJob"])
    assert job["status"] == "ACTIVE", job  # SeaweedFS refuses SSE-KMS: the output is written without it
    assert job["jobOutput"]["s3DataDestination"]["kmsKeyArn"].endswith("key/k1")
    rows = _read(s3, "out/users.json.out")
    assert len(rows) == 26 and all(len(r["output"]["recommendedItems"]) == 7 for r in rows[:25])
    assert rows[25]["error"]
    # Nothing temporary is left behind next to the published output.
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="batch-s3", Prefix="out/").get("Contents", [])]
    assert keys == ["out/users.json.out"]

    s3.put_object(Bucket="batch-s3", Key="seg/items.json", Body=b'{"itemId": "i0004"}\n')
    arn = c.create_batch_segment_job(jobName="s3-bs", solutionVersionArn=versions["aws-item-affinity"], numResults=5,
                                     roleArn=ROLE, jobInput={"s3DataSource": {"path": "s3://batch-s3/seg/items.json"}},
                                     jobOutput={"s3DataDestination": {"path": "s3://batch-s3/seg-out/"}})["batchSegmentJobArn"]
    assert wait(lambda: c.describe_batch_segment_job(batchSegmentJobArn=arn)["batchSegmentJob"])["status"] == "ACTIVE"
    assert len(_read(s3, "seg-out/items.json.out")[0]["output"]["recommendedUsers"]) == 5
