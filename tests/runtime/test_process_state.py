"""What a server process keeps between requests (state.py): deployments come and go with their
campaigns, at most ``runtime_max_deployments`` are kept (the least recently used go), and the
control operations of the process let go of what they delete or change."""

import contextlib
import gc
import json
import time
import urllib.request
import weakref

import pytest

from tests.batch.conftest import wait
from tests.conftest import make_client

NEEDS = ("aws-user-personalization",)
RECIPE = NEEDS[0]


def process_gauges(server) -> dict[str, float]:
    """The server's ``openpersonalize_process_*`` gauges (GET /metrics), by short name."""
    with urllib.request.urlopen(server.endpoint + "/metrics", timeout=10) as r:
        text = r.read().decode()
    prefix = "openpersonalize_process_"
    return {name[len(prefix):]: float(value) for name, value in
            (line.rsplit(" ", 1) for line in text.splitlines() if line.startswith(prefix))}


@contextlib.contextmanager
def in_process(server, **settings):
    """A Service on the server's store and data folder (another API process, as it were), and a
    request context that carries its state."""
    from openpersonalize.api.app import Service
    from openpersonalize.config import Settings
    from openpersonalize.control.base import Context

    config = Settings(data_dir=str(server.data_dir), store_url=server.store_url, workers=0, **settings)
    service = Service(config, run_jobs=False)
    try:
        yield service, Context(settings=config, store=service.store, region=config.region, request_id="r",
                               state=service.state)
    finally:
        service.stop()
        service.store.close()


def recommend(service, ctx, campaign: str, user: str, **params) -> list[str]:
    from openpersonalize.api import protocol

    op = protocol.rest_routes()[("POST", "/recommendations")]
    status, _, body = service.answer(op, ctx, {"campaignArn": campaign, "userId": user, **params})
    assert status == 200, body
    return [i["itemId"] for i in json.loads(body)["itemList"]]


def control(service, ctx, operation: str, **params) -> dict:
    from openpersonalize.api import protocol

    return service.call(protocol.control_operation("AmazonPersonalize." + operation), ctx, params)


@pytest.fixture(scope="module")
def user(lab):
    return str(lab.cat.user_ids[4])


@pytest.fixture(scope="module")
def second_version(lab):
    """Another ACTIVE version of the same solution."""
    describe = lambda arn: lab.c.describe_solution_version(solutionVersionArn=arn)["solutionVersion"]  # noqa: E731
    arn = lab.c.create_solution_version(solutionArn=describe(lab.versions[RECIPE])["solutionArn"])["solutionVersionArn"]
    assert wait(lambda: describe(arn))["status"] == "ACTIVE"
    return arn


@pytest.fixture
def campaigns(lab):
    """A factory of campaigns on the lab's version, deleted at the end (a group serves 5 at most)."""
    made = []

    def make(version=None):
        version = version or lab.versions[RECIPE]
        arn = lab.c.create_campaign(name=lab.name("c"), solutionVersionArn=version)["campaignArn"]
        made.append(arn)
        return arn

    yield make
    for arn in made:
        with contextlib.suppress(Exception):
            lab.c.delete_campaign(campaignArn=arn)


def test_deployments_of_deleted_campaigns_are_let_go(lab, server, user):
    """200 campaigns created, asked for recommendations and deleted, one after the other, in one
    server: what the server holds for deployments (count, loads under way, live models and their
    bytes) comes back to where it started."""
    rt = make_client("personalize-runtime", server.endpoint)
    version = lab.versions[RECIPE]
    start = process_gauges(server)
    assert start["deployments"] + 1 < start["deployments_limit"]  # the bound plays no part here
    for k in range(200):
        arn = lab.c.create_campaign(name=lab.name("c"), solutionVersionArn=version)["campaignArn"]
        assert len(rt.get_recommendations(campaignArn=arn, userId=user, numResults=5)["itemList"]) == 5
        if k == 0:  # held while the campaign lives
            held = process_gauges(server)
            assert held["deployments"] == start["deployments"] + 1
            assert held["models"] == start["models"] + 1 and held["model_bytes"] > start["model_bytes"]
        lab.c.delete_campaign(campaignArn=arn)
    deadline = time.time() + 10
    end = process_gauges(server)
    while end["models"] != start["models"] and time.time() < deadline:  # freed by the collector, if at all
        time.sleep(0.1)
        end = process_gauges(server)
    for key in ("deployments", "loading", "models", "model_bytes"):
        assert end[key] == start[key], (key, start, end)


def test_past_the_limit_the_least_recently_used_deployment_goes(lab, server, user, campaigns):
    a, b, c = campaigns(), campaigns(), campaigns()
    with in_process(server, runtime_max_deployments=2) as (service, ctx):
        state = service.state
        held = lambda: [dep.key for dep in state.deployments()]  # noqa: E731  (least recently used first)
        recommend(service, ctx, a, user)
        recommend(service, ctx, b, user)
        first = weakref.ref(state.deployments()[0])
        assert held() == [a, b]
        recommend(service, ctx, a, user)  # a is now the most recently used
        recommend(service, ctx, c, user)
        assert held() == [a, c]
        recommend(service, ctx, b, user)  # loaded again; a goes
        assert held() == [c, b]
        sizes = state.sizes()
        assert sizes["deployments"] == 2 and sizes["loading"] == 0 and sizes["models"] == 1
        gc.collect()
        assert first() is None


