"""Import jobs on bad data: a precise failureReason and an unchanged dataset; lenient defects
import and are reported."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from openpersonalize.data.exporter import _line_bytes, csv_text
from tests.data.helpers import csv_bytes, export_job, import_job, interactions_table, parse_csv, put_local

HEADER = b"USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE\n"


def valid_lines(n: int) -> bytes:
    """``n`` valid interactions lines, generated column-wise (fast for a million rows)."""
    rng = np.random.default_rng(7)
    batch = pa.record_batch({
        "USER_ID": pa.compute.binary_join_element_wise("u", pa.array(rng.integers(0, 1000, n)).cast(pa.string()), ""),
        "ITEM_ID": pa.compute.binary_join_element_wise("i", pa.array(rng.integers(0, 500, n)).cast(pa.string()), ""),
        "TIMESTAMP": pa.array(rng.integers(1_600_000_000, 1_700_000_000, n)),
        "EVENT_TYPE": pa.array(["click"] * n),
        "EVENT_VALUE": pa.array(np.round(rng.random(n), 2)),
    })
    return _line_bytes(csv_text(batch))


def with_line(n_before: int, bad: bytes, n_after: int = 10) -> bytes:
    return HEADER + valid_lines(n_before) + bad + valid_lines(n_after)


DEFECTS = [
    ("wrong type in a required field", lambda: with_line(1039, b"u1,i1,yesterday,click,0.5\n"),
     'line 1041: TIMESTAMP "yesterday" is not a long.'),
    ("empty required field", lambda: with_line(1200, b",i1,1600000000,click,0.5\n"),
     'line 1202: USER_ID "" is empty; USER_ID is required.'),
    ("milliseconds", lambda: with_line(1100, b"u1,i1,1600000000000,click,0.5\n"),
     'line 1102: TIMESTAMP "1600000000000" looks like milliseconds; TIMESTAMP is in epoch seconds.'),
    ("id too long", lambda: with_line(1000, b"u1," + b"x" * 300 + b",1600000000,click,\n"),
     "line 1002: ITEM_ID \"" + "x" * 80 + "...\" is longer than 256 characters, the limit for an ID."),
    ("missing column", lambda: b"USER_ID,ITEM_ID,TIMESTAMP\n" + b"u1,i1,1600000000\n" * 1200,
     "Input CSV is missing the following columns: [EVENT_TYPE, EVENT_VALUE]"),
    ("repeated header column", lambda: b"USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE,user_id\n"
     + b"u1,i1,1600000000,click,,u2\n" * 1200, "line 1: the header names column USER_ID twice (columns 1 and 6)."),
    ("bad header", lambda: b"\x00\x01\x02 garbage\n" + valid_lines(1200),
     "Input CSV is missing the following columns: [USER_ID, ITEM_ID, TIMESTAMP, EVENT_TYPE, EVENT_VALUE]"),
    ("empty file", lambda: b"", "is empty: an import file needs a header line"),
    ("too few records", lambda: HEADER + valid_lines(999),
     "Dataset import job must contain at least 1000 interactions records (it has 999)."),
    ("wrong number of values", lambda: with_line(1500, b"u1,i1,1600000000\n"),
     "line 1502: found 3 values, but the header has 5 columns."),
    # A quoted value spanning two lines: errors name the line where the bad record starts.
    ("bad value after a two-line record", lambda: HEADER + valid_lines(1000)
     + b'u1,i1,1600000000,"two\nlines",0.5\n' + valid_lines(5) + b"u1,i1,yesterday,click,0.5\n" + valid_lines(10),
     'line 1009: TIMESTAMP "yesterday" is not a long.'),
    ("wrong number of values in a two-line record", lambda: with_line(1500, b'u1,i1,"1600000000\nmore"\n'),
     "line 1502: found 3 values, but the header has 5 columns."),
]


@pytest.fixture
def loaded(server, personalize, unique, interactions_dataset):
    """An Interactions dataset with one good FULL import; returns (dataset, its rows)."""
    table = interactions_table(1000, seed=11)
    location = put_local(server, "defects", unique("good") + ".csv", csv_bytes(table))
    assert import_job(personalize, interactions_dataset, location, unique("imp"))["status"] == "ACTIVE"
    return interactions_dataset


def bulk_rows(server, personalize, unique, dataset) -> list[tuple]:
    out = unique("out")
    job = export_job(personalize, dataset, f"s3://defects/{out}/", unique("exp"), mode="BULK")
    assert job["status"] == "ACTIVE", job.get("failureReason")
    folder = Path(server.data_dir) / "s3" / "defects" / out / job["jobName"]
    return sorted(parse_csv((folder / "part-00000.csv").read_bytes())[1])


@pytest.mark.parametrize("name, make, reason", DEFECTS, ids=[d[0] for d in DEFECTS])
def test_defect_fails_with_precise_reason_and_changes_nothing(server, personalize, unique, loaded, name, make,
                                                              reason):
    before = bulk_rows(server, personalize, unique, loaded)
    location = put_local(server, "defects", unique("bad") + "/interactions.csv", make())
    job = import_job(personalize, loaded, location, unique("imp"))
    assert job["status"] == "CREATE FAILED"
    assert reason in job["failureReason"]
    if re.match(r"line \d+: ", reason) and not reason.startswith("line 1:"):
        assert job["failureReason"].startswith("interactions.csv line ")
    assert bulk_rows(server, personalize, unique, loaded) == before


def test_binary_garbage_after_a_million_valid_rows(server, personalize, unique, loaded):
    before = bulk_rows(server, personalize, unique, loaded)
    data = HEADER + valid_lines(1_000_000) + b"\xff\xfe\x00\x01garbage\x9c\n" + valid_lines(5)
    location = put_local(server, "defects", unique("bin") + "/interactions.csv", data)
    job = import_job(personalize, loaded, location, unique("imp"), mode="INCREMENTAL")
    assert job["status"] == "CREATE FAILED"
    assert job["failureReason"].startswith("interactions.csv line 1000002: "), job["failureReason"]
    assert bulk_rows(server, personalize, unique, loaded) == before


def test_lenient_defects_import_and_are_reported(server, personalize, unique, items_dataset):
    data = (",ITEM_ID,GENRES,PRICE,CREATION_TIMESTAMP,EXTRA\n"
            "0,i1,Action|Comedy,1.5,1600000000,x\n"
            "1,i2,,,1600000000,y\n"
            "2,i3,Drama,cheap,,z\n"
            "3,i4,Drama,2.5,2006–2007,z\n").encode()
    location = put_local(server, "lenient", unique("items") + ".csv", data)
    job = import_job(personalize, items_dataset, location, unique("imp"))
    assert job["status"] == "ACTIVE", job.get("failureReason")
    reports = list(Path(server.data_dir).rglob(f"reports/{job['jobName']}.json"))
    assert len(reports) == 1
    report = json.loads(reports[0].read_text())
    assert report["rows"] == 4
    assert report["ignoredColumns"] == ["(unnamed column 1)", "EXTRA"]
    assert report["columns"]["PRICE"]["nulled"] == 1
    assert report["columns"]["PRICE"]["rules"] == {"is not a float": 1}
    assert report["columns"]["PRICE"]["first"]["line"] == 4
    assert report["columns"]["CREATION_TIMESTAMP"]["rules"] == {
        "empty value in a non-nullable field": 1, "is not a long": 1}
    assert "GENRES" not in report["columns"]  # nullable: empty is simply null
    assert "nulled or truncated values" in server.log()
