"""personalize-events: PutEvents, PutUsers, PutItems, PutActions, PutActionInteractions.

Each call turns its records into rows of the target dataset's schema, checks every value against
the field's Avro type, and stores them all in one SQL transaction (``store/records.py``): when the
call returns the records are durable, and exports and the next training see them. A call with one
bad record stores none. Records go through the process's accessor (``ctx.state.records``), so the
next real-time request of this process sees them at once.

``properties`` is a JSON object whose keys are the schema's field names in camelCase
(``CREATION_TIMESTAMP`` -> ``creationTimestamp``); the UPPER_SNAKE name is accepted too.
"""

from __future__ import annotations

import json
import math
import uuid

from .control.base import Context
from .data.rows import ID_COLUMNS, Dataset
from .data.schemas import Field, Schema
from .errors import InvalidInputException, ResourceInUseException, ResourceNotFoundException
from .store.records import PutRecord

EVENT_MAX_BYTES = 10 * 1024
ID_MAX, STRING_MAX, TEXTUAL_MAX = 256, 1000, 20000
MILLIS = 10 ** 11


def camel_case(name: str) -> str:
    """``NUMBER_OF_RATINGS`` -> ``numberOfRatings`` (the rule of datasets-and-import.md §4)."""
    parts = name.split("_")
    return parts[0].lower() + "".join(p[:1].upper() + p[1:].lower() for p in parts[1:])


def _bad(member: str, value, rule: str) -> InvalidInputException:
    shown = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(shown) > 200:
        shown = shown[:200] + "..."
    return InvalidInputException(f"Invalid {member}: '{shown}' {rule}")


def typed_value(f: Field, value, member: str):
    """A JSON value checked and converted to the Python value stored for field ``f``."""
    if value is None or value == "":
        if not f.nullable and f.name.upper() in ("USER_ID", "ITEM_ID", "ACTION_ID", "TIMESTAMP"):
            raise _bad(member, value, f"is empty; {f.name} is required.")
        return None
    if f.type == "string":
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise _bad(member, value, f"is not a string; {f.name} is a string field.")
        text = value if isinstance(value, str) else json.dumps(value)
        limit = ID_MAX if f.name.upper() in ("USER_ID", "ITEM_ID", "ACTION_ID") else \
            TEXTUAL_MAX if f.textual else STRING_MAX
        if len(text) > limit:
            if f.textual:
                return text[:limit]
            raise _bad(member, text, f"is longer than {limit} characters.")
        return text
    if f.type in ("int", "long"):
        number = value
        if isinstance(value, str):
            try:
                number = int(value.strip())
            except ValueError:
                raise _bad(member, value, f"is not {'an int' if f.type == 'int' else 'a long'}; "
                                          f"{f.name} has type {f.type}.") from None
        if isinstance(number, float) and number.is_integer():
            number = int(number)
        if isinstance(number, bool) or not isinstance(number, int):
            raise _bad(member, value, f"is not {'an int' if f.type == 'int' else 'a long'}; "
                                      f"{f.name} has type {f.type}.")
        if f.type == "int" and not -(2 ** 31) <= number < 2 ** 31:
            raise _bad(member, value, f"is outside the 32-bit range of {f.name} (int).")
        if f.name.upper() in ("TIMESTAMP", "CREATION_TIMESTAMP") and number > MILLIS:
            raise _bad(member, value, f"looks like milliseconds; {f.name} is in epoch seconds.")
        return number
    if f.type in ("float", "double"):
        number = value
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                raise _bad(member, value, f"is not a number; {f.name} has type {f.type}.") from None
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            raise _bad(member, value, f"is not a finite number; {f.name} has type {f.type}.")
        return float(number)
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise _bad(member, value, f"is not a boolean (true or false); {f.name} has type boolean.")


