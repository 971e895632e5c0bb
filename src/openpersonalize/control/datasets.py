"""Dataset groups, schemas and datasets."""

from __future__ import annotations

import json
import uuid

from ..data.rows import remove_dataset_files
from ..data.schemas import check_evolution, check_for_dataset, normalise_dataset_type, parse_schema
from ..errors import InvalidInputException, ResourceAlreadyExistsException, ResourceInUseException
from .base import (
    ACTIVE,
    IN_FLIGHT,
    Context,
    Rules,
    create_row,
    describe,
    list_page,
    name_free,
    now,
    quota,
    require,
    require_active,
)


class DatasetGroupOperations:
    def create_dataset_group(self, ctx: Context, p: dict) -> dict:
        arn = ctx.arn("dataset-group", p["name"])
        limit = ctx.settings.max_dataset_groups
        rules = Rules(ctx, "dataset-group")
        rules.check(name_free(ctx, arn),
                    quota(ctx, "dataset-group", limit, f"Cannot create a dataset group. More than {limit} "
                          "dataset groups exist. Please delete some and try again."))
        doc = {"name": p["name"], "status": ACTIVE, "roleArn": p.get("roleArn"),
               "kmsKeyArn": p.get("kmsKeyArn"), "domain": p.get("domain")}
        create_row(ctx, "dataset-group", arn, p["name"], doc, rules=rules, tags=p.get("tags"))
        return {"datasetGroupArn": arn, "domain": p.get("domain")}

    def describe_dataset_group(self, ctx: Context, p: dict) -> dict:
        return describe(ctx, p["datasetGroupArn"], "dataset-group")

    def list_dataset_groups(self, ctx: Context, p: dict) -> dict:
        return list_page(ctx, p, "dataset-group")

    def delete_dataset_group(self, ctx: Context, p: dict) -> dict:
        arn = p["datasetGroupArn"]
        require(ctx, arn, "dataset-group")
        for blocker in ("dataset", "event-tracker", "solution", "recommender"):
            rows = ctx.store.query(blocker, group_arn=arn, limit=1)
            if rows:
                raise ResourceInUseException(f"Resource {arn} is in use by {rows[0].arn}. "
                                             f"Delete its {blocker.replace('-', ' ')}s first.")
        with ctx.store.transaction() as conn:
            # Filters and metric attributions go with their group.
            filters = []
            for kind in ("filter", "metric-attribution"):
                for row in ctx.store.query(kind, group_arn=arn, conn=conn):
                    ctx.store.delete(row.arn, conn=conn)
                    if kind == "filter":
                        filters.append(row.arn)
            ctx.store.delete(arn, conn=conn)
        for filter_arn in filters:
            ctx.state.forget_filter(filter_arn)
        ctx.state.forget_group(arn)
        return {}


class SchemaOperations:
    def create_schema(self, ctx: Context, p: dict) -> dict:
        arn = ctx.arn("schema", p["name"])
        rules = Rules(ctx, "schema")
        rules.check(name_free(ctx, arn))
        parse_schema(p["schema"])
        limit = ctx.settings.max_schemas
        rules.check(quota(ctx, "schema", limit, f"Cannot create a schema. More than {limit} schemas exist."))
        doc = {"name": p["name"], "schema": p["schema"], "domain": p.get("domain")}
        create_row(ctx, "schema", arn, p["name"], doc, rules=rules)
        return {"schemaArn": arn}

    def describe_schema(self, ctx: Context, p: dict) -> dict:
        return describe(ctx, p["schemaArn"], "schema")

    def list_schemas(self, ctx: Context, p: dict) -> dict:
        return list_page(ctx, p, "schema")

    def delete_schema(self, ctx: Context, p: dict) -> dict:
        arn = p["schemaArn"]
        require(ctx, arn, "schema")
        for row in ctx.store.query("dataset"):
            if row.doc.get("schemaArn") == arn:
                raise ResourceInUseException(f"Resource {arn} is in use by {row.arn}.")
        ctx.store.delete(arn)
        return {}


