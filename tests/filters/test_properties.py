"""Property tests: for random catalogues, histories and filters, the compiled masks equal a plain
row-by-row evaluation of the expression written from the spec (filters.md §3-§4)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openpersonalize.errors import InvalidInputException
from openpersonalize.filters import Catalogue, FilterData, Histories, compile_filter, parse_filter
from openpersonalize.filters.grammar import And, Condition, FieldRef, Literal, Number, Placeholder, Star

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GENRES = ["a", "b", "c", "d"]
STUDIOS = ["x", "y", "z"]
TIERS = ["gold", "silver"]
EVENTS = ["click", "Purchase", "view"]
PLACEHOLDERS = ["P1", "P2", "P3"]


# -- random data ----------------------------------------------------------------------------

def _categorical(values):
    return st.one_of(st.none(), st.just(""), st.lists(st.sampled_from(values), min_size=1, max_size=3).map("|".join))


@st.composite
def item_data(draw):
    n = draw(st.integers(1, 25))
    return {
        "GENRES": draw(st.lists(_categorical(GENRES), min_size=n, max_size=n)),
        "STUDIO": draw(st.lists(st.one_of(st.none(), st.sampled_from(STUDIOS)), min_size=n, max_size=n)),
        "PRICE": draw(st.lists(st.one_of(st.none(), st.integers(0, 6).map(float)), min_size=n, max_size=n)),
        "RANK": draw(st.lists(st.one_of(st.none(), st.integers(-2, 2)), min_size=n, max_size=n)),
    }


@st.composite
def user_data(draw):
    m = draw(st.integers(1, 6))
    return {
        "AGE": draw(st.lists(st.one_of(st.none(), st.integers(10, 30)), min_size=m, max_size=m)),
        "TIER": draw(st.lists(_categorical(TIERS), min_size=m, max_size=m)),
    }


def _event():
    return st.sampled_from(EVENTS + ["CLICK", "purchase"])


# -- random expressions -----------------------------------------------------------------------

def _string_list(pool, placeholders_ok: bool):
    token = st.sampled_from([f'"{v}"' for v in pool])
    if placeholders_ok:
        token = st.one_of(token, st.sampled_from([f"${p}" for p in PLACEHOLDERS]))
    return st.lists(token, min_size=1, max_size=3).map(lambda ts: "(" + ", ".join(ts) + ")")


def _item_condition(current_item: bool):
    field = st.sampled_from(["GENRES", "STUDIO", "GHOST_S"])
    string_cond = st.tuples(field, st.sampled_from(["IN", "NOT IN"])).flatmap(
        lambda fo: _string_list(GENRES + STUDIOS, fo[1] == "IN").map(lambda rhs: f"Items.{fo[0]} {fo[1]} {rhs}"))
    number = st.one_of(st.integers(-1, 7).map(str), st.sampled_from(["$P1", "($P2)", "2.5"]))
    numeric_cond = st.tuples(st.sampled_from(["PRICE", "RANK", "GHOST_N"]),
                             st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), number).map(
        lambda t: f"Items.{t[0]} {t[1]} {t[2]}")
    options = [string_cond, numeric_cond]
    if current_item:
        options.append(st.tuples(st.sampled_from(["GENRES", "STUDIO"]), st.sampled_from(["IN", "NOT IN"]),
                                 st.sampled_from(["GENRES", "STUDIO"])).map(
            lambda t: f"Items.{t[0]} {t[1]} CurrentItem.{t[2]}"))
        options.append(st.sampled_from(["<", ">=", "!="]).map(lambda op: f"Items.PRICE {op} CurrentItem.PRICE"))
    return st.one_of(*options)


def _history_condition():
    values = st.lists(st.one_of(st.sampled_from([f'"{e}"' for e in EVENTS + ["buy", "VIEW"]]), st.just("*")),
                      min_size=1, max_size=3)
    in_cond = st.tuples(values, st.booleans()).map(
        lambda t: "Interactions.EVENT_TYPE IN (" + ", ".join(t[0] + (["$P3"] if t[1] else [])) + ")")
    not_in = values.map(lambda vs: "Interactions.EVENT_TYPE NOT IN (" + ", ".join(vs) + ")")
    return st.one_of(in_cond, not_in)


def _tree(leaf, depth=2):
    if depth == 0:
        return leaf
    sub = _tree(leaf, depth - 1)
    return st.one_of(leaf, st.tuples(st.lists(sub, min_size=2, max_size=3), st.sampled_from(["AND", "OR"])).map(
        lambda t: "(" + f" {t[1]} ".join(t[0]) + ")"))


def _if_clause():
    cond = st.one_of(
        st.tuples(st.sampled_from(["<", ">=", "!=", "="]), st.integers(9, 31)).map(
            lambda t: f"CurrentUser.AGE {t[0]} {t[1]}"),
        st.tuples(st.sampled_from(["IN", "NOT IN"]), st.lists(st.sampled_from(TIERS + ["bronze"]), min_size=1,
                                                             max_size=2)).map(
            lambda t: f"CurrentUser.TIER {t[0]} (" + ", ".join(f'"{v}"' for v in t[1]) + ")"),
        st.just("CurrentUser.TIER IN ($P1)"))
    return st.one_of(st.just(""), st.lists(cond, min_size=1, max_size=2).map(lambda cs: " IF " + " AND ".join(cs)))


@st.composite
def item_filter(draw, current_item: bool):
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["INCLUDE", "EXCLUDE"]))
        leaf = draw(st.sampled_from(["items", "history"]))
        where = draw(_tree(_item_condition(current_item) if leaf == "items" else _history_condition()))
        parts.append(f"{action} ItemID WHERE {where}{draw(_if_clause())}")
    return " | ".join(parts)


def placeholder_values():
    value = st.one_of(st.lists(st.sampled_from(GENRES + STUDIOS + TIERS + EVENTS), min_size=1, max_size=3),
                      st.integers(-1, 7).map(lambda i: [str(i)]))
    return st.dictionaries(st.sampled_from(PLACEHOLDERS), value, max_size=3)


# -- the reference: one row at a time -----------------------------------------------------------

def _set(value, categorical):
    if value is None or value == "":
        return set()
    return {v for v in value.split("|") if v} if categorical else {value}


def _norm(e):
    return e.strip().upper().replace(" ", "_")


class Reference:
    def __init__(self, items, users, catalogue_cat=("GENRES", "TIER")):
        self.items, self.users, self.cat = items, users, catalogue_cat

    def item_set(self, field, row):
        col = self.items.get(field)
        return set() if col is None or row < 0 else _set(col[row], field in self.cat)

    def item_num(self, field, row):
        col = self.items.get(field)
        return None if col is None or row < 0 else col[row]

    def values(self, cond, vals, numeric):
        """Resolved values of a condition; raises InvalidInputException as the spec asks."""
        if numeric:
            rhs = cond.values[0]
            if isinstance(rhs, Number):
                return rhs.value
            if isinstance(rhs, FieldRef):
                return rhs
            v = vals[rhs.name]
            if len(v) != 1:
                raise InvalidInputException("not one number")
            try:
                return float(v[0])
            except ValueError:
                raise InvalidInputException("not a number") from None
        out = set()
        for v in cond.values:
            if isinstance(v, Star):
                return None
            if isinstance(v, FieldRef):
                return v
            out |= {v.value} if isinstance(v, Literal) else set(vals[v.name])
        return out

    def cond(self, c, vals, j, history, cur, user):
        numeric = c.op not in ("IN", "NOT IN")
        rhs = self.values(c, vals, numeric)
        ds = c.field.dataset
        if ds == "INTERACTIONS":
            types = {_norm(e) for ent, e in history if ent == j}
            hit = bool(types) if rhs is None else bool(types & {_norm(v) for v in rhs})
            return hit if c.op == "IN" else not hit
        if ds == "CURRENT_USER":
            if user < 0:
                return False
            if numeric:
                x = self.users["AGE"][user] if c.field.key == "AGE" else None
                return x is not None and _cmp(x, c.op, rhs)
            s = _set(self.users["TIER"][user], True)
            if not s:
                return False
            return bool(s & rhs) if c.op == "IN" else not (s & rhs)
        key = c.field.key
        if numeric:
            x = self.item_num(key, j)
            y = self.item_num(rhs.key, cur) if isinstance(rhs, FieldRef) else rhs
            return x is not None and y is not None and _cmp(x, c.op, y)
        if key not in self.items:
            return False  # a field without data matches nothing, NOT IN included
        s = self.item_set(key, j)
        wanted = self.item_set(rhs.key, cur) if isinstance(rhs, FieldRef) else rhs
        return bool(s & wanted) if c.op == "IN" else not (s & wanted)

    def node(self, node, *args):
        if isinstance(node, Condition):
            return self.cond(node, *args)
        results = [self.node(p, *args) for p in node.parts]
        return all(results) if isinstance(node, And) else any(results)

    def masks(self, text, vals, n, users, histories, current):
        parsed = parse_filter(text)
        live = []
        for e in parsed.expressions:
            missing = [p.name for c in e.all_conditions() for p in c.placeholders if not vals.get(p.name)]
            if missing:
                if e.action == "INCLUDE":
                    raise InvalidInputException("missing")
                continue
            live.append(e)
        for e in live:  # a malformed value is an error for the request, whatever the data
            for c in e.all_conditions():
                self.values(c, vals, c.op not in ("IN", "NOT IN"))
        out = np.zeros((len(users), n), dtype=bool)
        for b, user in enumerate(users):
            gates = [all(self.cond(c, vals, -1, [], -1, user) for c in e.if_conditions) for e in live]
            includes = [e for e, g in zip(live, gates) if e.action == "INCLUDE" and g]
            excludes = [e for e, g in zip(live, gates) if e.action == "EXCLUDE" and g]
            for j in range(n):
                args = (vals, j, histories[b], current[b], user)
                keep = any(self.node(e.where, *args) for e in includes) if includes else True
                out[b, j] = keep and not any(self.node(e.where, *args) for e in excludes)
        return out


def _cmp(x, op, y):
    return {"=": x == y, "!=": x != y, "<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]


# -- the properties -----------------------------------------------------------------------------

@st.composite
def scenario(draw, current_item: bool):
    items, users = draw(item_data()), draw(user_data())
    n, m = len(items["PRICE"]), len(users["AGE"])
    batch = draw(st.integers(1, 4))
    histories = [draw(st.lists(st.tuples(st.integers(0, n - 1), _event()), max_size=6)) for _ in range(batch)]
    user_rows = draw(st.lists(st.integers(-1, m - 1), min_size=batch, max_size=batch))
    current = draw(st.lists(st.integers(-1, n - 1), min_size=batch, max_size=batch)) if current_item else [-1] * batch
    return items, users, histories, user_rows, current, draw(item_filter(current_item)), draw(placeholder_values())


def _data(items, users):
    return FilterData(items=Catalogue.from_table(items, categorical=["GENRES"]),
                      users=Catalogue.from_table(users, categorical=["TIER"]))


def _histories(histories):
    pairs = [(b, ent, ev) for b, h in enumerate(histories) for ent, ev in h]
    return Histories.from_pairs([p[0] for p in pairs], [p[1] for p in pairs], [p[2] for p in pairs],
                                len(histories))


def _check(items, users, histories, user_rows, current, text, vals, with_current):
    n = len(items["PRICE"])
    try:
        expected = Reference(items, users).masks(text, vals, n, user_rows, histories, current)
    except InvalidInputException:
        expected = None
    compiled = compile_filter(text)
    request = dict(users=np.array(user_rows), histories=_histories(histories))
    if with_current:
        request["current_items"] = np.array(current)
    if expected is None:
        try:
            compiled.masks(_data(items, users), vals, **request)
        except InvalidInputException:
            return
        raise AssertionError("expected InvalidInputException")
    got = compiled.masks(_data(items, users), vals, **request)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected, err_msg=text)
    bound = compiled.bind(_data(items, users), vals)
    if bound.compact and not with_current:  # the batch jobs' form: static mask minus history pairs
        compact = np.tile(bound.candidates.mask, (len(user_rows), 1))
        rows, cols = bound.history_exclusions(request["histories"])
        compact[rows, cols] = False
        np.testing.assert_array_equal(compact, expected, err_msg=text)


@SETTINGS
@given(scenario(current_item=False))
def test_item_masks_match_row_by_row(s):
    _check(*s, with_current=False)


@SETTINGS
@given(scenario(current_item=True))
def test_related_item_masks_match_row_by_row(s):
    _check(*s, with_current=True)


@st.composite
def user_scenario(draw):
    users = draw(user_data())
    m = len(users["AGE"])
    events = draw(st.lists(st.tuples(st.integers(0, m - 1), _event()), max_size=10))
    cond = st.one_of(
        st.tuples(st.sampled_from(["IN", "NOT IN"]), st.lists(st.sampled_from(TIERS + ["bronze"]), min_size=1,
                                                             max_size=2)).map(
            lambda t: f"Users.TIER {t[0]} (" + ", ".join(f'"{v}"' for v in t[1]) + ")"),
        st.just("Users.TIER IN ($P1)"),
        st.tuples(st.sampled_from(["<", ">", "="]), st.integers(9, 31)).map(lambda t: f"Users.AGE {t[0]} {t[1]}"))
    ev = st.tuples(st.sampled_from(["IN", "NOT IN"]), st.lists(st.sampled_from(['"click"', '"PURCHASE"', "*"]),
                                                               min_size=1, max_size=2)).map(
        lambda t: f"Interactions.EVENT_TYPE {t[0]} (" + ", ".join(t[1]) + ")")
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        leaf = draw(st.sampled_from([cond, ev]))
        parts.append(f"{draw(st.sampled_from(['INCLUDE', 'EXCLUDE']))} UserID WHERE {draw(_tree(leaf, 1))}")
    vals = draw(st.dictionaries(st.just("P1"), st.lists(st.sampled_from(TIERS), min_size=1, max_size=2)))
    return users, events, " | ".join(parts), vals


@SETTINGS
@given(user_scenario())
def test_user_masks_match_row_by_row(s):
    users, events, text, vals = s
    m = len(users["AGE"])
    per_user = {u: {_norm(e) for uu, e in events if uu == u} for u in range(m)}
    parsed = parse_filter(text)

    def cond(c, u):
        if c.field.dataset == "INTERACTIONS":
            wanted = None if any(isinstance(v, Star) for v in c.values) else {_norm(v.value) for v in c.values}
            hit = bool(per_user[u]) if wanted is None else bool(per_user[u] & wanted)
            return hit if c.op == "IN" else not hit
        if c.field.key == "AGE":
            x = users["AGE"][u]
            return x is not None and _cmp(x, c.op, c.values[0].value)
        s = _set(users["TIER"][u], True)
        wanted = set()
        for v in c.values:
            wanted |= {v.value} if isinstance(v, Literal) else set(vals[v.name])
        return bool(s & wanted) if c.op == "IN" else not (s & wanted)

    def node(nd, u):
        if isinstance(nd, Condition):
            return cond(nd, u)
        r = [node(p, u) for p in nd.parts]
        return all(r) if isinstance(nd, And) else any(r)

    live = [e for e in parsed.expressions
            if not any(not vals.get(p.name) for c in e.conditions() for p in c.placeholders)]
    if any(e.action == "INCLUDE" for e in parsed.expressions if e not in live):
        try:
            compile_filter(text).bind(FilterData(users=Catalogue.from_table(users, categorical=["TIER"])), vals)
        except InvalidInputException:
            return
        raise AssertionError("expected InvalidInputException")
    inc = [e for e in live if e.action == "INCLUDE"]
    exc = [e for e in live if e.action == "EXCLUDE"]
    expected = np.array([(any(node(e.where, u) for e in inc) if inc else True)
                         and not any(node(e.where, u) for e in exc) for u in range(m)])
    data = FilterData(users=Catalogue.from_table(users, categorical=["TIER"]),
                      user_event_types=FilterData.event_types_per_user([e[0] for e in events],
                                                                       [e[1] for e in events], m))
    got = compile_filter(text).bind(data, vals).mask()
    np.testing.assert_array_equal(got, expected, err_msg=text)
