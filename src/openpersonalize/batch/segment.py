"""The batch segment job body: users most likely to interact with an item or with items that
have given attributes (Item-Affinity and Item-Attribute-Affinity solution versions).

Each output line carries the segment under both ``recommendedUsers`` (AWS's documentation) and
``usersList`` (the key a real job's stored output shows), so code written against either works.
"""

from __future__ import annotations

import json

import numpy as np
from lark import Lark, LarkError, Transformer

from ..data.interactions import load_group
from ..data.rows import group_datasets
from ..errors import InvalidInputException
from ..filters import compile_filter
from ..jobs.bodies import job_body
from ..jobs.runner import JobContext, JobFailed
from ..recipes.catalogue import RECIPES_BY_ARN
from ..store.files import Storage
from ..store.models import load_model, model_arn_of
from . import io
from .filtering import GroupView, LineFilters

LIMITS = {"aws-item-affinity": 500, "aws-item-attribute-affinity": 10}

_QUERY = Lark(r"""
    query: term (_AND term)*
    term: _ITEMS "." FIELD "=" value
    value: ESCAPED | NUMBER
    _AND: /and/i
    _ITEMS: /items/i
    FIELD: /[A-Za-z_][A-Za-z0-9_]*/
    ESCAPED: /"(\\.|[^"\\])*"/
    NUMBER: /-?\d+(\.\d+)?([eE][-+]?\d+)?/
    %ignore /\s+/
""", start="query", parser="lalr")


class _Terms(Transformer):
    def query(self, terms):
        return terms

    def term(self, parts):
        return str(parts[0]), parts[1]

    def value(self, parts):
        token = parts[0]
        if token.type == "ESCAPED":
            return ("string", json.loads(str(token)) if "\\" in token else str(token)[1:-1])
        return ("number", str(token))


def attribute_filter(query: str, schema) -> str:
    """The filter expression selecting the items an ``itemAttributes`` query names."""
    try:
        terms = _Terms().transform(_QUERY.parse(query))
    except LarkError as exc:
        raise InvalidInputException(f"Invalid itemAttributes: '{query}' is not of the form "
                                    f'ITEMS.COLUMN = "value" [AND ...] ({str(exc).splitlines()[0]}).') from None
    conditions = []
    for field_name, (kind, value) in terms:
        field = schema.field(field_name) if schema is not None else None
        if field is None:
            raise InvalidInputException(f"Invalid itemAttributes: ITEMS.{field_name} is not a field of the "
                                        "Items schema.")
        if field.textual or field.type == "boolean":
            raise InvalidInputException(f"Invalid itemAttributes: ITEMS.{field.name} is a "
                                        f"{'textual' if field.textual else 'boolean'} field; only categorical "
                                        "and numeric fields can select items.")
        if field.numeric:
            if kind != "number":
                raise InvalidInputException(f"Invalid itemAttributes: ITEMS.{field.name} is numeric; compare "
                                            f"it with a number, not \"{value}\".")
            conditions.append(f"Items.{field.name} = {value}")
        else:
            conditions.append(f"Items.{field.name} IN ({json.dumps(str(value))})")
    return "INCLUDE ItemID WHERE " + " AND ".join(conditions)


def _segment(model, items: np.ndarray, n: int, users_mask: np.ndarray | None) -> dict:
    idx, _ = model.users_for_items(items, n, users_mask)
    idx = np.asarray(idx)
    users = model.user_ids[idx[idx >= 0]].tolist() if len(items) else []
    return {"recommendedUsers": users, "usersList": users}


