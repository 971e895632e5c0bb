"""performAutoTraining: the scheduler creates AUTOMATIC versions on the solution's schedule."""

import time

import pytest

from tests.conftest import make_client
from tests.servers import running_server


@pytest.fixture(scope="module")
def fast_clock_server(tmp_path_factory):
    yield from running_server(tmp_path_factory.mktemp("auto"), env={
        "OPENPERSONALIZE_AUTO_TRAINING_FIRST_DELAY_SECONDS": "1", "OPENPERSONALIZE_AUTO_TRAINING_DAY_SECONDS": "2",
        "OPENPERSONALIZE_AUTO_TRAINING_CHECK_SECONDS": "0.2"})


def test_automatic_versions_follow_the_schedule(fast_clock_server):
    c = make_client("personalize", fast_clock_server.endpoint)
    group = c.create_dataset_group(name="auto")["datasetGroupArn"]
    auto = c.create_solution(name="auto-on", datasetGroupArn=group, recipeArn="arn:aws:personalize:::recipe/aws-sims",
                             solutionConfig={"autoTrainingConfig": {"schedulingExpression": "rate(1 day)"}})["solutionArn"]
    manual = c.create_solution(name="auto-off", datasetGroupArn=group, performAutoTraining=False,
                               recipeArn="arn:aws:personalize:::recipe/aws-sims")["solutionArn"]
    deadline = time.time() + 30
    versions = []
    while time.time() < deadline and len(versions) < 2:
        versions = c.list_solution_versions(solutionArn=auto)["solutionVersions"]
        time.sleep(0.2)
    assert len(versions) >= 2, versions  # the first after ~1 s, the next one "day" (2 s) later
    for v in versions:
        assert v["trainingType"] == "AUTOMATIC" and v["trainingMode"] == "AUTOTRAIN"
    # No data in the group: each automatic version fails with a reason, never silently.
    done = c.describe_solution_version(solutionVersionArn=versions[-1]["solutionVersionArn"])["solutionVersion"]
    while done["status"] not in ("ACTIVE", "CREATE FAILED") and time.time() < deadline + 30:
        time.sleep(0.2)
        done = c.describe_solution_version(solutionVersionArn=versions[-1]["solutionVersionArn"])["solutionVersion"]
    assert done["status"] == "CREATE FAILED" and done["failureReason"]
    assert c.list_solution_versions(solutionArn=manual)["solutionVersions"] == []
