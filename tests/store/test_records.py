"""Dataset rows in the store (store/records.py), on both backends: appends that ignore repeated
event ids, a user's recent events, paging through a dataset, deleting users, and publishing bulk
file lists with a compare-and-set."""

from __future__ import annotations

import threading

import pytest

from openpersonalize.store.records import BulkState, PutRecord, Records

DATASET = "arn:aws:personalize:us-east-1:000000000000:dataset/g/INTERACTIONS"
OTHER = "arn:aws:personalize:us-east-1:000000000000:dataset/h/INTERACTIONS"


def event(n: int, user: str | None = "u1", session: str | None = None, event_id: str | None = "auto") -> PutRecord:
    who = user or session
    return PutRecord(row={"USER_ID": who, "ITEM_ID": f"i{n}", "N": n}, entity_id=who, user_id=user,
                     session_id=session, event_id=f"e-{n}" if event_id == "auto" else event_id)


@pytest.fixture
def records(store) -> Records:
    return Records(store)


def numbers(rows) -> list[int]:
    return [r["N"] for r in rows]


def test_append_ignores_repeated_event_ids_of_a_dataset(records):
    assert records.append(DATASET, [event(1), event(2), event(1)]) == 2
    assert records.append(DATASET, [event(2), event(3)]) == 1  # a client retry adds only what is new
    assert records.append(OTHER, [event(1)]) == 1  # event ids are unique per dataset only
    assert records.append(DATASET, [event(4, event_id=None), event(5, event_id=None)]) == 2  # no id: no check
    assert records.append(DATASET, []) == 0
    assert records.count(DATASET) == 5 and records.count(OTHER) == 1
    assert numbers(records.recent(DATASET, 0, "u1", 100)) == [1, 2, 3, 4, 5]


def test_recent_is_the_newest_of_a_user_or_anonymous_session_after_an_id(records):
    records.append(DATASET, [event(1), event(2, user=None, session="s1"), event(3, user="u2")])
    after = records.last_id(DATASET)
    records.append(DATASET, [event(n) for n in range(10, 20)]
                   + [event(30, user=None, session="s1"), event(31, user="u2", session="s1")])
    assert numbers(records.recent(DATASET, 0, "u1", 100)) == [1, *range(10, 20)]
    assert numbers(records.recent(DATASET, after, "u1", 3)) == [17, 18, 19]  # newest 3, oldest first
    # A session id finds the anonymous rows of that session, not the rows where a user was given.
    assert numbers(records.recent(DATASET, 0, "s1", 100)) == [2, 30]
    assert numbers(records.recent(DATASET, after, "u2", 100)) == [31]
    assert records.recent(DATASET, 0, "nobody", 100) == []
    assert records.recent(OTHER, 0, "u1", 100) == []


def test_recent_from_memory_answers_as_the_store_does(open_store):
    here, elsewhere = Records(open_store()), Records(open_store())
    elsewhere.append(DATASET, [event(n, user=f"u{n % 3}") for n in range(50)])
    for user in ("u0", "u1", "u2"):
        assert here.recent(DATASET, 10, user, 5, max_age=60) == here.recent(DATASET, 10, user, 5)
    here.append(DATASET, [event(100, user="u0")])  # appended here: seen at once
    assert numbers(here.recent(DATASET, 10, "u0", 2, max_age=60)) == [48, 100]


def test_iter_rows_pages_in_insertion_order_up_to_the_newest_id_at_the_start(records):
    records.append(DATASET, [event(n, user=f"u{n % 2}", session=f"s{n}") for n in range(12)])
    records.append(OTHER, [event(99)])
    batches = records.iter_rows(DATASET, batch=5)
    first = next(batches)
    records.append(DATASET, [event(500)])  # added while reading: not part of this read
    rest = list(batches)
    assert [len(b) for b in [first, *rest]] == [5, 5, 2]
    rows = [r for b in [first, *rest] for r in b]
    assert [r[4]["N"] for r in rows] == list(range(12))
    ids = [r[0] for r in rows]
    assert ids == sorted(ids) and len(set(ids)) == 12
    assert [(r[2], r[3]) for r in rows[:2]] == [("u0", "s0"), ("u1", "s1")]
    assert all(isinstance(r[1], float) for r in rows)
    assert [r[4]["N"] for b in records.iter_rows(DATASET, until_id=ids[2]) for r in b] == [0, 1, 2]
    assert records.last_id(DATASET) > ids[-1]
    assert list(records.iter_rows("arn:empty")) == [] and records.last_id("arn:empty") == 0


def test_delete_users_removes_their_rows_and_their_sessions_anonymous_rows(records):
    records.append(DATASET, [
        event(1, user="gone", session="sg"),
        event(2, user=None, session="sg"),  # anonymous, in a session of the deleted user
        event(3, user="stays", session="ss"),
        event(4, user=None, session="ss"),
        event(5, user="stays", session="sg"),  # another user's row in that session is theirs
    ])
    records.append(OTHER, [event(6, user="gone")])
    assert records.session_aliases(DATASET) == {"sg": "stays", "ss": "stays"}
    assert records.delete_users(DATASET, ["gone", "never-seen"]) == 2
    assert [r[4]["N"] for b in records.iter_rows(DATASET) for r in b] == [3, 4, 5]
    assert records.count(OTHER) == 1
    assert records.delete_users(DATASET, []) == 0


def test_delete_users_in_chunks(records):
    users = [f"user-{k}" for k in range(1200)]  # more than one IN list of 500
    records.append(DATASET, [event(k, user=u) for k, u in enumerate(users)])
    assert records.delete_users(DATASET, users[:1100]) == 1100
    assert records.count(DATASET) == 100


def test_publish_is_a_compare_and_set_on_the_generation(records):
    assert records.bulk_state(DATASET) == BulkState(0, [])
    first = [{"file": "a.parquet", "rows": 3, "batch": "b1", "time": 1.0}]
    assert records.publish(DATASET, 0, first)
    assert records.bulk_state(DATASET) == BulkState(1, first)
    assert not records.publish(DATASET, 0, [])  # someone published first
    second = [*first, {"file": "b.parquet", "rows": 2, "batch": "b2", "time": 2.0}]
    assert records.publish(DATASET, 1, second)
    assert not records.publish(DATASET, 1, [])  # stale generation
    assert records.bulk_state(DATASET) == BulkState(2, second)
    assert records.bulk_state(OTHER) == BulkState(0, [])


@pytest.mark.parametrize("generation", [0, 1])
def test_concurrent_publishers_one_wins(open_store, generation):
    stores = [Records(open_store()) for _ in range(2)]
    if generation:
        stores[0].publish(DATASET, 0, [])
    wins: list[int] = []
    start = threading.Barrier(6)

    def publisher(k: int) -> None:
        start.wait()
        if stores[k % 2].publish(DATASET, generation, [{"file": f"{k}.parquet"}]):
            wins.append(k)

    threads = [threading.Thread(target=publisher, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(wins) == 1
    assert stores[1].bulk_state(DATASET) == BulkState(generation + 1, [{"file": f"{wins[0]}.parquet"}])


def test_forget_dataset_removes_rows_and_files(records):
    records.append(DATASET, [event(1)])
    records.append(OTHER, [event(1)])
    parts = [{"file": "a.parquet", "rows": 1}]
    records.publish(DATASET, 0, parts)
    assert records.forget_dataset(DATASET) == parts
    assert records.count(DATASET) == 0 and records.bulk_state(DATASET) == BulkState(0, [])
    assert records.count(OTHER) == 1
    assert records.append(DATASET, [event(1)]) == 1  # its event ids are free again
