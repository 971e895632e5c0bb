"""The filter language, table-driven: every expression either passes the grammar and the static
rules, or fails with exactly this InvalidInputException message."""

from __future__ import annotations

import pytest

from openpersonalize.errors import InvalidInputException
from openpersonalize.filters import check_filter, parse_filter
from openpersonalize.filters.grammar import And, Condition, Literal, Number, Or, Placeholder, Star

from .schemas import SCHEMAS

# (expression, None when valid, else the exact message). Checked against tests/filters/schemas.py.
CASES = [
    ('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", "stream")',
     None),
    ('INCLUDE ItemID WHERE Items.GENRES IN ($GENRES) | EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")',
     None),
    ('INCLUDE ItemID WHERE Items.PRICE <= $MAX_PRICE AND Items.CREATION_TIMESTAMP > $SINCE',
     None),
    ('EXCLUDE ItemID WHERE Items.GENRES IN ("Horror") IF CurrentUser.AGE < 18',
     None),
    ('INCLUDE ItemID WHERE Items.PRICE < CurrentItem.PRICE AND Items.STUDIO IN CurrentItem.STUDIO',
     None),
    ('EXCLUDE ActionID WHERE Action_Interactions.EVENT_TYPE IN ("NOT_TAKEN")',
     None),
    ('INCLUDE ActionID WHERE Actions.VALUE > ($MIN_VALUE)',
     None),
    ('INCLUDE UserID WHERE Users.MEMBERSHIP_STATUS IN ($TIER)',
     None),
    ('EXCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("purchase")',
     None),
    ('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click, rating")',
     None),
    ('include itemid where items.genres in ("a")',
     None),
    ('InClUdE ItemId WhErE ItEmS.genres NoT iN ("a", "b")',
     None),
    ('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN (*)',
     None),
    ('EXCLUDE ItemID WHERE Interactions.event_type IN ("click", *)',
     None),
    ('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE NOT IN ("click")',
     None),
    ('INCLUDE ItemID WHERE Items.STUDIO IN ("say \\"hi\\"", "back\\\\slash")',
     None),
    ('INCLUDE ItemID WHERE Items.PRICE = 10',
     None),
    ('INCLUDE ItemID WHERE Items.PRICE != -3.5',
     None),
    ('INCLUDE ItemID WHERE Items.PRICE >= 1e3',
     None),
    ('INCLUDE ItemID WHERE Items.PRICE > .5',
     None),
    ('INCLUDE ItemID WHERE Items.PRICE<5',
     None),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("x") OR Items.STUDIO IN ("y") AND Items.PRICE > 1',
     None),
    ('INCLUDE ItemID WHERE (Items.GENRES IN ("x") OR Items.STUDIO IN ("y")) AND Items.PRICE > 1',
     None),
    ('INCLUDE ItemID WHERE ((Items.GENRES IN ("x")))',
     None),
    ('EXCLUDE ItemID WHERE Items.GENRES IN ("x") IF CurrentUser.AGE >= 18 AND CurrentUser.TIER IN ("gold")',
     None),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("x") | INCLUDE ItemID WHERE Items.STUDIO IN ("y") | EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("buy")',
     None),
    ('  INCLUDE\n ItemID\tWHERE Items.GENRES IN ( "x" , $Y )  ',
     None),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("a", $G) AND Items.PRICE >= ($P) IF CurrentUser.TIER IN ($T) AND CurrentUser.AGE > 17',
     None),
    ('INCLUDE ItemID WHERE Items.ITEM_ID IN ("i1", "i2")',
     None),
    ('INCLUDE ActionID WHERE Actions.CATEGORY IN ("a") IF CurrentUser.AGE > 17',
     None),
    ('INCLUDE UserID WHERE Interactions.EVENT_TYPE IN (*) | EXCLUDE UserID WHERE Users.AGE < 18',
     None),
    ('INCLUDE ItemID WHERE Items.F0 > 0 AND Items.F1 > 0 AND Items.F2 > 0 AND Items.F3 > 0 AND Items.F4 > 0 | INCLUDE ItemID WHERE Items.F5 > 0 AND Items.F6 > 0 AND Items.F7 > 0 AND Items.F8 > 0 AND Items.F9 > CurrentItem.F9',
     None),
    ('',
     'Invalid filterExpression: it is empty; a filter needs at least one INCLUDE or EXCLUDE expression.'),
    ('   ',
     'Invalid filterExpression: it is empty; a filter needs at least one INCLUDE or EXCLUDE expression.'),
    ('INCLUDE',
     'Invalid filterExpression: unexpected end of expression at position 7 (line 1, column 8); expected ItemID, ActionID or UserID.'),
    ('SELECT ItemID WHERE Items.GENRES IN ("x")',
     "Invalid filterExpression: unexpected 'SELECT' at position 0 (line 1, column 1); expected INCLUDE or EXCLUDE."),
    ('INCLUDE Items WHERE Items.GENRES IN ("x")',
     "Invalid filterExpression: unexpected 'Items' at position 8 (line 1, column 9); expected ItemID, ActionID or UserID."),
    ('INCLUDE ItemID Items.GENRES IN ("x")',
     "Invalid filterExpression: unexpected 'Items' at position 15 (line 1, column 16); expected WHERE."),
    ('EXCLUDE ItemID WHER Interactions.EVENT_TYPE IN ("click")',
     "Invalid filterExpression: unexpected 'WHER' at position 15 (line 1, column 16); expected WHERE."),
    ('INCLUDE ItemID WHERE Item.GENRES IN ("x")',
     "Invalid filterExpression: unexpected 'Item' at position 21 (line 1, column 22); expected one of: a dataset (Items, Users, Interactions, Actions, Action_Interactions), '('."),
    ('INCLUDE ItemID WHERE Items GENRES IN ("x")',
     "Invalid filterExpression: unexpected 'GENRES' at position 27 (line 1, column 28); expected '.'."),
    ('INCLUDE ItemID WHERE Items.GENRES INN ("x")',
     "Invalid filterExpression: unexpected 'INN' at position 34 (line 1, column 35); expected one of: NOT IN, IN, a comparison (=, !=, <, <=, >, >=)."),
    ('INCLUDE ItemID WHERE Items.GENRES NOT ("x")',
     "Invalid filterExpression: unexpected '(' at position 38 (line 1, column 39); expected IN."),
    ('INCLUDE ItemID WHERE Items.PRICE == 3',
     "Invalid filterExpression: unexpected '=' at position 34 (line 1, column 35); expected one of: '(', a $PLACEHOLDER, a number, CurrentItem.<field>."),
    ('INCLUDE ItemID WHERE Items.PRICE <> 3',
     "Invalid filterExpression: unexpected '>' at position 34 (line 1, column 35); expected one of: '(', a $PLACEHOLDER, a number, CurrentItem.<field>."),
    ('INCLUDE ItemID WHERE Items.GENRES IN "x"',
     'Invalid filterExpression: unexpected \'"x"\' at position 37 (line 1, column 38); expected one of: \'(\', CurrentItem.<field>.'),
    ('INCLUDE ItemID WHERE Items.GENRES IN ()',
     "Invalid filterExpression: unexpected ')' at position 38 (line 1, column 39); expected one of: a string, a $PLACEHOLDER, '*'."),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("x",)',
     "Invalid filterExpression: unexpected ')' at position 42 (line 1, column 43); expected one of: a string, a $PLACEHOLDER, '*'."),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("x" "y")',
     'Invalid filterExpression: unexpected \'"y"\' at position 42 (line 1, column 43); expected one of: \',\', \')\'.'),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("x"',
     "Invalid filterExpression: unexpected end of expression at position 41 (line 1, column 42); expected one of: ',', ')'."),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("x)',
     'Invalid filterExpression: unterminated string starting at position 38 (line 1, column 39).'),
    ("INCLUDE ItemID WHERE Items.GENRES IN ('x')",
     'Invalid filterExpression: unexpected "\'" at position 38 (line 1, column 39); expected one of: a string, a $PLACEHOLDER, \'*\' (strings are in double quotes).'),
    ('INCLUDE ItemID WHERE Items.GENRES IN (x)',
     "Invalid filterExpression: unexpected 'x' at position 38 (line 1, column 39); expected one of: a string, a $PLACEHOLDER, '*'."),
    ('INCLUDE ItemID WHERE Items.GENRES IN (3)',
     "Invalid filterExpression: unexpected '3' at position 38 (line 1, column 39); expected one of: a string, a $PLACEHOLDER, '*'."),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("a\\tb")',
     'Invalid filterExpression: invalid escape \'\\t\' at position 40 (line 1, column 41); strings know only the escapes \\" and \\\\.'),
    ('INCLUDE ItemID WHERE Items.PRICE = "x"',
     'Invalid filterExpression: unexpected \'"x"\' at position 35 (line 1, column 36); expected one of: \'(\', a $PLACEHOLDER, a number, CurrentItem.<field>.'),
    ('INCLUDE ItemID WHERE Items.PRICE < ($X, $Y)',
     "Invalid filterExpression: unexpected ',' at position 38 (line 1, column 39); expected ')'."),
    ('INCLUDE ItemID WHERE Items.PRICE < (3)',
     "Invalid filterExpression: unexpected '3' at position 36 (line 1, column 37); expected a $PLACEHOLDER."),
    ('INCLUDE ItemID WHERE Items.PRICE > 3abc',
     "Invalid filterExpression: unexpected '3abc' at position 35 (line 1, column 36); expected one of: '(', a $PLACEHOLDER, a number, CurrentItem.<field>."),
    ('INCLUDE ItemID WHERE Items.GENRES IN ($)',
     "Invalid filterExpression: unexpected '$' at position 38 (line 1, column 39); expected one of: a string, a $PLACEHOLDER, '*'."),
    ('INCLUDE ItemID WHERE Items.GENRES IN ($X-Y)',
     "Invalid filterExpression: unexpected '-' at position 40 (line 1, column 41); expected one of: ',', ')'."),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("x") AND',
     "Invalid filterExpression: unexpected end of expression at position 46 (line 1, column 47); expected one of: a dataset (Items, Users, Interactions, Actions, Action_Interactions), '('."),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("x") AND OR Items.STUDIO IN ("y")',
     "Invalid filterExpression: unexpected 'OR' at position 47 (line 1, column 48); expected one of: a dataset (Items, Users, Interactions, Actions, Action_Interactions), '('."),
    ('INCLUDE ItemID WHERE (Items.GENRES IN ("x")',
     "Invalid filterExpression: unexpected end of expression at position 43 (line 1, column 44); expected ')'."),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("x"))',
     "Invalid filterExpression: unexpected ')' at position 42 (line 1, column 43); expected one of: IF, '|', the end of the expression."),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("x") |',
     'Invalid filterExpression: unexpected end of expression at position 44 (line 1, column 45); expected INCLUDE or EXCLUDE.'),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("x") || EXCLUDE ItemID WHERE Items.STUDIO IN ("y")',
     "Invalid filterExpression: unexpected '|' at position 44 (line 1, column 45); expected INCLUDE or EXCLUDE."),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("x") ; EXCLUDE ItemID WHERE Items.STUDIO IN ("y")',
     "Invalid filterExpression: unexpected ';' at position 43 (line 1, column 44); expected one of: AND, OR, IF, '|', the end of the expression."),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("x") IF',
     'Invalid filterExpression: unexpected end of expression at position 45 (line 1, column 46); expected CurrentUser.<field>.'),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("x") IF Users.AGE > 3',
     "Invalid filterExpression: unexpected 'Users' at position 46 (line 1, column 47); expected CurrentUser.<field>."),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("x") IF CurrentUser.AGE > 3 OR CurrentUser.TIER IN ("y")',
     "Invalid filterExpression: unexpected 'OR' at position 66 (line 1, column 67); expected one of: AND, '|', the end of the expression."),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("x") IF CurrentUser.AGE > 3 IF CurrentUser.AGE < 9',
     "Invalid filterExpression: unexpected 'IF' at position 66 (line 1, column 67); expected one of: AND, '|', the end of the expression."),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("x") IF CurrentUser.AGE > 3 AND Items.STUDIO IN ("y")',
     "Invalid filterExpression: unexpected 'Items' at position 70 (line 1, column 71); expected CurrentUser.<field>."),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("x") IF (CurrentUser.AGE > 3)',
     "Invalid filterExpression: unexpected '(' at position 46 (line 1, column 47); expected CurrentUser.<field>."),
    ('INCLUDE ItemID WHERE Items.GENRES IN CurrentUser.TIER',
     "Invalid filterExpression: unexpected 'CurrentUser' at position 37 (line 1, column 38); expected one of: '(', CurrentItem.<field>."),
    ('INCLUDE ItemID WHERE CurrentItem.GENRES IN ("x")',
     "Invalid filterExpression: unexpected 'CurrentItem' at position 21 (line 1, column 22); expected one of: a dataset (Items, Users, Interactions, Actions, Action_Interactions), '('."),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("x")\nAND Items.STUDIO IN ("y")\n  AND Items.GENRES IN y',
     "Invalid filterExpression: unexpected 'y' at position 91 (line 3, column 23); expected one of: '(', CurrentItem.<field>."),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("é") AND Items.STUDIO ∈ ("y")',
     "Invalid filterExpression: unexpected '∈' at position 60 (line 1, column 61); expected one of: NOT IN, IN, a comparison (=, !=, <, <=, >, >=)."),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("x") AND NOT Items.STUDIO IN ("y")',
     "Invalid filterExpression: unexpected 'NOT' at position 47 (line 1, column 48); expected one of: a dataset (Items, Users, Interactions, Actions, Action_Interactions), '('."),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("x") |EXCLUDE',
     'Invalid filterExpression: unexpected end of expression at position 51 (line 1, column 52); expected ItemID, ActionID or UserID.'),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("' + 'x' * 2480 + '")',
     'Invalid filterExpression: it is 2521 characters long; the limit is 2500.'),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("a") AND Interactions.EVENT_TYPE IN ("x")',
     "Invalid filterExpression: 'Interactions.EVENT_TYPE' at position 47 (line 1, column 48): all conditions of one expression must use the dataset of its first condition (Items); join conditions on different datasets as separate expressions with '|'."),
    ('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("x") OR Items.GENRES IN ("a")',
     "Invalid filterExpression: 'Items.GENRES' at position 57 (line 1, column 58): all conditions of one expression must use the dataset of its first condition (Interactions); join conditions on different datasets as separate expressions with '|'."),
    ('INCLUDE ItemID WHERE Users.TIER IN ("gold")',
     "Invalid filterExpression: 'Users.TIER' at position 21 (line 1, column 22): an ItemID expression can only use Items and Interactions fields (test the requesting user with IF CurrentUser.<field>)."),
    ('INCLUDE ItemID WHERE Actions.VALUE > 3',
     "Invalid filterExpression: 'Actions.VALUE' at position 21 (line 1, column 22): an ItemID expression can only use Items and Interactions fields."),
    ('INCLUDE ActionID WHERE Items.PRICE > 3',
     "Invalid filterExpression: 'Items.PRICE' at position 23 (line 1, column 24): an ActionID expression can only use Actions and Action_Interactions fields."),
    ('INCLUDE UserID WHERE Items.GENRES IN ("a")',
     "Invalid filterExpression: 'Items.GENRES' at position 21 (line 1, column 22): a UserID expression can only use Users and Interactions fields."),
    ('INCLUDE UserID WHERE Users.TIER IN ("gold") IF CurrentUser.AGE > 3',
     "Invalid filterExpression: 'CurrentUser.AGE' at position 47 (line 1, column 48): UserID expressions cannot have an IF clause; IF CurrentUser tests the user of a recommendation request."),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("a") | EXCLUDE UserID WHERE Users.TIER IN ("gold")',
     "Invalid filterExpression: 'UserID' at position 53 (line 1, column 54): every expression of a filter must have the same target as the first (ItemID)."),
    ('EXCLUDE ItemID WHERE Interactions.DEVICE IN ("phone")',
     "Invalid filterExpression: 'Interactions.DEVICE' at position 21 (line 1, column 22): Interactions conditions can only use EVENT_TYPE."),
    ('EXCLUDE ActionID WHERE Action_Interactions.TIMESTAMP > 3',
     "Invalid filterExpression: 'Action_Interactions.TIMESTAMP' at position 23 (line 1, column 24): Action_Interactions conditions can only use EVENT_TYPE."),
    ('INCLUDE ItemID WHERE Items.COLOR IN ("red")',
     "Invalid filterExpression: 'Items.COLOR' at position 21 (line 1, column 22): the Items schema has no field COLOR (its fields: ITEM_ID, GENRES, PRICE, CREATION_TIMESTAMP, STUDIO, DESCRIPTION, IS_NEW, F0, F1, F2, F3, F4, F5, F6, F7, F8, F9)."),
    ('INCLUDE ItemID WHERE Items.DESCRIPTION IN ("x")',
     "Invalid filterExpression: 'Items.DESCRIPTION' at position 21 (line 1, column 22): DESCRIPTION is a textual field; textual fields cannot be used in filters."),
    ('INCLUDE ItemID WHERE Items.IS_NEW IN ("true")',
     "Invalid filterExpression: 'Items.IS_NEW' at position 21 (line 1, column 22): IS_NEW is a boolean field; boolean fields cannot be used in filters (use a string or 0/1 field)."),
    ('INCLUDE ItemID WHERE Items.PRICE IN ("3")',
     "Invalid filterExpression: 'Items.PRICE' at position 21 (line 1, column 22): PRICE is a float field; IN compares strings, use =, !=, <, <=, > or >= for numbers."),
    ('INCLUDE ItemID WHERE Items.GENRES > 3',
     "Invalid filterExpression: 'Items.GENRES' at position 21 (line 1, column 22): GENRES is a string field; '>' compares numbers, use IN or NOT IN for strings."),
    ('INCLUDE ItemID WHERE Items.GENRES NOT IN ($G)',
     "Invalid filterExpression: '$G' at position 42 (line 1, column 43): placeholders cannot be used with NOT IN (use IN, or a comparison)."),
    ('INCLUDE ItemID WHERE Items.GENRES IN (*)',
     "Invalid filterExpression: '*' at position 38 (line 1, column 39): '*' (any event type) is allowed only in Interactions.EVENT_TYPE or Action_Interactions.EVENT_TYPE lists."),
    ('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE = 3',
     "Invalid filterExpression: 'Interactions.EVENT_TYPE' at position 21 (line 1, column 22): EVENT_TYPE is a string; use IN or NOT IN."),
    ('INCLUDE ActionID WHERE Actions.EXPIRATION_TIMESTAMP > $NOW',
     "Invalid filterExpression: 'Actions.EXPIRATION_TIMESTAMP' at position 23 (line 1, column 24): EXPIRATION_TIMESTAMP is applied by Next-Best-Action itself and cannot be used in filters."),
    ('INCLUDE ItemID WHERE Items.PRICE < CurrentItem.GENRES',
     "Invalid filterExpression: 'CurrentItem.GENRES' at position 35 (line 1, column 36): GENRES is a string field; '<' needs a numeric field."),
    ('INCLUDE ItemID WHERE Items.GENRES IN CurrentItem.PRICE',
     "Invalid filterExpression: 'CurrentItem.PRICE' at position 37 (line 1, column 38): PRICE is a float field; IN needs a string field."),
    ('INCLUDE ItemID WHERE Items.GENRES IN CurrentItem.NOPE',
     "Invalid filterExpression: 'CurrentItem.NOPE' at position 37 (line 1, column 38): the Items schema has no field NOPE (its fields: ITEM_ID, GENRES, PRICE, CREATION_TIMESTAMP, STUDIO, DESCRIPTION, IS_NEW, F0, F1, F2, F3, F4, F5, F6, F7, F8, F9)."),
    ('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN CurrentItem.GENRES',
     "Invalid filterExpression: 'CurrentItem.GENRES' at position 48 (line 1, column 49): CurrentItem can only be compared with Items fields in ItemID expressions."),
    ('INCLUDE ActionID WHERE Actions.VALUE > CurrentItem.PRICE',
     "Invalid filterExpression: 'CurrentItem.PRICE' at position 39 (line 1, column 40): CurrentItem can only be compared with Items fields in ItemID expressions."),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("a") IF CurrentUser.AGE IN ("3")',
     "Invalid filterExpression: 'CurrentUser.AGE' at position 46 (line 1, column 47): AGE is an int field; IN compares strings, use =, !=, <, <=, > or >= for numbers."),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("a") IF CurrentUser.TIER < 3',
     "Invalid filterExpression: 'CurrentUser.TIER' at position 46 (line 1, column 47): TIER is a string field; '<' compares numbers, use IN or NOT IN for strings."),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("a") IF CurrentUser.HEIGHT < 3',
     "Invalid filterExpression: 'CurrentUser.HEIGHT' at position 46 (line 1, column 47): the Users schema has no field HEIGHT (its fields: USER_ID, AGE, TIER, MEMBERSHIP_STATUS)."),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("a") IF CurrentUser.TIER IN CurrentItem.GENRES',
     "Invalid filterExpression: 'CurrentItem.GENRES' at position 66 (line 1, column 67): an IF condition compares CurrentUser with values, not with CurrentItem."),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("a") IF CurrentUser.TIER NOT IN ($T)',
     "Invalid filterExpression: '$T' at position 71 (line 1, column 72): placeholders cannot be used with NOT IN (use IN, or a comparison)."),
    ('INCLUDE ItemID WHERE Items.GENRES IN ($' + 'X' * 51 + ')',
     "Invalid filterExpression: '$XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX' at position 38 (line 1, column 39): placeholder names are at most 50 characters."),
    ('INCLUDE ItemID WHERE Items.F0 > 0 AND Items.F1 > 0 AND Items.F2 > 0 AND Items.F3 > 0 AND Items.F4 > 0 | INCLUDE ItemID WHERE Items.F5 > 0 AND Items.F6 > 0 AND Items.F7 > 0 AND Items.F8 > 0 AND Items.F9 > 0 AND Items.PRICE > 0',
     'Invalid filterExpression: it uses 11 distinct dataset fields (Items.F0, Items.F1, Items.F2, Items.F3, Items.F4, Items.F5, Items.F6, Items.F7, Items.F8, Items.F9, Items.PRICE); a filter can use at most 10.'),
]


