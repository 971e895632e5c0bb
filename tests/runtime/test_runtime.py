"""Runtime calls through boto3 against campaigns on models trained from generated data."""

import contextlib
import json
import time

import numpy as np
import pytest

from tests.batch.conftest import wait
from tests.conftest import make_client

NEEDS = ("aws-user-personalization", "aws-similar-items", "aws-personalized-ranking",
         "aws-user-personalization-v2")


@pytest.fixture(scope="module")
def clients(server):
    return make_client("personalize-runtime", server.endpoint), make_client("personalize-events", server.endpoint)


@pytest.fixture(scope="module")
def campaigns(lab):
    out = {}
    for recipe in NEEDS:
        config = {"enableMetadataWithRecommendations": True}
        if recipe == "aws-user-personalization":
            config["itemExplorationConfig"] = {"explorationWeight": "0.0"}
        out[recipe] = lab.c.create_campaign(name=lab.name("c"), solutionVersionArn=lab.versions[recipe],
                                            campaignConfig=config)["campaignArn"]
    return out


def genres(lab, item):
    return set(lab.cat.genre_of(item))


@contextlib.contextmanager
def second_process(server, **settings):
    """A Service on the server's store and data folder, as another server process would see
    them, and a request context for it."""
    from openpersonalize.api.app import Service
    from openpersonalize.config import Settings
    from openpersonalize.control.base import Context

    config = Settings(data_dir=str(server.data_dir), store_url=server.store_url, workers=0, **settings)
    service = Service(config, run_jobs=False)
    try:
        yield service, Context(settings=config, store=service.store, region=config.region, request_id="r")
    finally:
        service.store.close()


def test_recommendations_shape_and_quality(lab, clients, campaigns):
    rt, _ = clients
    user = str(lab.cat.user_ids[7])
    out = rt.get_recommendations(campaignArn=campaigns["aws-user-personalization"], userId=user, numResults=12,
                                 metadataColumns={"ITEMS": ["GENRES", "PRICE"]})
    items = out["itemList"]
    assert len(items) == 12 and out["recommendationId"].startswith("RID-") and len(out["recommendationId"]) <= 40
    assert all("score" in i and "reason" not in i for i in items)
    assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)
    assert all(i["metadata"]["GENRES"] == "|".join(lab.cat.genre_of(i["itemId"])) for i in items)
    liked = set(lab.cat.user_genres[7])
    assert np.mean([bool(genres(lab, i["itemId"]) & liked) for i in items]) > 0.7
    v2 = rt.get_recommendations(campaignArn=campaigns["aws-user-personalization-v2"], userId=user)["itemList"]
    assert len(v2) == 25 and all(i["reason"] == [] for i in v2)


def test_events_change_the_next_answer(lab, personalize, clients, campaigns):
    rt, ev = clients
    tracker = personalize.create_event_tracker(name=lab.name("t"), datasetGroupArn=lab.group)["trackingId"]
    campaign = campaigns["aws-user-personalization"]
    horror = [str(i) for k, i in enumerate(lab.cat.item_ids) if lab.cat.item_genres[k][0] == "Horror"][:6]
    user = "brand-new-user"
    before = rt.get_recommendations(campaignArn=campaign, userId=user, numResults=10)["itemList"]
    ev.put_events(trackingId=tracker, userId=user, sessionId="session-1",
                  eventList=[{"eventType": "click", "itemId": i, "sentAt": time.time()} for i in horror])
    after = rt.get_recommendations(campaignArn=campaign, userId=user, numResults=10)["itemList"]
    count = lambda items: sum("Horror" in genres(lab, i["itemId"]) for i in items)  # noqa: E731
    assert count(after) > count(before) and count(after) >= 6

    seen = personalize.create_filter(name=lab.name("f"), datasetGroupArn=lab.group,
                                     filterExpression='EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")')
    wait(lambda: personalize.describe_filter(filterArn=seen["filterArn"])["filter"])
    filtered = rt.get_recommendations(campaignArn=campaign, userId=user, numResults=10,
                                      filterArn=seen["filterArn"])["itemList"]
    assert len(filtered) == 10 and not {i["itemId"] for i in filtered} & set(horror)


