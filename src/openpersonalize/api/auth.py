"""AWS Signature Version 4 verification, using botocore's own signer to recompute signatures.

With no access keys configured (the embedded default) every request is accepted and only the
region is read from the credential scope. With keys configured, each request must carry a valid
``AWS4-HMAC-SHA256`` Authorization header signed with one of them, within the allowed clock skew,
and, as AWS requires, the signature must cover ``host`` and every ``x-amz-*`` header the request
carries: an unsigned header could otherwise change what a captured signature runs (which operation
``X-Amz-Target`` names, for one).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from ..errors import (
    IncompleteSignatureException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)

SIGNING_NAME = "personalize"  # all three clients sign as "personalize"
ALGORITHM = "AWS4-HMAC-SHA256"
_PARTS = ("Credential", "Signature", "SignedHeaders")
# The region goes into every ARN the request creates, so it must look like one.
_REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")


def _parse(authorization: str | None) -> dict[str, str]:
    """The parts (``Credential``, ``SignedHeaders``, ``Signature``) of a SigV4 Authorization
    header, in any order; none when the header is not of SigV4."""
    algorithm, _, rest = (authorization or "").strip().partition(" ")
    if algorithm != ALGORITHM:
        return {}
    parts = {}
    for item in rest.split(","):
        name, sep, value = item.strip().partition("=")
        if sep and value.strip():
            parts[name] = value.strip()
    return parts


def scope_region(authorization: str | None) -> str | None:
    """The region of the credential scope, if the request is signed."""
    parts = _parse(authorization)
    if "Credential" not in parts:
        return None
    cred = parts["Credential"].split("/")
    return cred[2] if len(cred) == 5 and _REGION.fullmatch(cred[2]) else None


def verify(
    *,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    keys: dict[str, str],
    max_skew_seconds: int,
    now: dt.datetime | None = None,
    unsigned_payload: bool = False,
) -> None:
    """Raise the AWS authentication error for a request that is not properly signed.
    ``unsigned_payload``: the body is streamed, and may be signed as ``UNSIGNED-PAYLOAD`` (S3's
    rule for uploads; the signature then binds the headers only)."""
    authorization = headers.get("authorization")
    if not authorization:
        raise MissingAuthenticationTokenException("Missing Authentication Token")
    parts = _parse(authorization)
    missing = [f"Authorization header requires '{name}' parameter." for name in _PARTS if name not in parts]
    if "x-amz-date" not in headers and "date" not in headers:
        missing.append("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    if missing:
        raise IncompleteSignatureException(f"{' '.join(missing)} Authorization={_show(authorization)}")
    cred = parts["Credential"].split("/")
    if len(cred) != 5 or cred[4] != "aws4_request":
        raise InvalidSignatureException(f"Credential should be scoped to a valid region: '{parts['Credential']}'.")
    signed = [name.lower() for name in parts["SignedHeaders"].split(";")]
    _check_signed_headers(signed, headers, body, unsigned_payload)
    access_key, date, region, service = cred[0], cred[1], cred[2], cred[3]
    if not _REGION.fullmatch(region):
        raise InvalidSignatureException(f"Credential should be scoped to a valid region, not '{_show(region)}'.")
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

    try:
        request = AWSRequest(method=method, url=url, data=body,
                             headers={name: headers.get(name, "") for name in signed})
        request.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(access_key, secret), service, region)
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request).encode()
    except (ValueError, TypeError, UnicodeError):
        expected = b""  # a request botocore cannot even canonicalise matches no signature
    if not expected or not hmac.compare_digest(expected, parts["Signature"].encode("utf-8", "replace")):
        raise InvalidSignatureException(
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.")


def _check_signed_headers(signed: list[str], headers: dict[str, str], body: bytes, unsigned_payload: bool) -> None:
    """AWS's rules on what a signature must cover, checked before the signature itself."""
    if "host" not in signed:
        raise InvalidSignatureException("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
    unsigned = sorted(name for name in headers if name.startswith("x-amz-") and name not in signed)
    if unsigned:
        raise InvalidSignatureException(
            f"There were headers present in the request which were not signed: {', '.join(unsigned)}. "
            "Signature Version 4 must cover host and every x-amz-* header of the request.")
    claimed = headers.get("x-amz-content-sha256")
    if unsigned_payload and claimed == "UNSIGNED-PAYLOAD":
        return
    # botocore, like AWS, signs the value of this header in place of the body's hash: the signature
    # then binds the body only if the value is the body's hash.
    if claimed is not None and claimed.lower() != hashlib.sha256(body).hexdigest():
        raise InvalidSignatureException(
            f"The x-amz-content-sha256 header '{_show(claimed)}' is not the SHA-256 of the request body; "
            "this service needs the body signed.")


def _show(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
