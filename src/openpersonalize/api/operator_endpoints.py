"""The operator's endpoints under ``/openpersonalize/``: what the ``openpersonalize`` command needs
from a running server that the Personalize models have no operation for.

* ``GET /openpersonalize/jobs[?all=1]``: the job queue with each job's status, failure reason and
  progress (records or bytes done and in all, percent, estimated seconds left).
* ``GET /openpersonalize/import-report?arn=ARN``: what an import ignored or nulled, per column.
* ``GET /openpersonalize/evaluate?solutionVersionArn=A[&solutionVersionArn=B...][&since=S&until=U]``:
  versions scored on the events that arrived after their training (replay.py).
* ``GET /openpersonalize/explain?campaignArn=C|recommenderArn=R&userId=U&itemId=I``: why the item is
  in the user's list (runtime.explain).
* ``GET /openpersonalize/compare?datasetGroupArn=ARN&eventType=T[&since=S&until=U]``: attribution
  sources side by side (attribution.compare): impressions, conversions, rates and differences.
* ``GET /openpersonalize/objects/<bucket>?prefix=P``: objects under a prefix (key and size).
* ``PUT /openpersonalize/objects/<bucket>/<key>``: store the body as an object, streamed (the body
  may be far larger than an API call's), published whole when it has all arrived.
* ``GET /openpersonalize/objects/<bucket>/<key>``: an object's bytes, streamed.

They are signed like every API call when access keys are configured; an upload signs its headers
with ``x-amz-content-sha256: UNSIGNED-PAYLOAD``, as S3 clients do for streamed bodies. Objects go
through the same ``Storage`` as the jobs, so the embedded store's confinement holds.
"""

from __future__ import annotations

import time
import uuid
from urllib.parse import parse_qs

from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from ..errors import InvalidInputException, ResourceNotFoundException
from ..metrics import job_rows
from ..store.files import Storage
from ..store.metadata import Store
from .streams import ClientGone, body_chunks

PREFIX = "/openpersonalize/"
CHUNK = 1 << 20


class OperatorEndpoints:
    def __init__(self, store: Store, storage: Storage, state=None):
        self.store = store
        self.storage = storage
        self.settings = storage.settings
        self.state = state  # the process's ProcessState: explain serves from the same deployments

    def route(self, method: str, path: str) -> str:
        """The endpoint ``path`` names (``jobs``, ``import-report``, ``list``, ``put``, ``get``)."""
        rest = path[len(PREFIX):]
        if rest in ("jobs", "import-report", "compare", "evaluate", "explain"):
            if method not in ("GET", "HEAD"):
                raise InvalidInputException(f"{PREFIX}{rest} answers GET, not {method}.")
            return rest
        if rest.startswith("objects/"):
            bucket, _, key = rest[len("objects/"):].partition("/")
            if not bucket:
                raise InvalidInputException(f"{path} names no bucket: use {PREFIX}objects/<bucket>/<key>.")
            if not key:
                if method != "GET":
                    raise InvalidInputException(f"{path} lists a bucket: it answers GET, not {method}.")
                return "list"
            if method == "PUT":
                return "put"
            if method in ("GET", "HEAD"):
                return "get"
            raise InvalidInputException(f"{path} answers GET and PUT, not {method}.")
        raise ResourceNotFoundException(f"No endpoint at {path}: the operator's endpoints are {PREFIX}jobs, "
                                        f"{PREFIX}import-report and {PREFIX}objects/<bucket>/<key>.")

    @staticmethod
    def uri(path: str) -> str:
        """The object a (decoded) request path names."""
        return "s3://" + path[len(PREFIX) + len("objects/"):]

    # -- JSON answers ----------------------------------------------------------------------

    def jobs(self, query: str) -> dict:
        everything = parse_qs(query).get("all", ["0"])[0] not in ("0", "", "false")
        return {"jobs": job_summaries(self.store, everything)}

    def import_report(self, query: str) -> dict:
        arn = parse_qs(query).get("arn", [""])[0]
        row = self.store.get(arn) if arn else None
        if row is None or row.kind != "dataset-import-job":
            raise ResourceNotFoundException(f"No dataset import job {arn!r}.")
        return {"status": row.status, "failureReason": row.doc.get("failureReason"), "report": row.doc.get("_report")}

    def compare(self, query: str) -> dict:
        from ..attribution import compare

        q = {k: v[0] for k, v in parse_qs(query).items()}
        group = q.get("datasetGroupArn", "")
        row = self.store.get(group) if group else None
        if row is None or row.kind != "dataset-group":
            raise ResourceNotFoundException(f"No dataset group {group!r}.")
        if not q.get("eventType"):
            raise InvalidInputException("Invalid eventType: it is required (the event type that counts as a "
                                        "conversion, such as purchase).")
        return compare(self.store, self.settings, group, q["eventType"], **_bounds(parse_qs(query)))

    def evaluate(self, query: str) -> dict:
        from ..replay import evaluate

        q = parse_qs(query)
        return evaluate(self.store, self.settings, q.get("solutionVersionArn", []), **_bounds(q))

    def explain(self, query: str) -> dict:
        from ..control.base import Context
        from ..runtime import explain

        q = {k: v[0] for k, v in parse_qs(query).items()}
        ctx = Context(settings=self.settings, store=self.store, request_id="explain", region=self.settings.region,
                      state=self.state)
        return explain(ctx, q)

    def list(self, path: str, query: str) -> dict:
        bucket = path[len(PREFIX) + len("objects/"):].strip("/")
        prefix = parse_qs(query).get("prefix", [""])[0]
        found = self.storage.list_objects(f"s3://{bucket}/{prefix}", "prefix")
        return {"objects": [{"key": o.uri[len(f"s3://{bucket}/"):], "size": o.size} for o in found]}

    # -- streamed objects ------------------------------------------------------------------

    async def put(self, path: str, receive) -> dict | None:
        """Stream the body into a temporary object beside the target, then publish it whole.
        None when the client went away (nothing is left behind)."""
        uri = self.uri(path)
        if uri.endswith("/"):
            raise InvalidInputException(f"Invalid key: '{uri}' ends with '/'; an object needs a name.")
        temp = f"{uri}.{uuid.uuid4().hex[:8]}.upload"
        out = await run_in_threadpool(self.storage.write_object, temp, "key")
        size, whole = 0, False
        try:
            try:
                async for chunk in body_chunks(receive):
                    await run_in_threadpool(out.write, chunk)
                    size += len(chunk)
                whole = True
            except ClientGone:
                pass
            await run_in_threadpool(out.close)
            if whole:
                await run_in_threadpool(self.storage.move, temp, uri, "key")
        finally:
            if not whole:
                await run_in_threadpool(self.storage.remove, temp, "key")
        return {"uri": uri, "size": size} if whole else None

    def open(self, path: str):
        """The object's size and an iterator over its bytes."""
        uri = self.uri(path)
        found = [o for o in self.storage.list_objects(uri, "key") if o.uri == uri]
        if not found:
            raise ResourceNotFoundException(f"No object {uri}.")
        fh = self.storage.open_input(found[0], "rb", "key")

        def chunks():
            with fh:
                while data := fh.read(CHUNK):
                    yield data

        return found[0].size, iterate_in_threadpool(chunks())