class DatasetOperations:
    def create_dataset(self, ctx: Context, p: dict) -> dict:
        group = require(ctx, p["datasetGroupArn"], "dataset-group")
        require_active(group, "Dataset group")
        schema_row = require(ctx, p["schemaArn"], "schema")
        dataset_type = normalise_dataset_type(p["datasetType"])
        domain = group.doc.get("domain")
        schema_domain = schema_row.doc.get("domain")
        if domain != schema_domain:
            raise InvalidInputException(
                f"Invalid schemaArn: '{schema_row.arn}' was created for domain {schema_domain or 'none'}, "
                f"but dataset group {group.arn} has domain {domain or 'none'}; they must match.")
        check_for_dataset(parse_schema(schema_row.doc["schema"]), dataset_type, domain)
        arn = ctx.arn("dataset", group.name, dataset_type)

        def one_per_type(conn=None) -> None:  # the ARN names the group and the type
            if ctx.store.get(arn, conn=conn) is not None:
                raise ResourceAlreadyExistsException(
                    f"Another resource with Arn {arn} already exists: dataset group {group.arn} "
                    f"already has a {dataset_type} dataset.")

        rules = Rules(ctx, "dataset")
        rules.check(one_per_type)
        doc = {"name": p["name"], "datasetGroupArn": group.arn, "datasetType": dataset_type,
               "schemaArn": schema_row.arn, "status": ACTIVE}
        if dataset_type == "ACTION_INTERACTIONS":
            doc["trackingId"] = str(uuid.uuid4())
        create_row(ctx, "dataset", arn, p["name"], doc, rules=rules, group_arn=group.arn, tags=p.get("tags"))
        return {"datasetArn": arn}

    def describe_dataset(self, ctx: Context, p: dict) -> dict:
        return describe(ctx, p["datasetArn"], "dataset")

    def list_datasets(self, ctx: Context, p: dict) -> dict:
        return list_page(ctx, p, "dataset", group_arn=p.get("datasetGroupArn"))

    def update_dataset(self, ctx: Context, p: dict) -> dict:
        row = require(ctx, p["datasetArn"], "dataset")
        require_active(row, "Dataset")
        new_schema = require(ctx, p["schemaArn"], "schema")
        old = parse_schema(require(ctx, row.doc["schemaArn"], "schema").doc["schema"])
        new = parse_schema(new_schema.doc["schema"])
        group = require(ctx, row.group_arn, "dataset-group")
        check_for_dataset(new, row.doc["datasetType"], group.doc.get("domain"))
        check_evolution(old, new)
        stamp = now()
        ctx.store.update_doc(row.arn, {
            "schemaArn": new_schema.arn,
            "latestDatasetUpdate": {"schemaArn": new_schema.arn, "status": ACTIVE,
                                    "creationDateTime": stamp, "lastUpdatedDateTime": stamp},
        })
        ctx.state.forget_dataset(row.arn, row.group_arn)  # filter data in the new schema
        return {"datasetArn": row.arn}

    def delete_dataset(self, ctx: Context, p: dict) -> dict:
        arn = p["datasetArn"]
        row = require(ctx, arn, "dataset")
        busy = ctx.store.query("dataset-import-job", parent_arn=arn, statuses=IN_FLIGHT, limit=1)
        busy += ctx.store.query("solution-version", group_arn=row.group_arn, statuses=IN_FLIGHT, limit=1)
        if busy:
            raise ResourceInUseException(f"Resource {arn} is in use by {busy[0].arn}, which is "
                                         f"{busy[0].status}.")
        ctx.store.delete(arn)
        remove_dataset_files(ctx.store, ctx.settings, arn)  # its rows go with it
        ctx.state.forget_dataset(arn, row.group_arn)
        return {}


def dataset_schema(ctx: Context, dataset_arn: str):
    """The parsed schema of a dataset."""
    dataset = require(ctx, dataset_arn, "dataset")
    return parse_schema(require(ctx, dataset.doc["schemaArn"], "schema").doc["schema"])


__all__ = ["DatasetGroupOperations", "SchemaOperations", "DatasetOperations", "dataset_schema", "json"]
