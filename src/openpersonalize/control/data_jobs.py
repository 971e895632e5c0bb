"""Dataset import jobs, dataset export jobs and data deletion jobs."""

from __future__ import annotations

import re

from ..errors import InvalidInputException, ResourceInUseException
from ..store.files import check_uri
from .base import (
    CREATE_PENDING,
    IN_FLIGHT,
    Context,
    Rules,
    create_row,
    describe,
    invalid,
    list_page,
    name_free,
    pending_jobs,
    quota,
    require,
    require_active,
)

_S3_URI = re.compile(r"s3://[A-Za-z0-9][A-Za-z0-9.\-_]{0,254}(/.*)?")


def check_s3_path(member: str, value: str) -> str:
    """An ``s3://bucket/key`` location; anything else is refused with the member named."""
    if not _S3_URI.fullmatch(value):
        raise invalid(member, value, "is not an S3 location of the form s3://bucket/key.")
    return check_uri(value, member)  # no '..', empty segments or control characters


class DatasetImportJobOperations:
    def create_dataset_import_job(self, ctx: Context, p: dict) -> dict:
        arn = ctx.arn("dataset-import-job", p["jobName"])
        rules = Rules(ctx, "dataset-import-job")
        rules.check(name_free(ctx, arn))
        dataset = require(ctx, p["datasetArn"], "dataset")
        require_active(dataset, "Dataset")
        check_s3_path("dataSource.dataLocation", p["dataSource"].get("dataLocation") or "")
        mode = p.get("importMode") or "FULL"
        if mode == "INCREMENTAL":
            done = [r for r in ctx.store.query("dataset-import-job", parent_arn=dataset.arn)
                    if r.status == "ACTIVE"]
            if not done:
                raise InvalidInputException(
                    f"Invalid importMode: 'INCREMENTAL' needs an earlier successful import into "
                    f"{dataset.arn}; run a FULL import first.")
        if p.get("publishAttributionMetricsToS3") and not ctx.store.query(
                "metric-attribution", group_arn=dataset.group_arn, limit=1):
            raise InvalidInputException(
                "Invalid publishAttributionMetricsToS3: 'true' needs a metric attribution in dataset group "
                f"{dataset.group_arn}.")

        def one_in_progress(conn=None) -> None:
            busy = ctx.store.query("dataset-import-job", parent_arn=dataset.arn, statuses=IN_FLIGHT, limit=1,
                                   conn=conn)
            if busy:
                raise ResourceInUseException(
                    f"Dataset {dataset.arn} already has an import job in progress: {busy[0].arn}.")

        rules.check(one_in_progress, pending_jobs(ctx, "dataset-import-job"))
        doc = {"jobName": p["jobName"], "datasetArn": dataset.arn, "dataSource": p["dataSource"],
               "roleArn": p.get("roleArn"), "status": CREATE_PENDING, "importMode": mode,
               "publishAttributionMetricsToS3": p.get("publishAttributionMetricsToS3", False)}
        create_row(ctx, "dataset-import-job", arn, p["jobName"], doc, rules=rules,
                   group_arn=dataset.group_arn, parent_arn=dataset.arn, tags=p.get("tags"))
        return {"datasetImportJobArn": arn}

    def describe_dataset_import_job(self, ctx: Context, p: dict) -> dict:
        return describe(ctx, p["datasetImportJobArn"], "dataset-import-job")

    def list_dataset_import_jobs(self, ctx: Context, p: dict) -> dict:
        return list_page(ctx, p, "dataset-import-job", parent_arn=p.get("datasetArn"))


class DatasetExportJobOperations:
    def create_dataset_export_job(self, ctx: Context, p: dict) -> dict:
        arn = ctx.arn("dataset-export-job", p["jobName"])
        rules = Rules(ctx, "dataset-export-job")
        rules.check(name_free(ctx, arn))
        dataset = require(ctx, p["datasetArn"], "dataset")
        require_active(dataset, "Dataset")
        if dataset.doc["datasetType"] in ("ACTIONS", "ACTION_INTERACTIONS"):
            raise invalid("datasetArn", dataset.arn, "is an Actions or Action_Interactions dataset, "
                          "which cannot be exported.")
        check_s3_path("jobOutput.s3DataDestination.path", p["jobOutput"]["s3DataDestination"]["path"])
        rules.check(pending_jobs(ctx, "dataset-export-job"))
        doc = {"jobName": p["jobName"], "datasetArn": dataset.arn,
               "ingestionMode": p.get("ingestionMode") or "PUT", "roleArn": p["roleArn"],
               "status": CREATE_PENDING, "jobOutput": p["jobOutput"]}
        create_row(ctx, "dataset-export-job", arn, p["jobName"], doc, rules=rules,
                   group_arn=dataset.group_arn, parent_arn=dataset.arn, tags=p.get("tags"))
        return {"datasetExportJobArn": arn}

    def describe_dataset_export_job(self, ctx: Context, p: dict) -> dict:
        return describe(ctx, p["datasetExportJobArn"], "dataset-export-job")

    def list_dataset_export_jobs(self, ctx: Context, p: dict) -> dict:
        return list_page(ctx, p, "dataset-export-job", parent_arn=p.get("datasetArn"))


class DataDeletionJobOperations:
    def create_data_deletion_job(self, ctx: Context, p: dict) -> dict:
        arn = ctx.arn("data-deletion-job", p["jobName"])
        rules = Rules(ctx, "data-deletion-job")
        rules.check(name_free(ctx, arn))
        group = require(ctx, p["datasetGroupArn"], "dataset-group")
        require_active(group, "Dataset group")
        check_s3_path("dataSource.dataLocation", p["dataSource"].get("dataLocation") or "")
        rules.check(quota(ctx, "data-deletion-job", 5, "More than 5 data deletion jobs with PENDING status "
                          f"in dataset group {group.arn}.", group_arn=group.arn, statuses=("PENDING",)))
        doc = {"jobName": p["jobName"], "datasetGroupArn": group.arn, "dataSource": p["dataSource"],
               "roleArn": p["roleArn"], "status": "PENDING"}
        create_row(ctx, "data-deletion-job", arn, p["jobName"], doc, rules=rules, group_arn=group.arn,
                   tags=p.get("tags"))
        return {"dataDeletionJobArn": arn}

    def describe_data_deletion_job(self, ctx: Context, p: dict) -> dict:
        return describe(ctx, p["dataDeletionJobArn"], "data-deletion-job")

    def list_data_deletion_jobs(self, ctx: Context, p: dict) -> dict:
        return list_page(ctx, p, "data-deletion-job", group_arn=p.get("datasetGroupArn"))
