"""What every control-plane family shares: the request context, ARNs, resource kinds, lookups,
paginated lists, and the rules about statuses, names and quotas.

A create's uniqueness and quota rules are :data:`Rule` functions. Each is checked once early,
where its error has its place among the create's other checks, and again by ``create_row``
inside the store transaction that inserts the resource, holding the store's ``create:<kind>``
lock (``Store.serialised``): of concurrent creates, the ones that get there after the winners
fail that check as a sequential call would, with the same exception and message.

The context carries the process's ``ProcessState`` (state.py): runtime and event calls read
through it, and control operations that delete or change a campaign, recommender, filter,
dataset, dataset group or solution version tell it to let go of what it holds of them
(``ctx.state.forget_*``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..config import Settings
from ..errors import (
    InvalidInputException,
    InvalidNextTokenException,
    LimitExceededException,
    ResourceAlreadyExistsException,
    ResourceInUseException,
    ResourceNotFoundException,
    TooManyTagsException,
)
from ..state import ProcessState
from ..store.metadata import Conflict, Row, Store

ACTIVE = "ACTIVE"
CREATE_PENDING = "CREATE PENDING"
CREATE_IN_PROGRESS = "CREATE IN_PROGRESS"
CREATE_FAILED = "CREATE FAILED"
DELETE_PENDING = "DELETE PENDING"
IN_FLIGHT = (CREATE_PENDING, CREATE_IN_PROGRESS)


@dataclass(frozen=True)
class Kind:
    """A resource type: its ARN segment and the member names the model uses for it."""

    segment: str        # ARN resource type, e.g. "dataset-group"
    arn_member: str     # e.g. "datasetGroupArn"
    describe_key: str   # e.g. "datasetGroup" in DescribeDatasetGroup's response
    summary_shape: str  # e.g. "DatasetGroupSummary"
    list_key: str       # e.g. "datasetGroups"
    name_member: str = "name"
    job: bool = False


KINDS = {k.segment: k for k in [
    Kind("dataset-group", "datasetGroupArn", "datasetGroup", "DatasetGroupSummary", "datasetGroups"),
    Kind("schema", "schemaArn", "schema", "DatasetSchemaSummary", "schemas"),
    Kind("dataset", "datasetArn", "dataset", "DatasetSummary", "datasets"),
    Kind("dataset-import-job", "datasetImportJobArn", "datasetImportJob", "DatasetImportJobSummary",
         "datasetImportJobs", "jobName", job=True),
    Kind("dataset-export-job", "datasetExportJobArn", "datasetExportJob", "DatasetExportJobSummary",
         "datasetExportJobs", "jobName", job=True),
    Kind("data-deletion-job", "dataDeletionJobArn", "dataDeletionJob", "DataDeletionJobSummary",
         "dataDeletionJobs", "jobName", job=True),
    Kind("solution", "solutionArn", "solution", "SolutionSummary", "solutions"),
    Kind("solution-version", "solutionVersionArn", "solutionVersion", "SolutionVersionSummary",
         "solutionVersions", job=True),
    Kind("campaign", "campaignArn", "campaign", "CampaignSummary", "campaigns"),
    Kind("event-tracker", "eventTrackerArn", "eventTracker", "EventTrackerSummary", "eventTrackers"),
    Kind("filter", "filterArn", "filter", "FilterSummary", "Filters", job=True),
    Kind("recommender", "recommenderArn", "recommender", "RecommenderSummary", "recommenders", job=True),
    Kind("metric-attribution", "metricAttributionArn", "metricAttribution", "MetricAttributionSummary",
         "metricAttributions"),
    Kind("batch-inference-job", "batchInferenceJobArn", "batchInferenceJob", "BatchInferenceJobSummary",
         "batchInferenceJobs", "jobName", job=True),
    Kind("batch-segment-job", "batchSegmentJobArn", "batchSegmentJob", "BatchSegmentJobSummary",
         "batchSegmentJobs", "jobName", job=True),
]}


@dataclass
class Context:
    """What an operation needs besides its parameters."""

    settings: Settings
    store: Store
    region: str
    request_id: str = ""
    #: What the process keeps between requests: the Service's. A context made without one (a
    #: tool, a benchmark) gets its own, kept as long as the context.
    state: ProcessState | None = None

    def __post_init__(self):
        if self.state is None:
            self.state = ProcessState(self.settings, self.store)

    @property
    def account(self) -> str:
        return self.settings.account_id

    def arn(self, segment: str, *parts: str) -> str:
        return f"arn:aws:personalize:{self.region}:{self.account}:{segment}/{'/'.join(parts)}"


def now() -> float:
    return round(time.time(), 3)


def short_id() -> str:
    """Eight lowercase hex characters, as in solution version and event tracker ARNs."""
    return secrets.token_hex(4)


# -- lookups ------------------------------------------------------------------------------


def operation_for(verb: str, kind: str) -> tuple[str, str]:
    """The operation ``verb`` of a resource kind and its ARN member:
    ``("Delete", "event-tracker")`` -> ``("DeleteEventTracker", "eventTrackerArn")``."""
    camel = "".join(w.capitalize() for w in kind.split("-"))
    return verb + camel, camel[0].lower() + camel[1:] + "Arn"


def kind_of_arn(arn: str) -> str | None:
    """The resource kind an ARN names, or None if it is not a Personalize resource ARN."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "personalize":
        return None
    resource = parts[5]
    segment, _, rest = resource.partition("/")
    if segment == "solution" and rest.count("/") == 1:
        return "solution-version"
    return segment if segment in KINDS else None


