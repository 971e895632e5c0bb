"""Resources in the metadata store, on both backends: rows round-trip, conditional updates, ARN
conflicts, filtered and paginated listing, tags, deletion, and the per-process copies of
``get_recent``."""

from __future__ import annotations

import time

import pytest

from openpersonalize.store.metadata import Conflict, Store

GROUP = "arn:aws:personalize:us-east-1:000000000000:dataset-group/g"
OTHER_GROUP = "arn:aws:personalize:us-east-1:000000000000:dataset-group/h"


def add(store: Store, name: str, *, kind: str = "solution", created: float = 1000.0, status: str = "ACTIVE",
        group: str | None = GROUP, parent: str | None = None, **kw) -> str:
    arn = f"arn:aws:personalize:us-east-1:000000000000:{kind}/{name}"
    store.insert(arn=arn, kind=kind, name=name, status=status, group_arn=group, parent_arn=parent,
                 doc={"name": name, "status": status, "creationDateTime": created}, **kw)
    return arn


def test_a_row_round_trips(store):
    arn = add(store, "a", created=1234.5, parent="arn:p", tags={"team": "x"})
    row = store.get(arn)
    assert (row.arn, row.kind, row.name, row.status) == (arn, "solution", "a", "ACTIVE")
    assert (row.created, row.updated, row.group_arn, row.parent_arn) == (1234.5, 1234.5, GROUP, "arn:p")
    assert row.doc == {"name": "a", "status": "ACTIVE", "creationDateTime": 1234.5}
    assert row.tags == {"team": "x"}
    assert store.get(arn + "-missing") is None


def test_a_second_insert_of_an_arn_is_a_conflict_and_changes_nothing(store):
    arn = add(store, "a")
    with pytest.raises(Conflict):
        store.insert(arn=arn, kind="solution", name="a", doc={"name": "second"}, status="CREATE PENDING")
    assert store.get(arn).doc["name"] == "a"
    assert store.get(arn).status == "ACTIVE"


def test_a_conflict_inside_a_transaction_rolls_it_back(store):
    taken = add(store, "a")
    with pytest.raises(Conflict):
        with store.transaction() as conn:
            store.insert(arn="arn:new", kind="solution", name="new", doc={}, conn=conn)
            store.insert(arn=taken, kind="solution", name="a", doc={}, conn=conn)
    assert store.get("arn:new") is None
    add(store, "b")  # the store stays usable after the failed transaction


def test_an_exception_in_a_transaction_rolls_it_back(store):
    with pytest.raises(RuntimeError):
        with store.transaction() as conn:
            store.insert(arn="arn:x", kind="solution", name="x", doc={}, conn=conn)
            raise RuntimeError("abandon")
    assert store.get("arn:x") is None


def test_update_doc_merges_removes_and_sets_the_status(store):
    arn = add(store, "a", status="CREATE PENDING")
    store.update_doc(arn, {"extra": {"k": 1}})
    before = time.time()
    row = store.update_doc(arn, {"status": "ACTIVE", "name": None})
    assert row.status == "ACTIVE" and row.updated >= before
    got = store.get(arn)
    assert got.status == "ACTIVE"
    assert got.doc["status"] == "ACTIVE" and got.doc["extra"] == {"k": 1} and "name" not in got.doc
    assert got.doc["lastUpdatedDateTime"] == got.updated == row.updated
    assert got.created == 1000.0


def test_update_doc_with_expect_status_applies_only_from_those_statuses(store):
    arn = add(store, "a", status="CREATE IN_PROGRESS")
    assert store.update_doc(arn, {"status": "ACTIVE"}, expect_status=("CREATE PENDING",)) is None
    assert store.get(arn).status == "CREATE IN_PROGRESS"
    assert store.update_doc(arn, {"status": "ACTIVE"}, expect_status=("CREATE PENDING", "CREATE IN_PROGRESS"))
    assert store.get(arn).status == "ACTIVE"
    assert store.update_doc("arn:missing", {"status": "ACTIVE"}) is None