def parse_properties(text: str | None, member: str, schema: Schema, reserved: set[str],
                     extra: dict[str, str] | None = None) -> dict:
    """``properties`` as ``{field name: typed value}``; unknown keys are refused.

    ``reserved`` are fields the caller fills from their own members (USER_ID, TIMESTAMP, ...) and
    which properties may not name. ``extra`` maps further accepted keys to fields (older clients
    send ``itemId`` and ``eventValue`` inside PutEvents properties).
    """
    if text is None:
        return {}
    try:
        props = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _bad(member, text, f"is not valid JSON ({exc.msg} at column {exc.colno}).") from None
    except RecursionError:
        raise _bad(member, text, "nests arrays or objects too deeply to be read; properties are a flat "
                   "JSON object of field names and values.") from None
    if not isinstance(props, dict):
        raise _bad(member, text, "must be a JSON object of field names and values.")
    by_key = {}
    for f in schema.fields:
        if f.name.upper() not in reserved:
            by_key[camel_case(f.name)] = f
            by_key[f.name] = f
    out = {}
    for key, value in props.items():
        f = by_key.get(key)
        if f is None and extra and key in extra:
            f = schema.field(extra[key])
        if f is None:
            known = sorted(camel_case(f.name) for f in schema.fields if f.name.upper() not in reserved)
            raise _bad(f"{member}.{key}", key, f"is not a field of the dataset's schema; accepted "
                                               f"properties: {', '.join(known) or 'none'}.")
        out[f.name] = typed_value(f, value, f"{member}.{key}")
    return out


def _set(row: dict, schema: Schema, name: str, value, member: str) -> None:
    """Put a member into the row if the schema has that column (else it is not stored)."""
    f = schema.field(name)
    if f is not None and value is not None:
        row[f.name] = typed_value(f, value, member)