@job_body("batch-segment-job", isolated=True)
def run_batch_segment(job: JobContext) -> dict:
    if job.settings.executor != "local":  # sharded over an executor (batch/shards.py)
        from .shards import run_segment

        return run_segment(job)
    doc = job.doc
    version = io.active_version(job)
    recipe = RECIPES_BY_ARN[version.doc["recipeArn"]]
    model = load_model(job.settings, model_arn_of(version))
    storage = Storage(job.settings)
    planned = io.plan(storage, doc["jobInput"]["s3DataSource"]["path"], doc["jobOutput"]["s3DataDestination"]["path"],
                      doc["jobName"], job.attempt, doc["jobOutput"]["s3DataDestination"].get("kmsKeyArn"))
    scorer = SegmentScorer.for_job(job, version, recipe.name, model)
    limit = LIMITS[recipe.name]
    done = 0
    try:
        for p in planned:
            lines: list[str] = []
            for chunk in io.read_records(storage, p.source):
                for record in chunk:
                    if len(lines) >= limit:
                        raise JobFailed(f"Input file {p.source.uri} has more than {limit} queries; "
                                        f"{recipe.name} segment jobs read at most {limit} per file.")
                    lines.append(scorer.line(record))
                done += len(chunk)
                job.progress(done, None)
                job.check_cancelled()
            with storage.write_object(p.temp_uri, "jobOutput.s3DataDestination.path", kms_key_arn=p.kms_key_arn) as out:
                out.write(("\n".join(lines) + "\n").encode("utf-8") if lines else b"")
        io.publish(storage, planned)
    except BaseException:
        io.discard(storage, planned)
        raise
    return {}


class SegmentScorer:
    """Answers segment query lines for one job (set up once: model, filter, item attributes)."""

    def __init__(self, model, n: int, filters, attributes: bool, schema, view):
        self.model, self.n, self.filters = model, n, filters
        self.attributes, self.schema, self.view = attributes, schema, view

    @classmethod
    def for_job(cls, job: JobContext, version, recipe_name: str, model) -> "SegmentScorer":
        doc = job.doc
        filters = LineFilters.for_job(job, doc["filterArn"], model) if doc.get("filterArn") else None
        attributes = recipe_name == "aws-item-attribute-affinity"
        view = schema = None
        if attributes:
            datasets = group_datasets(job.store, job.settings, version.group_arn)
            schemas = {kind: ds.schema for kind, ds in datasets.items()}
            schema = schemas.get("ITEMS")
            view = filters.view if filters else GroupView(load_group(job.store, job.settings, version.group_arn),
                                                          schemas, model)
        return cls(model, doc.get("numResults") or 25, filters, attributes, schema, view)

    def line(self, record: io.Record) -> str:
        return _line(record, self.model, self.n, self.filters, self.attributes, self.schema, self.view)


def _line(record: io.Record, model, n: int, filters, attributes: bool, schema, view) -> str:
    if record.error:
        return io.error_line(record, record.error, wrap_input=not attributes)
    obj = record.obj
    key = "itemAttributes" if attributes else "itemId"
    allowed = {key, "filterValues"}
    problem = None
    if not isinstance(obj.get(key), str) or not obj[key]:
        problem = f"Line {record.line}: missing {key} (a string)."
    elif obj.keys() - allowed:
        problem = f"Line {record.line}: unknown field {', '.join(sorted(obj.keys() - allowed))}; allowed: " \
                  f"{', '.join(sorted(allowed))}."
    if problem:
        return io.error_line(record, problem, wrap_input=not attributes)
    try:
        users_mask = filters.user_mask(obj.get("filterValues")) if filters else None
        if attributes:
            selector = compile_filter(attribute_filter(obj[key], schema), {"ITEMS": schema} if schema else {})
            items = np.flatnonzero(selector.bind(view.data).static_mask)
        else:
            items = model.item_index([obj[key]]).astype(np.int64)
            items = items[items >= 0]
    except InvalidInputException as exc:
        return io.error_line(record, f"Line {record.line}: {exc.message}", wrap_input=not attributes)
    output = _segment(model, items, n, users_mask)
    if attributes:
        return json.dumps({"itemAttributes": obj[key], "output": output, "error": None}, ensure_ascii=False)
    return json.dumps({"input": obj, "output": output, "error": None}, ensure_ascii=False)
