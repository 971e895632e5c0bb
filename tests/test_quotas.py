"""Quotas answer LimitExceededException with AWS's message, and are settings a self-hoster can raise."""

import pytest

from tests.conftest import make_client
from tests.servers import running_server


@pytest.fixture(scope="module")
def tight_server(tmp_path_factory):
    yield from running_server(tmp_path_factory.mktemp("quota"),
                              env={"OPENPERSONALIZE_MAX_DATASET_GROUPS": "2", "OPENPERSONALIZE_MAX_FILTERS_PER_GROUP": "1",
                                   "OPENPERSONALIZE_WORKERS": "0", "OPENPERSONALIZE_MAX_PENDING_SOLUTION_VERSIONS": "1"})


def test_quotas(tight_server):
    c = make_client("personalize", tight_server.endpoint)
    group = c.create_dataset_group(name="q1")["datasetGroupArn"]
    c.create_dataset_group(name="q2")
    with pytest.raises(c.exceptions.LimitExceededException) as e:
        c.create_dataset_group(name="q3")
    assert "More than 2 dataset groups" in e.value.response["Error"]["Message"]
    c.create_filter(name="f1", datasetGroupArn=group, filterExpression='EXCLUDE ItemID WHERE Items.GENRES IN ("x")')
    with pytest.raises(c.exceptions.LimitExceededException):
        c.create_filter(name="f2", datasetGroupArn=group, filterExpression='EXCLUDE ItemID WHERE Items.GENRES IN ("x")')
    sol = c.create_solution(name="qs", datasetGroupArn=group, performAutoTraining=False,
                            recipeArn="arn:aws:personalize:::recipe/aws-sims")["solutionArn"]
    c.create_solution_version(solutionArn=sol)  # no workers: it stays pending
    with pytest.raises(c.exceptions.LimitExceededException) as e:
        c.create_solution_version(solutionArn=sol)
    assert e.value.response["Error"]["Message"] == "More than 1 resources with PENDING or IN_PROGRESS status."
