"""Placeholder values (filters spec §3): ``{"GENRES": "\\"Comedy\\",\\"Drama\\"", "MAX": "30"}``.

Each value is a comma-separated list; a token in double quotes is unescaped (``\\"`` and
``\\\\``), an unquoted token is taken literally after trimming whitespace (used for numbers).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from ..errors import InvalidInputException

MAX_ENTRIES = 25
MAX_KEY_LENGTH = 50
MAX_VALUE_LENGTH = 1000
_KEY = re.compile(r"[A-Za-z0-9_]+")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"', re.S)
_UNQUOTED = re.compile(r'[^,"]*')
_ESCAPE = re.compile(r"\\(.)", re.S)
EXAMPLE = 'values are comma-separated double-quoted strings, such as "\\"Comedy\\",\\"Drama\\"", or a number'


def _bad(name: str, value: str, rule: str) -> InvalidInputException:
    shown = value if len(value) <= 200 else value[:200] + "..."
    return InvalidInputException(f"Invalid filterValues: '{name}' is '{shown}': {rule}.")


def _unescape(name: str, raw: str, body: str, offset: int) -> str:
    def one(m: re.Match) -> str:
        if m.group(1) not in ('"', "\\"):
            raise _bad(name, raw, f"invalid escape '\\{m.group(1)}' at character {offset + m.start()}; "
                                  'quoted values know only \\" and \\\\')
        return m.group(1)

    return _ESCAPE.sub(one, body)


def parse_value(name: str, raw: str) -> list[str]:
    """One placeholder's list of values. An empty or blank string is an empty list."""
    out: list[str] = []
    pos, n = 0, len(raw)
    if not raw.strip():
        return out
    while True:
        while pos < n and raw[pos].isspace():
            pos += 1
        if pos < n and raw[pos] == '"':
            m = _QUOTED.match(raw, pos)
            if m is None:
                raise _bad(name, raw, f"the quoted value starting at character {pos} has no closing quote")
            out.append(_unescape(name, raw, m.group(1), pos + 1))
            pos = m.end()
            while pos < n and raw[pos].isspace():
                pos += 1
            if pos < n and raw[pos] != ",":
                raise _bad(name, raw, f"unexpected '{raw[pos]}' at character {pos} after a quoted value; "
                                      f"{EXAMPLE}")
        else:
            m = _UNQUOTED.match(raw, pos)
            token = m.group(0).strip()
            end = m.end()
            if end < n and raw[end] == '"':
                raise _bad(name, raw, f"a double quote at character {end} inside an unquoted value; {EXAMPLE}")
            if not token:
                raise _bad(name, raw, f"empty value at character {pos}; {EXAMPLE}")
            out.append(token)
            pos = end
        if pos >= n:
            return out
        pos += 1  # the comma
        if pos >= n or not raw[pos:].strip():
            raise _bad(name, raw, f"empty value after the comma at character {pos - 1}; {EXAMPLE}")


def parse_filter_values(values: Mapping[str, str] | None) -> dict[str, list[str]]:
    """Parse a ``filterValues`` map (runtime request, promotion or batch input line).

    Raises InvalidInputException naming the placeholder, its value and the rule it breaks.
    Names are case-sensitive and given without ``$``.
    """
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise InvalidInputException("Invalid filterValues: it must be an object that maps placeholder "
                                    "names to strings.")
    if len(values) > MAX_ENTRIES:
        raise InvalidInputException(f"Invalid filterValues: it has {len(values)} entries; the limit is "
                                    f"{MAX_ENTRIES}.")
    out: dict[str, list[str]] = {}
    for name, raw in values.items():
        if not isinstance(name, str) or not _KEY.fullmatch(name) or len(name) > MAX_KEY_LENGTH:
            raise InvalidInputException(
                f"Invalid filterValues: the name '{name}' must be 1-{MAX_KEY_LENGTH} characters of "
                "[A-Za-z0-9_] (the placeholder without its $).")
        if not isinstance(raw, str):
            raise _bad(name, str(raw), f"a value must be a string; {EXAMPLE}")
        if len(raw) > MAX_VALUE_LENGTH:
            raise _bad(name, raw, f"it is {len(raw)} characters long; the limit is {MAX_VALUE_LENGTH}")
        out[name] = parse_value(name, raw)
    return out


def number_value(name: str, values: list[str], where: str) -> float:
    """The single number a comparison placeholder must hold."""
    shown = ",".join(values)
    if len(values) != 1:
        raise _bad(name, shown, f"{where} needs exactly one number, not {len(values)} values")
    try:
        number = float(values[0])
    except ValueError:
        raise _bad(name, shown, f"{where} needs a number") from None
    if not math.isfinite(number):
        raise _bad(name, shown, f"{where} needs a finite number")
    return number


__all__ = ["parse_filter_values", "parse_value", "number_value"]
