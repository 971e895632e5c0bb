"""Resources that hang off a dataset group: event trackers, filters and metric attributions."""

from __future__ import annotations

import uuid

from ..errors import (
    InvalidInputException,
    InvalidNextTokenException,
    ResourceAlreadyExistsException,
    ResourceInUseException,
    ResourceNotFoundException,
)
from ..filters.lifecycle import check_group_fields, check_new_filter
from .base import (
    ACTIVE,
    CREATE_PENDING,
    IN_FLIGHT,
    Context,
    Rules,
    create_row,
    describe,
    invalid,
    list_page,
    name_free,
    quota,
    require,
    require_active,
    short_id,
)
from .data_jobs import check_s3_path


class EventTrackerOperations:
    def create_event_tracker(self, ctx: Context, p: dict) -> dict:
        group = require(ctx, p["datasetGroupArn"], "dataset-group")
        require_active(group, "Dataset group")

        def name_free_one_per_group(conn=None) -> None:  # the ARN is random: neither is in it
            for tracker in ctx.store.query("event-tracker", conn=conn):
                if tracker.name == p["name"]:
                    raise ResourceAlreadyExistsException(
                        f"Another resource with name {p['name']} already exists: {tracker.arn}.")
                if tracker.group_arn == group.arn:
                    raise ResourceAlreadyExistsException(
                        f"Dataset group {group.arn} already has an event tracker: {tracker.arn}.")

        rules = Rules(ctx, "event-tracker")
        rules.check(name_free_one_per_group)
        arn = ctx.arn("event-tracker", short_id())
        tracking_id = str(uuid.uuid4())
        doc = {"name": p["name"], "accountId": ctx.account, "trackingId": tracking_id,
               "datasetGroupArn": group.arn, "status": ACTIVE}
        create_row(ctx, "event-tracker", arn, p["name"], doc, rules=rules, group_arn=group.arn,
                   tags=p.get("tags"))
        return {"eventTrackerArn": arn, "trackingId": tracking_id}

    def describe_event_tracker(self, ctx: Context, p: dict) -> dict:
        return describe(ctx, p["eventTrackerArn"], "event-tracker")

    def list_event_trackers(self, ctx: Context, p: dict) -> dict:
        return list_page(ctx, p, "event-tracker", group_arn=p.get("datasetGroupArn"))

    def delete_event_tracker(self, ctx: Context, p: dict) -> dict:
        require(ctx, p["eventTrackerArn"], "event-tracker")
        ctx.store.delete(p["eventTrackerArn"])  # the events it recorded stay in the dataset
        return {}


class FilterOperations:
    def create_filter(self, ctx: Context, p: dict) -> dict:
        arn = ctx.arn("filter", p["name"])
        rules = Rules(ctx, "filter")
        rules.check(name_free(ctx, arn))
        group = require(ctx, p["datasetGroupArn"], "dataset-group")
        require_active(group, "Dataset group")
        expression = p["filterExpression"]
        limit = ctx.settings.max_filters_per_group
        rules.check(quota(ctx, "filter", limit, f"Cannot create a filter. More than {limit} filters in "
                          f"dataset group {group.arn}.", group_arn=group.arn))
        # Grammar, static rules and field references are checked now; the job compiles the
        # filter against the schemas as they are when it runs, and ends ACTIVE or CREATE FAILED.
        info = check_new_filter(ctx.store, group.arn, expression)

        def fields_within_limit(conn=None) -> None:  # the distinct fields of the group's filters
            check_group_fields(ctx.store.on(conn), group.arn, info)

        rules.add(fields_within_limit)
        doc = {"name": p["name"], "datasetGroupArn": group.arn, "filterExpression": expression,
               "status": CREATE_PENDING}
        create_row(ctx, "filter", arn, p["name"], doc, rules=rules, group_arn=group.arn, tags=p.get("tags"))
        return {"filterArn": arn}

    def describe_filter(self, ctx: Context, p: dict) -> dict:
        return describe(ctx, p["filterArn"], "filter")

    def list_filters(self, ctx: Context, p: dict) -> dict:
        return list_page(ctx, p, "filter", group_arn=p.get("datasetGroupArn"))

    def delete_filter(self, ctx: Context, p: dict) -> dict:
        arn = p["filterArn"]
        require(ctx, arn, "filter")
        for kind in ("batch-inference-job", "batch-segment-job"):
            for job in ctx.store.query(kind, statuses=IN_FLIGHT):
                if job.doc.get("filterArn") == arn:
                    raise ResourceInUseException(f"Resource {arn} is in use by {job.arn}, which is "
                                                 f"{job.status}.")
        ctx.store.delete(arn)
        ctx.state.forget_filter(arn)
        return {}


