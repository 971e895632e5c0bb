"""The filter expression language: a lark LALR grammar and a small typed syntax tree.

``parse_filter(text)`` returns a :class:`Filter` or raises ``InvalidInputException`` whose message
names the position (0-based character offset, and 1-based line and column) of the problem and what
was expected there. The grammar is the EBNF of the filters spec, plus parentheses to group
conditions, where ``AND`` binds tighter than ``OR`` (as in SQL).

Keywords, dataset names and ``CurrentUser``/``CurrentItem`` are case-insensitive; field names are
kept as written (the schema check matches them case-insensitively); string literals keep their
case. Strings are double-quoted and know two escapes, ``\\"`` and ``\\\\``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Union

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from ..errors import InvalidInputException

MAX_LENGTH = 2500
#: Deepest nesting of parentheses read: real expressions nest a few levels; the parser and every
#: walk of the tree recurse once per level, so a deeper expression is refused before parsing.
MAX_NESTING = 64

# Every terminal is a regex ending in \b where it is a word, so that "WHER" or "INCLUDES" is one
# unexpected token rather than a keyword followed by garbage, and so that a field called "TYPE" or
# "IN" after "Items." is still a field (the contextual lexer only tries what the parser accepts).
_GRAMMAR = r"""
start: expression (PIPE expression)*

expression: ACTION TARGET WHERE or_cond if_clause?

?or_cond: and_cond (OR and_cond)*
?and_cond: atom (AND atom)*
?atom: condition
     | LPAR or_cond RPAR           -> group

condition: field_ref IN in_rhs              -> cond_in
         | field_ref NOT IN in_rhs          -> cond_not_in
         | field_ref CMP_OP cmp_rhs         -> cond_cmp

if_clause: IF user_cond (AND user_cond)*
user_cond: user_ref IN in_rhs               -> cond_in
         | user_ref NOT IN in_rhs           -> cond_not_in
         | user_ref CMP_OP cmp_rhs          -> cond_cmp

field_ref: DATASET DOT FIELD
user_ref: CURRENT_USER DOT FIELD
item_ref: CURRENT_ITEM DOT FIELD

in_rhs: LPAR value (COMMA value)* RPAR
      | item_ref
?value: STRING | PLACEHOLDER | STAR
cmp_rhs: NUMBER
       | PLACEHOLDER
       | LPAR PLACEHOLDER RPAR
       | item_ref

ACTION: /(include|exclude)\b/i
TARGET: /(itemid|actionid|userid)\b/i
WHERE: /where\b/i
AND: /and\b/i
OR: /or\b/i
NOT: /not\b/i
IN: /in\b/i
IF: /if\b/i
DATASET: /(action_interactions|interactions|actions|items|users)\b/i
CURRENT_USER: /currentuser\b/i
CURRENT_ITEM: /currentitem\b/i
FIELD: /[A-Za-z_][A-Za-z0-9_]*/
CMP_OP: /<=|>=|!=|=|<|>/
NUMBER: /[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?(?![A-Za-z0-9_.])/
STRING: /"(?:[^"\\]|\\.)*"/s
PLACEHOLDER: /\$[A-Za-z0-9_]+/
STAR: "*"
PIPE: "|"
LPAR: "("
RPAR: ")"
COMMA: ","
DOT: "."

