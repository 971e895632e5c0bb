"""AWS Signature Version 4: with access keys configured, only correctly signed requests pass."""

import datetime as dt
import urllib.request

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.servers import running_server

KEY, SECRET = "AKIDOPENPERSONALIZE", "s3cr3t/with+chars"


@pytest.fixture(scope="module")
def signed_server(tmp_path_factory):
    yield from running_server(tmp_path_factory.mktemp("signed"),
                              env={"OPENPERSONALIZE_ACCESS_KEYS": f"{KEY}:{SECRET},OTHER:pw"})


def client(server, service="personalize", key=KEY, secret=SECRET):
    return boto3.client(service, endpoint_url=server.endpoint, region_name="eu-west-1", aws_access_key_id=key,
                        aws_secret_access_key=secret, config=Config(retries={"max_attempts": 1}))


def test_correct_signature_passes_and_region_comes_from_scope(signed_server):
    arn = client(signed_server).create_dataset_group(name="signed")["datasetGroupArn"]
    assert arn.startswith("arn:aws:personalize:eu-west-1:")
    with pytest.raises(ClientError) as e:  # runtime and events sign as "personalize" too
        client(signed_server, "personalize-runtime").get_recommendations(campaignArn="arn:x", userId="u")
    assert e.value.response["Error"]["Code"] not in ("InvalidSignatureException", "UnrecognizedClientException")


@pytest.mark.parametrize("key, secret, code", [
    (KEY, "wrong", "InvalidSignatureException"),
    ("UNKNOWNKEY", SECRET, "UnrecognizedClientException"),
])
def test_bad_credentials(signed_server, key, secret, code):
    with pytest.raises(ClientError) as e:
        client(signed_server, key=key, secret=secret).list_dataset_groups()
    assert e.value.response["Error"]["Code"] == code


def _raw(server, headers, body=b"{}"):
    req = urllib.request.Request(server.endpoint + "/", data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_stale_and_missing_signatures(signed_server):
    status, body = _raw(signed_server, {"X-Amz-Target": "AmazonPersonalize.ListDatasetGroups",
                                        "Content-Type": "application/x-amz-json-1.1"})
    assert status == 403 and b"MissingAuthenticationTokenException" in body
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=20)
    request = AWSRequest(method="POST", url=signed_server.endpoint + "/", data=b"{}",
                         headers={"X-Amz-Target": "AmazonPersonalize.ListDatasetGroups",
                                  "Content-Type": "application/x-amz-json-1.1"})
    signer = SigV4Auth(Credentials(KEY, SECRET), "personalize", "us-east-1")
    request.context["timestamp"] = old.strftime("%Y%m%dT%H%M%SZ")
    request.headers["X-Amz-Date"] = request.context["timestamp"]
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    scope = f"{KEY}/{old:%Y%m%d}/us-east-1/personalize/aws4_request"
    request.headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={scope}, "
                                        f"SignedHeaders={signer.signed_headers(signer.headers_to_sign(request))}, "
                                        f"Signature={signature}")
    status, body = _raw(signed_server, dict(request.headers.items()))
    assert status == 403 and b"Signature expired" in body


def test_unsigned_server_accepts_anything_and_says_so(server):
    assert "every request is accepted" in server.log()
