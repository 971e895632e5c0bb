"""The HTTP application: routing for the three services, and the one place where exceptions
become AWS error bodies.

Control plane: ``POST /`` with ``X-Amz-Target: AmazonPersonalize.<Operation>`` (json 1.1).
Runtime and events: ``POST /<path>`` as their rest-json models declare. One port serves all three.

The ``Service`` owns what the process keeps between requests (a ``ProcessState``, state.py) and
hands it to every call in its ``Context``; ``GET /metrics`` adds its sizes to the job queue's.
"""

from __future__ import annotations

import json
import logging
import uuid
from contextlib import asynccontextmanager

import orjson
from botocore import xform_name
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import __version__
from ..config import Settings
from ..control import ControlPlane
from ..control.base import Context
from ..errors import (
    NotImplementedOperation,
    RequestEntityTooLarge,
    SerializationException,
    ServiceError,
    UnknownOperationException,
)
from ..events import EventOperations
from ..inline import WouldBlock, inline_only
from ..jobs.runner import JobRunner
from ..jobs.scheduler import Scheduler
from ..metrics import render
from ..runtime import RuntimeOperations
from ..state import ProcessState
from ..store.metadata import Store
from . import auth, protocol

log = logging.getLogger("openpersonalize.api")
JSON_11 = "application/x-amz-json-1.1"


class Service:
    """Everything one server process needs: settings, the store, what it keeps between requests,
    the job runner, the handlers."""

    def __init__(self, settings: Settings, *, store: Store | None = None, run_jobs: bool = True):
        self.settings = settings
        self.store = store or Store(settings.resolved_store_url())
        self.state = ProcessState(settings, self.store)
        self.runner = JobRunner(self.store, settings, on_finished=self.state.job_finished) \
            if run_jobs and settings.workers > 0 else None
        self.handlers = {
            "personalize": ControlPlane(),
            "personalize-runtime": RuntimeOperations(),
            "personalize-events": EventOperations(),
        }
        self.keys = settings.credentials()

    def start(self) -> None:
        if not self.keys:
            log.warning("No access keys configured: every request is accepted, signed or not. "
                        "Set OPENPERSONALIZE_ACCESS_KEYS=AKID:SECRET to require AWS Signature V4.")
        if self.runner is not None:
            # An embedded SQLite store belongs to this process alone: jobs it was running when it
            # stopped are orphans. A shared store relies on lease expiry instead.
            self.runner.start(recover=self.store.is_sqlite)
        if self.settings.auto_training_enabled or self.settings.model_refresh_seconds > 0:
            self.scheduler = Scheduler(self.store, self.settings,
                                       wake=self.runner.wake if self.runner is not None else None)
            self.scheduler.start()

    def stop(self) -> None:
        if getattr(self, "scheduler", None) is not None:
            self.scheduler.stop()
        if self.runner is not None:
            self.runner.stop()
        self.state.clear()

    def handler(self, op: protocol.Operation):
        method = getattr(self.handlers[op.service], xform_name(op.name), None)
        if method is None:
            raise NotImplementedOperation(
                f"{op.name} ({op.service}) is not implemented yet in openpersonalize "
                f"{__version__}; docs/coverage.md lists the state of every operation.")
        return method

    def call(self, op: protocol.Operation, ctx: Context, params: dict) -> dict:
        result = self.handler(op)(ctx, params)
        if self.runner is not None and op.name.startswith("Create"):
            self.runner.wake()
        return result

    def answer(self, op: protocol.Operation, ctx: Context, params: dict) -> Answer:
        """The whole response to a validated call: status, headers and body."""
        return _success(op, self.call(op, ctx, params), ctx.request_id)

    def answer_now(self, op: protocol.Operation, ctx: Context, params: dict) -> Answer | None:
        """The response of a runtime call computed on the calling thread (the event loop) when all
        it needs is in memory; None when it would block first (see ``inline``): read the store,
        load a model or filter data, or score more than ``inline_max_items`` items.

        Such a call takes about a millisecond at 50,000 items: less than handing it to a worker
        thread and back costs on a small machine."""
        if op.service != "personalize-runtime":
            return None
        try:
            with inline_only():
                return self.answer(op, ctx, params)
        except WouldBlock:
            return None


