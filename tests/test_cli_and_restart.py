"""The AWS CLI works unmodified; everything survives a restart; jobs are never left hanging."""

import json
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import make_client
from tests.servers import ServerProcess, free_port


def aws(server, *args):
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_DEFAULT_REGION": "us-east-1"}
    out = subprocess.run([sys.executable, "-m", "awscli", *args, "--endpoint-url", server.endpoint],
                         capture_output=True, text=True, env=env, timeout=120)
    return out.returncode, out.stdout, out.stderr


def test_aws_cli(server, unique):
    name = unique("cli")
    code, out, err = aws(server, "personalize", "create-dataset-group", "--name", name)
    assert code == 0, err
    arn = json.loads(out)["datasetGroupArn"]
    code, out, err = aws(server, "personalize", "describe-dataset-group", "--dataset-group-arn", arn)
    assert code == 0 and json.loads(out)["datasetGroup"]["status"] == "ACTIVE", err
    code, out, err = aws(server, "personalize", "list-recipes", "--query", "recipes[].name", "--output", "text")
    assert code == 0 and "aws-sims" in out
    code, out, err = aws(server, "personalize", "describe-dataset-group", "--dataset-group-arn", arn + "x")
    assert code != 0 and "ResourceNotFoundException" in err


def test_restart_keeps_everything_and_runs_queued_jobs(tmp_path):
    port = free_port()
    # No workers: jobs stay queued while this server runs.
    first = ServerProcess(data_dir=tmp_path, port=port, env={"OPENPERSONALIZE_WORKERS": "0"})
    first.start()
    c = make_client("personalize", first.endpoint)
    group = c.create_dataset_group(name="kept", tags=[{"tagKey": "k", "tagValue": "v"}])["datasetGroupArn"]
    solution = c.create_solution(name="kept-sol", datasetGroupArn=group, performAutoTraining=False,
                                 recipeArn="arn:aws:personalize:::recipe/aws-sims")["solutionArn"]
    version = c.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    stopped = c.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    c.stop_solution_version_creation(solutionVersionArn=stopped)
    assert c.describe_solution_version(solutionVersionArn=version)["solutionVersion"]["status"] == "CREATE PENDING"
    assert c.describe_solution_version(solutionVersionArn=stopped)["solutionVersion"]["status"] == "CREATE STOPPED"
    first.stop(kill=True)  # a crash, not a clean shutdown

    second = ServerProcess(data_dir=tmp_path, port=port)
    second.start()
    try:
        c = make_client("personalize", second.endpoint)
        assert c.describe_dataset_group(datasetGroupArn=group)["datasetGroup"]["name"] == "kept"
        assert c.list_tags_for_resource(resourceArn=group)["tags"] == [{"tagKey": "k", "tagValue": "v"}]
        deadline = time.time() + 60
        while time.time() < deadline:
            status = c.describe_solution_version(solutionVersionArn=version)["solutionVersion"]["status"]
            if status in ("ACTIVE", "CREATE FAILED"):
                break
            time.sleep(0.1)
        assert status in ("ACTIVE", "CREATE FAILED")
        assert c.describe_solution_version(solutionVersionArn=stopped)["solutionVersion"]["status"] == "CREATE STOPPED"
    finally:
        second.stop()


def test_the_readme_aws_cli_example_works_verbatim(server, tmp_path):
    """The README's AWS CLI block, run as written (only the port is the test server's)."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = next(b for b in readme.split("```bash\n")[1:] if "aws personalize" in b).split("```")[0]
    script = block.replace("http://127.0.0.1:8080", server.endpoint)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = str(tmp_path)  # no ~/.aws of the machine's
    out = subprocess.run(["bash", "-c", f'aws() {{ "{sys.executable}" -m awscli "$@"; }}\nset -e\n{script}'],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "aws-user-personalization" in out.stdout