def job_summaries(store: Store, everything: bool = False, limit: int | None = None) -> list[dict]:
    """The job queue with each job's resource status, failure reason, name, last update and
    progress (running ones); with ``limit``, only the newest jobs (the CLI and the console)."""
    rows = job_rows(store, None if everything else ("queued", "running", "cancel"))
    if limit is not None:
        rows = sorted(rows, key=lambda r: -(r["enqueued"] or 0))[:limit]
    now = time.time()
    out = []
    for r in rows:
        resource = store.get(r["arn"])
        doc = resource.doc if resource is not None else {}
        out.append({"arn": r["arn"], "kind": r["kind"], "state": r["state"], "attempts": r["attempts"],
                    "worker": r["worker"], "status": doc.get("status"), "failureReason": doc.get("failureReason"),
                    "name": doc.get("jobName") or doc.get("name") or r["arn"].split(":", 5)[-1],
                    "enqueued": r["enqueued"], "updated": resource.updated if resource is not None else None,
                    "heartbeatAge": round(now - r["heartbeat"], 1) if r["heartbeat"] and r["state"] != "done" else None,
                    "progress": progress(r["progress"], now) if r["state"] in ("running", "cancel") else None})
    return out


def _bounds(query: dict[str, list[str]]) -> dict[str, float]:
    """``since`` and ``until`` of a query string, as epoch seconds."""
    out = {}
    for name in ("since", "until"):
        value = (query.get(name) or [""])[0]
        if value:
            try:
                out[name] = float(value)
            except ValueError:
                raise InvalidInputException(f"Invalid {name}: {value!r} is not epoch seconds.") from None
    return out


def progress(raw: dict | None, now: float) -> dict | None:
    """A running job's progress with a total, a percent and an estimate of the time left (from the
    rate so far), in records or in bytes, whichever the job knows the total of."""
    if not raw:
        return None
    done, total = raw.get("done"), raw.get("total")
    if raw.get("bytes_total"):
        done, total, unit = raw.get("bytes_done") or 0, raw["bytes_total"], "bytes"
    else:
        unit = "records"
    out = {"done": done, "total": total, "unit": unit, **{k: v for k, v in raw.items() if k in ("stage", "errors")}}
    if done is not None and total:
        out["percent"] = round(100.0 * done / total, 1)
        since = raw.get("since")
        if since is not None and done > 0 and now > since:
            out["secondsLeft"] = round((now - since) * (total - done) / done, 1)
    return out
