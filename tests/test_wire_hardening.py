"""Hostile requests on the wire: whatever the body, method or header, the answer is a 4xx that
botocore reads as an AWS error (never a 5xx), and what the server answers satisfies the model."""

from __future__ import annotations

import http.client
import json

import pytest
from botocore.parsers import create_parser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openpersonalize.api import protocol
from tests.servers import running_server

TARGET = "AmazonPersonalize."
CONTROL = "application/x-amz-json-1.1"
TAG_PATTERN = r"^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$"
DATASET_ARN = "arn:aws:personalize:us-east-1:000000000000:dataset/dg/INTERACTIONS"


def send(server, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    """One raw request: (status, lower-cased headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def call(server, op: protocol.Operation, body: bytes):
    """``body`` sent to ``op`` the way its client would send it."""
    if op.service == protocol.CONTROL_PLANE:
        return send(server, "POST", "/", body, {"X-Amz-Target": TARGET + op.name, "Content-Type": CONTROL})
    return send(server, op.model.http["method"], op.model.http["requestUri"], body,
                {"Content-Type": "application/json"})


def botocore_error(status: int, headers: dict, raw: bytes, protocol_name: str = "json") -> dict:
    """The error as a boto3 caller sees it."""
    parsed = create_parser(protocol_name).parse(
        {"status_code": status, "headers": headers, "body": raw}, None)
    return parsed["Error"]


def control_op(name: str) -> protocol.Operation:
    return protocol.control_operation(TARGET + name)


# --- too deep, too big: unparsable bodies --------------------------------------------------------


def nested_list(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def nested_object(depth: int, leaf: bytes = b"1") -> bytes:
    return b'{"a":' * depth + leaf + b"}" * depth


@pytest.mark.parametrize("body", [nested_list(5_000), nested_object(3_000), b"[" * 100_000],
                         ids=["lists", "objects", "unclosed"])
def test_deep_nesting_is_a_serialization_error_on_every_operation(server, body):
    ops = protocol.all_operations()
    assert len(ops) == 79
    for op in ops:
        status, headers, raw = call(server, op, body)
        payload = json.loads(raw)
        assert status == 400, (op.name, status, raw[:300])
        assert payload["__type"] == "SerializationException" == headers["x-amzn-errortype"], op.name
        assert "nested" in payload["message"] and "100" in payload["message"], payload["message"]


@pytest.mark.parametrize("body", [
    b'{"maxResults": ' + nested_list(150) + b"}",   # inside a modeled member
    b'{"newerSdkMember": ' + nested_object(101) + b"}",   # inside a member the model does not know
    nested_list(999),   # just below where the parser itself gives up
], ids=["modeled-member", "unknown-member", "near-parser-limit"])
def test_nesting_beyond_the_limit_is_refused_before_anything_reads_it(server, body):
    status, headers, raw = call(server, control_op("ListRecipes"), body)
    payload = json.loads(raw)
    assert status == 400 and payload["__type"] == "SerializationException"
    assert "more than 100 levels" in payload["message"]
    assert botocore_error(status, headers, raw)["Code"] == "SerializationException"


def test_nesting_within_the_limit_is_fine(server):
    body = b'{"maxResults": 2, "newerSdkMember": ' + nested_object(90) + b"}"
    status, _, raw = call(server, control_op("ListRecipes"), body)
    assert status == 200 and len(json.loads(raw)["recipes"]) == 2


def test_numbers_too_long_to_read(server):
    status, _, raw = call(server, control_op("ListRecipes"), b'{"maxResults": ' + b"7" * 5_000 + b"}")
    payload = json.loads(raw)
    assert status == 400 and payload["__type"] == "SerializationException" and "digits" in payload["message"]
    status, _, raw = call(server, control_op("ListRecipes"), b'{"maxResults": 1e999}')
    payload = json.loads(raw)
    assert status == 400 and payload["__type"] == "InvalidInputException"
    assert "maxResults" in payload["message"] and "Member must be an integer" in payload["message"]


def test_unpaired_surrogates_are_refused_with_the_member(server):
    body = json.dumps({"name": "dg", "tags": [{"tagKey": "k", "tagValue": "ok"}]})
    body = body.replace('"ok"', '"\\ud800"').encode()
    status, _, raw = call(server, control_op("CreateDatasetGroup"), body)
    payload = json.loads(raw)
    assert status == 400 and payload["__type"] == "InvalidInputException"
    assert "tags.1.tagValue" in payload["message"]
    body = json.dumps({"userId": "u", "campaignArn": "arn:aws:personalize:us-east-1:000000000000:campaign/c"})
    status, _, raw = call(server, _rest("GetRecommendations"), body.replace('"u"', '"\\udfff"').encode())
    payload = json.loads(raw)
    assert status == 400 and payload["__type"] == "InvalidInputException" and "userId" in payload["message"]


def _rest(name: str) -> protocol.Operation:
    return next(op for op in protocol.all_operations() if op.name == name and op.service != "personalize")


def test_json_nested_inside_string_members_is_refused(server, personalize, events, unique, interactions_dataset,
                                                      group):
    # Each message names the member that holds the document, as every other input error does.
    with pytest.raises(personalize.exceptions.InvalidInputException, match="Invalid schema: .*too deeply"):
        personalize.create_schema(name=unique("s"), schema="[" * 9_000 + "]" * 9_000)
    with pytest.raises(personalize.exceptions.InvalidInputException,
                       match="Invalid filterExpression: parentheses nest deeper than 64 levels at position 85"):
        personalize.create_filter(name=unique("f"), datasetGroupArn=group,
                                  filterExpression="EXCLUDE ItemID WHERE " + "(" * 1_200 + "Items.GENRES IN (\"a\")"
                                  + ")" * 1_200)
    tracking = personalize.create_event_tracker(name=unique("tr"), datasetGroupArn=group)["trackingId"]
    with pytest.raises(events.exceptions.InvalidInputException, match=r"Invalid eventList\.1\.properties: .*too deeply"):
        events.put_events(trackingId=tracking, userId="u", sessionId="s", eventList=[
            {"eventType": "click", "itemId": "i", "sentAt": 1_700_000_000, "properties": "[" * 1_024}])


# --- methods, paths and headers ------------------------------------------------------------------


@pytest.mark.parametrize("method, path, allow, parser", [
    ("PUT", "/", {"GET", "HEAD", "POST"}, "json"),
    ("DELETE", "/", {"GET", "HEAD", "POST"}, "json"),
    ("GET", "/recommendations", {"POST"}, "rest-json"),
    ("PATCH", "/events", {"POST"}, "rest-json"),
    ("OPTIONS", "/personalize-ranking", {"POST"}, "rest-json"),
    ("POST", "/metrics", {"GET", "HEAD"}, "json"),
])
def test_a_wrong_method_gets_a_json_aws_error(server, method, path, allow, parser):
    status, headers, raw = send(server, method, path, b"{}")
    assert status == 405 and set(headers["allow"].split(", ")) == allow
    assert headers["content-type"].startswith("application/")
    payload = json.loads(raw)
    assert payload["__type"] == "UnknownOperationException" == headers["x-amzn-errortype"]
    assert method in payload["message"] and path in payload["message"]
    assert botocore_error(status, headers, raw, parser)["Code"] == "UnknownOperationException"


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_get_with_an_operation_header_is_not_the_health_check(server, method):
    status, headers, raw = send(server, method, "/", headers={"X-Amz-Target": TARGET + "ListRecipes"})
    assert status == 405 and headers["x-amzn-errortype"] == "UnknownOperationException"
    if method == "GET":
        payload = json.loads(raw)
        assert "AmazonPersonalize.ListRecipes" in payload["message"] and "POST" in payload["message"]
        assert "service" not in payload


def test_unknown_paths_still_name_what_is_served(server):
    status, headers, raw = send(server, "GET", "/nowhere")
    assert status == 404 and json.loads(raw)["__type"] == "UnknownOperationException"
    status, _, raw = send(server, "HEAD", "/")
    assert status == 200 and raw == b""


# --- modeled patterns, with their Unicode classes ------------------------------------------------


@pytest.mark.parametrize("tag, member, shown", [
    ({"tagKey": "team", "tagValue": "recs\tlive"}, "tags.1.tagValue", "recs\tlive"),
    ({"tagKey": "te\nam", "tagValue": "recs"}, "tags.1.tagKey", "te\nam"),
    ({"tagKey": "team", "tagValue": "a\u0000b"}, "tags.1.tagValue", "a\u0000b"),
])
def test_tags_outside_the_modeled_pattern_are_refused(personalize, unique, tag, member, shown):
    with pytest.raises(personalize.exceptions.InvalidInputException) as e:
        personalize.create_dataset_group(name=unique("dg"), tags=[tag])
    message = e.value.response["Error"]["Message"]
    assert f"Value '{shown}' at '{member}'" in message and TAG_PATTERN in message
    arn = personalize.create_dataset_group(name=unique("dg"))["datasetGroupArn"]
    with pytest.raises(personalize.exceptions.InvalidInputException) as e:
        personalize.tag_resource(resourceArn=arn, tags=[tag])
    assert member in e.value.response["Error"]["Message"]
    assert personalize.list_tags_for_resource(resourceArn=arn)["tags"] == []


def test_tags_in_any_script_are_accepted(personalize, unique):
    tags = [{"tagKey": "équipe", "tagValue": "推荐 système:live/v2 @team+ops=1"},
            {"tagKey": "ключ_٣", "tagValue": ""}]
    arn = personalize.create_dataset_group(name=unique("dg"), tags=tags)["datasetGroupArn"]
    assert personalize.list_tags_for_resource(resourceArn=arn)["tags"] == tags


def test_patterns_follow_java_semantics(personalize):
    """Java's ``.`` stops at line ends and its ``\\d`` is ASCII; ``\\p{ASCII}`` is enforced."""
    with pytest.raises(personalize.exceptions.InvalidInputException) as e:
        personalize.create_dataset_import_job(
            jobName="j", datasetArn=DATASET_ARN, dataSource={"dataLocation": "s3://bucket/data.csv\nmore"},
            roleArn="arn:aws:iam::٠١٢٣٤٥٦٧٨٩٠١:role/personalize")
    message = e.value.response["Error"]["Message"]
    assert message.startswith("2 validation errors detected")
    assert "at 'dataSource.dataLocation'" in message and "(s3|http|https)://.+" in message
    assert "at 'roleArn'" in message
    with pytest.raises(personalize.exceptions.InvalidInputException) as e:
        personalize.list_recipes(nextToken="pagé")
    assert "at 'nextToken'" in e.value.response["Error"]["Message"]
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.describe_dataset(datasetArn=DATASET_ARN)


# --- answers satisfy their output shapes ---------------------------------------------------------


def answer(server, name: str, params: dict) -> dict:
    status, _, raw = call(server, control_op(name), json.dumps(params).encode())
    assert status == 200, raw
    body = json.loads(raw)
    assert protocol.output_errors(control_op(name), body) == [], (name, params)
    return body


def test_describe_algorithm_satisfies_its_output_shape(server):
    recipes = answer(server, "ListRecipes", {"maxResults": 100})["recipes"]
    algorithms = set()
    for summary in recipes:
        recipe = answer(server, "DescribeRecipe", {"recipeArn": summary["recipeArn"]})["recipe"]
        algorithms.add(recipe["algorithmArn"])
    assert len(algorithms) > 10
    for arn in sorted(algorithms):
        algorithm = answer(server, "DescribeAlgorithm", {"algorithmArn": arn})["algorithm"]
        assert algorithm["algorithmArn"] == arn and algorithm["name"] == arn.rsplit("/", 1)[1]
        assert algorithm["algorithmImage"]["dockerURI"]
        assert algorithm["algorithmImage"]["name"] == algorithm["name"]


# --- a property: any body, generated from the model and then broken, gets a modeled answer -------

# Errors any operation may answer, whatever its model lists: the protocol's own (unparsable body,
# no such operation, too large, not built yet) and the validation of its input; and any error the
# service models (its client has an exception class for each).
PROTOCOL_ERRORS = {"SerializationException", "UnknownOperationException", "RequestEntityTooLargeException",
                   "NotImplementedException", "InvalidInputException"}
SEEDED_ARNS: list[str] = []  # resources the generated calls name, so that they reach the operations


def service_errors(service: str) -> set[str]:
    model = protocol.service_models()[service]
    return {name for name in model.shape_names if model.shape_for(name).metadata.get("exception")}


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    """A server of its own, running no jobs: generated calls create resources freely here."""
    from tests.conftest import INTERACTIONS_SCHEMA, make_client

    for server in running_server(tmp_path_factory.mktemp("fuzz"), env={
            "OPENPERSONALIZE_WORKERS": "0", "OPENPERSONALIZE_AUTO_TRAINING_ENABLED": "false",
            "OPENPERSONALIZE_MODEL_REFRESH_SECONDS": "0", "OPENPERSONALIZE_MAX_DATASET_GROUPS": "100000",
            "OPENPERSONALIZE_MAX_SCHEMAS": "100000", "OPENPERSONALIZE_MAX_PENDING_JOBS": "100000"}):
        personalize = make_client("personalize", server.endpoint)
        group = personalize.create_dataset_group(name="fuzz")["datasetGroupArn"]
        schema = personalize.create_schema(name="fuzz", schema=json.dumps(INTERACTIONS_SCHEMA))["schemaArn"]
        dataset = personalize.create_dataset(name="fuzz", schemaArn=schema, datasetGroupArn=group,
                                             datasetType="Interactions")["datasetArn"]
        tracker = personalize.create_event_tracker(name="fuzz", datasetGroupArn=group)["eventTrackerArn"]
        solution = personalize.create_solution(name="fuzz", datasetGroupArn=group,
                                               recipeArn="arn:aws:personalize:::recipe/aws-sims")["solutionArn"]
        SEEDED_ARNS[:] = [group, schema, dataset, tracker, solution]
        yield server


NASTY_TEXT = st.sampled_from(["", " ", "a\tb", "x\ny", "é", "日本", "\u2028", "\x00", "arn:aws:personalize:::x",
                              "s3://b/k", "A" * 300, "-", "rate(1 day)", "\ud83d\ude00"])
ACCOUNT = "000000000000"
# Values that satisfy each modeled pattern, so that generated calls get past validation and
# reach the operations.
PATTERNED = {
    "Arn": st.deferred(lambda: st.sampled_from(SEEDED_ARNS)) | st.builds(lambda kind, name: f"arn:aws:personalize:us-east-1:{ACCOUNT}:{kind}/{name}",
                     st.sampled_from(["dataset-group", "dataset", "schema", "solution", "campaign", "filter",
                                      "recommender", "event-tracker", "recipe", "algorithm"]),
                     st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True))
           | st.sampled_from(["arn:aws:personalize:::recipe/aws-user-personalization",
                              "arn:aws:personalize:::algorithm/aws-sims"]),
    "Name": st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9_-]{0,20}", fullmatch=True),
    "RoleArn": st.just(f"arn:aws:iam::{ACCOUNT}:role/personalize"),
    "KmsKeyArn": st.just(f"arn:aws:kms:us-east-1:{ACCOUNT}:key/k"),
    "S3Location": st.sampled_from(["s3://fuzz/in.json", "s3://fuzz/out/", "s3://fuzz/data.csv"]),
    "SchedulingExpression": st.sampled_from(["rate(1 day)", "rate(7 days)"]),
    "TagKey": st.text(st.characters(categories=["L", "N", "Zs"]), min_size=1, max_size=10),
    "TagValue": st.text(st.characters(categories=["L", "N", "Zs"]), max_size=10),
    "NextToken": st.text(st.characters(max_codepoint=127), max_size=10),
}


