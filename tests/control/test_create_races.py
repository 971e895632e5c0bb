"""Races on every create that has a uniqueness rule or a quota, through the real server.

Sixteen threads, each with its own boto3 client, are released together by a barrier and make the
same kind of create. Whatever the interleaving, exactly as many win as the rule allows, and every
loser gets what a sequential call gets once the winners exist: the same modeled exception with the
same message (never a 500). The module runs once per metadata store (SQLite, PostgreSQL); its
servers have no job workers, so jobs stay pending and count against their quotas.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from contextlib import contextmanager

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import CLIENT_CONFIG, CREDENTIALS, INTERACTIONS_SCHEMA
from tests.servers import running_server

N = 16
# One attempt: botocore's ``max_attempts`` counts retries, and it retries LimitExceededException
# (a throttling code) after a back-off; a racing call must show its first answer.
NO_RETRIES = CLIENT_CONFIG.merge(Config(retries={"total_max_attempts": 1, "mode": "standard"}))
ROLE = "arn:aws:iam::000000000000:role/p"
SIMS = "arn:aws:personalize:::recipe/aws-sims"
MOST_VIEWED = "arn:aws:personalize:::recipe/aws-ecomm-popular-items-by-views"
EXPRESSION = 'EXCLUDE ItemID WHERE Items.GENRES IN ("x")'
METRICS = [{"eventType": "click", "metricName": "clicks", "expression": "SAMPLECOUNT()"}]
METRICS_OUTPUT = {"s3DataDestination": {"path": "s3://b/metrics/"}, "roleArn": ROLE}
PER_GROUP = 3  # the per-group quotas of the race server
PENDING = 5    # its pending-jobs quota (per job type)
PENDING_VERSIONS = 3
RACE_QUOTAS = {
    "OPENPERSONALIZE_WORKERS": "0",
    "OPENPERSONALIZE_MAX_DATASET_GROUPS": "10000",
    "OPENPERSONALIZE_MAX_PENDING_JOBS": str(PENDING),
    "OPENPERSONALIZE_MAX_PENDING_SOLUTION_VERSIONS": str(PENDING_VERSIONS),
    "OPENPERSONALIZE_MAX_SOLUTIONS_PER_GROUP": str(PER_GROUP),
    "OPENPERSONALIZE_MAX_CAMPAIGNS_PER_GROUP": str(PER_GROUP),
    "OPENPERSONALIZE_MAX_RECOMMENDERS_PER_GROUP": str(PER_GROUP),
    "OPENPERSONALIZE_MAX_FILTERS_PER_GROUP": str(PER_GROUP),
}
ACCOUNT_QUOTAS = {"OPENPERSONALIZE_WORKERS": "0", "OPENPERSONALIZE_MAX_DATASET_GROUPS": "20",
                  "OPENPERSONALIZE_MAX_SCHEMAS": "10"}


@contextmanager
def _store_url(request, name: str):
    """None (the server's own SQLite file) or a PostgreSQL schema of this module's own, so that
    account-wide counts are not shared with other suites' servers."""
    if request.param == "sqlite":
        yield None
        return
    server_url = request.getfixturevalue("postgres_url")
    schema = f"races_{name}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield make_url(server_url).update_query_dict(
            {"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def _server(request, tmp_path_factory, name: str, env: dict):
    with _store_url(request, name) as store_url:
        servers = running_server(tmp_path_factory.mktemp(f"{name}-{request.param}"), store_url=store_url,
                                 env=env)
        server = next(servers)
        try:
            yield [boto3.client("personalize", endpoint_url=server.endpoint, config=NO_RETRIES, **CREDENTIALS)
                   for _ in range(N)]
        finally:
            servers.close()  # stops the server


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def clients(request, tmp_path_factory):
    """One client per racing thread, on a server with small per-group and pending-job quotas."""
    yield from _server(request, tmp_path_factory, "races", RACE_QUOTAS)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def account_clients(request, tmp_path_factory):
    """The same, on a server of its own whose account-wide quotas are small."""
    yield from _server(request, tmp_path_factory, "quotas", ACCOUNT_QUOTAS)


def race(clients, call) -> list[tuple]:
    """``call(client, i)`` on N threads released at once; each outcome is ``("ok", response)`` or
    ``(error code, message, HTTP status)``."""
    barrier = threading.Barrier(len(clients))
    outcomes: list[tuple | None] = [None] * len(clients)

    def run(i: int) -> None:
        barrier.wait(timeout=30)
        try:
            outcomes[i] = ("ok", call(clients[i], i))
        except ClientError as exc:
            outcomes[i] = (exc.response["Error"]["Code"], exc.response["Error"]["Message"],
                           exc.response["ResponseMetadata"]["HTTPStatusCode"])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(o is not None for o in outcomes), "a racing call did not finish"
    return outcomes


def sequential(call) -> tuple[str, str, int]:
    """The error code, message and HTTP status of a call that must fail."""
    with pytest.raises(ClientError) as e:
        call()
    response = e.value.response
    return response["Error"]["Code"], response["Error"]["Message"], response["ResponseMetadata"]["HTTPStatusCode"]


def check(outcomes, winners: int, expected: tuple[str, str, int]) -> list[dict]:
    """Exactly ``winners`` calls succeeded and every other one failed as ``expected`` (code,
    message, status); returns the winners' responses."""
    won = [o[1] for o in outcomes if o[0] == "ok"]
    lost = Counter(o for o in outcomes if o[0] != "ok")
    assert len(won) == winners, f"{len(won)} won, expected {winners}; the others: {dict(lost)}"
    if lost:
        assert set(lost) == {expected}, dict(lost)
    return won


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def new_group(c, **kw) -> str:
    return c.create_dataset_group(name=uid("dg"), **kw)["datasetGroupArn"]


def new_solution(c, group: str) -> str:
    return c.create_solution(name=uid("sol"), datasetGroupArn=group, recipeArn=SIMS,
                             performAutoTraining=False)["solutionArn"]


def new_dataset(c, group: str) -> str:
    schema = c.create_schema(name=uid("s"), schema=json.dumps(INTERACTIONS_SCHEMA))["schemaArn"]
    return c.create_dataset(name=uid("d"), schemaArn=schema, datasetGroupArn=group,
                            datasetType="Interactions")["datasetArn"]


# -- names, unique per resource type ---------------------------------------------------------


def test_dataset_group_name(clients):
    name = uid("dg")
    call = lambda c, i: c.create_dataset_group(name=name)  # noqa: E731
    outcomes = race(clients, call)
    check(outcomes, 1, sequential(lambda: call(clients[0], 0)))
    assert sum(g["name"] == name for p in clients[0].get_paginator("list_dataset_groups").paginate()
               for g in p["datasetGroups"]) == 1


def test_schema_name(clients):
    name = uid("s")
    call = lambda c, i: c.create_schema(name=name, schema=json.dumps(INTERACTIONS_SCHEMA))  # noqa: E731
    check(race(clients, call), 1, sequential(lambda: call(clients[0], 0)))


def test_solution_name(clients):
    group, name = new_group(clients[0]), uid("sol")
    call = lambda c, i: c.create_solution(name=name, datasetGroupArn=group, recipeArn=SIMS,  # noqa: E731
                                          performAutoTraining=False)
    check(race(clients, call), 1, sequential(lambda: call(clients[0], 0)))
    assert len(clients[0].list_solutions(datasetGroupArn=group)["solutions"]) == 1


def test_campaign_name(clients):
    solution, name = new_solution(clients[0], new_group(clients[0])), uid("c")
    call = lambda c, i: c.create_campaign(name=name, solutionVersionArn=solution + "/$LATEST")  # noqa: E731
    check(race(clients, call), 1, sequential(lambda: call(clients[0], 0)))
    assert len(clients[0].list_campaigns(solutionArn=solution)["campaigns"]) == 1


def test_filter_name(clients):
    group, name = new_group(clients[0]), uid("f")
    call = lambda c, i: c.create_filter(name=name, datasetGroupArn=group, filterExpression=EXPRESSION)  # noqa: E731
    check(race(clients, call), 1, sequential(lambda: call(clients[0], 0)))
    assert len(clients[0].list_filters(datasetGroupArn=group)["Filters"]) == 1


def test_recommender_name(clients):
    group, name = new_group(clients[0], domain="ECOMMERCE"), uid("r")
    call = lambda c, i: c.create_recommender(name=name, datasetGroupArn=group, recipeArn=MOST_VIEWED)  # noqa: E731
    check(race(clients, call), 1, sequential(lambda: call(clients[0], 0)))
    assert len(clients[0].list_recommenders(datasetGroupArn=group)["recommenders"]) == 1


def test_dataset_import_job_name(clients):
    dataset, name = new_dataset(clients[0], new_group(clients[0])), uid("imp")
    call = lambda c, i: c.create_dataset_import_job(  # noqa: E731
        jobName=name, datasetArn=dataset, dataSource={"dataLocation": "s3://b/x.csv"}, roleArn=ROLE)
    check(race(clients, call), 1, sequential(lambda: call(clients[0], 0)))


# -- one per dataset group ----------------------------------------------------------------------


def test_event_tracker_one_name_one_group(clients):
    """The issue's case: one name, one group, sixteen callers."""
    group, name = new_group(clients[0]), uid("et")
    call = lambda c, i: c.create_event_tracker(name=name, datasetGroupArn=group)  # noqa: E731
    check(race(clients, call), 1, sequential(lambda: call(clients[0], 0)))
    assert len(clients[0].list_event_trackers(datasetGroupArn=group)["eventTrackers"]) == 1


def test_event_tracker_one_per_group(clients):
    group = new_group(clients[0])
    call = lambda c, i: c.create_event_tracker(name=uid("et"), datasetGroupArn=group)  # noqa: E731
    outcomes = race(clients, call)
    code, message, status = sequential(lambda: call(clients[0], 0))
    assert code == "ResourceAlreadyExistsException" and "already has an event tracker" in message
    check(outcomes, 1, (code, message, status))
    assert len(clients[0].list_event_trackers(datasetGroupArn=group)["eventTrackers"]) == 1


def test_event_tracker_name_across_groups(clients):
    groups, name = [new_group(clients[0]) for _ in range(N + 1)], uid("et")
    call = lambda c, i: c.create_event_tracker(name=name, datasetGroupArn=groups[i])  # noqa: E731
    outcomes = race(clients, call)
    code, message, status = sequential(lambda: call(clients[0], N))
    assert code == "ResourceAlreadyExistsException" and f"with name {name}" in message
    check(outcomes, 1, (code, message, status))


def test_dataset_one_per_type(clients):
    group = new_group(clients[0])
    schema = clients[0].create_schema(name=uid("s"), schema=json.dumps(INTERACTIONS_SCHEMA))["schemaArn"]
    call = lambda c, i: c.create_dataset(name=uid("d"), schemaArn=schema, datasetGroupArn=group,  # noqa: E731
                                         datasetType="Interactions")
    outcomes = race(clients, call)
    code, message, status = sequential(lambda: call(clients[0], 0))
    assert "already has a INTERACTIONS dataset" in message
    check(outcomes, 1, (code, message, status))


def test_metric_attribution_name_and_one_per_group(clients):
    group, name = new_group(clients[0]), uid("ma")
    same_name = lambda c, i: c.create_metric_attribution(  # noqa: E731
        name=name, datasetGroupArn=group, metrics=METRICS, metricsOutputConfig=METRICS_OUTPUT)
    check(race(clients, same_name), 1, sequential(lambda: same_name(clients[0], 0)))
    other = new_group(clients[0])
    per_group = lambda c, i: c.create_metric_attribution(  # noqa: E731
        name=uid("ma"), datasetGroupArn=other, metrics=METRICS, metricsOutputConfig=METRICS_OUTPUT)
    outcomes = race(clients, per_group)
    code, message, status = sequential(lambda: per_group(clients[0], 0))
    assert "already has a metric attribution" in message
    check(outcomes, 1, (code, message, status))


def test_one_import_in_progress_per_dataset(clients):
    dataset = new_dataset(clients[0], new_group(clients[0]))
    call = lambda c, i: c.create_dataset_import_job(  # noqa: E731
        jobName=uid("imp"), datasetArn=dataset, dataSource={"dataLocation": "s3://b/x.csv"}, roleArn=ROLE)
    outcomes = race(clients, call)
    code, message, status = sequential(lambda: call(clients[0], 0))
    assert code == "ResourceInUseException" and "already has an import job in progress" in message
    check(outcomes, 1, (code, message, status))


# -- quotas ------------------------------------------------------------------------------------


def _quota_race(clients, call, allowed: int, fragment: str) -> list[dict]:
    outcomes = race(clients, call)
    code, message, status = sequential(lambda: call(clients[0], N))
    assert code == "LimitExceededException" and fragment in message, message
    return check(outcomes, allowed, (code, message, status))


def test_solutions_per_group(clients):
    group = new_group(clients[0])
    call = lambda c, i: c.create_solution(name=uid("sol"), datasetGroupArn=group, recipeArn=SIMS,  # noqa: E731
                                          performAutoTraining=False)
    _quota_race(clients, call, PER_GROUP, f"More than {PER_GROUP} solutions")
    assert len(clients[0].list_solutions(datasetGroupArn=group)["solutions"]) == PER_GROUP


def test_campaigns_per_group(clients):
    solution = new_solution(clients[0], new_group(clients[0]))
    call = lambda c, i: c.create_campaign(name=uid("c"), solutionVersionArn=solution + "/$LATEST")  # noqa: E731
    _quota_race(clients, call, PER_GROUP, "Cannot create a campaign")
    assert len(clients[0].list_campaigns(solutionArn=solution)["campaigns"]) == PER_GROUP


def test_filters_per_group(clients):
    group = new_group(clients[0])
    call = lambda c, i: c.create_filter(name=uid("f"), datasetGroupArn=group, filterExpression=EXPRESSION)  # noqa: E731
    _quota_race(clients, call, PER_GROUP, "Cannot create a filter")
    assert len(clients[0].list_filters(datasetGroupArn=group)["Filters"]) == PER_GROUP


def test_recommenders_per_group(clients):
    group = new_group(clients[0], domain="ECOMMERCE")
    call = lambda c, i: c.create_recommender(name=uid("r"), datasetGroupArn=group, recipeArn=MOST_VIEWED)  # noqa: E731
    _quota_race(clients, call, PER_GROUP, "Cannot create a recommender")
    assert len(clients[0].list_recommenders(datasetGroupArn=group)["recommenders"]) == PER_GROUP


def test_data_deletion_jobs_per_group(clients):
    group = new_group(clients[0])
    call = lambda c, i: c.create_data_deletion_job(  # noqa: E731
        jobName=uid("del"), datasetGroupArn=group, roleArn=ROLE, dataSource={"dataLocation": "s3://b/u.csv"})
    _quota_race(clients, call, 5, "More than 5 data deletion jobs")


def test_pending_export_jobs(clients):
    dataset = new_dataset(clients[0], new_group(clients[0]))
    pending = sum(j["status"] in ("CREATE PENDING", "CREATE IN_PROGRESS")
                  for p in clients[0].get_paginator("list_dataset_export_jobs").paginate()
                  for j in p["datasetExportJobs"])
    call = lambda c, i: c.create_dataset_export_job(  # noqa: E731
        jobName=uid("exp"), datasetArn=dataset, roleArn=ROLE,
        jobOutput={"s3DataDestination": {"path": "s3://b/exports/"}})
    _quota_race(clients, call, PENDING - pending, f"More than {PENDING} resources with PENDING")


def test_pending_solution_versions(clients):
    solution = new_solution(clients[0], new_group(clients[0]))
    pending = sum(v["status"] in ("CREATE PENDING", "CREATE IN_PROGRESS")
                  for p in clients[0].get_paginator("list_solution_versions").paginate()
                  for v in p["solutionVersions"])
    call = lambda c, i: c.create_solution_version(solutionArn=solution)  # noqa: E731
    _quota_race(clients, call, PENDING_VERSIONS - pending, f"More than {PENDING_VERSIONS} resources")


def test_dataset_group_quota(account_clients):
    """The issue's case: a quota of 20, 8 groups, 16 concurrent creates: 12 win."""
    c = account_clients[0]
    existing = sum(len(p["datasetGroups"]) for p in c.get_paginator("list_dataset_groups").paginate())
    for _ in range(8 - existing):
        new_group(c)
    call = lambda c, i: c.create_dataset_group(name=uid("dg"))  # noqa: E731
    _quota_race(account_clients, call, 12, "More than 20 dataset groups")
    assert sum(len(p["datasetGroups"]) for p in c.get_paginator("list_dataset_groups").paginate()) == 20


def test_schema_quota(account_clients):
    c = account_clients[0]
    existing = sum(len(p["schemas"]) for p in c.get_paginator("list_schemas").paginate())
    for _ in range(2 - existing):
        c.create_schema(name=uid("s"), schema=json.dumps(INTERACTIONS_SCHEMA))
    call = lambda c, i: c.create_schema(name=uid("s"), schema=json.dumps(INTERACTIONS_SCHEMA))  # noqa: E731
    _quota_race(account_clients, call, 8, "More than 10 schemas")
    assert sum(len(p["schemas"]) for p in c.get_paginator("list_schemas").paginate()) == 10


# -- limits on what an update adds ---------------------------------------------------------------


def test_tag_resource_adds_up(clients):
    """Tags are read, changed and written as one step: concurrent calls lose none of each other's
    tags, and together stay within the limit of 50."""
    group = new_group(clients[0])
    call = lambda c, i: c.tag_resource(  # noqa: E731
        resourceArn=group, tags=[{"tagKey": f"k{i}-{j}", "tagValue": "v"} for j in range(4)])
    outcomes = race(clients, call)
    code, message, status = sequential(lambda: call(clients[0], N))
    assert code == "TooManyTagsException" and "would have 52 tags" in message
    check(outcomes, 12, (code, message, status))
    tags = clients[0].list_tags_for_resource(resourceArn=group)["tags"]
    winners = [i for i, o in enumerate(outcomes) if o[0] == "ok"]
    assert sorted(t["tagKey"] for t in tags) == sorted(f"k{i}-{j}" for i in winners for j in range(4))


def test_update_metric_attribution_adds_up(clients):
    arn = clients[0].create_metric_attribution(name=uid("ma"), datasetGroupArn=new_group(clients[0]), metrics=METRICS,
                                               metricsOutputConfig=METRICS_OUTPUT)["metricAttributionArn"]
    call = lambda c, i: c.update_metric_attribution(  # noqa: E731
        metricAttributionArn=arn, addMetrics=[{"eventType": "click", "metricName": f"m{i}", "expression": "SAMPLECOUNT()"}])
    outcomes = race(clients, call)
    code, message, status = sequential(lambda: call(clients[0], N))
    assert code == "InvalidInputException" and "would give more than 10 metrics" in message
    check(outcomes, 9, (code, message, status))
    metrics = clients[0].list_metric_attribution_metrics(metricAttributionArn=arn)["metrics"]
    winners = [i for i, o in enumerate(outcomes) if o[0] == "ok"]
    assert sorted(m["metricName"] for m in metrics) == sorted(["clicks"] + [f"m{i}" for i in winners])
