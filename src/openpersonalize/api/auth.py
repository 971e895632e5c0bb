"""AWS Signature Version 4 verification, using botocore's own signer to recompute signatures.

With no access keys configured (the embedded default) every request is accepted and only the
region is read from the credential scope. With keys configured, each request must carry a valid
``AWS4-HMAC-SHA256`` Authorization header signed with one of them, within the allowed clock skew.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from ..errors import (
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)

SIGNING_NAME = "personalize"  # all three clients sign as "personalize"
_AUTH_RX = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),"
    r"\s*Signature=(?P<sig>[0-9a-f]+)"
)


def scope_region(authorization: str | None) -> str | None:
    """The region of the credential scope, if the request is signed."""
    if not authorization:
        return None
    m = _AUTH_RX.match(authorization)
    if not m:
        return None
    parts = m.group("cred").split("/")
    return parts[2] if len(parts) == 5 else None


def verify(
    *,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    keys: dict[str, str],
    max_skew_seconds: int,
    now: dt.datetime | None = None,
) -> None:
    """Raise the AWS authentication error for a request that is not properly signed."""
    authorization = headers.get("authorization")
    if not authorization:
        raise MissingAuthenticationTokenException("Missing Authentication Token")
    m = _AUTH_RX.match(authorization)
    if not m:
        raise InvalidSignatureException(
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' "
            "parameters of an AWS4-HMAC-SHA256 signature.")
    cred = m.group("cred").split("/")
    if len(cred) != 5 or cred[4] != "aws4_request":
        raise InvalidSignatureException(f"Credential should be scoped to a valid region: '{m.group('cred')}'.")
    access_key, date, region, service = cred[0], cred[1], cred[2], cred[3]
    secret = keys.get(access_key)
    if secret is None:
        raise UnrecognizedClientException("The security token included in the request is invalid.")
    if service != SIGNING_NAME:
        raise InvalidSignatureException(
            f"Credential should be scoped to correct service: '{SIGNING_NAME}', not '{service}'.")
    amz_date = headers.get("x-amz-date", "")
    try:
        signed_at = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise InvalidSignatureException(
            f"The X-Amz-Date header '{amz_date}' is missing or not in the format YYYYMMDD'T'HHMMSS'Z'.")
    now = now or dt.datetime.now(dt.timezone.utc)
    skew = dt.timedelta(seconds=max_skew_seconds)
    if signed_at < now - skew:
        raise InvalidSignatureException(
            f"Signature expired: {amz_date} is now earlier than "
            f"{(now - skew).strftime('%Y%m%dT%H%M%SZ')} ({now.strftime('%Y%m%dT%H%M%SZ')} - "
            f"{max_skew_seconds // 60} min.)")
    if signed_at > now + skew:
        raise InvalidSignatureException(
            f"Signature not yet current: {amz_date} is still later than "
            f"{(now + skew).strftime('%Y%m%dT%H%M%SZ')} ({now.strftime('%Y%m%dT%H%M%SZ')} + "
            f"{max_skew_seconds // 60} min.)")
    if date != amz_date[:8]:
        raise InvalidSignatureException("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP.")

    signed = m.group("signed").split(";")
    request = AWSRequest(method=method, url=url, data=body,
                         headers={name: headers.get(name, "") for name in signed})
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(access_key, secret), service, region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, m.group("sig")):
        raise InvalidSignatureException(
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.")