def test_update_doc_inside_a_caller_transaction(store):
    arn = add(store, "a", status="CREATE PENDING")
    with store.transaction() as conn:
        assert store.update_doc(arn, {"status": "ACTIVE"}, conn=conn, expect_status=("CREATE PENDING",))
        assert store.get(arn, conn=conn).status == "ACTIVE"
    assert store.get(arn).status == "ACTIVE"


def test_query_filters_by_kind_group_parent_and_status(store):
    s1 = add(store, "s1", created=1.0)
    s2 = add(store, "s2", created=2.0, status="CREATE FAILED", parent="arn:recipe")
    add(store, "s3", created=3.0, group=OTHER_GROUP)
    c1 = add(store, "c1", kind="campaign", created=4.0, parent=s1)
    assert [r.name for r in store.query("solution")] == ["s3", "s2", "s1"]
    assert [r.name for r in store.query(("solution", "campaign"), group_arn=GROUP)] == ["c1", "s2", "s1"]
    assert [r.arn for r in store.query("campaign", parent_arn=s1)] == [c1]
    assert [r.arn for r in store.query("solution", parent_arn="arn:recipe")] == [s2]
    assert [r.arn for r in store.query("solution", group_arn=GROUP, statuses=("ACTIVE",))] == [s1]
    assert store.query("nothing") == []
    assert store.count("solution") == 3
    assert store.count("solution", group_arn=GROUP, statuses=("ACTIVE", "CREATE FAILED")) == 2


def test_query_pages_newest_first_with_ties_broken_by_arn(store):
    # Several rows per creation time: a page boundary inside a tie must neither repeat nor skip.
    for k in range(17):
        add(store, f"r{k:02d}", created=float(100 - k // 4))
    expected = sorted(store.query("solution"), key=lambda r: (-r.created, r.arn))
    assert [r.arn for r in store.query("solution")] == [r.arn for r in expected]
    pages, after = [], None
    while True:
        page = store.query("solution", after=after, limit=3)
        if not page:
            break
        assert len(page) <= 3
        pages.append([r.arn for r in page])
        after = (page[-1].created, page[-1].arn)
    assert [arn for page in pages for arn in page] == [r.arn for r in expected]
    assert len(pages) == 6


def test_tags_are_replaced_whole(store):
    arn = add(store, "a", tags={"a": "1"})
    store.set_tags(arn, {"b": "2", "c": "3"})
    assert store.get(arn).tags == {"b": "2", "c": "3"}
    store.set_tags(arn, {})
    assert store.get(arn).tags == {}
    assert store.get(add(store, "untagged")).tags == {}


def test_delete_removes_the_row_and_its_job(store):
    arn = add(store, "a", job=True)
    keep = add(store, "b", job=True)
    assert store.job_state(arn)["state"] == "queued"
    store.delete(arn)
    assert store.get(arn) is None and store.job_state(arn) is None
    assert store.get(keep) is not None and store.job_state(keep) is not None
    store.delete(arn)  # deleting again is harmless
    add(store, "a")  # and the ARN can be used again
    assert store.get(arn) is not None


def test_get_recent_reuses_its_copy_until_max_age_and_drops_it_on_writes_here(open_store):
    here, elsewhere = open_store(), open_store()
    arn = add(here, "a", status="CREATE PENDING")
    assert here.get_recent(arn, max_age=0.5).status == "CREATE PENDING"
    elsewhere.update_doc(arn, {"status": "ACTIVE"})
    assert here.get_recent(arn, max_age=0.5).status == "CREATE PENDING"  # another process: later
    time.sleep(0.6)
    assert here.get_recent(arn, max_age=0.5).status == "ACTIVE"
    here.update_doc(arn, {"status": "DELETE PENDING"})
    assert here.get_recent(arn, max_age=60).status == "DELETE PENDING"  # this process: at once
    here.delete(arn)
    assert here.get_recent(arn, max_age=60) is None
