"""Avro schema rules for Personalize datasets.

``parse_schema`` checks what holds for any dataset (CreateSchema); ``check_for_dataset`` checks a
parsed schema against a dataset type and domain (CreateDataset), because a schema is bound to a
type only when a dataset uses it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from ..errors import InvalidInputException

DATASET_TYPES = ("INTERACTIONS", "ITEMS", "USERS", "ACTIONS", "ACTION_INTERACTIONS")
PRIMITIVES = ("string", "int", "long", "float", "double", "boolean", "null")
NUMERIC = ("int", "long", "float", "double")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class Field:
    name: str
    type: str            # the non-null primitive
    nullable: bool
    categorical: bool = False
    textual: bool = False
    item_name: bool = False

    @property
    def numeric(self) -> bool:
        return self.type in NUMERIC


@dataclass
class Schema:
    name: str
    fields: list[Field] = field(default_factory=list)

    def field(self, name: str) -> Field | None:
        """A field by name, compared case-insensitively."""
        upper = name.upper()
        return next((f for f in self.fields if f.name.upper() == upper), None)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]


def _bad(rule: str) -> InvalidInputException:
    return InvalidInputException(f"Invalid schema: {rule}")


def parse_schema(text: str) -> Schema:
    """Parse and check an Avro schema document; InvalidInputException names what is wrong."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _bad(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}).") from None
    except RecursionError:
        raise _bad("the document nests arrays or objects too deeply to be read (an Avro schema nests a "
                   "few levels).") from None
    if not isinstance(doc, dict):
        raise _bad("the document must be a JSON object with \"type\": \"record\".")
    if doc.get("type") != "record":
        raise _bad(f"\"type\" is {json.dumps(doc.get('type'))}; it must be \"record\".")
    name = doc.get("name")
    if not isinstance(name, str) or not _IDENT.fullmatch(name):
        raise _bad(f"\"name\" is {json.dumps(name)}; it must be an Avro name such as \"Interactions\".")
    raw_fields = doc.get("fields")
    if not isinstance(raw_fields, list) or not raw_fields:
        raise _bad("\"fields\" must be a non-empty array.")
    schema = Schema(name=name)
    seen: dict[str, str] = {}
    for i, raw in enumerate(raw_fields):
        f = _parse_field(raw, i)
        key = re.sub(r"[^A-Za-z0-9]", "", f.name).upper()
        if key in seen:
            raise _bad(f"field \"{f.name}\" conflicts with field \"{seen[key]}\" "
                       "(names must differ after removing non-alphanumeric characters, ignoring case).")
        seen[key] = f.name
        schema.fields.append(f)
    return schema


def _parse_field(raw, index: int) -> Field:
    if not isinstance(raw, dict):
        raise _bad(f"fields[{index}] must be an object with \"name\" and \"type\".")
    name = raw.get("name")
    if not isinstance(name, str) or not _IDENT.fullmatch(name):
        raise _bad(f"fields[{index}].name {json.dumps(name)} is not an Avro name ([A-Za-z_][A-Za-z0-9_]*).")
    ftype = raw.get("type")
    nullable = False
    if isinstance(ftype, list):
        others = [t for t in ftype if t != "null"]
        if len(ftype) != 2 or len(others) != 1 or not isinstance(others[0], str):
            raise _bad(f"field \"{name}\" has type {json.dumps(ftype)}; a union must pair one "
                       "primitive type with \"null\".")
        ftype, nullable = others[0], True
    if not isinstance(ftype, str) or ftype not in PRIMITIVES or ftype == "null":
        raise _bad(f"field \"{name}\" has type {json.dumps(raw.get('type'))}; allowed types are "
                   "string, int, long, float, double, boolean, or a union of one of them with null "
                   "(no records, arrays, maps, enums or fixed).")
    flags = {}
    for attr in ("categorical", "textual", "itemName"):
        value = raw.get(attr, False)
        if not isinstance(value, bool):
            raise _bad(f"field \"{name}\" attribute \"{attr}\" must be true or false.")
        if value and ftype != "string":
            raise _bad(f"field \"{name}\" is {ftype}; \"{attr}\" is allowed only on string fields.")
        flags[attr] = value
    if flags["categorical"] and flags["textual"]:
        raise _bad(f"field \"{name}\" cannot be both categorical and textual.")
    return Field(name=name, type=ftype, nullable=nullable, categorical=flags["categorical"],
                 textual=flags["textual"], item_name=flags["itemName"])


# -- rules per dataset type ---------------------------------------------------------------

