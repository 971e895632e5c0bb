"""The in-memory tail of the event log that real-time requests read (store/records.py): the same
answers as a query per user, new records at once from this process and within ``max_age`` from
another, deletions, a fallback when the tail would be too big, and no store access on the event
loop while it is fresh."""

from __future__ import annotations

import time

import pytest

from openpersonalize.inline import WouldBlock, inline_only
from openpersonalize.store import event_tail
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
    monkeypatch.setattr(event_tail, "TAIL_ROWS", 5)
    here.append(DATASET, [event(f"u{k % 3}", None, f"i{k}", k) for k in range(9)])
    for user in ("u0", "u1", "u2"):
        assert here.recent(DATASET, 0, user, 100, max_age=60) == by_query(here, 0, user) != []
    assert here.tails.tails[(DATASET, 0)].overflow


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


def test_records_that_commit_after_a_later_id_was_read_are_taken(stores, monkeypatch):
    """PostgreSQL may commit id 7 after id 10 was read; the tail re-reads the last seconds of ids.
    (Simulated on SQLite by inserting ids out of order, with the lag PostgreSQL gets.)"""
    from sqlalchemy import insert

    from openpersonalize.store.records import put_records

    here, _ = stores
    monkeypatch.setattr(event_tail, "commit_lag", lambda store: 5.0)

    def commit(rid, item):
        with here.store.transaction() as conn:
            conn.execute(insert(put_records).values(id=rid, dataset_arn=DATASET, entity_id="u1", user_id="u1",
                                                    session_id=None, event_id=f"x{rid}", created=time.time(),
                                                    row=f'{{"ITEM_ID": "{item}"}}'))
        here.tails.changed(DATASET)

    for rid, item in ((1, "a"), (10, "c")):
        commit(rid, item)
        assert here.recent(DATASET, 0, "u1", 100, max_age=60) == by_query(here, 0, "u1")
    commit(7, "b")  # id 7 commits late
    assert [r["ITEM_ID"] for r in here.recent(DATASET, 0, "u1", 100, max_age=60)] == ["a", "b", "c"]
    tail = here.tails.tails[(DATASET, 0)]
    assert tail.floor == 0 and sorted(tail.taken) == [1, 7, 10]  # all within the lag: still re-read


def test_ids_older_than_twice_the_lag_settle():
    tail = event_tail.EventTail(after=0, lag=5.0)
    now = time.time()
    tail.take([(1, "u", None, now - 30, "{}"), (4, "u", None, now - 11, "{}"), (6, "v", None, now, "{}")])
    tail.settle()
    assert tail.floor == 4 and list(tail.taken) == [6]
    tail.take([(3, "u", None, now - 29, "{}"), (6, "v", None, now, "{}")])  # settled or taken: ignored
    assert tail.size == 3 and [r for r, _ in tail.rows["u"]] == [1, 4]


def test_a_due_rebuild_runs_beside_the_tail_requests_read(stores, monkeypatch):
    here, _ = stores
    here.append(DATASET, [event("u1", None, "a", 1)])
    here.recent(DATASET, 0, "u1", 100, max_age=60)
    first = here.tails.tails[(DATASET, 0)]
    monkeypatch.setattr(event_tail, "REBUILD_SECONDS", 0.0)
    with inline_only():  # due for a rebuild, yet answered on the event loop from the current tail
        assert [r["ITEM_ID"] for r in here.recent(DATASET, 0, "u1", 100, max_age=60)] == ["a"]
    deadline = time.time() + 10
    while here.tails.tails[(DATASET, 0)] is first and time.time() < deadline:
        time.sleep(0.01)
    assert here.tails.tails[(DATASET, 0)] is not first
    assert [r["ITEM_ID"] for r in here.tails.tails[(DATASET, 0)].recent("u1", 100)] == ["a"]