def test_related_items_and_ranking(lab, clients, campaigns):
    rt, _ = clients
    item = "i0030"
    related = rt.get_recommendations(campaignArn=campaigns["aws-similar-items"], itemId=item, numResults=6)["itemList"]
    assert len(related) == 6 and all("score" not in i for i in related) and item not in {i["itemId"] for i in related}
    with pytest.raises(rt.exceptions.InvalidInputException):
        rt.get_recommendations(campaignArn=campaigns["aws-similar-items"], userId="u0001")
    user = str(lab.cat.user_ids[2])
    ranked = rt.get_personalized_ranking(campaignArn=campaigns["aws-personalized-ranking"], userId=user,
                                         inputList=["i0001", "unknown", "i0002", "i0001", "i0003"])
    ids = [i["itemId"] for i in ranked["personalizedRanking"]]
    assert sorted(ids) == ["i0001", "i0002", "i0003", "unknown"] and ids[-1] == "unknown"
    assert "score" not in ranked["personalizedRanking"][-1]
    assert abs(sum(i["score"] for i in ranked["personalizedRanking"][:-1]) - 1.0) < 1e-3
    with pytest.raises(rt.exceptions.InvalidInputException):
        rt.get_recommendations(campaignArn=campaigns["aws-personalized-ranking"], userId=user)


def test_promotions(lab, personalize, clients, campaigns):
    rt, _ = clients
    comedy = personalize.create_filter(name=lab.name("f"), datasetGroupArn=lab.group,
                                       filterExpression="INCLUDE ItemID WHERE Items.GENRES IN ($G)")["filterArn"]
    wait(lambda: personalize.describe_filter(filterArn=comedy)["filter"])
    out = rt.get_recommendations(campaignArn=campaigns["aws-user-personalization-v2"], userId="u0004", numResults=10,
                                 promotions=[{"name": "laughs", "percentPromotedItems": 30, "filterArn": comedy,
                                              "filterValues": {"G": '"Comedy"'}}])["itemList"]
    promoted = [i for i in out if i.get("promotionName") == "laughs"]
    assert len(out) == 10 and len(promoted) == 3
    assert all("Comedy" in genres(lab, i["itemId"]) and i["reason"] == ["Promoted item"] for i in promoted)
    assert len({i["itemId"] for i in out}) == 10
    # Descending score order, promotions included: each score is the item's share of the list
    # under the 30 % / 70 % mixture of the promoted and the plain ranking.
    scores = [i["score"] for i in out]
    assert scores == sorted(scores, reverse=True), scores
    assert abs(sum(i["score"] for i in promoted) - 0.3) < 1e-4 and abs(sum(scores) - 1.0) < 1e-4


def test_default_exploration_keeps_the_list_in_score_order(lab, clients):
    """A campaign with the default exploration (weight 0.3): the list is in descending score order,
    the scores are probabilities of the exploring policy (summing to at most 1), and fresh items
    take their share of the list."""
    rt, _ = clients
    arn = lab.c.create_campaign(name=lab.name("c"), solutionVersionArn=lab.versions["aws-user-personalization"])[
        "campaignArn"]
    try:
        wait(lambda: lab.c.describe_campaign(campaignArn=arn)["campaign"])
        for user in ("u0001", "u0002", "u0003"):
            out = rt.get_recommendations(campaignArn=arn, userId=user, numResults=20)["itemList"]
            scores = [i["score"] for i in out]
            assert len(out) == 20 and scores == sorted(scores, reverse=True), scores
            assert 0 < sum(scores) <= 1.0 + 1e-6
    finally:
        lab.c.delete_campaign(campaignArn=arn)


def test_runtime_errors(lab, personalize, clients, campaigns):
    rt, _ = clients
    missing = campaigns["aws-user-personalization"] + "-nope"
    with pytest.raises(rt.exceptions.ResourceNotFoundException):
        rt.get_recommendations(campaignArn=missing, userId="u1")
    with pytest.raises(rt.exceptions.InvalidInputException):
        rt.get_recommendations(userId="u1")
    with pytest.raises(rt.exceptions.InvalidInputException):
        rt.get_recommendations(campaignArn=campaigns["aws-user-personalization"], numResults=10)
    with pytest.raises(rt.exceptions.InvalidInputException) as e:
        rt.get_recommendations(campaignArn=campaigns["aws-user-personalization"], userId="u1", numResults=60,
                               metadataColumns={"ITEMS": ["GENRES"]})
    assert "50" in e.value.response["Error"]["Message"]
    with pytest.raises(rt.exceptions.InvalidInputException):
        rt.get_recommendations(campaignArn=campaigns["aws-user-personalization"], userId="u1",
                               metadataColumns={"ITEMS": ["NO_SUCH_COLUMN"]})
    # context names Interactions metadata columns; these recipes do not model it, so a valid
    # context leaves the answer as it is, and an unknown key is an error that names it.
    user = str(lab.cat.user_ids[5])
    plain = rt.get_recommendations(campaignArn=campaigns["aws-user-personalization"], userId=user)["itemList"]
    with_context = rt.get_recommendations(campaignArn=campaigns["aws-user-personalization"], userId=user,
                                          context={"EVENT_VALUE": "1"})["itemList"]
    assert [i["itemId"] for i in with_context] == [i["itemId"] for i in plain]
    with pytest.raises(rt.exceptions.InvalidInputException) as e:
        rt.get_recommendations(campaignArn=campaigns["aws-user-personalization"], userId=user,
                               context={"DEVICE": "mobile phone"})
    assert "DEVICE" in e.value.response["Error"]["Message"]


