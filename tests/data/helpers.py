"""Shared helpers of the data-layer tests: generated CSVs, job polling, reading exports."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

TERMINAL = {"ACTIVE", "CREATE FAILED", "COMPLETED", "FAILED"}


def interactions_table(n: int, seed: int = 0, users: int = 200, items: int = 300) -> pa.Table:
    """``n`` interactions rows with the columns of tests.conftest.INTERACTIONS_SCHEMA."""
    rng = np.random.default_rng(seed)
    u = rng.integers(0, users, n)
    i = rng.integers(0, items, n)
    return pa.table({
        "USER_ID": pa.array([f"u{x}" for x in u]),
        "ITEM_ID": pa.array([f"i{x}" for x in i]),
        "TIMESTAMP": pa.array(rng.integers(1_600_000_000, 1_700_000_000, n)),
        "EVENT_TYPE": pa.array(np.array(["click", "watch", "buy"])[rng.integers(0, 3, n)]),
        "EVENT_VALUE": pa.array([None if k % 7 == 0 else round(float(v), 3)
                                 for k, v in enumerate(rng.random(n))], pa.float64()),
    })


def csv_bytes(table: pa.Table) -> bytes:
    """The table as CSV: a plain header, empty for null."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.column_names)
    columns = [c.to_pylist() for c in table.columns]
    for row in zip(*columns):
        writer.writerow(["" if v is None else v for v in row])
    return out.getvalue().encode()


def put_local(server, bucket: str, key: str, data: bytes) -> str:
    """Drop an object into the server's embedded bucket folder; returns its s3:// URI."""
    path = Path(server.data_dir) / "s3" / bucket / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"s3://{bucket}/{key}"


def wait_for(condition, timeout: float = 30.0, what: str = "condition"):
    """Poll ``condition()`` until it returns something true; that value."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def wait(describe, timeout: float = 120.0) -> dict:
    """Poll a Describe call until the resource reaches a terminal status."""
    deadline = time.time() + timeout
    while True:
        doc = describe()
        if doc["status"] in TERMINAL or time.time() > deadline:
            return doc
        time.sleep(0.1)


def import_job(personalize, dataset_arn: str, location: str, name: str, mode: str = "FULL") -> dict:
    arn = personalize.create_dataset_import_job(
        jobName=name, datasetArn=dataset_arn, dataSource={"dataLocation": location},
        roleArn="arn:aws:iam::000000000000:role/p", importMode=mode)["datasetImportJobArn"]
    return wait(lambda: personalize.describe_dataset_import_job(datasetImportJobArn=arn)["datasetImportJob"])


def export_job(personalize, dataset_arn: str, path: str, name: str, mode: str | None = "ALL", **dest) -> dict:
    kwargs = {"ingestionMode": mode} if mode else {}
    arn = personalize.create_dataset_export_job(
        jobName=name, datasetArn=dataset_arn, roleArn="arn:aws:iam::000000000000:role/p",
        jobOutput={"s3DataDestination": {"path": path, **dest}}, **kwargs)["datasetExportJobArn"]
    return wait(lambda: personalize.describe_dataset_export_job(datasetExportJobArn=arn)["datasetExportJob"])


def parse_csv(data: bytes) -> tuple[list[str], list[tuple]]:
    """Header and rows of an export part (backslash escapes as the importer reads them)."""
    reader = csv.reader(io.StringIO(data.decode()), doublequote=True, escapechar="\\")
    header = next(reader)
    return header, [tuple(r) for r in reader]


def as_text_rows(table: pa.Table) -> list[tuple]:
    """Rows as the export writes them (numbers as Arrow renders them, null empty)."""
    columns = []
    for col in table.columns:
        text = col if pa.types.is_string(col.type) else col.cast(pa.string())
        columns.append(["" if v is None else v for v in text.to_pylist()])
    return list(zip(*columns))


def float_text(value: float) -> str:
    return pa.array([value]).cast(pa.string())[0].as_py()


def schema_json(doc: dict) -> str:
    return json.dumps(doc)
