"""The console's pages: server-rendered HTML (Jinja2), with htmx for the parts that update live.

Every page reads the same store the API serves from; every action goes through the same
operations as boto3 (calls.py). Mounted at ``/console/`` by the API application; it is reached
only by requests under that path, so the real-time path pays nothing for it.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from html import escape
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..api.operator_endpoints import job_summaries
from ..control.base import operation_for
from ..errors import ServiceError
from . import charts, session
from .calls import invoke

PREFIX = "/console"
#: What a dataset group holds, in the order the group page lists it.
GROUP_KINDS = ("dataset", "dataset-import-job", "dataset-export-job", "data-deletion-job", "solution", "filter",
               "campaign", "recommender", "event-tracker", "batch-inference-job", "batch-segment-job",
               "metric-attribution")
TITLES = {"dataset": "Datasets", "dataset-import-job": "Import jobs", "dataset-export-job": "Export jobs",
          "data-deletion-job": "Data deletion jobs", "solution": "Solutions", "filter": "Filters",
          "campaign": "Campaigns", "recommender": "Recommenders", "event-tracker": "Event trackers",
          "batch-inference-job": "Batch inference jobs", "batch-segment-job": "Batch segment jobs",
          "metric-attribution": "Metric attributions", "solution-version": "Solution versions"}
DELETABLE = {"dataset-group", "dataset", "schema", "solution", "campaign", "filter", "event-tracker", "recommender",
             "metric-attribution"}
CHART_ROWS = 2_000_000  # rows a data page reads at most (the first ones; the page says so)
SHOWN_METRICS = ("normalized_discounted_cumulative_gain_at_10", "precision_at_10", "mean_reciprocal_rank_at_25",
                 "coverage")


def _when(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)


def _public(doc: dict) -> dict:
    """A describe document as the API shows it (private members start with ``_``)."""
    return {k: v for k, v in doc.items() if not k.startswith("_")}


class Console:
    def __init__(self, service):
        self.service = service
        self.store = service.store
        self.env = Environment(loader=PackageLoader("openpersonalize.console", "templates"),
                               autoescape=select_autoescape(["html"]))
        self.env.filters.update(when=_when, quote=lambda s: quote(str(s), safe=""),
                                pretty=lambda d: json.dumps(d, indent=2, default=str, sort_keys=True))
        self.env.globals.update(prefix=PREFIX, titles=TITLES)

    # -- plumbing ------------------------------------------------------------------------------

    def app(self) -> Starlette:
        routes = [Route("/", self.index), Route("/group", self.group), Route("/resource", self.resource),
                  Route("/delete", self.delete, methods=["GET", "POST"]), Route("/jobs", self.jobs),
                  Route("/jobs/rows", self.job_rows_fragment), Route("/dataset", self.dataset),
                  Route("/solution", self.solution), Route("/try", self.try_it, methods=["GET", "POST"]),
                  Route("/campaign/create", self.create_campaign, methods=["POST"]),
                  Route("/batch/create", self.create_batch_job, methods=["POST"]),
                  Route("/recommender/stop", self.stop_recommender, methods=["POST"]),
                  Route("/compare", self.compare), Route("/explain", self.explain), Route("/signin", self.signin, methods=["GET", "POST"]),
                  Route("/signout", self.signout, methods=["POST"]),
                  Mount("/static", StaticFiles(directory=str(Path(__file__).parent / "static")), name="static")]
        return Starlette(routes=routes)

    async def __call__(self, scope, receive, send) -> None:
        """Route ``/console/...`` to the pages, after the sign-in check when keys are configured."""
        path = scope["path"][len(PREFIX):] or "/"
        # Starlette's convention: ``path`` keeps the mount prefix, ``root_path`` names it.
        scope = dict(scope, root_path=PREFIX, path=PREFIX + path)
        if scope["method"] == "POST" and not _same_origin(scope):
            # Every action is a POST: one from another site's page (a forged form) is refused.
            await HTMLResponse("<p>Refused: the form was not sent from this console's own pages.</p>",
                               status_code=403)(scope, receive, send)
            return
        keys = self.service.keys
        if keys and not path.startswith(("/signin", "/static/")):
            request = Request(scope)
            if session.check(keys, request.cookies.get(session.COOKIE)) is None:
                await RedirectResponse(f"{PREFIX}/signin", status_code=303)(scope, receive, send)
                return
        await self._app(scope, receive, send)

    @property
    def _app(self):
        if not hasattr(self, "_starlette"):
            self._starlette = self.app()
        return self._starlette

    def page(self, name: str, status: int = 200, **values) -> HTMLResponse:
        values.setdefault("signed_in", bool(self.service.keys))
        return HTMLResponse(self.env.get_template(name).render(**values), status_code=status)

    async def read(self, fn, *args):
        return await run_in_threadpool(fn, *args)

    # -- pages ----------------------------------------------------------------------------------

    async def index(self, request: Request):
        def gather():
            groups = []
            for row in self.store.query("dataset-group"):
                counts = Counter(r.kind for r in self.store.query(GROUP_KINDS, group_arn=row.arn))
                groups.append({"row": row, "counts": counts})
            recent = sorted(self._jobs(everything=True), key=lambda j: -(j["updated"] or 0))[:15]
            return groups, recent
        groups, recent = await self.read(gather)
        return self.page("index.html", groups=groups, recent=recent)

    async def group(self, request: Request):
        arn = request.query_params.get("arn", "")
        def gather():
            row = self.store.get(arn)
            if row is None or row.kind != "dataset-group":
                return None, {}, {}
            members = {kind: self.store.query(kind, group_arn=arn) for kind in GROUP_KINDS}
            datasets = {d.arn: self._dataset_summary(d) for d in members["dataset"]}
            return row, members, datasets
        row, members, datasets = await self.read(gather)
        if row is None:
            return self.page("missing.html", status=404, arn=arn)
        return self.page("group.html", row=row, members=members, datasets=datasets, kinds=GROUP_KINDS)

    def _dataset_summary(self, ds_row) -> dict:
        from ..data.rows import Dataset

        try:
            ds = Dataset(self.store, self.service.settings, ds_row.arn, row=ds_row)
            bulk = sum(p.get("rows", 0) for p in ds.bulk_state().parts)
            put = ds.records.count(ds.arn)
            fields = [f.name for f in ds.schema.fields]
        except Exception:
            bulk, put, fields = None, None, []
        newest = self.store.query("dataset-import-job", parent_arn=ds_row.arn, limit=1)  # newest first
        last = newest[0] if newest else None
        return {"bulk": bulk, "put": put, "fields": fields, "last_import": last}

    async def resource(self, request: Request):
        arn = request.query_params.get("arn", "")
        def gather():
            row = self.store.get(arn)
            if row is None:
                return None, [], None
            children = self.store.query(GROUP_KINDS + ("solution-version",), parent_arn=arn)
            group = self.store.get(row.group_arn) if row.group_arn else None
            return row, children, group
        row, children, group = await self.read(gather)
        if row is None:
            return self.page("missing.html", status=404, arn=arn)
        doc = _public(row.doc)
        history = row.doc.get("_statusHistory") or []
        preview = await self.read(self._batch_preview, row) if row.kind in ("batch-inference-job", "batch-segment-job") \
            and row.status == "ACTIVE" else None
        return self.page("resource.html", row=row, doc=doc, children=children, group=group,
                         deletable=row.kind in DELETABLE, history=history, preview=preview,
                         totals=row.doc.get("_totals") if row.kind == "metric-attribution" else None,
                         notice=request.query_params.get("notice"), error=request.query_params.get("error"))

    def _batch_preview(self, row, lines: int = 5) -> list[dict]:
        """Each output file of a batch job: its first lines and how many lines carry an error."""
        from ..store.files import Storage

        storage = Storage(self.service.settings)
        output = row.doc["jobOutput"]["s3DataDestination"]["path"]
        out = []
        try:
            objects = [o for o in storage.list_objects(output, "path") if o.uri.endswith(".out")][:10]
        except ServiceError:
            return out
        for obj in objects:
            first, errors, total = [], 0, 0
            with storage.open_input(obj, "rb", "path") as fh:
                for raw in fh:
                    total += 1
                    if len(first) < lines:
                        first.append(raw.decode("utf-8", "replace").strip()[:400])
                    if b'"error": null' not in raw and b'"error":null' not in raw:
                        errors += 1
            out.append({"uri": obj.uri, "lines": total, "errors": errors, "first": first})
        return out

    async def explain(self, request: Request):
        """The explanation of one recommended item (runtime.explain), as a fragment of the try-it page."""
        from ..control.base import Context
        from ..runtime import explain

        arn = request.query_params.get("arn", "")
        member = "campaignArn" if ":campaign/" in arn else "recommenderArn"
        params = {member: arn, "userId": request.query_params.get("userId", ""),
                  "itemId": request.query_params.get("itemId", "")}
        ctx = Context(settings=self.service.settings, store=self.store, region=self.service.settings.region,
                      request_id="console", state=self.service.state)
        try:
            found = await self.read(explain, ctx, params)
        except ServiceError as exc:
            return HTMLResponse(f'<p class="error">{escape(exc.code)}: {escape(exc.message)}</p>')
        return self.page("explain.html", found=found)

    async def delete(self, request: Request):
        arn = request.query_params.get("arn", "")
        row = await self.read(self.store.get, arn)
        if row is None or row.kind not in DELETABLE:
            return self.page("missing.html", status=404, arn=arn)
        if request.method == "GET":
            return self.page("delete.html", row=row)
        if (await request.form()).get("confirm") != "on":
            return self.page("delete.html", row=row, error="Tick the confirmation box to delete.", status=400)
        try:
            operation, member = operation_for("Delete", row.kind)
            await self.read(invoke, self.service, operation, {member: arn})
        except ServiceError as exc:
            return self.page("delete.html", row=row, error=f"{exc.code}: {exc.message}", status=400)
        target = f"{PREFIX}/group?arn={quote(row.group_arn, safe='')}" if row.group_arn else f"{PREFIX}/"
        return RedirectResponse(target, status_code=303)

    def _jobs(self, everything: bool = False) -> list[dict]:
        return job_summaries(self.store, everything, limit=200)  # the newest: a page stays cheap

    async def jobs(self, request: Request):
        rows = await self.read(self._jobs, True)
        return self.page("jobs.html", jobs=sorted(rows, key=lambda j: -(j["updated"] or 0))[:200])

    async def job_rows_fragment(self, request: Request):
        rows = await self.read(self._jobs, True)
        return self.page("jobs_rows.html", jobs=sorted(rows, key=lambda j: -(j["updated"] or 0))[:200])

    async def dataset(self, request: Request):
        arn = request.query_params.get("arn", "")
        def gather():
            from ..data.rows import Dataset

            row = self.store.get(arn)
            if row is None or row.kind != "dataset":
                return None, None
            ds = Dataset(self.store, self.service.settings, arn, row=row)
            return row, self._data_charts(ds)
        row, found = await self.read(gather)
        if row is None:
            return self.page("missing.html", status=404, arn=arn)
        return self.page("dataset.html", row=row, **found)

    def _data_charts(self, ds) -> dict:
        """Interactions per day and per event type, the most popular items, history lengths."""
        per_day, per_type, per_item, per_user = Counter(), Counter(), Counter(), Counter()
        time_col, type_col = ds.column("TIMESTAMP"), ds.column("EVENT_TYPE")
        item_col, user_col = ds.column("ITEM_ID"), ds.column("USER_ID")
        rows, capped = 0, False
        for batch in itertools.chain(ds.iter_bulk(), ds.iter_put()):
            if rows >= CHART_ROWS:  # a page view reads at most this much of a big dataset
                capped = True
                break
            rows += batch.num_rows
            if time_col:
                days = (np.asarray(batch.column(time_col).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
                        // 86400)
                per_day.update(days.tolist())
            if type_col:
                per_type.update(batch.column(type_col).to_pylist())
            if item_col:
                per_item.update(batch.column(item_col).to_pylist())
            if user_col:
                per_user.update(batch.column(user_col).to_pylist())
        day_bars = [(datetime.fromtimestamp(d * 86400, timezone.utc).strftime("%Y-%m-%d"), float(n))
                    for d, n in sorted(per_day.items())][-365:]
        lengths = Counter(min(n, 50) for n in per_user.values())
        return {"rows": rows, "capped": capped, "users": len(per_user), "items": len(per_item),
                "per_day": charts.bars(day_bars, label="interactions per day"),
                "per_type": sorted(per_type.items(), key=lambda kv: -kv[1]),
                "type_chart": charts.bars([(str(k), float(v)) for k, v in per_type.most_common(20)],
                                          label="interactions per event type"),
                "popular": per_item.most_common(20),
                "lengths": charts.bars([(f"{k}{'+' if k == 50 else ''}", float(v)) for k, v in sorted(lengths.items())],
                                       label="users by history length")}

    async def solution(self, request: Request):
        arn = request.query_params.get("arn", "")
        def gather():
            row = self.store.get(arn)
            if row is None or row.kind != "solution":
                return None, []
            return row, sorted(self.store.query("solution-version", parent_arn=arn), key=lambda r: r.created)
        row, versions = await self.read(gather)
        if row is None:
            return self.page("missing.html", status=404, arn=arn)
        series = {}
        for v in versions:
            metrics = v.doc.get("_metrics") or {}
            if metrics:
                series[v.arn.rsplit("/", 1)[-1]] = [(k.replace("normalized_discounted_cumulative_gain", "ndcg"),
                                                     float(metrics.get(k, 0.0))) for k in SHOWN_METRICS]
        return self.page("solution.html", row=row, versions=versions, metrics=SHOWN_METRICS,
                         chart=charts.grouped(series, label="metrics of the versions"))

    async def try_it(self, request: Request):
        arn = request.query_params.get("arn", "")
        row = await self.read(self.store.get, arn)
        if row is None or row.kind not in ("campaign", "recommender"):
            return self.page("missing.html", status=404, arn=arn)
        form = dict(await request.form()) if request.method == "POST" else dict(request.query_params)
        values = {"userId": form.get("userId", ""), "itemId": form.get("itemId", ""), "filterArn": form.get("filterArn", ""),
                  "filterValues": form.get("filterValues", ""), "numResults": form.get("numResults", "10"),
                  "eventItem": form.get("eventItem", ""), "eventType": form.get("eventType", "click")}
        member = "campaignArn" if row.kind == "campaign" else "recommenderArn"
        filters = await self.read(lambda: self.store.query("filter", group_arn=row.group_arn))
        users = await self.read(self._some_users, row.group_arn)
        result = error = notice = None
        if form.get("action") == "event" and values["userId"] and values["eventItem"]:
            try:
                tracker = await self.read(lambda: next(iter(self.store.query("event-tracker", group_arn=row.group_arn)), None))
                if tracker is None:
                    raise ServiceError("The dataset group has no event tracker: create one to send events.")
                await self.read(invoke, self.service, "PutEvents", {
                    "trackingId": tracker.doc["trackingId"], "userId": values["userId"], "sessionId": "console",
                    "eventList": [{"eventType": values["eventType"] or "click", "itemId": values["eventItem"],
                                   "sentAt": time.time()}]}, "personalize-events")
                notice = f"Sent a {values['eventType'] or 'click'} event on {values['eventItem']}."
            except ServiceError as exc:
                error = f"{exc.code}: {exc.message}"
        if values["userId"] or values["itemId"]:
            params = {member: arn, "numResults": _count(values["numResults"])}
            if values["userId"]:
                params["userId"] = values["userId"]
            if values["itemId"]:
                params["itemId"] = values["itemId"]
            if values["filterArn"]:
                params["filterArn"] = values["filterArn"]
                if values["filterValues"].strip():
                    try:
                        params["filterValues"] = json.loads(values["filterValues"])
                    except ValueError:
                        error = "Filter values must be a JSON object, such as {\"GENRE\": \"\\\"Comedy\\\"\"}."
            if error is None or notice:
                try:
                    result = await self.read(invoke, self.service, "GetRecommendations", params, "personalize-runtime")
                except ServiceError as exc:
                    error = f"{exc.code}: {exc.message}"
        return self.page("try.html", row=row, values=values, filters=filters, users=users, result=result,
                         error=error, notice=notice)

    def _some_users(self, group_arn: str, n: int = 20) -> list[str]:
        from ..data.rows import group_datasets

        ds = group_datasets(self.store, self.service.settings, group_arn).get("INTERACTIONS")
        if ds is None or not ds.column("USER_ID"):
            return []
        seen: list[str] = []
        for batch in ds.iter_bulk():
            for user in batch.column(ds.column("USER_ID")).to_pylist():
                if user not in seen:
                    seen.append(user)
                    if len(seen) >= n:
                        return seen
        return seen

    async def _act(self, request: Request, name: str, params: dict, back: str):
        try:
            out = await self.read(invoke, self.service, name, params)
        except ServiceError as exc:
            return RedirectResponse(f"{PREFIX}/resource?arn={quote(back, safe='')}&error="
                                    f"{quote(exc.code + ': ' + exc.message, safe='')}", status_code=303)
        created = next((v for k, v in out.items() if k.endswith("Arn")), back)
        return RedirectResponse(f"{PREFIX}/resource?arn={quote(created, safe='')}&notice="
                                f"{quote(name + ' done', safe='')}", status_code=303)

    async def create_campaign(self, request: Request):
        form = await request.form()
        return await self._act(request, "CreateCampaign", {"name": form.get("name", ""),
                                                           "solutionVersionArn": form.get("solutionVersionArn", "")},
                               form.get("solutionVersionArn", ""))

    async def create_batch_job(self, request: Request):
        form = await request.form()
        params = {"jobName": form.get("jobName", ""), "solutionVersionArn": form.get("solutionVersionArn", ""),
                  "roleArn": form.get("roleArn") or "arn:aws:iam::000000000000:role/openpersonalize-console",
                  "jobInput": {"s3DataSource": {"path": form.get("input", "")}},
                  "jobOutput": {"s3DataDestination": {"path": form.get("output", "")}}}
        if form.get("numResults"):
            params["numResults"] = _count(form["numResults"], 25)
        return await self._act(request, "CreateBatchInferenceJob", params, form.get("solutionVersionArn", ""))

    async def stop_recommender(self, request: Request):
        form = await request.form()
        return await self._act(request, "StopRecommender", {"recommenderArn": form.get("recommenderArn", "")},
                               form.get("recommenderArn", ""))

    async def compare(self, request: Request):
        from ..attribution import compare

        groups = await self.read(self.store.query, "dataset-group")
        group, event_type = request.query_params.get("group", ""), request.query_params.get("eventType", "")
        result = error = None
        if group and event_type:
            try:
                result = await self.read(compare, self.store, self.service.settings, group, event_type)
            except ServiceError as exc:
                error = exc.message
        return self.page("compare.html", groups=groups, group=group, event_type=event_type, result=result, error=error)

    async def signin(self, request: Request):
        keys = self.service.keys
        if not keys:
            return RedirectResponse(f"{PREFIX}/", status_code=303)
        if request.method == "GET":
            return self.page("signin.html", signed_in=False)
        form = await request.form()
        access_key, secret = form.get("accessKey", ""), form.get("secretKey", "")
        if not session.valid_pair(keys, access_key, secret):
            return self.page("signin.html", signed_in=False, status=403,
                             error="The access key and secret key are not a pair this server is configured with.")
        response = RedirectResponse(f"{PREFIX}/", status_code=303)
        response.set_cookie(session.COOKIE, session.issue(keys, access_key), max_age=session.SESSION_SECONDS,
                            httponly=True, samesite="strict", path=PREFIX)
        return response

    async def signout(self, request: Request):
        response = RedirectResponse(f"{PREFIX}/signin", status_code=303)
        response.delete_cookie(session.COOKIE, path=PREFIX)
        return response


def _same_origin(scope) -> bool:
    """Whether a POST comes from a page of this server: its Origin (or, lacking one, its Referer)
    names the host the request was sent to. Browsers send Origin with every cross-site POST."""
    from urllib.parse import urlsplit

    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    host = headers.get("host", "")
    source = headers.get("origin") or headers.get("referer")
    if not source or source == "null":
        return False
    return urlsplit(source).netloc == host


def _count(value, default: int = 10) -> int:
    """A form's number of results: an integer from 1 to 500, else ``default``."""
    try:
        return min(max(int(value), 1), 500)
    except (TypeError, ValueError):
        return default