def require(ctx: Context, arn: str, segment: str, *, member: str | None = None) -> Row:
    """The live resource at ``arn`` of the given kind, or ResourceNotFoundException."""
    row = ctx.store.get(arn)
    if row is None or row.kind != segment:
        raise ResourceNotFoundException.for_arn(arn)
    return row


def require_active(row: Row, what: str | None = None) -> None:
    if row.status != ACTIVE:
        raise ResourceInUseException(
            f"{what or 'Resource'} {row.arn} is not in ACTIVE state (it is {row.status}).")


#: A uniqueness or quota rule of a create: raises the AWS exception when the new resource would
#: break it. Called with no argument (it reads on its own) for the early check, and with the
#: connection of the create's serialised transaction by ``create_row``. Collected by ``Rules``.
Rule = Callable[..., None]


def name_free(ctx: Context, arn: str) -> Rule:
    """The name, part of the ARN, is not taken (names are unique per resource type)."""
    def rule(conn=None) -> None:
        if ctx.store.get(arn, conn=conn) is not None:
            raise ResourceAlreadyExistsException.for_arn(arn)
    return rule


def quota(ctx: Context, segment: str, limit: int, message: str, **filters) -> Rule:
    """Fewer than ``limit`` resources of the kind match ``filters`` (``Store.count``'s)."""
    def rule(conn=None) -> None:
        if ctx.store.count(segment, conn=conn, **filters) >= limit:
            raise LimitExceededException(message)
    return rule


def pending_jobs(ctx: Context, segment: str, limit: int | None = None) -> Rule:
    limit = ctx.settings.max_pending_jobs if limit is None else limit
    return quota(ctx, segment, limit, f"More than {limit} resources with PENDING or IN_PROGRESS status.",
                 statuses=(CREATE_PENDING, CREATE_IN_PROGRESS, "PENDING", "IN_PROGRESS"))


class Rules:
    """A create's uniqueness and quota rules, in the order a sequential call checks them.

    ``check`` checks rules at once, where their errors have their place among the create's
    other checks; ``create_row`` checks them all again, in order, in the serialised transaction
    that inserts. When an early check fails after earlier rules passed, a concurrent create may
    have committed in between: the rules so far are checked again together, serialised, and the
    first that fails now is raised, so that the caller gets what a sequential call would."""

    def __init__(self, ctx: Context, segment: str):
        self.ctx, self.segment = ctx, segment
        self._rules: list[Rule] = []

    def check(self, *rules: Rule) -> None:
        for rule in rules:
            self._rules.append(rule)
            try:
                rule()
            except (ResourceAlreadyExistsException, LimitExceededException, ResourceInUseException):
                if len(self._rules) == 1:
                    raise
                with self.ctx.store.serialised(f"create:{self.segment}") as conn:
                    for again in self._rules:
                        again(conn)  # raises the first rule that fails now, if one does

    def add(self, *rules: Rule) -> None:
        """Rules already checked by the caller's own code: checked again at insert only."""
        self._rules.extend(rules)

    def __iter__(self):
        return iter(list(self._rules))


