"""The in-memory tail of the event log that real-time requests read (store/records.py): the same
answers as a query per user, new records at once from this process and within ``max_age`` from
another, deletions, a fallback when the tail would be too big, and no store access on the event
loop while it is fresh."""

from __future__ import annotations

import time

import pytest

from openpersonalize.inline import WouldBlock, inline_only
from openpersonalize.store import records as records_module
from openpersonalize.store.metadata import Store
from openpersonalize.store.records import PutRecord, Records

DATASET = "arn:aws:personalize:us-east-1:000000000000:dataset/g/INTERACTIONS"


def event(user, session, item, n):
    return PutRecord(row={"USER_ID": user or session, "ITEM_ID": item, "N": n}, entity_id=user or session,
                     user_id=user, session_id=session, event_id=f"e-{n}")


@pytest.fixture
def stores(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    here, other = Store(url), Store(url)  # two processes' stores on one database
    yield Records(here), Records(other)
    here.close()
    other.close()


def by_query(r: Records, after, user, limit=100):
    return r._recent_of_user(DATASET, after, user, limit, 0.0)


def test_tail_answers_as_the_per_user_query(stores):
    here, other = stores
    other.append(DATASET, [event("u1", "s1", "a", 1), event(None, "s9", "b", 2), event("u2", None, "c", 3)])
    after = other.last_id(DATASET)
    other.append(DATASET, [event("u1", "s1", f"i{k}", 10 + k) for k in range(120)]
                 + [event(None, "s9", "x", 200), event(None, "u2", "y", 201), event("u2", None, "z", 202)])
    for user in ("u1", "u2", "s9", "s1", "nobody"):
        for limit in (1, 25, 100):
            assert here.recent(DATASET, after, user, limit, max_age=60) == by_query(here, after, user, limit)
    assert [r["N"] for r in here.recent(DATASET, after, "u2", 100, max_age=60)] == [201, 202]
    assert [r["N"] for r in here.recent(DATASET, 0, "u2", 100, max_age=60)] == [3, 201, 202]


def test_new_records_show_at_once_here_and_within_max_age_from_elsewhere(stores):
    here, other = stores
    assert here.recent(DATASET, 0, "u1", 100, max_age=0.3) == []
    here.append(DATASET, [event("u1", None, "a", 1)])
    assert [r["ITEM_ID"] for r in here.recent(DATASET, 0, "u1", 100, max_age=0.3)] == ["a"]
    other.append(DATASET, [event("u1", None, "b", 2)])
    time.sleep(0.35)
    assert [r["ITEM_ID"] for r in here.recent(DATASET, 0, "u1", 100, max_age=0.3)] == ["a", "b"]


def test_deleted_users_leave_the_tail(stores):
    here, _ = stores
    here.append(DATASET, [event("u1", "s1", "a", 1), event(None, "s1", "b", 2), event("u2", None, "c", 3)])
    assert len(here.recent(DATASET, 0, "u1", 100, max_age=60)) == 1
    here.delete_users(DATASET, ["u1"])
    assert here.recent(DATASET, 0, "u1", 100, max_age=60) == [] == here.recent(DATASET, 0, "s1", 100, max_age=60)
    assert len(here.recent(DATASET, 0, "u2", 100, max_age=60)) == 1


def test_too_many_records_fall_back_to_a_query_per_user(stores, monkeypatch):
    here, _ = stores
    monkeypatch.setattr(records_module, "TAIL_ROWS", 5)
    here.append(DATASET, [event(f"u{k % 3}", None, f"i{k}", k) for k in range(9)])
    for user in ("u0", "u1", "u2"):
        assert here.recent(DATASET, 0, user, 100, max_age=60) == by_query(here, 0, user) != []
    assert here.store._event_tails[(DATASET, 0)].overflow


def test_a_fresh_tail_is_read_on_the_event_loop_and_a_stale_one_is_not(stores):
    here, _ = stores
    here.append(DATASET, [event("u1", None, "a", 1)])
    with inline_only(), pytest.raises(WouldBlock):
        here.recent(DATASET, 0, "u1", 100, max_age=60)  # nothing read yet
    here.recent(DATASET, 0, "u1", 100, max_age=60)
    with inline_only():
        assert [r["ITEM_ID"] for r in here.recent(DATASET, 0, "u1", 100, max_age=60)] == ["a"]
        assert here.recent(DATASET, 0, "someone-else", 100, max_age=60) == []
    here.append(DATASET, [event("u1", None, "b", 2)])
    with inline_only(), pytest.raises(WouldBlock):
        here.recent(DATASET, 0, "u1", 100, max_age=60)  # new records to read first
