"""Signature V4's rules about what must be signed, and what answers without a signature, when
access keys are configured."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import http.client
import json
import uuid

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from openpersonalize.config import Settings
from tests.servers import running_server

KEY, SECRET = "AKIDSIGNING", "signing/secret+1"
TOKEN = "scrape-" + uuid.uuid4().hex
TARGET = "AmazonPersonalize."
HAS_METRICS_TOKEN = "metrics_token" in {f.name for f in dataclasses.fields(Settings)}


@pytest.fixture(scope="module")
def signed_server(tmp_path_factory):
    yield from running_server(tmp_path_factory.mktemp("signing"), env={
        "OPENPERSONALIZE_ACCESS_KEYS": f"{KEY}:{SECRET}", "OPENPERSONALIZE_METRICS_TOKEN": TOKEN})


def client(server, service="personalize"):
    return boto3.client(service, endpoint_url=server.endpoint, region_name="us-east-1", aws_access_key_id=KEY,
                        aws_secret_access_key=SECRET, config=Config(retries={"max_attempts": 1}))


class _OnlyThese(SigV4Auth):
    """botocore's signer, made to sign exactly the headers given (it otherwise signs them all)."""

    def __init__(self, names, *args):
        super().__init__(*args)
        self.names = names

    def headers_to_sign(self, request):
        signed = super().headers_to_sign(request)
        for name in list(signed.keys()):
            if name not in self.names:
                del signed[name]
        return signed


