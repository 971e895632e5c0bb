"""Import throughput and peak memory, beside pyarrow.csv.read_csv of the same file in the same run.

    python bench/import.py [--rows 5000000] [--dir DIR]

Generates an interactions CSV (USER_ID, ITEM_ID, TIMESTAMP, EVENT_TYPE, EVENT_VALUE), then runs,
each in a fresh child process so that peak memory is its own:

1. ``pyarrow.csv.read_csv`` of the file (multi-threaded, whole file in memory; the baseline);
2. an openpersonalize dataset import job of the same file (streamed, checked, written as Parquet).

Prints rows per second and peak resident memory of each, and the throughput ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from procs import load_average  # noqa: E402


def generate(path: Path, rows: int, seed: int = 0) -> None:
    from openpersonalize.data.exporter import _line_bytes, csv_text

    rng = np.random.default_rng(seed)
    chunk = 500_000
    kinds = pa.array(["click", "watch", "purchase"])
    with open(path, "wb") as fh:
        fh.write(b"USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE\n")
        for start in range(0, rows, chunk):
            m = min(chunk, rows - start)
            users = pa.array(rng.integers(0, 200_000, m)).cast(pa.string())
            items = pa.array(rng.integers(0, 50_000, m)).cast(pa.string())
            batch = pa.record_batch({
                "USER_ID": pa.compute.binary_join_element_wise("u", users, ""),
                "ITEM_ID": pa.compute.binary_join_element_wise("i", items, ""),
                "TIMESTAMP": pa.array(rng.integers(1_600_000_000, 1_700_000_000, m)),
                "EVENT_TYPE": kinds.take(pa.array(rng.integers(0, 3, m))),
                "EVENT_VALUE": pa.array(np.round(rng.random(m), 3)),
            })
            fh.write(_line_bytes(csv_text(batch)))


BASELINE = """
import sys, time, pyarrow.csv as c
t = time.perf_counter(); table = c.read_csv(sys.argv[1]); s = time.perf_counter() - t
print(table.num_rows, s)
"""

IMPORT = """
import json, shutil, sys, time
from openpersonalize.config import Settings
from openpersonalize.control import ControlPlane
from openpersonalize.control.base import Context
from openpersonalize.jobs.runner import JobRunner
from openpersonalize.store.metadata import Store

work, csv_path = sys.argv[1], sys.argv[2]
import os; os.makedirs(work, exist_ok=True)
settings = Settings(data_dir=work)
store = Store(settings.resolved_store_url())
ctx = Context(settings=settings, store=store, region="us-east-1")
cp = ControlPlane()
schema = {"type": "record", "name": "Interactions", "fields": [
    {"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
    {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"},
    {"name": "EVENT_VALUE", "type": ["null", "float"]}]}
group = cp.create_dataset_group(ctx, {"name": "bench"})["datasetGroupArn"]
schema_arn = cp.create_schema(ctx, {"name": "bench", "schema": json.dumps(schema)})["schemaArn"]
dataset = cp.create_dataset(ctx, {"name": "bench", "schemaArn": schema_arn, "datasetGroupArn": group,
                                  "datasetType": "Interactions"})["datasetArn"]
bucket = f"{work}/s3/bench"
os.makedirs(bucket, exist_ok=True); os.link(csv_path, f"{bucket}/interactions.csv")
job = cp.create_dataset_import_job(ctx, {"jobName": "bench", "datasetArn": dataset,
    "dataSource": {"dataLocation": "s3://bench/interactions.csv"}, "roleArn": "r"})["datasetImportJobArn"]
runner = JobRunner(store, settings, threads=0)
t = time.perf_counter(); runner.run_one(); s = time.perf_counter() - t
doc = store.get(job).doc
assert doc["status"] == "ACTIVE", doc
print(doc["_report"]["rows"], s)
"""


def run_child(code: str, *args: str) -> tuple[int, float, float]:
    """``(rows, seconds, peak MiB)`` of a child process running ``code``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, env=env)
    out = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"child failed ({status}): {out}")
    rows, seconds = out.split()[-2:]
    return int(rows), float(seconds), usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--dir", default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    print(f"load average at start: {load_average()}")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        csv_path = Path(tmp) / "interactions.csv"
        t = time.perf_counter()
        generate(csv_path, args.rows)
        size = csv_path.stat().st_size
        print(f"generated {args.rows:,} rows ({size / 2**20:.0f} MiB) in {time.perf_counter() - t:.1f}s")
        rows_b, sec_b, mem_b = run_child(BASELINE, str(csv_path))
        rows_i, sec_i, mem_i = run_child(IMPORT, str(Path(tmp) / "server"), str(csv_path))
        assert rows_b == rows_i == args.rows, (rows_b, rows_i)
        print(f"pyarrow.csv.read_csv   {rows_b / sec_b:>12,.0f} rows/s  {sec_b:6.2f}s  peak {mem_b:6.0f} MiB")
        print(f"openpersonalize import {rows_i / sec_i:>12,.0f} rows/s  {sec_i:6.2f}s  peak {mem_i:6.0f} MiB")
        print(json.dumps({"rows": args.rows, "ratio_vs_pyarrow": round(sec_b / sec_i, 3),
                          "import_peak_mib": round(mem_i), "pyarrow_peak_mib": round(mem_b)}))


if __name__ == "__main__":
    main()
