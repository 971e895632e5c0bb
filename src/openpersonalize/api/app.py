"""The HTTP application: routing for the three services, and the one place where exceptions
become AWS error bodies.

Control plane: ``POST /`` with ``X-Amz-Target: AmazonPersonalize.<Operation>`` (json 1.1).
Runtime and events: ``POST /<path>`` as their rest-json models declare. One port serves all three,
plus ``GET /`` or ``/health`` (liveness), ``GET /ready`` (the store answers) and ``GET /metrics``
(Prometheus, metrics.py). With access keys configured, only liveness and readiness answer
without a signature, and barely; ``/metrics`` also takes the configured bearer token.

The ``Service`` owns what the process keeps between requests (a ``ProcessState``, state.py) and
hands it to every call in its ``Context``. Every request is counted in the service's ``Metrics``
and logged as one line on the ``openpersonalize.requests`` logger (operation, status, error code,
milliseconds).
"""

from __future__ import annotations

import gc
import hmac
import json
import logging
import os
import sys
import time
import uuid
from contextlib import asynccontextmanager
from functools import partial

import orjson
from botocore import xform_name
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import URL

from .. import __version__
from ..attribution import publish_events
from ..logs import flush as flush_logs
from ..config import Settings
from ..control import ControlPlane
from ..control.base import Context
from ..errors import (
    InvalidInputException,
    NotImplementedOperation,
    RequestEntityTooLarge,
    SerializationException,
    ServiceError,
    UnknownOperationException,
    UnrecognizedClientException,
)
from ..events import EventOperations
from ..inline import WouldBlock, inline_only
from ..jobs.runner import JobRunner
from ..jobs.scheduler import Every, Scheduler
from ..metrics import CONTENT_TYPE, Metrics
from ..runtime import RuntimeOperations
from ..state import ProcessState
from ..store.files import Storage
from ..store.metadata import Store
from . import auth, protocol
from ..console.pages import PREFIX as CONSOLE
from ..console.pages import Console
from .operator_endpoints import PREFIX as OPERATOR_PREFIX
from .operator_endpoints import OperatorEndpoints
from .s3proxy import NOT_ENABLED, S3Proxy, is_s3_request

log = logging.getLogger("openpersonalize.api")
request_log = logging.getLogger("openpersonalize.requests")
#: Runtime and events operations: the member naming the resource served, and the member whose
#: records are counted as received.
RESOURCE_MEMBERS = ("campaignArn", "recommenderArn")
RECORD_MEMBERS = {"PutEvents": "eventList", "PutItems": "items", "PutUsers": "users", "PutActions": "actions",
                  "PutActionInteractions": "actionInteractions"}
JSON_11 = "application/x-amz-json-1.1"
#: Deepest nesting of arrays and objects read in a request body. The models' inputs nest a handful
#: of levels; a limit far below the parser's own (about 1,000, where it fails with RecursionError)
#: keeps every later walk of the body (validation, messages) safe.
MAX_JSON_DEPTH = 100
METRICS = "metrics"  # what _route answers for GET /metrics, which is no operation of the models


class MethodNotAllowed(UnknownOperationException):
    """A path served with another method: 405 with ``Allow``, and an AWS error body botocore reads."""

    status = 405

    def __init__(self, message: str, allow: tuple[str, ...]):
        super().__init__(message)
        self.allow = allow


