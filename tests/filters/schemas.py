"""Schemas shared by the filter tests: every kind of field the rules care about."""

from __future__ import annotations

import json

from openpersonalize.data.schemas import parse_schema


def _schema(name: str, fields: list[dict]):
    return parse_schema(json.dumps({"type": "record", "name": name, "fields": fields}))


S = {"type": "string"}
SCHEMAS = {
    "ITEMS": _schema("Items", [
        {"name": "ITEM_ID", **S}, {"name": "GENRES", "type": ["null", "string"], "categorical": True},
        {"name": "PRICE", "type": ["null", "float"]}, {"name": "CREATION_TIMESTAMP", "type": "long"},
        {"name": "STUDIO", "type": ["null", "string"]}, {"name": "DESCRIPTION", **S, "textual": True},
        {"name": "IS_NEW", "type": "boolean"},
    ] + [{"name": f"F{i}", "type": ["null", "double"]} for i in range(10)]),
    "USERS": _schema("Users", [
        {"name": "USER_ID", **S}, {"name": "AGE", "type": ["null", "int"]},
        {"name": "TIER", "type": ["null", "string"], "categorical": True},
        {"name": "MEMBERSHIP_STATUS", "type": ["null", "string"]},
    ]),
    "INTERACTIONS": _schema("Interactions", [
        {"name": "USER_ID", **S}, {"name": "ITEM_ID", **S}, {"name": "TIMESTAMP", "type": "long"},
        {"name": "EVENT_TYPE", **S}, {"name": "DEVICE", "type": ["null", "string"]},
    ]),
    "ACTIONS": _schema("Actions", [
        {"name": "ACTION_ID", **S}, {"name": "VALUE", "type": ["null", "long"]},
        {"name": "EXPIRATION_TIMESTAMP", "type": ["null", "long"]},
        {"name": "CATEGORY", "type": ["null", "string"], "categorical": True},
    ]),
    "ACTION_INTERACTIONS": _schema("ActionInteractions", [
        {"name": "USER_ID", **S}, {"name": "ACTION_ID", **S}, {"name": "EVENT_TYPE", **S},
        {"name": "TIMESTAMP", "type": "long"},
    ]),
}