BROKEN = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False), NASTY_TEXT,
                   st.just([]), st.just({}), st.just([[[[[["deep"]]]]]]), st.just(json.loads(nested_list(99))),
                   st.text(min_size=300, max_size=3000))


def value_for(shape, depth: int = 0) -> st.SearchStrategy:
    """Valid values of ``shape`` (as far as its model says)."""
    kind = shape.type_name
    if kind == "structure":
        members = {k: value_for(m, depth + 1) for k, m in shape.members.items()
                   if depth < 6 or k in shape.required_members}
        required = {k: v for k, v in members.items() if k in shape.required_members}
        optional = {k: v for k, v in members.items() if k not in shape.required_members}
        return st.fixed_dictionaries(required, optional=optional)
    if kind == "list":
        return st.lists(value_for(shape.member, depth + 1), min_size=shape.metadata.get("min", 0), max_size=3)
    if kind == "map":
        return st.dictionaries(st.from_regex(r"[a-zA-Z_]{1,8}", fullmatch=True), value_for(shape.value, depth + 1),
                               max_size=3)
    if kind == "string":
        if shape.metadata.get("enum"):
            return st.sampled_from(shape.metadata["enum"])
        if shape.name in PATTERNED:
            return PATTERNED[shape.name]
        return st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True) | st.text(min_size=1, max_size=20)
    if kind in ("integer", "long"):
        return st.integers(shape.metadata.get("min", 0), min(shape.metadata.get("max", 600), 600))
    if kind in ("float", "double"):
        return st.floats(shape.metadata.get("min", 0), shape.metadata.get("max", 1e6))
    if kind == "boolean":
        return st.booleans()
    if kind == "timestamp":
        return st.integers(0, 2_000_000_000)
    return st.text(max_size=10)