class Service:
    """Everything one server process needs: settings, the store, what it keeps between requests,
    the job runner, the handlers."""

    def __init__(self, settings: Settings, *, store: Store | None = None, run_jobs: bool = True):
        self.settings = settings
        self.store = store or Store(settings.resolved_store_url())
        self.state = ProcessState(settings, self.store)
        self.metrics = Metrics(self.store, self.state.sizes)
        self.run_jobs = run_jobs  # False: answer API calls only (no jobs, no timers)
        self.runner = JobRunner(self.store, settings, on_finished=self.state.job_finished, metrics=self.metrics) \
            if run_jobs and settings.workers > 0 else None
        self.handlers = {
            "personalize": ControlPlane(),
            "personalize-runtime": RuntimeOperations(),
            "personalize-events": EventOperations(),
        }
        self.operator = OperatorEndpoints(self.store, Storage(settings), self.state)
        # serve --s3: S3 requests on this endpoint go to the managed S3 server (s3proxy.py).
        self.s3_proxy = S3Proxy(settings.s3_proxy_url) if settings.s3_proxy_url else None
        self.keys = settings.credentials()
        # A bearer token a Prometheus scraper sends for /metrics (it cannot sign with SigV4).
        self.metrics_token = getattr(settings, "metrics_token", "") or ""

    def start(self) -> None:
        if not self.keys and self.run_jobs:  # said once, by serve's first process
            log.warning("No access keys configured: every request is accepted, signed or not. "
                        "Set OPENPERSONALIZE_ACCESS_KEYS=AKID:SECRET to require AWS Signature V4.")
        if self.runner is not None:
            # An embedded SQLite store belongs to this process alone: jobs it was running when it
            # stopped are orphans. A shared store relies on lease expiry instead.
            self.runner.start(recover=self.store.is_sqlite)
        if self.runner is None and not self.run_jobs:
            return  # an API process beside the one that runs jobs and the timers (cli.serve)
        if self.settings.metrics_publish_seconds > 0:
            self.publisher = Every("attribution-publisher", self.settings.metrics_publish_seconds,
                                   partial(publish_events, self.store, self.settings))
            self.publisher.start()
        if self.settings.auto_training_enabled or self.settings.model_refresh_seconds > 0:
            self.scheduler = Scheduler(self.store, self.settings,
                                       wake=self.runner.wake if self.runner is not None else None)
            self.scheduler.start()

    def stop(self) -> None:
        for background in ("scheduler", "publisher"):
            if getattr(self, background, None) is not None:
                getattr(self, background).stop()
        if self.runner is not None:
            self.runner.stop()
        self.state.clear()
        flush_logs()

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


def create_app(service: Service, *, freeze_heap: bool = False):
    """The ASGI application: every request is answered by :class:`Api`; Starlette runs the
    lifespan (start and stop of the service).

    ``freeze_heap`` (a process that is the server's alone, as ``serve``'s): what the start built
    (modules, the store, the operation table) lives as long as the process, so it is frozen out of
    the garbage collector's sight; a full collection during a request then walks only the objects
    requests made, not the whole heap (a pause in the latency's tail)."""

    @asynccontextmanager
    async def lifespan(app):
        service.start()
        if freeze_heap:
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            service.stop()

    return Api(service, Starlette(lifespan=lifespan))


