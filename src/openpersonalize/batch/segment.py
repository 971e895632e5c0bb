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
from ..jobs.contract import JobContext, JobFailed, job_body
from ..recipes.registry import served_recipe
from ..store.models import load_model, model_arn_of
from . import jsonl
from .driver import ShardPlan, clear_job_temporaries, job_context, records, run_sharded
from .filtering import GroupView, LineFilters

SHARD_QUERIES = 64  # a segment query scores every user: a few dozen make a shard

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


@job_body("batch-segment-job", isolated=True, cleanup=clear_job_temporaries)
def run_batch_segment(job: JobContext) -> dict:
    version = jsonl.active_version(job)
    served = served_recipe(version.doc)
    limit = served.capabilities.segment_queries_per_file
    if limit is None:
        raise JobFailed(f"Recipe {served.name} ({served.capabilities.recipe_type}) has no batch segment jobs.")
    run_sharded(job, ShardPlan(
        "openpersonalize.batch.segment:shard_scorer", {"model_arn": model_arn_of(version)}, limit,
        lambda uri: f"Input file {uri} has more than {limit} queries; {served.name} segment jobs read at "
                    f"most {limit} per file.",
        unit=SHARD_QUERIES, fixed=True))
    return {}


def shard_scorer(spec: dict):
    """Set up a batch segment job once, in an executor worker; returns
    ``fn((first line, raw lines)) -> (output bytes, bad lines)``."""
    job = job_context(spec)
    version = jsonl.active_version(job)
    scorer = SegmentScorer.for_job(job, version, load_model(job.settings, spec["model_arn"]))
    job.store.close()  # set-up done: a worker holds no database connection while it scores
    return scorer.shard


class SegmentScorer:
    """Answers segment query lines for one job (set up once: model, filter, item attributes)."""

    def __init__(self, model, n: int, filters, attributes: bool, schema, view):
        self.model, self.n, self.filters = model, n, filters
        self.attributes, self.schema, self.view = attributes, schema, view

    @classmethod
    def for_job(cls, job: JobContext, version, model) -> SegmentScorer:
        doc = job.doc
        filters = LineFilters.for_job(job, doc["filterArn"], model) if doc.get("filterArn") else None
        attributes = served_recipe(version.doc).capabilities.attribute_queries
        view = schema = None
        if attributes:
            datasets = group_datasets(job.store, job.settings, version.group_arn)
            schemas = {kind: ds.schema for kind, ds in datasets.items()}
            schema = schemas.get("ITEMS")
            view = filters.view if filters else GroupView(load_group(job.store, job.settings, version.group_arn),
                                                          schemas, model)
        return cls(model, doc.get("numResults") or 25, filters, attributes, schema, view)

    def line(self, record: jsonl.Record) -> str:
        return _line(record, self.model, self.n, self.filters, self.attributes, self.schema, self.view)

    def shard(self, shard: tuple[int, bytes]) -> tuple[bytes, int]:
        """The output lines of a run of raw query lines, and how many are errors."""
        lines = [self.line(record) for record in records(*shard)]
        bad = sum(1 for line in lines if not line.endswith('"error": null}'))
        return (("\n".join(lines) + "\n").encode("utf-8") if lines else b""), bad


def _line(record: jsonl.Record, model, n: int, filters, attributes: bool, schema, view) -> str:
    if record.error:
        return jsonl.error_line(record, record.error, wrap_input=not attributes)
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
        return jsonl.error_line(record, problem, wrap_input=not attributes)
    try:
        users_mask = filters.user_mask(obj.get("filterValues")) if filters else None
        if attributes:
            selector = compile_filter(attribute_filter(obj[key], schema), {"ITEMS": schema} if schema else {})
            items = np.flatnonzero(selector.bind(view.data).static_mask)
        else:
            items = model.item_index([obj[key]]).astype(np.int64)
            items = items[items >= 0]
    except InvalidInputException as exc:
        return jsonl.error_line(record, f"Line {record.line}: {exc.message}", wrap_input=not attributes)
    output = _segment(model, items, n, users_mask)
    if attributes:
        return json.dumps({"itemAttributes": obj[key], "output": output, "error": None}, ensure_ascii=False)
    return json.dumps({"input": obj, "output": output, "error": None}, ensure_ascii=False)