def _check_metrics(metrics: list[dict], member: str) -> None:
    names = [m["metricName"] for m in metrics]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise invalid(member, sorted(duplicates)[0], "is named twice; metric names must be unique.")
    for m in metrics:
        expression = m["expression"].strip()
        if not (expression.upper().startswith(("SUM(", "SAMPLECOUNT(")) and expression.endswith(")")):
            raise invalid(f"{member}.expression", m["expression"],
                          "must be SUM(DatasetType.COLUMN) or SAMPLECOUNT().")


class MetricAttributionOperations:
    def create_metric_attribution(self, ctx: Context, p: dict) -> dict:
        arn = ctx.arn("metric-attribution", p["name"])
        rules = Rules(ctx, "metric-attribution")
        rules.check(name_free(ctx, arn))
        group = require(ctx, p["datasetGroupArn"], "dataset-group")
        require_active(group, "Dataset group")

        def one_per_group(conn=None) -> None:
            existing = ctx.store.query("metric-attribution", group_arn=group.arn, limit=1, conn=conn)
            if existing:
                raise ResourceAlreadyExistsException(
                    f"Dataset group {group.arn} already has a metric attribution: {existing[0].arn}.")

        rules.check(one_per_group)
        _check_metrics(p["metrics"], "metrics")
        destination = (p["metricsOutputConfig"].get("s3DataDestination") or {}).get("path")
        if destination:
            check_s3_path("metricsOutputConfig.s3DataDestination.path", destination)
        doc = {"name": p["name"], "datasetGroupArn": group.arn,
               "metricsOutputConfig": p["metricsOutputConfig"], "status": ACTIVE, "_metrics": p["metrics"]}
        create_row(ctx, "metric-attribution", arn, p["name"], doc, rules=rules, group_arn=group.arn)
        return {"metricAttributionArn": arn}

    def describe_metric_attribution(self, ctx: Context, p: dict) -> dict:
        return describe(ctx, p["metricAttributionArn"], "metric-attribution")

    def list_metric_attributions(self, ctx: Context, p: dict) -> dict:
        return list_page(ctx, p, "metric-attribution", group_arn=p.get("datasetGroupArn"))

    def list_metric_attribution_metrics(self, ctx: Context, p: dict) -> dict:
        if not p.get("metricAttributionArn"):
            raise InvalidInputException("Invalid metricAttributionArn: it is required.")
        row = require(ctx, p["metricAttributionArn"], "metric-attribution")
        metrics = row.doc.get("_metrics") or []
        limit = p.get("maxResults") or 100
        token = p.get("nextToken") or "0"
        if not token.isdigit():
            raise InvalidNextTokenException()
        start = int(token)
        out = {"metrics": metrics[start:start + limit]}
        if start + limit < len(metrics):
            out["nextToken"] = str(start + limit)
        return out

    def update_metric_attribution(self, ctx: Context, p: dict) -> dict:
        if not p.get("metricAttributionArn"):
            raise InvalidInputException("Invalid metricAttributionArn: it is required.")
        require(ctx, p["metricAttributionArn"], "metric-attribution")
        # Read, check and write as one step: concurrent updates neither lose each other's metrics
        # nor together pass the unique-name and ten-metric rules.
        with ctx.store.serialised(f"update:{p['metricAttributionArn']}") as conn:
            row = ctx.store.get(p["metricAttributionArn"], conn=conn)
            if row is None:
                raise ResourceNotFoundException.for_arn(p["metricAttributionArn"])
            removed = p.get("removeMetrics") or []
            metrics = [m for m in row.doc.get("_metrics") or [] if m["metricName"] not in removed]
            metrics += p.get("addMetrics") or []
            _check_metrics(metrics, "addMetrics")
            if len(metrics) > 10:
                raise invalid("addMetrics", len(metrics), "would give more than 10 metrics.")
            changes = {"_metrics": metrics}
            if p.get("metricsOutputConfig"):
                changes["metricsOutputConfig"] = p["metricsOutputConfig"]
            ctx.store.update_doc(row.arn, changes, conn=conn)
        return {"metricAttributionArn": row.arn}

    def delete_metric_attribution(self, ctx: Context, p: dict) -> dict:
        require(ctx, p["metricAttributionArn"], "metric-attribution")
        ctx.store.delete(p["metricAttributionArn"])
        return {}