class Api:
    """API calls straight on ASGI. A recommendation is answered in about a millisecond, and a
    framework's routing, middleware and request objects would cost a good part of that again;
    here a call is one read of the body, one dictionary lookup for its operation, and one send."""

    def __init__(self, service: Service, other):
        self.service = service
        self.other = other
        self.own_paths = frozenset({p for _, p in protocol.rest_routes()} | set(PROBES) | {"/metrics"})
        self.console = Console(service) if service.settings.console else None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.other(scope, receive, send)
        elif self.console is not None and (scope["path"] == CONSOLE or scope["path"].startswith(CONSOLE + "/")):
            await self.console(scope, receive, send)
        elif is_s3_request(scope, self.own_paths, self.service.s3_proxy is not None):
            await self.s3(scope, receive, send)
        elif scope["method"] in ("GET", "HEAD") and scope["path"] in PROBES and not _has_target(scope):
            if scope["path"] == "/" and self.console is not None and _wants_html(scope):
                await _send(send, 303, [(b"location", (CONSOLE + "/").encode())], b"")  # a browser: the console
                return
            answer = self.health() if scope["path"] != "/ready" else await run_in_threadpool(self.ready)
            await _send(send, *answer, head=scope["method"] == "HEAD")
        elif scope["path"].startswith(OPERATOR_PREFIX):
            await self.operator_call(scope, receive, send)
        else:
            await self.call(scope, receive, send)

    async def s3(self, scope, receive, send) -> None:
        """An S3 request: passed to the managed S3 server, or refused with how to enable it."""
        started = time.perf_counter()
        if self.service.s3_proxy is None:
            status, headers, body = NOT_ENABLED
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        else:
            status = await self.service.s3_proxy(scope, receive, send)
        self.record(scope, "S3", "S3", status, [], time.perf_counter() - started)

    async def operator_call(self, scope, receive, send) -> None:
        """The operator's endpoints (api/operator_endpoints.py): signed like the API, answered in JSON or
        streamed bytes, logged and counted under ``operation="openpersonalize"``."""
        started = time.perf_counter()
        request_id = str(uuid.uuid4())
        endpoints, method, path = self.service.operator, scope["method"], scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")
        answer, sent = None, False
        try:
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            what = endpoints.route(method, path)
            streamed = what == "put"
            body = b"" if streamed else await _read_body(receive, headers.get("content-length"),
                                                           self.service.settings.max_body_bytes)
            if body is None:
                return
            if self.service.keys:
                # The path as sent (still percent-encoded): what the client's signature covers.
                raw = (scope.get("raw_path") or path.encode()).decode("latin-1")
                url = str(URL(scope=scope)).split("?", 1)[0].replace(path, raw, 1) + ("?" + query if query else "")
                auth.verify(method=method, url=url, headers=headers, body=body,
                            keys=self.service.keys, unsigned_payload=streamed,
                            max_skew_seconds=self.service.settings.signature_max_skew_seconds)
            if what == "get":
                size, chunks = await run_in_threadpool(endpoints.open, path)
                await send({"type": "http.response.start", "status": 200, "headers": [
                    (b"content-type", b"application/octet-stream"), (b"content-length", str(size).encode())]})
                sent = True  # from here a failure can only end the connection
                if method != "HEAD":
                    async for chunk in chunks:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
                answer, sent = (200, [], b""), True
            else:
                if what == "put":
                    doc = await endpoints.put(path, receive)
                    if doc is None:
                        return
                elif what == "jobs":
                    doc = await run_in_threadpool(endpoints.jobs, query)
                elif what == "import-report":
                    doc = await run_in_threadpool(endpoints.import_report, query)
                elif what == "compare":
                    doc = await run_in_threadpool(endpoints.compare, query)
                elif what == "evaluate":
                    doc = await run_in_threadpool(endpoints.evaluate, query)
                elif what == "explain":
                    doc = await run_in_threadpool(endpoints.explain, query)
                else:
                    doc = await run_in_threadpool(endpoints.list, path, query)
                answer = (200, [(b"content-type", b"application/json")], _json(doc))
        except ServiceError as exc:
            answer = _error(None, exc, request_id)
        except Exception:
            log.exception("unhandled error in %s %s", method, path)
            answer = _error(None, ServiceError("We encountered an internal error. Please try again."),
                            request_id, status=500)
        if sent and answer[0] != 200:
            return  # the bytes had started: the client sees a short body against content-length
        if not sent:
            await _send(send, *answer, head=method == "HEAD")
        self.record(scope, "openpersonalize", "-", answer[0], answer[1], time.perf_counter() - started)

    def health(self) -> Answer:
        """The liveness check, answered without a signature: bare when access keys are
        configured (the version tells an attacker which weaknesses to try)."""
        doc = {"service": "openpersonalize"}
        if not self.service.keys:
            doc["version"] = __version__
            doc["process"] = os.getpid()  # which of serve's API processes answered
            if self.console is not None:
                doc["console"] = CONSOLE + "/"
        return 200, [(b"content-type", b"application/json")], _json(doc)

    def ready(self) -> Answer:
        """The readiness check: 200 when the metadata store answers, 503 when it does not (the
        reason is logged, not told: this answers without a signature)."""
        try:
            self.service.store.ping()
        except Exception as exc:
            log.warning("readiness check: the store does not answer: %s", exc)
            return 503, [(b"content-type", b"application/json")], _json({"ready": False})
        return 200, [(b"content-type", b"application/json")], _json({"ready": True})

    async def call(self, scope, receive, send) -> None:
        service = self.service
        started = time.perf_counter()
        request_id = str(uuid.uuid4())
        op = params = None
        try:
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            body = await _read_body(receive, headers.get("content-length"), service.settings.max_body_bytes)
            if body is None:
                return  # the client went away
            try:
                target, refusal = _route(scope["method"], scope["path"], headers), None
            except ServiceError as exc:
                target, refusal = None, exc
            op = target if isinstance(target, protocol.Operation) else None
            if service.keys:  # before anything else answers: a refusal tells what is served
                self.authenticate(scope, headers, body, metrics=target is METRICS)
            if refusal is not None:
                raise refusal
            if target is METRICS:
                answer = await self.metrics(request_id)
            else:
                params = protocol.validate_input(op, _parse_json(body))
                ctx = Context(settings=service.settings, store=service.store, request_id=request_id,
                              region=auth.scope_region(headers.get("authorization")) or service.settings.region,
                              state=service.state)
                answer = service.answer_now(op, ctx, params)
                if answer is None:
                    answer = await run_in_threadpool(service.answer, op, ctx, params)
        except ServiceError as exc:
            answer = _error(op, exc, request_id)
        except RecursionError:
            # The body's own nesting is bounded (MAX_JSON_DEPTH); this is a document inside a
            # string member (a schema, event properties, a filter expression) read by an operation.
            log.warning("%s: a member of the request is nested too deeply to read", op.name if op else scope["path"])
            answer = _error(op, InvalidInputException(
                "A string member of the request holds a document (JSON or an expression) nested too "
                "deeply to be read; such documents may nest a few hundred levels at most."), request_id)
        except Exception:
            log.exception("unhandled error in %s", op.name if op else scope["path"])
            answer = _error(op, ServiceError("We encountered an internal error. Please try again."),
                            request_id, status=500)
        await _send(send, *answer, head=scope["method"] == "HEAD")
        self.observe(scope, op, params, answer, time.perf_counter() - started)

    def observe(self, scope, op: protocol.Operation | None, params: dict | None, answer: Answer,
                seconds: float) -> None:
        """Count the request and log its line."""
        status, headers = answer[0], answer[1]
        name = op.name if op is not None else ("metrics" if scope["path"] == "/metrics" else "unknown")
        resource = records = None
        if op is not None and params is not None and status == 200:
            if op.service == "personalize-runtime":
                resource = next((params[m] for m in RESOURCE_MEMBERS if params.get(m)), None)
            elif op.name in RECORD_MEMBERS:
                records = len(params.get(RECORD_MEMBERS[op.name]) or ())
        self.record(scope, name, op.name if op else "-", status, headers, seconds, resource, records or 0)

    def record(self, scope, name: str, shown: str, status: int, headers: list, seconds: float,
               resource: str | None = None, records: int = 0) -> None:
        """The one place a request is counted (``/metrics``, under ``name``) and logged (one line,
        ``shown`` as its operation; JSON members with ``--log-format json``)."""
        self.service.metrics.request(name, status, seconds, resource, records)
        if request_log.isEnabledFor(logging.INFO):
            error = next((v.decode() for k, v in headers if k == b"x-amzn-errortype"), "-")
            ms = round(seconds * 1000.0, 2)
            request_log.info("%s %s %s %d %s %.1fms", scope["method"], scope["path"], shown, status, error, ms,
                             extra={"method": scope["method"], "path": scope["path"], "operation": name,
                                    "status": status, "error": error, "ms": ms})

    def authenticate(self, scope, headers: dict[str, str], body: bytes, *, metrics: bool) -> None:
        """A valid SigV4 signature, or for the metrics the configured bearer token."""
        authorization = headers.get("authorization", "")
        if metrics and self.service.metrics_token and authorization[:7].lower() == "bearer ":
            given = authorization[7:].strip().encode("utf-8", "replace")
            if hmac.compare_digest(given, self.service.metrics_token.encode()):
                return
            raise UnrecognizedClientException("The bearer token is not the metrics token this server is configured with.")
        service = self.service
        auth.verify(method=scope["method"], url=str(URL(scope=scope)), headers=headers, body=body,
                    keys=service.keys, max_skew_seconds=service.settings.signature_max_skew_seconds)

    async def metrics(self, request_id: str) -> Answer:
        body = await run_in_threadpool(self.service.metrics.render)
        return 200, [(b"x-amzn-requestid", request_id.encode()), (b"content-type", CONTENT_TYPE.encode())], body


