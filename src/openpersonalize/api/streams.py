"""Reading a request body as it arrives (uploads and S3 requests passed through), without
holding it whole."""

from __future__ import annotations

from collections.abc import AsyncIterator


class ClientGone(Exception):
    """The client disconnected before its body had all arrived."""


async def body_chunks(receive) -> AsyncIterator[bytes]:
    """The body's chunks in order; raises ClientGone when the client leaves first."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return