# name -> (allowed types, nullable allowed, must be categorical (True/False/None = either))
_ID = (("string",), False, False)
_TIME = (("long",), False, False)
_RULES: dict[str, dict] = {
    "INTERACTIONS": {
        "required": {"USER_ID": _ID, "ITEM_ID": _ID, "TIMESTAMP": _TIME},
        "reserved": {"EVENT_TYPE": (("string",), False, False),
                     "EVENT_VALUE": (("float", "double"), True, False),
                     "IMPRESSION": (("string",), True, False),
                     "RECOMMENDATION_ID": (("string",), True, False),
                     "EVENT_ATTRIBUTION_SOURCE": (("string",), True, False)},
        "metadata": (0, 5),
    },
    "USERS": {"required": {"USER_ID": _ID}, "reserved": {}, "metadata": (1, 25)},
    "ITEMS": {"required": {"ITEM_ID": _ID},
              "reserved": {"CREATION_TIMESTAMP": (("long",), True, False)}, "metadata": (1, 100)},
    "ACTIONS": {
        "required": {"ACTION_ID": _ID},
        "reserved": {"CREATION_TIMESTAMP": (("long",), True, False), "VALUE": (("long", "int"), True, False),
                     "TYPE": (("string",), True, None), "EXPIRATION_TIMESTAMP": (("long",), True, False),
                     "ACTION_EXPIRATION_TIMESTAMP": (("long",), True, False),
                     "REPEAT_FREQUENCY": (("long", "int"), True, False)},
        "metadata": (1, 10),
    },
    "ACTION_INTERACTIONS": {
        "required": {"USER_ID": _ID, "ACTION_ID": _ID, "EVENT_TYPE": (("string",), False, False),
                     "TIMESTAMP": _TIME},
        "reserved": {"IMPRESSION": (("string",), True, False), "RECOMMENDATION_ID": (("string",), True, False)},
        "metadata": (0, 5),
    },
}

_DOMAIN_REQUIRED = {
    ("ECOMMERCE", "INTERACTIONS"): {"EVENT_TYPE"},
    ("VIDEO_ON_DEMAND", "INTERACTIONS"): {"EVENT_TYPE"},
    ("ECOMMERCE", "ITEMS"): {"PRICE", "CATEGORY_L1"},
    ("VIDEO_ON_DEMAND", "ITEMS"): {"GENRES", "CREATION_TIMESTAMP"},
}
_DOMAIN_TYPES = {"ECOMMERCE": {"INTERACTIONS", "ITEMS", "USERS"},
                 "VIDEO_ON_DEMAND": {"INTERACTIONS", "ITEMS", "USERS"}}


def normalise_dataset_type(value: str) -> str:
    upper = value.upper()
    if upper not in DATASET_TYPES:
        raise InvalidInputException(
            f"Invalid datasetType: '{value}' must be one of Interactions, Items, Users, Actions, "
            "Action_Interactions (case-insensitive).")
    return upper


def check_for_dataset(schema: Schema, dataset_type: str, domain: str | None) -> None:
    """Check that ``schema`` suits a dataset of ``dataset_type`` (upper-case) in ``domain``."""
    expected = dataset_type.replace("_", "")
    if schema.name.replace("_", "").upper() != expected:
        raise _bad(f"record name \"{schema.name}\" does not match dataset type {dataset_type}; "
                   f"use \"{_record_name(dataset_type)}\".")
    rules = _RULES[dataset_type]
    if domain and dataset_type not in _DOMAIN_TYPES[domain]:
        raise _bad(f"a {domain} dataset group has no {dataset_type} dataset.")
    required = dict(rules["required"])
    for extra in _DOMAIN_REQUIRED.get((domain, dataset_type), ()):
        required.setdefault(extra, None)
    for name in required:
        if schema.field(name) is None:
            raise _bad(f"a {dataset_type} schema{' in the ' + domain + ' domain' if domain else ''} "
                       f"needs the field {name}.")
    reserved = {**rules["reserved"], **{k: v for k, v in rules["required"].items()}}
    metadata_fields = []
    textual = 0
    for f in schema.fields:
        rule = reserved.get(f.name.upper())
        if rule is not None:
            types, nullable_ok, categorical = rule
            if f.type not in types:
                raise _bad(f"reserved field {f.name} must have type {' or '.join(types)}, not {f.type}.")
            if f.nullable and not nullable_ok:
                raise _bad(f"reserved field {f.name} cannot be nullable.")
            if categorical is False and f.categorical:
                raise _bad(f"reserved field {f.name} cannot be categorical.")
        else:
            metadata_fields.append(f)
        if f.textual:
            if dataset_type != "ITEMS":
                raise _bad(f"field {f.name}: textual fields are allowed only in Items schemas.")
            textual += 1
        if f.item_name and dataset_type != "ITEMS":
            raise _bad(f"field {f.name}: itemName is allowed only in Items schemas.")
    if textual > 1:
        raise _bad("an Items schema can have at most 1 textual field.")
    lo, hi = rules["metadata"]
    if len(metadata_fields) < lo:
        raise _bad(f"a {dataset_type} schema needs at least {lo} metadata field besides its reserved fields.")
    if len(metadata_fields) > hi:
        raise _bad(f"a {dataset_type} schema can have at most {hi} metadata fields; it has "
                   f"{len(metadata_fields)} ({', '.join(f.name for f in metadata_fields)}).")
    if sum(f.item_name for f in schema.fields) > 1:
        raise _bad("an Items schema can have at most one itemName field.")


def _record_name(dataset_type: str) -> str:
    return {"ACTION_INTERACTIONS": "ActionInteractions"}.get(dataset_type, dataset_type.capitalize())


def check_evolution(old: Schema, new: Schema) -> None:
    """UpdateDataset: a new schema keeps every field with its type and only adds nullable ones."""
    for f in old.fields:
        g = new.field(f.name)
        if g is None:
            raise _bad(f"the new schema drops field {f.name}; an updated schema must keep every field.")
        if g.type != f.type:
            raise _bad(f"the new schema changes field {f.name} from {f.type} to {g.type}.")
    for g in new.fields:
        if old.field(g.name) is None and not g.nullable:
            raise _bad(f"new field {g.name} must be nullable (a union with \"null\").")
