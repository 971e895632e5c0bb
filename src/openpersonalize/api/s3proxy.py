"""S3 requests on the Personalize endpoint, as LocalStack users expect (``aws s3 cp ...
--endpoint-url http://127.0.0.1:8080``): with ``serve --s3`` they are passed through, streamed
both ways and untouched (the Host header included, so signatures still verify), to the SeaweedFS
server it manages (s3local.py); without it they get an S3-style error saying how to turn it on.

A request is S3's when its signature is scoped to the ``s3`` service (header or presigned URL),
or, with ``serve --s3``, when it is unsigned and addressed to none of the Personalize paths
(without it, such a request is an unknown path: 404).
"""

from __future__ import annotations

from urllib.parse import unquote

from .streams import ClientGone, body_chunks

HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer",
              b"transfer-encoding", b"upgrade"}


def is_s3_request(scope, own_paths: frozenset[str], proxying: bool) -> bool:
    authorization = target = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value
        elif name == b"x-amz-target":
            target = value
    if target is not None:
        return False
    if authorization is not None:
        return b"/s3/aws4_request" in authorization
    query = scope.get("query_string", b"")
    if b"X-Amz-Credential=" in query:
        return "/s3/aws4_request" in unquote(query.decode("latin-1"))
    if not proxying:
        return False
    path = scope["path"]
    return path != "/" and path not in own_paths and not path.startswith(("/openpersonalize/", "/console"))


def _error(code: str, message: str, status: int) -> tuple[int, list, bytes]:
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
            "</Error>").encode()
    return status, [(b"content-type", b"application/xml"), (b"content-length", str(len(body)).encode())], body


NOT_ENABLED = _error("NotImplemented", "This endpoint serves Amazon Personalize's APIs. Start it with "
                     "`openpersonalize serve --s3` to serve S3 on it too (a local SeaweedFS), or point S3 clients "
                     "at your S3 store.", 501)


class S3Proxy:
    """Pass requests through to ``upstream`` (an S3 endpoint URL)."""

    def __init__(self, upstream: str):
        import httpx

        self.upstream = upstream.rstrip("/")
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(300.0, connect=10.0), follow_redirects=False)

    async def __call__(self, scope, receive, send) -> int:
        """Answer the request; its status."""
        import httpx

        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in HOP_BY_HOP]
        raw = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        url = self.upstream + raw.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
        has_body = any((k == b"content-length" and v != b"0") or k == b"transfer-encoding" for k, v in scope["headers"])
        request = self.client.build_request(scope["method"], url, headers=headers,
                                            content=body_chunks(receive) if has_body else None)
        try:
            response = await self.client.send(request, stream=True)
        except ClientGone:  # nobody to answer; the upstream saw a short body and drops it
            return 499
        except httpx.HTTPError as exc:
            status, out, payload = _error("ServiceUnavailable", f"The local S3 server does not answer: {exc}", 503)
            await send({"type": "http.response.start", "status": status, "headers": out})
            await send({"type": "http.response.body", "body": payload})
            return status
        try:
            out = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.multi_items()
                   if k.lower().encode() not in HOP_BY_HOP]
            await send({"type": "http.response.start", "status": response.status_code, "headers": out})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()
        return response.status_code

    async def close(self) -> None:
        await self.client.aclose()