def nodes(value, path=()):
    """Paths to every value in ``value``, itself first."""
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from nodes(item, path + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from nodes(item, path + (i,))


def mutated(data, body):
    """``body`` with one value (or the whole) replaced by a broken one, or a member added."""
    path = data.draw(st.sampled_from(list(nodes(body))), label="mutated at")
    if data.draw(st.booleans(), label="add rather than replace") and isinstance(body, dict):
        body[data.draw(st.text(max_size=8), label="new member")] = data.draw(BROKEN, label="its value")
        return body
    new = data.draw(BROKEN | st.floats(-1e300, 1e300) | st.text(max_size=40), label="broken value")
    if not path:
        return new
    parent = body
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = new
    return body


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_generated_bodies_get_modeled_answers(fuzz_server, data):
    op = data.draw(st.sampled_from(protocol.all_operations()), label="operation")
    shape = op.model.input_shape
    body = data.draw(value_for(shape) if shape is not None else st.just({}), label="body")
    if data.draw(st.booleans(), label="mutate"):
        body = mutated(data, body)
    status, headers, raw = call(fuzz_server, op, json.dumps(body).encode())
    assert status < 500, (op.name, body, status, raw[:500])
    if status >= 400:
        payload = json.loads(raw)
        modeled = {e.name for e in op.model.error_shapes} | PROTOCOL_ERRORS | service_errors(op.service)
        assert payload["__type"] in modeled, (op.name, body, payload)
        assert payload["message"]
    elif op.service != "personalize-events":
        assert protocol.output_errors(op, json.loads(raw)) == [], (op.name, body, raw[:500])