PROBES = ("/", "/health", "/ready")  # answered without a signature


def _wants_html(scope) -> bool:
    accept = next((v for k, v in scope["headers"] if k == b"accept"), b"")
    return b"text/html" in accept


def _has_target(scope) -> bool:
    return any(name.lower() == b"x-amz-target" for name, _ in scope["headers"])


async def _send(send, status: int, headers: list[tuple[bytes, bytes]], body: bytes, head: bool = False) -> None:
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


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


def _route(method: str, path: str, headers: dict[str, str]) -> protocol.Operation | str:
    """The operation a request calls (or METRICS); the AWS error naming what is wrong otherwise."""
    target = headers.get("x-amz-target")
    if method != "POST":
        allowed = _allowed_methods(path)
        if target is not None:
            raise MethodNotAllowed(f"{method} {path} with X-Amz-Target: '{target}' is no call: control-plane "
                                   "operations are called with POST /.", allowed or ("POST",))
        if path == "/metrics" and method in ("GET", "HEAD"):
            return METRICS
        if allowed is None:
            raise _no_operation(method, path)
        raise MethodNotAllowed(f"{method} {path} is no call: {path} answers {', '.join(allowed)}.", allowed)
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
    if path == "/metrics":
        raise MethodNotAllowed("POST /metrics is no call: /metrics answers GET, HEAD.", ("GET", "HEAD"))
    raise _no_operation(method, path)


