"""filterValues parsing (filters spec §3)."""

from __future__ import annotations

import pytest

from openpersonalize.errors import InvalidInputException
from openpersonalize.filters import parse_filter_values

HINT = 'values are comma-separated double-quoted strings, such as "\\"Comedy\\",\\"Drama\\"", or a number'


@pytest.mark.parametrize("raw, values", [
    ('"Comedy","Drama"', ["Comedy", "Drama"]),
    ('"Comedy"', ["Comedy"]),
    ("30", ["30"]),
    (" 2.5 ", ["2.5"]),
    ('  "a,b" ,  "c" ', ["a,b", "c"]),
    ('"say \\"hi\\"","back\\\\slash"', ['say "hi"', "back\\slash"]),
    ('"x", 3', ["x", "3"]),
    ('""', [""]),
    ("", []),
    ("   ", []),
])
def test_parses(raw, values):
    assert parse_filter_values({"NAME": raw}) == {"NAME": values}


@pytest.mark.parametrize("raw, rule", [
    ('"Comedy', "the quoted value starting at character 0 has no closing quote"),
    ('"a","b', "the quoted value starting at character 4 has no closing quote"),
    ('"a"b', f"unexpected 'b' at character 3 after a quoted value; {HINT}"),
    ('a"b"', f"a double quote at character 1 inside an unquoted value; {HINT}"),
    ('"a",,"b"', f"empty value at character 4; {HINT}"),
    ('"a",', f"empty value after the comma at character 3; {HINT}"),
    (',"a"', f"empty value at character 0; {HINT}"),
    ('"a\\nb"', "invalid escape '\\n' at character 2; quoted values know only \\\" and \\\\"),
])
def test_malformed_value_names_placeholder_value_and_rule(raw, rule):
    with pytest.raises(InvalidInputException) as e:
        parse_filter_values({"GENRES": raw})
    assert e.value.message == f"Invalid filterValues: 'GENRES' is '{raw}': {rule}."


def test_names_values_and_entries_are_bounded():
    with pytest.raises(InvalidInputException, match="the name 'BAD-NAME' must be 1-50 characters"):
        parse_filter_values({"BAD-NAME": '"x"'})
    with pytest.raises(InvalidInputException, match="must be 1-50 characters"):
        parse_filter_values({"X" * 51: '"x"'})
    with pytest.raises(InvalidInputException, match="it has 26 entries; the limit is 25"):
        parse_filter_values({f"P{i}": '"x"' for i in range(26)})
    with pytest.raises(InvalidInputException, match="it is 1001 characters long; the limit is 1000"):
        parse_filter_values({"P": "1" * 1001})
    with pytest.raises(InvalidInputException, match="'P' is '3': a value must be a string"):
        parse_filter_values({"P": 3})
    with pytest.raises(InvalidInputException, match="must be an object"):
        parse_filter_values(["P"])
    assert parse_filter_values(None) == {}