%ignore /\s+/
"""

# How each terminal is named in "expected ..." messages, in the order they are listed.
_EXPECTED_NAMES = {
    "ACTION": "INCLUDE or EXCLUDE",
    "TARGET": "ItemID, ActionID or UserID",
    "WHERE": "WHERE",
    "DATASET": "a dataset (Items, Users, Interactions, Actions, Action_Interactions)",
    "DOT": "'.'",
    "FIELD": "a field name",
    "NOT": "NOT IN",
    "IN": "IN",
    "CMP_OP": "a comparison (=, !=, <, <=, >, >=)",
    "LPAR": "'('",
    "STRING": "a string",
    "PLACEHOLDER": "a $PLACEHOLDER",
    "STAR": "'*'",
    "NUMBER": "a number",
    "CURRENT_ITEM": "CurrentItem.<field>",
    "COMMA": "','",
    "RPAR": "')'",
    "AND": "AND",
    "OR": "OR",
    "IF": "IF",
    "CURRENT_USER": "CurrentUser.<field>",
    "PIPE": "'|'",
    "$END": "the end of the expression",
}

DATASETS = ("ITEMS", "USERS", "INTERACTIONS", "ACTIONS", "ACTION_INTERACTIONS")
CURRENT_USER = "CURRENT_USER"
CURRENT_ITEM = "CURRENT_ITEM"
TARGETS = {"ITEMID": "ItemID", "ACTIONID": "ActionID", "USERID": "UserID"}

# -- the syntax tree ----------------------------------------------------------------------


@dataclass(frozen=True)
class FieldRef:
    """``Items.GENRES``: ``dataset`` is one of DATASETS, CURRENT_USER or CURRENT_ITEM (upper-case),
    ``name`` the field as written, ``pos`` the 0-based offset of the reference."""

    dataset: str
    name: str
    pos: int

    @property
    def key(self) -> str:
        return self.name.upper()

    def __str__(self) -> str:
        shown = {"CURRENT_USER": "CurrentUser", "CURRENT_ITEM": "CurrentItem",
                 "ACTION_INTERACTIONS": "Action_Interactions"}.get(self.dataset, self.dataset.capitalize())
        return f"{shown}.{self.name}"


@dataclass(frozen=True)
class Literal:
    """A string literal, unescaped."""

    value: str
    pos: int


@dataclass(frozen=True)
class Number:
    value: float
    text: str
    pos: int


@dataclass(frozen=True)
class Placeholder:
    """``$NAME``; ``name`` is without the dollar sign and case-sensitive."""

    name: str
    pos: int


@dataclass(frozen=True)
class Star:
    """``*`` in an ``IN`` list: any event type."""

    pos: int


Value = Union[Literal, Number, Placeholder, Star, FieldRef]


@dataclass(frozen=True)
class Condition:
    """``field op values``. ``op`` is IN, NOT IN, =, !=, <, <=, > or >=. For IN / NOT IN
    ``values`` is the list (or one CurrentItem reference); for comparisons it has one element."""

    field: FieldRef
    op: str
    values: tuple[Value, ...]
    pos: int

    @property
    def placeholders(self) -> tuple[Placeholder, ...]:
        return tuple(v for v in self.values if isinstance(v, Placeholder))


@dataclass(frozen=True)
class And:
    parts: tuple["Node", ...]


@dataclass(frozen=True)
class Or:
    parts: tuple["Node", ...]


Node = Union[Condition, And, Or]


@dataclass(frozen=True)
class Expression:
    """One ``|``-separated part: ``action`` INCLUDE/EXCLUDE, ``target`` ItemID/ActionID/UserID."""

    action: str
    target: str
    where: Node
    if_conditions: tuple[Condition, ...]
    pos: int
    text: str
    target_pos: int = 0

    def conditions(self) -> list[Condition]:
        """The WHERE conditions, in source order."""
        out: list[Condition] = []

        def walk(node: Node) -> None:
            if isinstance(node, Condition):
                out.append(node)
            else:
                for part in node.parts:
                    walk(part)

        walk(self.where)
        return out

    def all_conditions(self) -> list[Condition]:
        return self.conditions() + list(self.if_conditions)


@dataclass(frozen=True)
class Filter:
    expressions: tuple[Expression, ...]
    source: str


# -- parsing ------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(_GRAMMAR, parser="lalr", lexer="contextual", propagate_positions=True,
                maybe_placeholders=False)


class SyntaxProblem(Exception):
    """Raised inside the transformer; becomes InvalidInputException with a position."""

    def __init__(self, what: str, pos: int, rule: str):
        super().__init__(what)
        self.what, self.pos, self.rule = what, pos, rule


def _unescape(token: Token) -> str:
    body = token[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1]
            if nxt not in ('"', "\\"):
                raise SyntaxProblem(f"invalid escape '\\{nxt}'", token.start_pos + 1 + i,
                                    "strings know only the escapes \\\" and \\\\")
            out.append(nxt)
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


@v_args(inline=True)
class _ToAst(Transformer):
    def __init__(self, source: str):
        super().__init__()
        self.source = source

    def start(self, *parts):
        return tuple(p for p in parts if isinstance(p, Expression))

    def expression(self, action, target, _where, where, if_clause=()):
        # ``text`` is filled in by _with_texts once every expression's start is known.
        return Expression(action=action.upper(), target=TARGETS[target.upper()], where=where,
                          if_conditions=tuple(if_clause), pos=action.start_pos, text="",
                          target_pos=target.start_pos)

    def or_cond(self, *parts):
        return Or(tuple(p for p in parts if not isinstance(p, Token)))

    def and_cond(self, *parts):
        return And(tuple(p for p in parts if not isinstance(p, Token)))

    def group(self, _l, inner, _r):
        return inner

    def if_clause(self, _if, *conds):
        return tuple(c for c in conds if isinstance(c, Condition))

    def field_ref(self, dataset, _dot, name):
        return FieldRef(dataset.upper(), str(name), dataset.start_pos)

    def user_ref(self, cu, _dot, name):
        return FieldRef(CURRENT_USER, str(name), cu.start_pos)

    def item_ref(self, ci, _dot, name):
        return FieldRef(CURRENT_ITEM, str(name), ci.start_pos)

    def cond_in(self, ref, _in, values):
        return Condition(ref, "IN", values, ref.pos)

    def cond_not_in(self, ref, _not, _in, values):
        return Condition(ref, "NOT IN", values, ref.pos)

    def cond_cmp(self, ref, op, values):
        return Condition(ref, str(op), values, ref.pos)

    def in_rhs(self, *parts):
        return tuple(_value(p) for p in parts if not (isinstance(p, Token) and p.type in ("LPAR", "RPAR", "COMMA")))

    def cmp_rhs(self, *parts):
        return self.in_rhs(*parts)


def _value(p) -> Value:
    if isinstance(p, FieldRef):
        return p
    if p.type == "STRING":
        return Literal(_unescape(p), p.start_pos)
    if p.type == "PLACEHOLDER":
        return Placeholder(p[1:], p.start_pos)
    if p.type == "STAR":
        return Star(p.start_pos)
    return Number(float(p), str(p), p.start_pos)


def _position(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return f"position {pos} (line {line}, column {column})"


def _expected(names) -> str:
    order = list(_EXPECTED_NAMES)
    shown = [_EXPECTED_NAMES[n] for n in sorted(set(names), key=lambda n: order.index(n) if n in order else 99)
             if n in _EXPECTED_NAMES]
    if not shown:
        return ""
    if len(shown) == 1:
        return f"; expected {shown[0]}"
    return f"; expected one of: {', '.join(shown)}"


def _word_at(text: str, pos: int) -> str:
    """The word (or single character) starting at ``pos``, for error messages."""
    end = pos
    while end < len(text) and (text[end].isalnum() or text[end] in "_$"):
        end += 1
    return text[pos:max(end, pos + 1)]


def _error(text: str, detail: str) -> InvalidInputException:
    return InvalidInputException(f"Invalid filterExpression: {detail}.")


def syntax_error(text: str, exc: UnexpectedInput) -> InvalidInputException:
    """Turn a lark error into our message: what was found, where, and what was expected."""
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        pos = len(text.rstrip())
        return _error(text, f"unexpected end of expression at {_position(text, pos)}"
                            f"{_expected(exc.expected)}")
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        expected = exc.accepts or exc.expected
        return _error(text, f"unexpected '{tok}' at {_position(text, tok.start_pos)}{_expected(expected)}")
    assert isinstance(exc, UnexpectedCharacters)
    pos = exc.pos_in_stream
    if text[pos] == '"':
        return _error(text, f"unterminated string starting at {_position(text, pos)}")
    hint = " (strings are in double quotes)" if text[pos] == "'" else ""
    return _error(text, f"unexpected {_quote(_word_at(text, pos))} at {_position(text, pos)}"
                        f"{_expected(_accepts_after(text[:pos], exc.allowed))}{hint}")


def _quote(word: str) -> str:
    return f'"{word}"' if "'" in word else f"'{word}'"


def _accepts_after(prefix: str, fallback) -> set[str]:
    """The terminals the parser accepts after ``prefix``. The lexer's own list can be too wide
    (an LALR state is shared by nested and top-level conditions), so replay the prefix."""
    try:
        ip = _parser().parse_interactive(prefix)
        ip.exhaust_lexer()
        return set(ip.accepts())
    except UnexpectedInput:
        return set(fallback or ())


def parse_filter(text: str) -> Filter:
    """Parse a filter expression; InvalidInputException says where and what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputException("Invalid filterExpression: it is empty; a filter needs at least one "
                                    "INCLUDE or EXCLUDE expression.")
    if len(text) > MAX_LENGTH:
        raise InvalidInputException(f"Invalid filterExpression: it is {len(text)} characters long; "
                                    f"the limit is {MAX_LENGTH}.")
    _check_nesting(text)
    try:
        tree = _parser().parse(text)
        expressions = _ToAst(text).transform(tree)
    except RecursionError:
        raise _error(text, f"it nests too deeply to be read (at most {MAX_NESTING} levels of parentheses)") from None
    except UnexpectedInput as exc:
        raise syntax_error(text, exc) from None
    except VisitError as exc:
        if isinstance(exc.orig_exc, SyntaxProblem):
            p = exc.orig_exc
            raise _error(text, f"{p.what} at {_position(text, p.pos)}; {p.rule}") from None
        raise
    return Filter(expressions=_with_texts(expressions, text), source=text)


def _check_nesting(text: str) -> None:
    """Refuse parentheses nested deeper than MAX_NESTING (quoted values do not count)."""
    depth, quoted = 0, False
    for pos, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif ch == "(":
            depth += 1
            if depth > MAX_NESTING:
                raise _error(text, f"parentheses nest deeper than {MAX_NESTING} levels at {_position(text, pos)}")
        elif ch == ")":
            depth -= 1


def _with_texts(expressions: tuple[Expression, ...], text: str) -> tuple[Expression, ...]:
    """Give each expression its own source text (from its start to the next expression's)."""
    out = []
    for i, e in enumerate(expressions):
        end = expressions[i + 1].pos if i + 1 < len(expressions) else len(text)
        piece = text[e.pos:end].rstrip()
        if i + 1 < len(expressions):
            piece = piece[:-1].rstrip() if piece.endswith("|") else piece
        out.append(replace(e, text=piece))
    return tuple(out)


__all__ = ["parse_filter", "Filter", "Expression", "Condition", "And", "Or", "FieldRef", "Literal",
           "Number", "Placeholder", "Star", "Value", "Node", "DATASETS", "CURRENT_USER", "CURRENT_ITEM",
           "MAX_LENGTH"]