def signed(server, *, method="POST", path="/", body=b"{}", headers=None, sign=None, after=None, secret=SECRET):
    """A request signed over the headers named in ``sign`` (default: all of them, as boto3 does),
    with ``after`` added once signed. Returns (status, headers, body)."""
    now = dt.datetime.now(dt.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    request = AWSRequest(method=method, url=f"{server.endpoint}{path}", data=body,
                         headers={"Host": f"127.0.0.1:{server.port}", "X-Amz-Date": amz_date, **(headers or {})})
    request.context["timestamp"] = amz_date
    names = {n.lower() for n in (sign if sign is not None else request.headers.keys())}
    signer = _OnlyThese(names, Credentials(KEY, secret), "personalize", "us-east-1")
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    scope = f"{KEY}/{now:%Y%m%d}/us-east-1/personalize/aws4_request"
    authorization = (f"AWS4-HMAC-SHA256 Credential={scope}, "
                     f"SignedHeaders={signer.signed_headers(signer.headers_to_sign(request))}, Signature={signature}")
    return send(server, method, path, body, {**dict(request.headers.items()), **(after or {}),
                                             "Authorization": authorization})


def send(server, method, path, body=b"", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if body or method == "POST":
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def create_group_body(name: str) -> bytes:
    return json.dumps({"name": name}).encode()


def control_headers(operation: str) -> dict:
    return {"X-Amz-Target": TARGET + operation, "Content-Type": "application/x-amz-json-1.1"}


def exists(server, name: str) -> bool:
    groups = client(server).list_dataset_groups(maxResults=100)["datasetGroups"]
    return any(g["name"] == name for g in groups)


# --- what must be signed -------------------------------------------------------------------------


def test_a_request_signed_as_boto3_signs_passes(signed_server):
    name = "signed-" + uuid.uuid4().hex[:8]
    status, _, raw = signed(signed_server, body=create_group_body(name), headers=control_headers("CreateDatasetGroup"))
    assert status == 200, raw
    assert exists(signed_server, name)


def test_host_must_be_signed(signed_server):
    """The request of the report: signed over x-amz-date only, host and X-Amz-Target unsigned."""
    name = "nohost-" + uuid.uuid4().hex[:8]
    status, headers, raw = signed(signed_server, body=create_group_body(name),
                                  headers=control_headers("CreateDatasetGroup"), sign=["x-amz-date"])
    payload = json.loads(raw)
    assert status == 403 and payload["__type"] == "InvalidSignatureException" == headers["x-amzn-errortype"]
    assert payload["message"] == "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
    assert not exists(signed_server, name)


def test_every_x_amz_header_must_be_signed(signed_server):
    name = "notarget-" + uuid.uuid4().hex[:8]
    status, _, raw = signed(signed_server, body=create_group_body(name), headers=control_headers("CreateDatasetGroup"),
                            sign=["host", "x-amz-date", "content-type"])
    payload = json.loads(raw)
    assert status == 403 and payload["__type"] == "InvalidSignatureException"
    assert "x-amz-target" in payload["message"] and "not signed" in payload["message"]
    assert not exists(signed_server, name)
    # A header added to a request signed whole, as a proxy or an attacker would.
    status, _, raw = signed(signed_server, body=b"{}", headers=control_headers("ListRecipes"),
                            after={"X-Amz-Security-Token": "forged"})
    payload = json.loads(raw)
    assert status == 403 and "x-amz-security-token" in payload["message"]


def test_x_amz_date_must_be_signed(signed_server):
    status, _, raw = signed(signed_server, body=b"{}", headers=control_headers("ListRecipes"),
                            sign=["host", "x-amz-target"])
    payload = json.loads(raw)
    assert status == 403 and "x-amz-date" in payload["message"]


def test_headers_the_sdks_leave_unsigned_are_fine(signed_server):
    """botocore leaves the trace id and the user agent unsigned; those never change what is run."""
    status, _, raw = signed(signed_server, body=b"{}", headers=control_headers("ListRecipes"),
                            after={"X-Amzn-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793",
                                   "User-Agent": "curl/8", "amz-sdk-invocation-id": "x"})
    assert status == 200, raw


def test_payload_hash_header_must_match_the_body(signed_server):
    body = create_group_body("hash-" + uuid.uuid4().hex[:8])
    other = hashlib.sha256(b"{}").hexdigest()
    for claimed in (other, "UNSIGNED-PAYLOAD"):
        status, _, raw = signed(signed_server, body=body, headers={**control_headers("CreateDatasetGroup"),
                                                                   "X-Amz-Content-SHA256": claimed})
        payload = json.loads(raw)
        assert status == 403 and payload["__type"] == "InvalidSignatureException"
        assert "x-amz-content-sha256" in payload["message"].lower()
    status, _, raw = signed(signed_server, body=body, headers={**control_headers("CreateDatasetGroup"),
                                                               "X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()})
    assert status == 200, raw


def test_malformed_authorization_is_an_incomplete_signature(signed_server):
    status, headers, raw = send(signed_server, "POST", "/", b"{}", {
        **control_headers("ListRecipes"), "Host": "x", "Authorization": "AWS4-HMAC-SHA256 Credential=abc"})
    payload = json.loads(raw)
    assert status == 400 and payload["__type"] == "IncompleteSignatureException"
    assert "SignedHeaders" in payload["message"] and "Signature" in payload["message"]


def test_all_three_clients_still_work(signed_server):
    personalize = client(signed_server)
    assert personalize.list_recipes(maxResults=1)["recipes"]
    for service, call, kwargs in (
            ("personalize-runtime", "get_recommendations", {"campaignArn": "arn:aws:personalize:us-east-1:0:campaign/x",
                                                            "userId": "u"}),
            ("personalize-events", "put_users", {"datasetArn": "arn:aws:personalize:us-east-1:0:dataset/x",
                                                 "users": [{"userId": "u"}]})):
        with pytest.raises(ClientError) as e:
            getattr(client(signed_server, service), call)(**kwargs)
        assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"


# --- what answers without a signature ------------------------------------------------------------


def test_liveness_is_all_that_answers_unsigned(signed_server):
    status, _, raw = send(signed_server, "GET", "/", headers={"Host": "x"})
    assert status == 200 and json.loads(raw) == {"service": "openpersonalize"}
    for method, path in (("GET", "/metrics"), ("PUT", "/"), ("GET", "/recommendations"), ("GET", "/nowhere"),
                         ("POST", "/nowhere"), ("DELETE", "/metrics")):
        status, headers, raw = send(signed_server, method, path, headers={"Host": "x"})
        assert status == 403, (method, path, status)
        assert json.loads(raw)["__type"] == "MissingAuthenticationTokenException" == headers["x-amzn-errortype"]


def test_metrics_need_a_signature(signed_server):
    status, headers, raw = send(signed_server, "GET", "/metrics", headers={"Host": "x"})
    assert status == 403 and b"openpersonalize_jobs" not in raw
    status, headers, raw = signed(signed_server, method="GET", path="/metrics", body=b"")
    assert status == 200 and b"openpersonalize_jobs" in raw and headers["content-type"].startswith("text/plain")
    status, _, raw = signed(signed_server, method="GET", path="/metrics", body=b"", secret="wrong")
    assert status == 403 and json.loads(raw)["__type"] == "InvalidSignatureException"


@pytest.mark.skipif(not HAS_METRICS_TOKEN, reason="the metrics_token setting is not in config.py yet")
def test_metrics_accept_the_configured_bearer_token(signed_server):
    status, _, raw = send(signed_server, "GET", "/metrics", headers={"Host": "x", "Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and b"openpersonalize_jobs" in raw
    for wrong in (f"Bearer {TOKEN}x", "Bearer ", f"bearer{TOKEN}"):
        status, _, raw = send(signed_server, "GET", "/metrics", headers={"Host": "x", "Authorization": wrong})
        assert status in (400, 403) and b"openpersonalize_jobs" not in raw
    # The token opens the metrics only, not the API.
    status, _, raw = send(signed_server, "POST", "/", b"{}", {**control_headers("ListRecipes"), "Host": "x",
                                                              "Authorization": f"Bearer {TOKEN}"})
    assert status in (400, 403) and b"recipes" not in raw


def test_the_cli_signs_object_paths_that_need_encoding(signed_server, tmp_path):
    """cp with access keys: a key with a space and a percent sign is signed over the path as sent
    and stored under its own name (not decoded twice)."""
    import os
    import subprocess
    import sys

    (tmp_path / "a b%25.csv").write_text("x\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENPERSONALIZE_", "AWS_"))}
    env.update(AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET, HOME=str(tmp_path))
    for args in (["cp", "a b%25.csv", "s3://signed/in/"], ["cp", "s3://signed/in/a b%25.csv", "back/"]):
        out = subprocess.run([sys.executable, "-m", "openpersonalize.cli", *args, "--endpoint-url",
                              signed_server.endpoint], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
    assert (signed_server.data_dir / "s3" / "signed" / "in" / "a b%25.csv").read_text() == "x\n"
    assert (tmp_path / "back" / "a b%25.csv").read_text() == "x\n"
    env["AWS_SECRET_ACCESS_KEY"] = "wrong"
    out = subprocess.run([sys.executable, "-m", "openpersonalize.cli", "cp", "a b%25.csv", "s3://signed/in/",
                          "--endpoint-url", signed_server.endpoint], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1 and "InvalidSignatureException" in out.stderr
