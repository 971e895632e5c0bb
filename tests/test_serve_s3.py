"""``openpersonalize serve --s3``: a real local S3 server behind the Personalize endpoint, used the
way LocalStack users use theirs: ``aws s3`` with ``--endpoint-url``, boto3's s3 client, and an
import job reading what was uploaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import INTERACTIONS_SCHEMA, make_client
from tests.data.helpers import wait
from tests.servers import ServerProcess, free_port


def weed_processes(folder) -> list[str]:
    """Command lines of SeaweedFS processes keeping their files under ``folder``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "weed" in command and str(folder) in command:
            found.append(command)
    return found


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve-s3")
    server = ServerProcess(data_dir=folder, port=free_port(), env={"OPENPERSONALIZE_S3": "true"})
    server.start(timeout=90)
    try:
        assert weed_processes(folder)
        yield server
    finally:
        server.stop()
    deadline = time.time() + 10
    while weed_processes(folder) and time.time() < deadline:  # it ends with the server, however that ends
        time.sleep(0.2)
    assert not weed_processes(folder)


def aws(server, *args, cwd=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": "any", "AWS_SECRET_ACCESS_KEY": "any", "AWS_DEFAULT_REGION": "us-east-1"})
    out = subprocess.run([sys.executable, "-m", "awscli", *args, "--endpoint-url", server.endpoint], cwd=cwd,
                         capture_output=True, text=True, env=env, timeout=120)
    return out.returncode, out.stdout, out.stderr


def test_aws_s3_and_boto3_reach_the_managed_s3_and_imports_read_it(s3_server, tmp_path):
    rows = ["USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE"]
    rows += [f"u{k % 40},i{k % 25},{1_700_000_000 + k},click,1.0" for k in range(1200)]
    (tmp_path / "interactions.csv").write_text("\n".join(rows) + "\n")
    assert aws(s3_server, "s3", "mb", "s3://shop")[0] == 0
    code, out, err = aws(s3_server, "s3", "cp", "interactions.csv", "s3://shop/data/", cwd=tmp_path)
    assert code == 0 and "upload: ./interactions.csv to s3://shop/data/interactions.csv" in out, err
    code, out, err = aws(s3_server, "s3", "ls", "s3://shop/data/")
    assert code == 0 and "interactions.csv" in out, err

    s3 = make_client("s3", s3_server.endpoint)
    listed = s3.list_objects_v2(Bucket="shop", Prefix="data/")["Contents"]
    assert [(o["Key"], o["Size"]) for o in listed] == [("data/interactions.csv", len("\n".join(rows)) + 1)]
    s3.put_object(Bucket="shop", Key="notes/a.txt", Body=b"hello")
    assert s3.get_object(Bucket="shop", Key="notes/a.txt")["Body"].read() == b"hello"

    personalize = make_client("personalize", s3_server.endpoint)
    group = personalize.create_dataset_group(name="s3-shop")["datasetGroupArn"]
    schema = personalize.create_schema(name="s3-ix", schema=json.dumps(INTERACTIONS_SCHEMA))["schemaArn"]
    dataset = personalize.create_dataset(name="s3-ix", schemaArn=schema, datasetGroupArn=group,
                                         datasetType="Interactions")["datasetArn"]
    arn = personalize.create_dataset_import_job(jobName="s3-first", datasetArn=dataset,
                                                roleArn="arn:aws:iam::123456789012:role/p",
                                                dataSource={"dataLocation": "s3://shop/data/interactions.csv"})[
        "datasetImportJobArn"]
    job = wait(lambda: personalize.describe_dataset_import_job(datasetImportJobArn=arn)["datasetImportJob"])
    assert job["status"] == "ACTIVE", job
    # The runtime and control plane still answer on the same endpoint.
    assert personalize.list_dataset_groups()["datasetGroups"]


def test_without_s3_an_s3_request_is_told_how_to_enable_it(server, tmp_path):
    (tmp_path / "x.csv").write_text("a\n")
    code, out, err = aws(server, "s3", "cp", "x.csv", "s3://b/x.csv", cwd=tmp_path)
    assert code != 0 and "NotImplemented" in err and "openpersonalize serve --s3" in err, err