def test_campaign_switch_under_load_fails_no_request(lab, personalize, server, campaigns):
    """Clients keep asking while UpdateCampaign switches the model: every request succeeds."""
    import threading

    campaign = campaigns["aws-user-personalization-v2"]
    sol = personalize.describe_solution_version(
        solutionVersionArn=lab.versions["aws-user-personalization-v2"])["solutionVersion"]["solutionArn"]
    new = personalize.create_solution_version(solutionArn=sol)["solutionVersionArn"]
    wait(lambda: personalize.describe_solution_version(solutionVersionArn=new)["solutionVersion"])
    stop, failures, answered = threading.Event(), [], []

    def hammer():
        rt = make_client("personalize-runtime", server.endpoint)
        while not stop.is_set() and len(answered) < 5000:
            try:
                answered.append(len(rt.get_recommendations(campaignArn=campaign, userId="u0001",
                                                           numResults=5)["itemList"]))
            except Exception as exc:  # noqa: BLE001 - any failure is what the test looks for
                failures.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    personalize.update_campaign(campaignArn=campaign, solutionVersionArn=new)
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join(30)
    assert not failures and answered and set(answered) == {5}
    described = personalize.describe_campaign(campaignArn=campaign)["campaign"]
    assert described["solutionVersionArn"] == new and described["latestCampaignUpdate"]["status"] == "ACTIVE"


def test_runtime_agrees_with_batch_inference(lab, clients, campaigns):
    """Same solution version, same users, no exploration: the same items in the same order, also
    for users the model has never seen (popularity, with its many ties)."""
    rt, _ = clients
    users = [str(u) for u in lab.cat.user_ids[40:60]] + ["never-seen-1", "never-seen-2"]
    uri = lab.put("agree/users.json", [{"userId": u} for u in users])
    job, out = lab.inference("aws-user-personalization", uri, numResults=10)
    assert job["status"] == "ACTIVE"
    batch = {r["input"]["userId"]: r["output"]["recommendedItems"] for r in lab.output(out + "users.json.out")}
    for user in users:
        live = rt.get_recommendations(campaignArn=campaigns["aws-user-personalization"], userId=user, numResults=10)
        assert [i["itemId"] for i in live["itemList"]] == batch[user], user


def test_runtime_agrees_with_batch_inference_under_a_filter(lab, personalize, clients, campaigns):
    """The same with a filter with per-line values (batch jobs share one mask per value set)."""
    rt, _ = clients
    flt = lab.filter("INCLUDE ItemID WHERE Items.GENRES IN ($G)")
    genres = sorted({g for item in lab.cat.item_genres for g in item})
    lines = [{"userId": u, "filterValues": {"G": f'"{genres[k % 3]}"'}}
             for k, u in enumerate([str(u) for u in lab.cat.user_ids[60:75]] + ["never-seen-3", "never-seen-4"])]
    uri = lab.put("agree/filtered.json", lines)
    job, out = lab.inference("aws-user-personalization", uri, numResults=10, filterArn=flt)
    assert job["status"] == "ACTIVE"
    batch = {r["input"]["userId"]: r["output"]["recommendedItems"] for r in lab.output(out + "filtered.json.out")}
    for line in lines:
        live = rt.get_recommendations(campaignArn=campaigns["aws-user-personalization"], userId=line["userId"],
                                      numResults=10, filterArn=flt, filterValues=line["filterValues"])
        assert [i["itemId"] for i in live["itemList"]] == batch[line["userId"]], line
        assert batch[line["userId"]]


def test_calls_answered_on_the_event_loop_only_with_all_they_need_in_memory(lab, server, campaigns):
    """``Service.answer_now`` (what the event loop calls) answers only from what the process
    holds; a call that would read the store, load a model, build filter data or score a very large
    catalogue is left to ``Service.answer`` (a worker thread). Once that has run, the loop answers
    the same call itself, with the same items."""
    from dataclasses import replace

    from openpersonalize.api import protocol
    from openpersonalize.inline import WouldBlock, inline_only

    op = protocol.rest_routes()[("POST", "/recommendations")]
    flt = lab.filter("EXCLUDE ItemID WHERE Items.PRICE > 20")
    campaign = campaigns["aws-user-personalization-v2"]
    plain = {"campaignArn": campaign, "userId": str(lab.cat.user_ids[3])}
    filtered = {**plain, "filterArn": flt}

    def items(answer):
        status, _, body = answer
        assert status == 200
        return [i["itemId"] for i in json.loads(body)["itemList"]]

    # Rows and events reused for a minute: the test controls when the store is read.
    with second_process(server, runtime_row_cache_seconds=60, runtime_events_cache_seconds=60) as (service, ctx):
        def blocked_on(params, context=ctx):
            try:
                with inline_only():
                    service.answer(op, context, params)
            except WouldBlock as exc:
                return str(exc)
            return None

        assert blocked_on(plain) == "reading the store" and service.answer_now(op, ctx, plain) is None
        service.store.get_recent(campaign, 60)
        assert blocked_on(plain).startswith("loading the model of")
        loaded = items(service.answer(op, ctx, plain))
        assert blocked_on(plain) is None and items(service.answer_now(op, ctx, plain)) == loaded
        service.store.get_recent(flt, 60)
        assert blocked_on(filtered).startswith("building the filter data of")
        by_thread = items(service.answer(op, ctx, filtered))
        assert items(service.answer_now(op, ctx, filtered)) == by_thread != loaded
        small = replace(ctx, settings=replace(ctx.settings, inline_max_items=10))
        assert blocked_on(plain, small) == f"scoring {len(lab.cat.item_ids):,} items"


