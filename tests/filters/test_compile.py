"""Evaluating compiled filters: semantics the spec names one by one, caching, and the inputs the
later callers (runtime, batch inference, batch segments) will pass."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from openpersonalize.errors import InvalidInputException
from openpersonalize.filters import Catalogue, FilterData, Histories, compile_filter

from .schemas import SCHEMAS


@pytest.fixture
def data() -> FilterData:
    items = pa.table({
        "ITEM_ID": ["i0", "i1", "i2", "i3", "i4"],
        "GENRES": ["Comedy|Drama", None, "Horror", "Drama", ""],
        "PRICE": pa.array([10.0, 25.0, None, 5.0, 40.0], pa.float32()),
        "CREATION_TIMESTAMP": pa.array([100, 200, 300, 400, 500], pa.int64()),
        "STUDIO": ["A", "B", "A", None, "B"],
        "DESCRIPTION": ["long text", "", "", "", ""],
    })
    users = pa.table({"USER_ID": ["u0", "u1"], "AGE": pa.array([15, 40], pa.int32()), "TIER": ["gold", None]})
    return FilterData(items=Catalogue.from_table(items, SCHEMAS["ITEMS"]),
                      users=Catalogue.from_table(users, SCHEMAS["USERS"]))


def _ids(mask) -> list[int]:
    return np.flatnonzero(mask).tolist()


def test_spec_example_genres_and_purchases(data):
    f = compile_filter('INCLUDE ItemID WHERE Items.GENRES IN ($GENRES) | '
                       'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")', SCHEMAS)
    bound = f.bind(data, {"GENRES": '"Comedy","Drama"'})
    assert _ids(bound.static_mask) == [0, 3]
    history = Histories.single([3, 1], ["Purchase", "click"])
    assert _ids(bound.mask(history=history)) == [0]
    assert _ids(bound.mask()) == [0, 3]  # no user: empty history


def test_numeric_comparisons_and_nulls(data):
    f = compile_filter("INCLUDE ItemID WHERE Items.PRICE <= $MAX_PRICE AND Items.CREATION_TIMESTAMP > $SINCE",
                       SCHEMAS)
    assert _ids(f.bind(data, {"MAX_PRICE": "25", "SINCE": "100"}).mask()) == [1, 3]
    assert _ids(compile_filter("INCLUDE ItemID WHERE Items.PRICE != 10").bind(data).mask()) == [1, 3, 4]
    # NOT IN is true for items without a value, IN false; an empty string is no value.
    assert _ids(compile_filter('INCLUDE ItemID WHERE Items.GENRES NOT IN ("Drama")').bind(data).mask()) == [1, 2, 4]


def test_textual_column_is_not_indexed(data):
    assert data.items.column("DESCRIPTION") is None
    assert data.items.column("genres") is data.items.column("GENRES")


def test_if_current_user(data):
    f = compile_filter('EXCLUDE ItemID WHERE Items.GENRES IN ("Horror") IF CurrentUser.AGE < 18', SCHEMAS)
    bound = f.bind(data)
    assert _ids(bound.mask(user=0)) == [0, 1, 3, 4]
    assert _ids(bound.mask(user=1)) == [0, 1, 2, 3, 4]
    assert _ids(bound.mask()) == [0, 1, 2, 3, 4]  # anonymous: IF is false
    # An INCLUDE whose IF is false does not restrict.
    g = compile_filter('INCLUDE ItemID WHERE Items.STUDIO IN ("A") IF CurrentUser.TIER IN ("gold")', SCHEMAS)
    assert [_ids(m) for m in g.bind(data).masks(users=np.array([0, 1, -1]))] == [[0, 2], [0, 1, 2, 3, 4],
                                                                               [0, 1, 2, 3, 4]]


def test_current_item(data):
    f = compile_filter("INCLUDE ItemID WHERE Items.PRICE < CurrentItem.PRICE AND Items.STUDIO IN CurrentItem.STUDIO",
                       SCHEMAS)
    bound = f.bind(data)
    assert _ids(bound.mask(current_item=4)) == [1]
    assert _ids(bound.mask(current_item=2)) == []  # null PRICE: comparisons false
    masks = bound.masks(current_items=np.array([4, 1, -1]))
    assert [_ids(m) for m in masks] == [[1], [], []]
    with pytest.raises(InvalidInputException) as e:
        bound.mask()
    assert "CurrentItem" in e.value.message and "related-items request" in e.value.message


def test_missing_placeholder_rules(data):
    f = compile_filter('INCLUDE ItemID WHERE Items.STUDIO IN ($S) | EXCLUDE ItemID WHERE Items.GENRES IN ($G)',
                       SCHEMAS)
    with pytest.raises(InvalidInputException) as e:
        f.bind(data, {"G": '"Drama"'})
    assert e.value.message == ("Invalid filterValues: no value for $S, which the INCLUDE expression "
                               "'INCLUDE ItemID WHERE Items.STUDIO IN ($S)' uses; an INCLUDE expression needs "
                               "a value for each of its placeholders.")
    # The EXCLUDE expression without its value is skipped; names the filter lacks are ignored.
    assert _ids(f.bind(data, {"S": '"A"', "OTHER": '"x"'}).mask()) == [0, 2]
    assert _ids(f.bind(data, {"S": '"A"', "G": '"Drama"'}).mask()) == [2]


def test_malformed_and_non_numeric_values(data):
    f = compile_filter("INCLUDE ItemID WHERE Items.PRICE <= $MAX_PRICE", SCHEMAS)
    with pytest.raises(InvalidInputException) as e:
        f.bind(data, {"MAX_PRICE": '"cheap"'})
    assert e.value.message == ("Invalid filterValues: 'MAX_PRICE' is 'cheap': Items.PRICE <= $MAX_PRICE "
                               "needs a number.")
    with pytest.raises(InvalidInputException, match="needs exactly one number, not 2 values"):
        f.bind(data, {"MAX_PRICE": "1,2"})
    with pytest.raises(InvalidInputException, match="no closing quote"):
        f.bind(data, {"MAX_PRICE": '"1'})
    assert _ids(f.bind(data, {"MAX_PRICE": '"10"'}).mask()) == [0, 3]


def test_bound_filters_are_cached_per_value_set(data):
    f = compile_filter('INCLUDE ItemID WHERE Items.GENRES IN ($G)', SCHEMAS)
    first = f.bind(data, {"G": '"Drama"'})
    assert f.bind(data, {"G": ["Drama"], "UNUSED": ["x"]}) is first
    assert f.bind(data, {"G": '"Comedy"'}) is not first
    other = FilterData(items=data.items)
    assert f.bind(other, {"G": '"Drama"'}) is not first  # new data: new masks
    with pytest.raises(ValueError):
        first.static_mask[0] = False  # shared between requests: read-only


def test_event_types_case_insensitive_star_and_window():
    data = FilterData(items=Catalogue(size=6))
    history = Histories.single([0, 1, 2, 3, 4], ["Purchase", "PURCHASE", "purchase", "click", "Not taken"],
                               timestamps=[1, 2, 3, 4, 5], window=2)
    f = compile_filter('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase", "NOT_TAKEN")')
    assert _ids(f.bind(data).mask(history=history)) == [0, 3, 5]  # item 0 is past the window of 2
    star = compile_filter("EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN (*)")
    assert _ids(star.bind(data).mask(history=history)) == [0, 5]
    include = compile_filter('INCLUDE ItemID WHERE Interactions.EVENT_TYPE NOT IN ("click")')
    assert _ids(include.bind(data).mask(history=history)) == [0, 1, 2, 4, 5]


def test_stale_history_is_ignored():
    day = 86400.0
    h = Histories.from_pairs([0, 1], [1, 2], ["buy", "buy"], 2, timestamps=[0.0, 95 * day], now=100 * day)
    assert h.take([0]).entities.tolist() == [] and h.take([1]).entities.tolist() == [2]
    assert h.take([1, -1, 0]).offsets.tolist() == [0, 1, 1, 1]


def test_missing_datasets_match_nothing():
    data = FilterData(items=Catalogue(size=3), users=None)
    f = compile_filter('INCLUDE ItemID WHERE Items.GENRES NOT IN ("x") | EXCLUDE ItemID WHERE Items.PRICE > 1')
    assert _ids(f.bind(data).mask()) == []
    g = compile_filter('EXCLUDE ItemID WHERE Items.GENRES NOT IN ("x") IF CurrentUser.AGE < 3')
    assert _ids(g.bind(data).mask(user=0)) == [0, 1, 2]
    with pytest.raises(ValueError, match="needs FilterData.actions"):
        compile_filter('INCLUDE ActionID WHERE Actions.VALUE > 1').bind(data)


def test_actions_and_action_interactions():
    actions = Catalogue.from_table({"VALUE": [1, 5, None], "CATEGORY": ["x|y", "y", None]}, categorical=["CATEGORY"])
    data = FilterData(actions=actions)
    f = compile_filter('INCLUDE ActionID WHERE Actions.VALUE > ($MIN_VALUE) | '
                       'EXCLUDE ActionID WHERE Action_Interactions.EVENT_TYPE IN ("NOT_TAKEN")')
    history = Histories.single([1], ["Not taken"], window=300)
    assert _ids(f.bind(data, {"MIN_VALUE": "0"}).mask(history=history)) == [0]


def test_user_targets_for_segments():
    users = Catalogue.from_table({"MEMBERSHIP_STATUS": ["gold", "silver", None, "gold"]})
    data = FilterData(users=users,
                      user_event_types=FilterData.event_types_per_user([0, 1, 1], ["Purchase", "click", "purchase"], 4))
    f = compile_filter('INCLUDE UserID WHERE Users.MEMBERSHIP_STATUS IN ($TIER) | '
                       'EXCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("purchase")')
    assert _ids(f.bind(data, {"TIER": '"gold","silver"'}).mask()) == [3]


def test_batch_masks_are_vectorised_over_users(data):
    f = compile_filter('INCLUDE ItemID WHERE Items.STUDIO IN ("A", "B") | '
                       'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")')
    everyone = Histories.from_pairs([0, 0, 2], [0, 1, 4], ["purchase", "click", "purchase"], 3)
    masks = f.bind(data).masks(histories=everyone.take([2, 0, 1]))
    assert masks.shape == (3, 5)
    assert [_ids(m) for m in masks] == [[0, 1, 2], [1, 2, 4], [0, 1, 2, 4]]
    with pytest.raises(ValueError, match="batch sizes disagree"):
        f.bind(data).masks(histories=everyone, users=np.array([0]))
