"""The static rules of a filter (filters spec §2), checked when the filter is created.

``validate_filter(parsed, schemas)`` raises ``InvalidInputException`` naming the offending
reference, its position and the rule, or returns a :class:`FilterInfo` that says what the filter
needs at evaluation time. ``schemas`` maps a dataset type (``"ITEMS"``, ``"USERS"``, ...) to the
parsed schema of the group's dataset of that type; a dataset that does not exist yet is simply
absent, and references to it are not checked (they match nothing until it exists).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..data.schemas import Schema
from ..errors import InvalidInputException
from .grammar import (
    CURRENT_ITEM,
    CURRENT_USER,
    Condition,
    Expression,
    FieldRef,
    Filter,
    Placeholder,
    Star,
    _position,
    parse_filter,
)

MAX_FIELDS_PER_FILTER = 10
MAX_FIELDS_PER_GROUP = 20
MAX_PLACEHOLDER_LENGTH = 50  # the longest key the filterValues map accepts

# Which datasets the WHERE conditions of each target may use, and their display names.
WHERE_DATASETS = {
    "ItemID": ("ITEMS", "INTERACTIONS"),
    "ActionID": ("ACTIONS", "ACTION_INTERACTIONS"),
    "UserID": ("USERS", "INTERACTIONS"),
}
INTERACTION_DATASETS = ("INTERACTIONS", "ACTION_INTERACTIONS")
# Next-Best-Action removes expired and recently taken actions itself.
RESERVED_ACTION_FIELDS = ("EXPIRATION_TIMESTAMP", "ACTION_EXPIRATION_TIMESTAMP", "REPEAT_FREQUENCY")
_SHOWN = {"ITEMS": "Items", "USERS": "Users", "INTERACTIONS": "Interactions", "ACTIONS": "Actions",
          "ACTION_INTERACTIONS": "Action_Interactions"}


@dataclass(frozen=True)
class FilterInfo:
    """What a valid filter refers to.

    ``fields``: distinct ``(dataset type, FIELD)`` pairs (CurrentUser fields count as Users
    fields, CurrentItem fields as Items fields). ``placeholders``: names without ``$``.
    """

    target: str
    fields: frozenset[tuple[str, str]]
    placeholders: frozenset[str]
    uses_history: bool
    uses_current_user: bool
    uses_current_item: bool


def _article(word: str) -> str:
    return "an" if word[0].lower() in "aeio" else "a"  # "a UserID", "an int"


def dataset_of(ref: FieldRef) -> str:
    """The dataset type whose schema defines the field a reference names."""
    return {CURRENT_USER: "USERS", CURRENT_ITEM: "ITEMS"}.get(ref.dataset, ref.dataset)


def filter_fields(parsed: Filter) -> frozenset[tuple[str, str]]:
    """Distinct dataset fields of a filter, for the per-filter and per-group quotas."""
    out = set()
    for e in parsed.expressions:
        for c in e.all_conditions():
            out.add((dataset_of(c.field), c.field.key))
            out.update((dataset_of(v), v.key) for v in c.values if isinstance(v, FieldRef))
    return frozenset(out)


class _Checker:
    def __init__(self, parsed: Filter, schemas: Mapping[str, Schema]):
        self.parsed = parsed
        self.schemas = {k.upper(): v for k, v in schemas.items()}

    def fail(self, what: str, pos: int, rule: str) -> InvalidInputException:
        return InvalidInputException(
            f"Invalid filterExpression: '{what}' at {_position(self.parsed.source, pos)}: {rule}.")

    # -- fields -------------------------------------------------------------------------

    def schema_field(self, ref: FieldRef):
        """The schema field a reference names; None when its dataset does not exist yet."""
        dataset = dataset_of(ref)
        schema = self.schemas.get(dataset)
        if schema is None:
            return None
        f = schema.field(ref.name)
        if f is None:
            raise self.fail(str(ref), ref.pos, f"the {_SHOWN[dataset]} schema has no field {ref.name} "
                                               f"(its fields: {', '.join(schema.names)})")
        if f.textual:
            raise self.fail(str(ref), ref.pos, f"{f.name} is a textual field; textual fields cannot be "
                                               "used in filters")
        if f.type == "boolean":
            raise self.fail(str(ref), ref.pos, f"{f.name} is a boolean field; boolean fields cannot be "
                                               "used in filters (use a string or 0/1 field)")
        return f

    def check_types(self, cond: Condition) -> None:
        """IN / NOT IN compare strings, the other operators numbers."""
        f = self.schema_field(cond.field)
        string_op = cond.op in ("IN", "NOT IN")
        if f is not None:
            if string_op and f.numeric:
                raise self.fail(str(cond.field), cond.pos,
                                f"{f.name} is {_article(f.type)} {f.type} field; {cond.op} compares strings, use =, !=, <, "
                                "<=, > or >= for numbers")
            if not string_op and not f.numeric:
                raise self.fail(str(cond.field), cond.pos,
                                f"{f.name} is a string field; '{cond.op}' compares numbers, use IN or "
                                "NOT IN for strings")
        for v in cond.values:
            if isinstance(v, FieldRef):  # CurrentItem.F
                g = self.schema_field(v)
                if g is not None and string_op and g.numeric:
                    raise self.fail(str(v), v.pos, f"{g.name} is {_article(g.type)} {g.type} field; {cond.op} needs a "
                                                   "string field")
                if g is not None and not string_op and not g.numeric:
                    raise self.fail(str(v), v.pos, f"{g.name} is a string field; '{cond.op}' needs a "
                                                   "numeric field")

    # -- conditions ---------------------------------------------------------------------

    def check_values(self, cond: Condition, expression: Expression, in_if: bool) -> None:
        for v in cond.values:
            if isinstance(v, Star) and not (cond.field.dataset in INTERACTION_DATASETS
                                            and cond.field.key == "EVENT_TYPE"):
                raise self.fail("*", v.pos, "'*' (any event type) is allowed only in "
                                            "Interactions.EVENT_TYPE or Action_Interactions.EVENT_TYPE lists")
            if isinstance(v, Placeholder):
                if cond.op == "NOT IN":
                    raise self.fail(f"${v.name}", v.pos, "placeholders cannot be used with NOT IN "
                                                         "(use IN, or a comparison)")
                if len(v.name) > MAX_PLACEHOLDER_LENGTH:
                    raise self.fail(f"${v.name}", v.pos, f"placeholder names are at most "
                                                         f"{MAX_PLACEHOLDER_LENGTH} characters")
            if isinstance(v, FieldRef):
                if in_if:
                    raise self.fail(str(v), v.pos, "an IF condition compares CurrentUser with values, "
                                                   "not with CurrentItem")
                if expression.target != "ItemID" or cond.field.dataset != "ITEMS":
                    raise self.fail(str(v), v.pos, "CurrentItem can only be compared with Items fields "
                                                   "in ItemID expressions")

    def check_where(self, cond: Condition, expression: Expression, first: str) -> None:
        ref = cond.field
        allowed = WHERE_DATASETS[expression.target]
        if ref.dataset not in allowed:
            hint = " (test the requesting user with IF CurrentUser.<field>)" \
                if ref.dataset == "USERS" and expression.target != "UserID" else ""
            raise self.fail(str(ref), ref.pos,
                            f"{_article(expression.target)} {expression.target} expression can only use "
                            f"{' and '.join(_SHOWN[d] for d in allowed)} fields{hint}")
        if ref.dataset != first:
            raise self.fail(str(ref), ref.pos,
                            f"all conditions of one expression must use the dataset of its first "
                            f"condition ({_SHOWN[first]}); join conditions on different datasets "
                            "as separate expressions with '|'")
        if ref.dataset in INTERACTION_DATASETS:
            if ref.key != "EVENT_TYPE":
                raise self.fail(str(ref), ref.pos, f"{_SHOWN[ref.dataset]} conditions can only use "
                                                   "EVENT_TYPE")
            if cond.op not in ("IN", "NOT IN"):
                raise self.fail(str(ref), ref.pos, "EVENT_TYPE is a string; use IN or NOT IN")
        if ref.dataset == "ACTIONS" and ref.key in RESERVED_ACTION_FIELDS:
            raise self.fail(str(ref), ref.pos, f"{ref.key} is applied by Next-Best-Action itself and "
                                               "cannot be used in filters")
        self.check_values(cond, expression, in_if=False)
        self.check_types(cond)

    def check_if(self, cond: Condition, expression: Expression) -> None:
        if expression.target == "UserID":
            raise self.fail(str(cond.field), cond.pos, "UserID expressions cannot have an IF clause; "
                                                       "IF CurrentUser tests the user of a recommendation "
                                                       "request")
        self.check_values(cond, expression, in_if=True)
        self.check_types(cond)

    def run(self) -> FilterInfo:
        expressions = self.parsed.expressions
        target = expressions[0].target
        placeholders: set[str] = set()
        for e in expressions:
            if e.target != target:
                raise self.fail(e.target, e.target_pos,
                                f"every expression of a filter must have the same target as the first "
                                f"({target})")
            conditions = e.conditions()
            first = conditions[0].field.dataset
            for c in conditions:
                self.check_where(c, e, first)
            for c in e.if_conditions:
                self.check_if(c, e)
            placeholders.update(p.name for c in e.all_conditions() for p in c.placeholders)
        fields = filter_fields(self.parsed)
        if len(fields) > MAX_FIELDS_PER_FILTER:
            shown = ", ".join(f"{_SHOWN[d]}.{n}" for d, n in sorted(fields))
            raise InvalidInputException(
                f"Invalid filterExpression: it uses {len(fields)} distinct dataset fields ({shown}); "
                f"a filter can use at most {MAX_FIELDS_PER_FILTER}.")
        all_conditions = [c for e in expressions for c in e.all_conditions()]
        return FilterInfo(
            target=target, fields=fields, placeholders=frozenset(placeholders),
            uses_history=any(c.field.dataset in INTERACTION_DATASETS for c in all_conditions)
            and target != "UserID",
            uses_current_user=any(e.if_conditions for e in expressions),
            uses_current_item=any(isinstance(v, FieldRef) for c in all_conditions for v in c.values),
        )


def validate_filter(parsed: Filter, schemas: Mapping[str, Schema] | None = None) -> FilterInfo:
    """Check the static rules; InvalidInputException names the reference, position and rule."""
    return _Checker(parsed, schemas or {}).run()


def check_filter(text: str, schemas: Mapping[str, Schema] | None = None) -> tuple[Filter, FilterInfo]:
    """Parse and validate a filter expression in one call."""
    parsed = parse_filter(text)
    return parsed, validate_filter(parsed, schemas)


__all__ = ["FilterInfo", "validate_filter", "check_filter", "filter_fields", "dataset_of",
           "MAX_FIELDS_PER_FILTER", "MAX_FIELDS_PER_GROUP"]