def _allowed_methods(path: str) -> tuple[str, ...] | None:
    if path == "/":
        return ("GET", "HEAD", "POST")
    if path == "/metrics":
        return ("GET", "HEAD")
    methods = sorted({m for m, p in protocol.rest_routes() if p == path})
    return tuple(methods) or None


def _no_operation(method: str, path: str) -> UnknownOperationException:
    known = ", ".join(sorted(p for _, p in protocol.rest_routes()))
    return UnknownOperationException(f"No operation at {method} {path}. Paths served: {known}.")


def _parse_json(body: bytes):
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except RecursionError:
        raise _too_deep() from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SerializationException(f"The request body is not valid JSON: {exc}.") from None
    except ValueError as exc:  # the one other failure of json.loads: a number of too many digits
        raise SerializationException(f"The request body holds a number that cannot be read ({_digits(exc)}).") from None
    # A body cannot nest deeper than it has brackets: counting them (fast, in C) spares the walk
    # for nearly every request.
    if body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH and _deeper_than(value, MAX_JSON_DEPTH):
        raise _too_deep()
    return value


def _too_deep() -> SerializationException:
    return SerializationException(
        f"The request body is nested more than {MAX_JSON_DEPTH} levels deep (arrays and objects); "
        "no operation's input nests that deep.")


def _digits(exc: ValueError) -> str:
    return f"more than {sys.get_int_max_str_digits()} digits" if "digits" in str(exc) else str(exc)


def _deeper_than(value, limit: int) -> bool:
    """Whether arrays and objects in ``value`` nest more than ``limit`` levels (without recursion)."""
    if not isinstance(value, (dict, list)):
        return False
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


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
    headers = [(b"x-amzn-requestid", request_id.encode()), (b"x-amzn-errortype", code.encode()),
               (b"content-type", content_type.encode())]
    if isinstance(exc, MethodNotAllowed):
        headers.append((b"allow", ", ".join(exc.allow).encode()))
    return status, headers, body
