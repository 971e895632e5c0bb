"""Connections spread evenly over the API processes that share one listening socket.

With ``serve --processes N`` every process waits on the same socket. asyncio's accept loop
takes every connection waiting when its process wakes, so a client pool opening its keep-alive
connections at once lands on one process (4 connections over 2 processes: 3-1 or 4-0 in 22 of
30 tries); that process then does most of the work while the other idles, and at 80 % of the
best rate its p99 goes from milliseconds to hundreds of them.

Here each process accepts on a thread of its own, one connection at a time, in turn with the
others: a shared counter per process says how many connections each holds open, and a process
holding more than another waits (at most ``TURN_WAIT_SECONDS``) while the other takes the next;
a process whose accept thread has not looked in for a second (not started yet, or dead) takes
no turns. Least connections, as a load balancer
in front would do. The listening socket stays blocking in every process (its flags are shared
between them); an accepted connection is handed to the process's event loop, which serves it
as uvicorn serves the ones it accepts itself (the protocol is built as ``uvicorn.Server.startup``
builds it; tests/test_processes.py runs it against the installed uvicorn).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import struct
import threading
import time

import uvicorn

log = logging.getLogger("openpersonalize.api")

RETRY_SECONDS = 0.1  # after an accept() that failed for want of descriptors, or for no known reason
ACCEPT_TIMEOUT_SECONDS = 0.25  # a blocked accept() returns this often, to see that the server stops
TURN_WAIT_SECONDS = 0.02  # the longest a process ahead waits for the others to take their turn
TURN_POLL_SECONDS = 0.0005
STALE_MS = 1000  # a process whose accept thread has not looked in for this long takes no turns


def _now_ms() -> int:
    return time.monotonic_ns() // 1_000_000  # CLOCK_MONOTONIC: the same clock in every process


class Turns:
    """The open connections of each API process and when its accept thread last looked in
    (shared memory, two slots per process), and which process this is. A process counts a
    connection from its accept to its close; one that has not looked in for STALE_MS (not
    started yet, or dead) is left out of the turns, so the others never wait for it."""

    def __init__(self, slots, index: int):
        self.slots, self.index = slots, index
        self._lock = threading.Lock()  # the accept thread and the event loop both write this count

    @staticmethod
    def shared(processes: int):
        """The slots for ``processes`` processes, to hand to each (spawn or fork)."""
        import multiprocessing

        return multiprocessing.get_context("spawn").Array("q", 2 * processes, lock=False)

    def looked_in(self) -> None:
        self.slots[2 * self.index + 1] = _now_ms()

    def my_turn(self) -> bool:
        """Whether no live process holds fewer connections than this one."""
        mine, now = self.slots[2 * self.index], _now_ms()
        for k in range(len(self.slots) // 2):
            if k != self.index and now - self.slots[2 * k + 1] <= STALE_MS and self.slots[2 * k] < mine:
                return False
        return True

    def wait_for_mine(self) -> None:
        """Return at this process's turn, or after TURN_WAIT_SECONDS."""
        self.looked_in()
        deadline = time.monotonic() + TURN_WAIT_SECONDS
        while not self.my_turn() and time.monotonic() < deadline:
            time.sleep(TURN_POLL_SECONDS)

    def add(self, change: int) -> None:
        with self._lock:
            self.slots[2 * self.index] += change


class TurnTakingServer(uvicorn.Server):
    """A uvicorn server that accepts its connections in turn with the other processes on the
    same listening sockets (see the module docstring)."""

    def __init__(self, config: uvicorn.Config, turns: Turns):
        super().__init__(config)
        self.turns = turns

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # uvicorn's own accept loop gets no socket
        if self.should_exit:
            return
        loop = asyncio.get_running_loop()
        config = self.config

        turns = self.turns

        class Counted(config.http_protocol_class):  # type: ignore[misc, valid-type]
            def connection_lost(self, exc: Exception | None) -> None:
                turns.add(-1)
                super().connection_lost(exc)

        def protocol() -> asyncio.Protocol:
            return Counted(config=config, server_state=self.server_state, app_state=self.lifespan.state, _loop=loop)

        for sock in sockets or []:
            # Closing the socket at shutdown does not wake a thread blocked in accept(), and the
            # other processes keep it open: a receive timeout does (accept() then fails with
            # EAGAIN), while the socket stays blocking, so the kernel still serves the waiting
            # processes in turn. Every process sets the same value on the one shared socket.
            timeout = struct.pack("ll", 0, int(ACCEPT_TIMEOUT_SECONDS * 1e6))  # struct timeval
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeout)
            threading.Thread(target=self._accept_in_turn, args=(sock, loop, protocol), daemon=True,
                             name=f"accept-{sock.fileno()}").start()

    def _accept_in_turn(self, sock: socket.socket, loop: asyncio.AbstractEventLoop, protocol) -> None:
        while not self.should_exit:
            self.turns.wait_for_mine()
            try:
                conn, _ = sock.accept()
            except OSError as exc:
                if self.should_exit or exc.errno in (errno.EBADF, errno.EINVAL):
                    return  # the socket was closed at shutdown
                if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR, errno.ECONNABORTED, errno.EPROTO):
                    continue  # the receive timeout, or a client that left before its turn
                if exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("accepting a connection failed: %s", exc)
                time.sleep(RETRY_SECONDS)  # the connection waits in the backlog meanwhile
                continue
            self.turns.add(1)  # until its connection_lost
            try:
                loop.call_soon_threadsafe(self._adopt, conn, loop, protocol)
            except RuntimeError:  # the event loop has closed
                conn.close()
                self.turns.add(-1)
                return

    def _adopt(self, conn: socket.socket, loop: asyncio.AbstractEventLoop, protocol) -> None:
        if self.should_exit:
            conn.close()
            self.turns.add(-1)
            return
        conn.setblocking(False)
        task = loop.create_task(loop.connect_accepted_socket(protocol, conn))
        task.add_done_callback(self._report_failure)

    def _report_failure(self, task: asyncio.Task) -> None:
        if task.cancelled() or task.exception() is not None:  # no protocol: nothing will count it off
            self.turns.add(-1)
            log.warning("an accepted connection could not be served: %s",
                        "cancelled" if task.cancelled() else task.exception())
