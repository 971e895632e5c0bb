"""HTTP connections that cannot hold the server hostage: header, body and keep-alive timeouts and
a connection cap.

uvicorn closes an idle keep-alive connection after a response, but not a connection that never
sends a request, nor one that sends its headers or body a byte at a time: two thousand of those
would hold every file descriptor, and every client after them would be refused. The protocol
here adds, per connection:

* a **header deadline** (``header_timeout_seconds``), armed when the connection opens and after
  each response, cleared only when a request's headers are complete: trickling bytes does not
  extend it;
* a **body deadline** (``body_timeout_seconds``) from the headers to the end of the body;
* a **cap** (``max_connections``): at the cap a new connection first closes the one that has
  waited longest for a request (an idle or slow client, not a request in progress), so a client
  that sends its request at once is served however many idle connections an attacker holds;
  with none to close, the new connection is refused. Both are logged, at most once a second.
"""

from __future__ import annotations

import logging
import resource
import time
from asyncio import TimerHandle, Transport

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..config import Settings

log = logging.getLogger("openpersonalize.connections")

RESERVED_FILES = 256  # descriptors kept for the store, data files and job pipes beside the connections


class ConnectionGuard:
    """The limits, and the connections waiting for a request (oldest first), of one server."""

    def __init__(self, settings: Settings):
        self.max_connections = settings.max_connections
        self.header_timeout = settings.header_timeout_seconds
        self.body_timeout = settings.body_timeout_seconds
        self.waiting: dict[GuardedProtocol, None] = {}  # insertion order: the longest waiting first
        self.evicted = self.refused = 0
        self._logged = 0.0

    def make_room(self, newcomer: GuardedProtocol, open_connections: int) -> bool:
        """Whether ``newcomer`` may stay: under the cap, or once a waiting connection is closed."""
        if open_connections <= self.max_connections:
            return True
        for victim in self.waiting:
            if victim is not newcomer:
                victim.drop()
                self.evicted += 1
                self._report()
                return True
        self.refused += 1
        self._report()
        return False

    def _report(self) -> None:
        now = time.monotonic()
        if now - self._logged >= 1.0:
            self._logged = now
            log.warning("connection cap (%d) reached: %d waiting connections closed, %d new ones refused so far",
                        self.max_connections, self.evicted, self.refused)


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the deadlines and cap of a :class:`ConnectionGuard`."""

    guard: ConnectionGuard
    _deadline: TimerHandle | None = None  # the pending header or body deadline

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self.guard.make_room(self, len(self.connections)):
            self.drop()
            return
        self._wait_for_request()

    def _wait_for_request(self) -> None:
        self.guard.waiting[self] = None
        self._arm(self.guard.header_timeout)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self.drop)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def drop(self) -> None:
        self._disarm()
        self.guard.waiting.pop(self, None)
        if not self.transport.is_closing():
            self.transport.close()

    def on_headers_complete(self) -> None:
        self.guard.waiting.pop(self, None)
        self._arm(self.guard.body_timeout)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:  # idle until the next request (none pipelined)
            self._wait_for_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.guard.waiting.pop(self, None)
        super().connection_lost(exc)


def guarded_protocol(settings: Settings) -> type[GuardedProtocol]:
    """A protocol class for ``uvicorn.run(http=...)`` bound to one server's limits."""
    return type("ServerProtocol", (GuardedProtocol,), {"guard": ConnectionGuard(settings)})


def fit_file_limit(max_connections: int) -> int:
    """Raise this process's open-file limit (up to the hard limit) so that ``max_connections``
    connections fit beside the files the server itself opens; returns the connections that fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max_connections + RESERVED_FILES
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    if soft == resource.RLIM_INFINITY:
        return max_connections
    return max(1, min(max_connections, soft - RESERVED_FILES))