def create_app(service: Service):
    """The ASGI application: every POST is an API call, answered by :class:`Api`; Starlette
    serves the rest (health, metrics, lifespan)."""

    @asynccontextmanager
    async def lifespan(app):
        service.start()
        try:
            yield
        finally:
            service.stop()

    async def health(request: Request) -> Response:
        return JSONResponse({"service": "openpersonalize", "version": __version__})

    async def metrics(request: Request) -> Response:
        text = await run_in_threadpool(render, service.store)
        text += service.state.metrics()
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def answered_by_api(request: Request) -> Response:
        raise AssertionError("POSTs never reach Starlette")

    routes = [
        Route("/", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        # Declared so that other methods on API paths get 405 (Allow: POST) rather than 404.
        Route("/{path:path}", answered_by_api, methods=["POST"]),
    ]
    return Api(service, Starlette(routes=routes, lifespan=lifespan))


class Api:
    """API calls straight on ASGI. A recommendation is answered in about a millisecond, and a
    framework's routing, middleware and request objects would cost a good part of that again;
    here a call is one read of the body, one dictionary lookup for its operation, and one send."""

    def __init__(self, service: Service, other):
        self.service = service
        self.other = other

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            await self.call(scope, receive, send)
        else:
            await self.other(scope, receive, send)

    async def call(self, scope, receive, send) -> None:
        service = self.service
        request_id = str(uuid.uuid4())
        op = None
        try:
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            body = await _read_body(receive, headers.get("content-length"), service.settings.max_body_bytes)
            if body is None:
                return  # the client went away
            op = _route(scope["method"], scope["path"], headers)
            if service.keys:
                auth.verify(method=scope["method"], url=str(URL(scope=scope)), headers=headers, body=body,
                            keys=service.keys, max_skew_seconds=service.settings.signature_max_skew_seconds)
            params = protocol.validate_input(op, _parse_json(body))
            ctx = Context(settings=service.settings, store=service.store, request_id=request_id,
                          region=auth.scope_region(headers.get("authorization")) or service.settings.region,
                          state=service.state)
            answer = service.answer_now(op, ctx, params)
            if answer is None:
                answer = await run_in_threadpool(service.answer, op, ctx, params)
        except ServiceError as exc:
            answer = _error(op, exc, request_id)
        except Exception:
            log.exception("unhandled error in %s", op.name if op else scope["path"])
            answer = _error(op, ServiceError("We encountered an internal error. Please try again."),
                            request_id, status=500)
        await _send(send, *answer)


async def _send(send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive, declared: str | None, limit: int) -> bytes | None:
    """The body, up to ``limit`` bytes; None when the client disconnected. A larger body is read
    and dropped (so the client, still sending, gets the 413 rather than a reset connection), up
    to a hard cap where we hang up."""
    if declared and declared.isdigit() and int(declared) > 16 * limit:
        raise RequestEntityTooLarge(f"The request body is {declared} bytes; the limit is {limit} bytes.")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > 16 * limit:
            break
        if not message.get("more_body", False):
            break
    if size > limit:
        raise RequestEntityTooLarge(f"The request body is larger than the limit of {limit} bytes.")
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _route(method: str, path: str, headers: dict[str, str]) -> protocol.Operation:
    target = headers.get("x-amz-target")
    if target is not None:
        op = protocol.control_operation(target)
        if op is None:
            raise UnknownOperationException(
                f"Unknown operation in X-Amz-Target: '{target}'. Control-plane operations are "
                f"'{protocol.TARGET_PREFIX}<Operation>' with an operation of the personalize model.")
        return op
    op = protocol.rest_routes().get((method, path))
    if op is not None:
        return op
    if path == "/":
        raise UnknownOperationException(
            "Missing X-Amz-Target header: control-plane requests to / name their operation as "
            f"'{protocol.TARGET_PREFIX}<Operation>'.")
    known = ", ".join(sorted(p for _, p in protocol.rest_routes()))
    raise UnknownOperationException(f"No operation at {method} {path}. Paths served: {known}.")


def _parse_json(body: bytes):
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SerializationException(f"The request body is not valid JSON: {exc}.") from None


Answer = tuple  # (status, headers, body): what _send writes


def _success(op: protocol.Operation, result: dict | None, request_id: str) -> Answer:
    headers = [(b"x-amzn-requestid", request_id.encode())]
    if op.service == "personalize-events":
        return 200, headers, b""
    content_type = JSON_11 if op.service == protocol.CONTROL_PLANE else "application/json"
    headers.append((b"content-type", content_type.encode()))
    return 200, headers, _json(protocol.shape_output(op, result))


def _json(obj) -> bytes:
    """Compact JSON: orjson when it can (several times faster on a recommendation list), else the
    standard library (values orjson refuses, such as integers beyond 64 bits)."""
    try:
        return orjson.dumps(obj)
    except (TypeError, ValueError):
        return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def _error(op: protocol.Operation | None, exc: ServiceError, request_id: str, status: int | None = None) -> Answer:
    if status is None:
        status = exc.status
        if op is not None and op.service != protocol.CONTROL_PLANE:
            shape = protocol.service_models()[op.service].shape_for(exc.code) \
                if exc.code in protocol.service_models()[op.service].shape_names else None
            if shape is not None and "error" in shape.metadata:
                status = shape.metadata["error"].get("httpStatusCode", status)
    code = exc.code if status != 500 else "InternalFailure"
    body = json.dumps({"__type": code, "message": exc.message}).encode("utf-8")
    content_type = JSON_11 if op is None or op.service == protocol.CONTROL_PLANE else "application/json"
    return status, [(b"x-amzn-requestid", request_id.encode()), (b"x-amzn-errortype", code.encode()),
                    (b"content-type", content_type.encode())], body