@pytest.mark.parametrize("expression, message", CASES)
def test_grammar_table(expression, message):
    if message is None:
        check_filter(expression, SCHEMAS)
        return
    with pytest.raises(InvalidInputException) as e:
        check_filter(expression, SCHEMAS)
    assert e.value.message == message


def test_table_size_and_coverage():
    assert len(CASES) >= 60
    assert sum(m is None for _, m in CASES) >= 20 and sum(m is not None for _, m in CASES) >= 40


def test_and_binds_tighter_than_or():
    where = parse_filter('INCLUDE ItemID WHERE Items.A IN ("x") OR Items.B IN ("y") AND Items.C > 1'
                         ).expressions[0].where
    assert isinstance(where, Or) and isinstance(where.parts[1], And)
    grouped = parse_filter('INCLUDE ItemID WHERE (Items.A IN ("x") OR Items.B IN ("y")) AND Items.C > 1'
                           ).expressions[0].where
    assert isinstance(grouped, And) and isinstance(grouped.parts[0], Or)


def test_tree_values_and_normalised_keywords():
    f = parse_filter('include itemid where items.Genres in ("a\\"b", "c\\\\d", $G) | '
                     'exclude ITEMID where interactions.event_type not in (*) '
                     'if currentuser.age >= -1.5e1')
    first, second = f.expressions
    assert (first.action, first.target, second.action, second.target) == ("INCLUDE", "ItemID", "EXCLUDE", "ItemID")
    cond = first.where
    assert isinstance(cond, Condition) and cond.field.dataset == "ITEMS" and cond.field.name == "Genres"
    assert cond.field.key == "GENRES" and cond.op == "IN"
    assert [type(v) for v in cond.values] == [Literal, Literal, Placeholder]
    assert [getattr(v, "value", getattr(v, "name", None)) for v in cond.values] == ['a"b', "c\\d", "G"]
    assert second.where.op == "NOT IN" and isinstance(second.where.values[0], Star)
    (gate,) = second.if_conditions
    assert gate.field.dataset == "CURRENT_USER" and gate.op == ">=" and gate.values == (Number(-15.0, "-1.5e1", 138),)
    assert first.text == 'include itemid where items.Genres in ("a\\"b", "c\\\\d", $G)'
    assert second.text.startswith("exclude ITEMID") and second.text.endswith("-1.5e1")


def test_a_comma_inside_one_literal_is_one_value():
    (value,) = parse_filter('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click, rating")'
                            ).expressions[0].where.values
    assert value == Literal("click, rating", 49)


def test_datasets_that_do_not_exist_yet_are_not_checked():
    partial = {"ITEMS": SCHEMAS["ITEMS"]}
    check_filter('EXCLUDE ItemID WHERE Items.GENRES IN ("a") IF CurrentUser.WHATEVER < 18', partial)
    check_filter('INCLUDE UserID WHERE Users.ANYTHING IN ("x")', {})
    with pytest.raises(InvalidInputException):
        check_filter('INCLUDE ItemID WHERE Items.WHATEVER IN ("a")', partial)