def test_concurrent_first_calls_share_one_load(lab, server, campaigns, monkeypatch):
    """A burst of first calls for a campaign loads its model once and builds its filter data
    once; every call gets the answer."""
    from concurrent.futures import ThreadPoolExecutor

    from openpersonalize import serving
    from openpersonalize.api import protocol

    counts = {"model": 0, "view": 0}

    def counting(name, real):
        def wrapped(*args, **kwargs):
            counts[name] += 1
            time.sleep(0.2)  # a slow load: the other calls arrive while it runs
            return real(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(serving, "load_model", counting("model", serving.load_model))
    monkeypatch.setattr(serving, "GroupView", counting("view", serving.GroupView))
    op = protocol.rest_routes()[("POST", "/recommendations")]
    params = {"campaignArn": campaigns["aws-user-personalization"], "userId": str(lab.cat.user_ids[5]),
              "filterArn": lab.filter("EXCLUDE ItemID WHERE Items.PRICE > 30")}
    with second_process(server) as (service, ctx), ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: service.answer(op, ctx, params), range(6)))
    assert len({answer[2].split(b'"recommendationId"')[0] for answer in answers}) == 1
    assert all(answer[0] == 200 for answer in answers) and counts == {"model": 1, "view": 1}


def test_filter_data_is_rebuilt_only_when_the_group_data_changed(lab, server, campaigns):
    """The periodic rebuild of a campaign's filter data (items' metadata, histories) keeps the
    current one, and its compiled filters, when nothing arrived; a PutItems brings a new one."""
    import json as json_module

    from openpersonalize import serving

    campaign = campaigns["aws-personalized-ranking"]
    version = lab.c.describe_campaign(campaignArn=campaign)["campaign"]["solutionVersionArn"]
    with second_process(server) as (service, ctx):
        store, settings = service.store, ctx.settings
        dep = serving.deployment(store, settings, campaign, version, lambda: store.get(version))
        view = dep.view(store, settings)
        dep.compiled_expression(store, settings, "EXCLUDE ItemID WHERE Items.PRICE > 20")
        assert dep._refresh(store, settings) is view and dep._filters  # nothing arrived
        items = next(d["datasetArn"] for d in lab.c.list_datasets(datasetGroupArn=lab.group)["datasets"]
                     if d["datasetType"] == "ITEMS")
        make_client("personalize-events", server.endpoint).put_items(datasetArn=items, items=[{
            "itemId": "rebuilt-1", "properties": json_module.dumps({"title": "New", "genres": "Drama",
                                                                     "description": "new", "price": 3.0})}])
        rebuilt = dep._refresh(store, settings)
        assert rebuilt is not view and rebuilt.mark != view.mark and not dep._filters


def test_popular_placeholders_fill_a_short_filtered_list():
    """-v2's rule when a filter leaves fewer items than numResults (here: the model scored two,
    the repeat policy having excluded the rest): popular items that pass the filter follow, with
    the reason "Popular item" and no score, most popular first."""
    from types import SimpleNamespace

    from openpersonalize.runtime import _popular_placeholders

    model = SimpleNamespace(arrays={"popularity": np.array([5.0, 50.0, 40.0, 30.0, 20.0, 10.0])})
    mask = np.array([True, True, False, True, True, True])  # the filter refuses item 2
    idx, scores, reasons = _popular_placeholders(model, np.array([4, 0, -1]), np.array([0.3, 0.2, np.nan]),
                                                 None, mask, 5)
    assert idx.tolist() == [4, 0, 1, 3, 5]  # 1 and 3 are the most popular allowed, 2 is filtered out
    assert reasons == [[], [], ["Popular item"], ["Popular item"], ["Popular item"]]
    assert np.isnan(scores[2:]).all() and scores[:2].tolist() == [0.3, 0.2]