class EventOperations:
    """Event ingestion operations, one method per boto3 call."""

    # -- resolution -----------------------------------------------------------------------

    @staticmethod
    def _tracked_dataset(ctx: Context, tracking_id: str, dataset_type: str) -> Dataset:
        """The dataset a trackingId writes to: the group's Interactions dataset for an event
        tracker, or the Action_Interactions dataset whose own trackingId it is."""
        if dataset_type == "INTERACTIONS":
            tracker = next((t for t in ctx.store.query("event-tracker")
                            if t.doc.get("trackingId") == tracking_id), None)
            if tracker is None:
                raise InvalidInputException(f"Invalid trackingId: '{tracking_id}' is not the tracking "
                                            "ID of an event tracker.")
            if tracker.status != "ACTIVE":
                raise ResourceInUseException(f"Event tracker {tracker.arn} is not in ACTIVE state "
                                             f"(it is {tracker.status}).")
            rows = [r for r in ctx.store.query("dataset", group_arn=tracker.group_arn)
                    if r.doc["datasetType"] == "INTERACTIONS"]
            if not rows:
                raise InvalidInputException(f"Invalid trackingId: '{tracking_id}' belongs to dataset "
                                            f"group {tracker.group_arn}, which has no Interactions "
                                            "dataset; create one first.")
            row = rows[0]
        else:
            row = next((r for r in ctx.store.query("dataset")
                        if r.doc.get("trackingId") == tracking_id
                        and r.doc["datasetType"] == "ACTION_INTERACTIONS"), None)
            if row is None:
                raise InvalidInputException(f"Invalid trackingId: '{tracking_id}' is not the tracking "
                                            "ID of an Action_Interactions dataset (DescribeDataset "
                                            "shows it).")
        if row.status != "ACTIVE":
            raise ResourceInUseException(f"Dataset {row.arn} is not in ACTIVE state (it is {row.status}).")
        return Dataset(ctx.store, ctx.settings, row.arn, row=row, records=ctx.state.records)

    @staticmethod
    def _dataset(ctx: Context, arn: str, dataset_type: str, operation: str) -> Dataset:
        row = ctx.store.get(arn)
        if row is None or row.kind != "dataset":
            raise ResourceNotFoundException.for_arn(arn)
        if row.doc["datasetType"] != dataset_type:
            raise _bad("datasetArn", arn, f"is a {row.doc['datasetType']} dataset; {operation} "
                                          f"writes to a {dataset_type} dataset.")
        if row.status != "ACTIVE":
            raise ResourceInUseException(f"Dataset {arn} is not in ACTIVE state (it is {row.status}).")
        return Dataset(ctx.store, ctx.settings, arn, row=row, records=ctx.state.records)

    # -- operations -----------------------------------------------------------------------

    def put_events(self, ctx: Context, p: dict) -> dict:
        ds = self._tracked_dataset(ctx, p["trackingId"], "INTERACTIONS")
        schema = ds.schema
        user_id = p.get("userId")
        session_id = p["sessionId"]
        reserved = {"USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE", "IMPRESSION",
                    "RECOMMENDATION_ID", "EVENT_ATTRIBUTION_SOURCE"}
        out = []
        for i, event in enumerate(p["eventList"]):
            member = f"eventList.{i + 1}"
            size = len(json.dumps(event, separators=(",", ":"), default=str))
            if size > EVENT_MAX_BYTES:
                raise _bad(member, f"{size} bytes", f"is too large; an event can be at most "
                                                    f"{EVENT_MAX_BYTES} bytes.")
            props = parse_properties(event.get("properties"), f"{member}.properties", schema, reserved,
                                     extra={"itemId": "ITEM_ID", "eventValue": "EVENT_VALUE"})
            row = dict(props)
            _set(row, schema, "USER_ID", user_id or session_id, "userId")
            _set(row, schema, "ITEM_ID", event.get("itemId"), f"{member}.itemId")
            _set(row, schema, "TIMESTAMP", int(event["sentAt"]), f"{member}.sentAt")
            _set(row, schema, "EVENT_TYPE", event["eventType"], f"{member}.eventType")
            _set(row, schema, "EVENT_VALUE", event.get("eventValue"), f"{member}.eventValue")
            impression = event.get("impression")
            if impression:
                if any("|" in item for item in impression):
                    raise _bad(f"{member}.impression", impression, "has an item ID containing '|', "
                                                                   "the separator of impressions.")
                _set(row, schema, "IMPRESSION", "|".join(impression), f"{member}.impression")
            _set(row, schema, "RECOMMENDATION_ID", event.get("recommendationId"), f"{member}.recommendationId")
            source = (event.get("metricAttribution") or {}).get("eventAttributionSource")
            _set(row, schema, "EVENT_ATTRIBUTION_SOURCE", source, f"{member}.metricAttribution")
            out.append(PutRecord(row=row, entity_id=row.get(ds.column("USER_ID") or "USER_ID"),
                                 user_id=user_id, session_id=session_id,
                                 event_id=event.get("eventId") or str(uuid.uuid4())))
        ds.records.append(ds.arn, out)
        return {}

    def put_action_interactions(self, ctx: Context, p: dict) -> dict:
        ds = self._tracked_dataset(ctx, p["trackingId"], "ACTION_INTERACTIONS")
        schema = ds.schema
        reserved = {"USER_ID", "ACTION_ID", "TIMESTAMP", "EVENT_TYPE", "IMPRESSION", "RECOMMENDATION_ID"}
        out = []
        for i, rec in enumerate(p["actionInteractions"]):
            member = f"actionInteractions.{i + 1}"
            row = parse_properties(rec.get("properties"), f"{member}.properties", schema, reserved)
            user_id = rec.get("userId")
            _set(row, schema, "USER_ID", user_id or rec["sessionId"], f"{member}.userId")
            _set(row, schema, "ACTION_ID", rec["actionId"], f"{member}.actionId")
            _set(row, schema, "TIMESTAMP", int(rec["timestamp"]), f"{member}.timestamp")
            _set(row, schema, "EVENT_TYPE", rec["eventType"], f"{member}.eventType")
            if rec.get("impression"):
                _set(row, schema, "IMPRESSION", "|".join(rec["impression"]), f"{member}.impression")
            _set(row, schema, "RECOMMENDATION_ID", rec.get("recommendationId"), f"{member}.recommendationId")
            out.append(PutRecord(row=row, entity_id=rec["actionId"], user_id=user_id,
                                 session_id=rec["sessionId"],
                                 event_id=rec.get("eventId") or str(uuid.uuid4())))
        ds.records.append(ds.arn, out)
        return {}

    def _put_entities(self, ctx: Context, p: dict, dataset_type: str, list_member: str,
                      id_member: str, operation: str) -> dict:
        ds = self._dataset(ctx, p["datasetArn"], dataset_type, operation)
        id_column = ds.id_column or ID_COLUMNS[dataset_type]
        out = []
        for i, rec in enumerate(p[list_member]):
            member = f"{list_member}.{i + 1}"
            row = parse_properties(rec.get("properties"), f"{member}.properties", ds.schema, {id_column})
            row[id_column] = typed_value(ds.schema.field(id_column), rec[id_member], f"{member}.{id_member}")
            out.append(PutRecord(row=row, entity_id=rec[id_member],
                                 user_id=rec[id_member] if dataset_type == "USERS" else None))
        ds.records.append(ds.arn, out)
        return {}

    def put_items(self, ctx: Context, p: dict) -> dict:
        return self._put_entities(ctx, p, "ITEMS", "items", "itemId", "PutItems")

    def put_users(self, ctx: Context, p: dict) -> dict:
        return self._put_entities(ctx, p, "USERS", "users", "userId", "PutUsers")

    def put_actions(self, ctx: Context, p: dict) -> dict:
        return self._put_entities(ctx, p, "ACTIONS", "actions", "actionId", "PutActions")
