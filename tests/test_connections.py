"""Idle and slow connections cannot lock clients out (api/connections.py): on loopback, a signed
client is served while idle and slowloris connections beyond the cap are held open against a
real server; slow headers and bodies are cut at their deadlines; the cap is logged."""

from __future__ import annotations

import resource
import socket
import time

import pytest

from tests.conftest import make_client
from tests.servers import running_server

CAP = 300
IDLE = 2000
SLOW = 300
HEADER_TIMEOUT = 3.0


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = IDLE + SLOW + 200
    if soft < want:  # this process holds the attacker's sockets
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    yield from running_server(tmp_path_factory.mktemp("guarded"), env={
        "OPENPERSONALIZE_MAX_CONNECTIONS": str(CAP),
        "OPENPERSONALIZE_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "OPENPERSONALIZE_BODY_TIMEOUT_SECONDS": str(HEADER_TIMEOUT)})


def open_sockets(port: int, n: int) -> list[socket.socket]:
    out = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        out.append(s)
    return out


def closed_by_server(s: socket.socket, within: float) -> bool:
    s.settimeout(within)
    try:
        return s.recv(1) == b""
    except (socket.timeout, TimeoutError):
        return False
    except ConnectionResetError:
        return True


def test_a_signed_client_is_served_while_idle_and_slow_connections_are_held(guarded):
    personalize = make_client("personalize", guarded.endpoint)
    personalize.list_recipes()  # warm
    idle = open_sockets(guarded.port, IDLE)
    slow = open_sockets(guarded.port, SLOW)
    try:
        for s in slow:  # slowloris: a request line, then nothing
            s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")
        latencies = []
        for _ in range(20):
            started = time.perf_counter()
            personalize.list_dataset_groups()
            latencies.append(time.perf_counter() - started)
        print(f"signed ListDatasetGroups with {IDLE} idle and {SLOW} slow connections open: "
              f"median {sorted(latencies)[10] * 1000:.1f} ms, worst {max(latencies) * 1000:.1f} ms")
    finally:
        for s in idle + slow:
            s.close()
    assert "connection cap (300) reached" in guarded.log()


def test_slow_headers_and_bodies_are_cut_at_their_deadlines(guarded):
    silent, trickle, body = open_sockets(guarded.port, 3)
    try:
        trickle.sendall(b"GET / HTTP/1.1\r\n")
        body.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                     b"X-Amz-Target: AmazonPersonalize.ListRecipes\r\n\r\n{")
        started = time.monotonic()
        for k in range(4):  # a byte a second does not extend the header deadline
            time.sleep(0.5)
            trickle.sendall(b"X")
        assert closed_by_server(silent, HEADER_TIMEOUT + 3)
        assert closed_by_server(trickle, HEADER_TIMEOUT + 3)
        assert closed_by_server(body, HEADER_TIMEOUT + 3)
        assert time.monotonic() - started < HEADER_TIMEOUT + 3
    finally:
        for s in (silent, trickle, body):
            s.close()


def test_a_connection_in_use_is_not_cut(guarded):
    """Keep-alive: requests on one connection, spaced under the keep-alive time, all answer."""
    personalize = make_client("personalize", guarded.endpoint)
    for _ in range(3):
        personalize.list_recipes()
        time.sleep(1.0)
    personalize.list_recipes()
