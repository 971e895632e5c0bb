"""Solutions and solution versions through boto3: configuration rules, versions, stopping."""

import time

import pytest

UP = "arn:aws:personalize:::recipe/aws-user-personalization"
SIMS = "arn:aws:personalize:::recipe/aws-sims"


def wait_for(fn, done, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = fn()
        if done(value):
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out; last value {value}")


def test_solution_round_trip(personalize, unique, group):
    name = unique("sol")
    config = {"algorithmHyperParameters": {"hidden_dimension": "64"},
              "eventValueThreshold": "0.5",
              "autoTrainingConfig": {"schedulingExpression": "rate(3 days)"}}
    arn = personalize.create_solution(name=name, datasetGroupArn=group, recipeArn=UP,
                                      solutionConfig=config, performAutoTraining=False)["solutionArn"]
    sol = personalize.describe_solution(solutionArn=arn)["solution"]
    assert sol["status"] == "ACTIVE" and sol["recipeArn"] == UP and sol["solutionConfig"] == config
    assert sol["performAutoTraining"] is False and sol["performHPO"] is False
    assert [s["solutionArn"] for s in personalize.list_solutions(datasetGroupArn=group)["solutions"]] == [arn]
    personalize.update_solution(solutionArn=arn, performAutoTraining=True,
                                solutionUpdateConfig={"autoTrainingConfig": {"schedulingExpression": "rate(7 days)"}})
    sol = personalize.describe_solution(solutionArn=arn)["solution"]
    assert sol["performAutoTraining"] is True
    assert sol["latestSolutionUpdate"]["status"] == "ACTIVE"
    assert sol["solutionConfig"]["autoTrainingConfig"]["schedulingExpression"] == "rate(7 days)"


def test_auto_training_defaults_to_true(personalize, unique, group):
    arn = personalize.create_solution(name=unique("sol"), datasetGroupArn=group, recipeArn=SIMS)["solutionArn"]
    assert personalize.describe_solution(solutionArn=arn)["solution"]["performAutoTraining"] is True


@pytest.mark.parametrize("kwargs, fragment", [
    ({"recipeArn": UP, "solutionConfig": {"algorithmHyperParameters": {"depth": "3"}}},
     "'depth' is not a algorithm hyperparameter of aws-user-personalization"),
    ({"recipeArn": UP, "solutionConfig": {"algorithmHyperParameters": {"hidden_dimension": "999"}}},
     "hidden_dimension: '999' must be between 32 and 256"),
    ({"recipeArn": SIMS, "solutionConfig": {"algorithmHyperParameters": {"popularity_discount_factor": "x"}}},
     "must be a number"),
    ({"recipeArn": UP, "performHPO": True, "solutionConfig": {"hpoConfig": {"algorithmHyperParameterRanges": {
        "integerHyperParameterRanges": [{"name": "hidden_dimension", "minValue": 200, "maxValue": 100}]}}}},
     "must have minValue <= maxValue"),
    ({"recipeArn": UP, "performHPO": True, "solutionConfig": {"hpoConfig": {"algorithmHyperParameterRanges": {
        "continuousHyperParameterRanges": [{"name": "bogus", "minValue": 0, "maxValue": 1}]}}}},
     "'bogus' is not a tunable hyperparameter"),
    ({"recipeArn": UP, "solutionConfig": {"hpoConfig": {"hpoResourceConfig": {"maxNumberOfTrainingJobs": "4"}}}},
     "performHPO is not true"),
    ({"recipeArn": UP, "solutionConfig": {"autoTrainingConfig": {"schedulingExpression": "rate(45 days)"}}},
     "rate(N days) with N from 1 to 30"),
    ({"recipeArn": UP, "performAutoML": True}, "must be omitted when performAutoML is true"),
    ({"recipeArn": "arn:aws:personalize:::recipe/aws-vod-top-picks"}, "use CreateRecommender"),
])
def test_bad_solution_config(personalize, unique, group, kwargs, fragment):
    with pytest.raises(personalize.exceptions.InvalidInputException) as e:
        personalize.create_solution(name=unique("sol"), datasetGroupArn=group, **kwargs)
    assert fragment in e.value.response["Error"]["Message"]


def test_unknown_recipe(personalize, unique, group):
    with pytest.raises(personalize.exceptions.ResourceNotFoundException) as e:
        personalize.create_solution(name=unique("sol"), datasetGroupArn=group,
                                    recipeArn="arn:aws:personalize:::recipe/aws-nope")
    assert "aws-nope" in e.value.response["Error"]["Message"]


def test_version_goes_through_job_runner(personalize, unique, group):
    sol = personalize.create_solution(name=unique("sol"), datasetGroupArn=group, recipeArn=UP,
                                      performAutoTraining=False)["solutionArn"]
    arn = personalize.create_solution_version(solutionArn=sol, name="first")["solutionVersionArn"]
    assert arn.startswith(sol + "/") and len(arn.rsplit("/", 1)[1]) == 8
    version = wait_for(lambda: personalize.describe_solution_version(solutionVersionArn=arn)["solutionVersion"],
                       lambda v: v["status"] in ("ACTIVE", "CREATE FAILED"))
    assert version["trainingMode"] == "FULL" and version["trainingType"] == "MANUAL"
    assert version["recipeArn"] == UP and version["name"] == "first"
    if version["status"] == "CREATE FAILED":
        assert version["failureReason"]  # never a silent failure
    summaries = personalize.list_solution_versions(solutionArn=sol)["solutionVersions"]
    assert [s["solutionVersionArn"] for s in summaries] == [arn]
    assert personalize.describe_solution(solutionArn=sol)["solution"]["latestSolutionVersion"]["solutionVersionArn"] == arn
    with pytest.raises(personalize.exceptions.ResourceInUseException):
        personalize.stop_solution_version_creation(solutionVersionArn=arn)
    with pytest.raises(personalize.exceptions.InvalidInputException) as e:
        personalize.create_solution_version(solutionArn=sol, trainingMode="UPDATE")
    assert "ACTIVE FULL version" in e.value.response["Error"]["Message"] or version["status"] == "ACTIVE"


def test_update_mode_only_for_some_recipes(personalize, unique, group):
    sol = personalize.create_solution(name=unique("sol"), datasetGroupArn=group, recipeArn=SIMS,
                                      performAutoTraining=False)["solutionArn"]
    with pytest.raises(personalize.exceptions.InvalidInputException) as e:
        personalize.create_solution_version(solutionArn=sol, trainingMode="UPDATE")
    assert "aws-sims" in e.value.response["Error"]["Message"]


def test_list_versions_of_unknown_solution(personalize):
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.list_solution_versions(solutionArn="arn:aws:personalize:us-east-1:000000000000:solution/nope")


def test_delete_solution_removes_versions(personalize, unique, group):
    sol = personalize.create_solution(name=unique("sol"), datasetGroupArn=group, recipeArn=UP,
                                      performAutoTraining=False)["solutionArn"]
    arn = personalize.create_solution_version(solutionArn=sol)["solutionVersionArn"]
    wait_for(lambda: personalize.describe_solution_version(solutionVersionArn=arn)["solutionVersion"]["status"],
             lambda s: s in ("ACTIVE", "CREATE FAILED"), timeout=120)
    personalize.delete_solution(solutionArn=sol)
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.describe_solution_version(solutionVersionArn=arn)


def test_metrics_need_active_version(personalize):
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.get_solution_metrics(
            solutionVersionArn="arn:aws:personalize:us-east-1:000000000000:solution/nope/abcdef12")
