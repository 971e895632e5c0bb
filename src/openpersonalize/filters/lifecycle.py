"""A filter resource's life: the checks CreateFilter makes, and the job that activates it."""

from __future__ import annotations

from ..data.schemas import Schema, parse_schema
from ..errors import InvalidInputException, LimitExceededException
from ..jobs.contract import job_body
from ..jobs.contract import JobContext, JobFailed
from ..store.metadata import Store
from .grammar import parse_filter
from .validate import MAX_FIELDS_PER_GROUP, FilterInfo, check_filter, filter_fields

_SHOWN = {"ITEMS": "Items", "USERS": "Users", "INTERACTIONS": "Interactions", "ACTIONS": "Actions",
          "ACTION_INTERACTIONS": "Action_Interactions"}


def group_schemas(store: Store, group_arn: str) -> dict[str, Schema]:
    """The parsed schema of each dataset of a group, keyed by dataset type."""
    out: dict[str, Schema] = {}
    for dataset in store.query("dataset", group_arn=group_arn):
        schema_row = store.get(dataset.doc.get("schemaArn", ""))
        if schema_row is not None:
            out[dataset.doc["datasetType"]] = parse_schema(schema_row.doc["schema"])
    return out


def check_group_fields(store: Store, group_arn: str, info: FilterInfo, *, exclude_arn: str | None = None) -> None:
    """At most MAX_FIELDS_PER_GROUP distinct dataset fields across the group's filters."""
    fields = set(info.fields)
    for row in store.query("filter", group_arn=group_arn):
        if row.arn == exclude_arn or row.status == "CREATE FAILED":
            continue
        try:
            fields |= filter_fields(parse_filter(row.doc["filterExpression"]))
        except InvalidInputException:
            continue  # cannot happen for stored filters; never block creation on it
    if len(fields) > MAX_FIELDS_PER_GROUP:
        shown = ", ".join(f"{_SHOWN[d]}.{n}" for d, n in sorted(fields))
        raise LimitExceededException(
            f"Cannot create the filter: the filters of dataset group {group_arn} would use "
            f"{len(fields)} distinct dataset fields ({shown}); the limit is {MAX_FIELDS_PER_GROUP}.")


def check_new_filter(store: Store, group_arn: str, expression: str) -> FilterInfo:
    """Everything CreateFilter checks about the expression, against the group as it is now."""
    _, info = check_filter(expression, group_schemas(store, group_arn))
    check_group_fields(store, group_arn, info)
    return info


@job_body("filter")
def activate_filter(job: JobContext) -> dict:
    """Compile the filter against the group's current schemas; ACTIVE, or CREATE FAILED with the
    rule it breaks (a dataset created since CreateFilter may lack a field the filter names)."""
    group_arn = job.doc["datasetGroupArn"]
    try:
        _, info = check_filter(job.doc["filterExpression"], group_schemas(job.store, group_arn))
        check_group_fields(job.store, group_arn, info, exclude_arn=job.arn)
    except (InvalidInputException, LimitExceededException) as exc:
        raise JobFailed(exc.message) from None
    return {}