def test_update_campaign_lets_the_old_deployment_go_at_once(lab, server, user, campaigns, second_version):
    old_version = lab.versions[RECIPE]
    arn = campaigns(old_version)
    with in_process(server) as (service, ctx):
        state = service.state
        recommend(service, ctx, arn, user)
        dep = state.deployed(arn, old_version)
        old_dep, old_model = weakref.ref(dep), weakref.ref(dep.model)
        del dep
        control(service, ctx, "UpdateCampaign", campaignArn=arn, solutionVersionArn=second_version)
        assert state.deployments() == []  # before any request
        gc.collect()
        assert old_dep() is None and old_model() is None and state.sizes()["models"] == 0
        recommend(service, ctx, arn, user)
        assert [dep.version_arn for dep in state.deployments()] == [second_version]


def test_a_deleted_filter_is_dropped_and_one_made_again_under_its_name_applies(lab, server, user, campaigns):
    """Filters cannot be updated in place: one is deleted and created again under its name (the
    same ARN). The deletion drops the compiled filter from every deployment at once, and the new
    expression applies at the next request."""
    price = {str(i): float(p) for i, p in zip(lab.cat.item_ids, lab.cat.item_prices)}
    campaign = campaigns()
    name = lab.name("f")

    def make_filter(expression):
        arn = lab.c.create_filter(name=name, datasetGroupArn=lab.group, filterExpression=expression)["filterArn"]
        assert wait(lambda: lab.c.describe_filter(filterArn=arn)["filter"])["status"] == "ACTIVE"
        return arn

    flt = make_filter("EXCLUDE ItemID WHERE Items.PRICE > 20")
    with in_process(server) as (service, ctx):
        state = service.state
        cheap = recommend(service, ctx, campaign, user, filterArn=flt, numResults=10)
        assert cheap and all(price[i] <= 20 for i in cheap)
        dep = state.deployments()[0]
        compiled_for = lambda: [k for k in dep._filters if isinstance(k, tuple) and k[0] == flt]  # noqa: E731
        assert compiled_for()
        control(service, ctx, "DeleteFilter", filterArn=flt)
        assert compiled_for() == []
        assert make_filter("INCLUDE ItemID WHERE Items.PRICE > 20") == flt
        dear = recommend(service, ctx, campaign, user, filterArn=flt, numResults=10)
        assert dear and all(price[i] > 20 for i in dear)
        assert state.deployments() == [dep]  # the deployment itself stays


def test_forget_dataset_drops_its_cached_events_and_expires_the_views(tmp_path):
    """``forget_dataset`` (DeleteDataset, UpdateDataset) empties the event caches of the dataset,
    and the deployments on its group rebuild their filter data even though the data mark is the
    same."""
    from openpersonalize.config import Settings
    from openpersonalize.serving import Deployment
    from openpersonalize.state import ProcessState
    from openpersonalize.store.metadata import Store
    from openpersonalize.store.records import PutRecord

    dataset, group = "arn:aws:personalize:us-east-1:000000000000:dataset/g/INTERACTIONS", \
        "arn:aws:personalize:us-east-1:000000000000:dataset-group/g"
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        state = ProcessState(Settings(data_dir=str(tmp_path)), store)
        state.records.append(dataset, [PutRecord(row={"ITEM_ID": "a"}, entity_id="u1", user_id="u1", event_id="e1")])
        assert [r["ITEM_ID"] for r in state.records.recent(dataset, 0, "u1", 10, max_age=60)] == ["a"]
        dep = Deployment(key="k", version_arn="v", group_arn=group, recipe="r", recipe_type="t", model=None,
                         records_until=0, interactions_arn=dataset, _view=object(), _view_time=time.time())
        other = Deployment(key="o", version_arn="v", group_arn=group + "2", recipe="r", recipe_type="t", model=None,
                           records_until=0, interactions_arn=None, _view=object(), _view_time=time.time())
        state.keep(dep)
        state.keep(other)
        state.forget_dataset(dataset, group)
        assert state.records.tails.tails == {} and state.sizes()["event_tails"] == 0
        assert dep._expired == 1 and dep._view_time == 0.0  # rebuilt at its next request
        assert other._expired == 0 and other._view_time > 0
    finally:
        store.close()


def test_a_finished_deletion_job_drops_the_cached_events_of_its_group(tmp_path):
    """A data deletion job run by this process's runner removes users' events; the runner tells
    the state (``job_finished``), so no request reads the deleted events from a cache afterwards.
    Other kinds of job leave the caches alone."""
    from openpersonalize.config import Settings
    from openpersonalize.state import ProcessState
    from openpersonalize.store.metadata import Store
    from openpersonalize.store.records import PutRecord, Records

    group = "arn:aws:personalize:us-east-1:000000000000:dataset-group/g"
    dataset = "arn:aws:personalize:us-east-1:000000000000:dataset/g/INTERACTIONS"
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        store.insert(arn=dataset, kind="dataset", name="INTERACTIONS", doc={"datasetArn": dataset},
                     group_arn=group)
        state = ProcessState(Settings(data_dir=str(tmp_path)), store)
        state.records.append(dataset, [PutRecord(row={"ITEM_ID": "a"}, entity_id="u1", user_id="u1", event_id="e1")])
        assert [r["ITEM_ID"] for r in state.records.recent(dataset, 0, "u1", 10, max_age=600)] == ["a"]
        Records(store).delete_users(dataset, ["u1"])  # the job's own accessor, not the state's
        state.job_finished("dataset-import-job", group)
        assert [r["ITEM_ID"] for r in state.records.recent(dataset, 0, "u1", 10, max_age=600)] == ["a"]  # cached
        state.job_finished("data-deletion-job", group)
        assert state.records.recent(dataset, 0, "u1", 10, max_age=600) == []
    finally:
        store.close()
