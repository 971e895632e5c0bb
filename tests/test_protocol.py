"""The wire: malformed requests get clear 4xx errors, never a 500 or a hang; every operation of the
three models answers with something other than 404/500."""

import json
import urllib.error
import urllib.request

import pytest
from botocore import xform_name

from openpersonalize.api import protocol

TARGET = "AmazonPersonalize."


def post(server, path="/", body=b"{}", headers=None):
    req = urllib.request.Request(server.endpoint + path, data=body, method="POST",
                                 headers={"Content-Type": "application/x-amz-json-1.1", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


@pytest.mark.parametrize("path, body, headers, status, code, fragment", [
    ("/", b"{not json", {"X-Amz-Target": TARGET + "ListDatasetGroups"}, 400, "SerializationException", "not valid JSON"),
    ("/", b"[1, 2]", {"X-Amz-Target": TARGET + "ListDatasetGroups"}, 400, "InvalidInputException", "JSON object"),
    ("/", b"{}", {"X-Amz-Target": TARGET + "MakeCoffee"}, 404, "UnknownOperationException", "MakeCoffee"),
    ("/", b"{}", {"X-Amz-Target": "Other.ListDatasetGroups"}, 404, "UnknownOperationException", "Other.ListDatasetGroups"),
    ("/", b"{}", {}, 404, "UnknownOperationException", "Missing X-Amz-Target"),
    ("/nowhere", b"{}", {}, 404, "UnknownOperationException", "/nowhere"),
    ("/", b"{}", {"X-Amz-Target": TARGET + "DescribeDatasetGroup"}, 400, "InvalidInputException",
     "Value null at 'datasetGroupArn'"),
    ("/", json.dumps({"maxResults": "ten"}).encode(), {"X-Amz-Target": TARGET + "ListDatasetGroups"}, 400,
     "InvalidInputException", "Member must be an integer"),
    ("/recommendations", b"{\"userId\": 5}", {}, 400, "InvalidInputException", "Member must be a string"),
])
def test_malformed_requests(server, path, body, headers, status, code, fragment):
    got, hdrs, raw = post(server, path, body, headers)
    payload = json.loads(raw)
    assert got == status and payload["__type"] == code and fragment in payload["message"]
    assert hdrs.get("x-amzn-requestid") and hdrs.get("x-amzn-errortype") == code


def test_huge_body_is_refused(server):
    body = b'{"name": "' + b"x" * (9 * 1024 * 1024) + b'"}'
    status, _, raw = post(server, "/", body, {"X-Amz-Target": TARGET + "CreateDatasetGroup"})
    assert status == 413 and json.loads(raw)["__type"] == "RequestEntityTooLargeException"


def test_every_operation_answers(server, personalize, runtime, events):
    """No operation of the 79 answers 404 or 500: each either works or names what is wrong."""
    clients = {"personalize": personalize, "personalize-runtime": runtime, "personalize-events": events}
    ops = protocol.all_operations()
    assert len(ops) == 79
    for op in ops:
        status, _, raw = post(server, op.model.http["requestUri"] if op.service != "personalize" else "/", b"{}",
                              {"X-Amz-Target": TARGET + op.name} if op.service == "personalize" else {})
        assert status not in (404, 500), (op.name, status, raw)
        if status >= 400:
            payload = json.loads(raw)
            assert payload["__type"] and payload["message"], op.name
            if payload["__type"] == "NotImplementedException":
                assert op.name in payload["message"]
        assert hasattr(clients[op.service], xform_name(op.name))


def test_rest_json_errors_map_to_modeled_exceptions(events):
    with pytest.raises(events.exceptions.InvalidInputException):
        events.put_events(trackingId="t", sessionId="s", eventList=[
            {"eventType": "click", "sentAt": 1700000000, "itemId": "x" * 300}])


def test_chunked_bodies_and_clients_that_hang_up(server):
    """A body sent in chunks is read whole; a client that leaves in the middle of its body costs
    the server nothing, and the next request is answered."""
    import http.client
    import socket

    logged = server.log_path.stat().st_size
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    chunks = iter([b'{"maxResults":', b" 3}"])
    conn.request("POST", "/", body=chunks, encode_chunked=True,
                 headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET + "ListRecipes"})
    r = conn.getresponse()
    assert r.status == 200 and len(json.loads(r.read())["recipes"]) == 3
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(b"POST /recommendations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n{\"userId\":")
    status, _, raw = post(server, "/", b"{}", {"X-Amz-Target": TARGET + "ListRecipes"})
    assert status == 200 and json.loads(raw)["recipes"]
    assert b"Traceback" not in server.log_path.read_bytes()[logged:]


def test_other_methods_and_paths(server):
    req = urllib.request.Request(server.endpoint + "/", method="GET")
    with urllib.request.urlopen(req, timeout=30) as r:
        assert json.loads(r.read())["service"] == "openpersonalize"
    for method, path, allowed in (("GET", "/recommendations", {"POST"}), ("PUT", "/", {"GET", "HEAD", "POST"})):
        try:
            urllib.request.urlopen(urllib.request.Request(server.endpoint + path, method=method), timeout=30)
            raise AssertionError(f"{method} {path} answered")
        except urllib.error.HTTPError as e:
            assert e.code == 405 and set(e.headers["Allow"].split(", ")) == allowed  # any order