def check_tags(ctx: Context, tags: list[dict] | None) -> dict:
    tags = tags or []
    if len(tags) > ctx.settings.max_tags:
        raise TooManyTagsException(
            f"Invalid tags: {len(tags)} tags given; a resource can have at most {ctx.settings.max_tags}.")
    return {t["tagKey"]: t["tagValue"] for t in tags}


def create_row(ctx: Context, segment: str, arn: str, name: str, doc: dict, *, rules: Iterable[Rule] = (),
               group_arn: str | None = None, parent_arn: str | None = None,
               tags: list[dict] | None = None) -> dict:
    """Insert a new resource; the document gets its ARN member and timestamps.

    ``rules`` are checked again, in order, in the transaction that inserts, which holds the
    ``create:<segment>`` lock: a rule about resources of this kind cannot be broken by a
    concurrent create, in this process or another."""
    kind = KINDS[segment]
    tag_map = check_tags(ctx, tags)
    stamp = now()
    doc = {kind.arn_member: arn, **doc, "creationDateTime": stamp, "lastUpdatedDateTime": stamp}
    try:
        with ctx.store.serialised(f"create:{segment}") as conn:
            for rule in rules:
                rule(conn)
            ctx.store.insert(arn=arn, kind=segment, name=name, doc=doc, status=doc.get("status"),
                             group_arn=group_arn, parent_arn=parent_arn, tags=tag_map, job=kind.job,
                             conn=conn)
    except Conflict:  # the ARN is taken by a resource that no rule names
        raise ResourceAlreadyExistsException.for_arn(arn) from None
    return doc


def describe(ctx: Context, arn: str, segment: str) -> dict:
    return {KINDS[segment].describe_key: require(ctx, arn, segment).doc}


# -- lists --------------------------------------------------------------------------------


def list_page(ctx: Context, params: dict, segment: str, **filters) -> dict:
    """One page of a list operation, newest first, with a keyset ``nextToken``.

    Items are whole documents: the output shaping keeps the members of the ``*Summary`` shape.
    The token holds the position of the last returned resource and a hash of the call's filter
    arguments, so pages stay stable while resources are created, and a token cannot be replayed
    against a different list.
    """
    kind = KINDS[segment]
    limit = params.get("maxResults") or 100
    fingerprint = hashlib.sha256(json.dumps([segment, filters], sort_keys=True).encode()).hexdigest()[:16]
    after = _decode_token(params.get("nextToken"), fingerprint)
    rows = ctx.store.query(segment, after=after, limit=limit + 1, **filters)
    more = len(rows) > limit
    rows = rows[:limit]
    out = {kind.list_key: [row.doc for row in rows]}
    if more:
        out["nextToken"] = _encode_token(rows[-1], fingerprint)
    return out


def _encode_token(row: Row, fingerprint: str) -> str:
    raw = json.dumps({"c": row.created, "a": row.arn, "h": fingerprint}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str | None, fingerprint: str) -> tuple[float, str] | None:
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        if data["h"] != fingerprint:
            raise ValueError
        return float(data["c"]), str(data["a"])
    except Exception:
        raise InvalidNextTokenException() from None


def project(doc: dict, members) -> dict:
    return {k: doc[k] for k in members if k in doc}


def invalid(member: str, value, rule: str) -> InvalidInputException:
    """The one message form for semantic input errors: member, value and rule."""
    shown = value if isinstance(value, str) else json.dumps(value)
    if len(shown) > 200:
        shown = shown[:200] + "..."
    return InvalidInputException(f"Invalid {member}: '{shown}' {rule}")
