"""Batch inference throughput with and without a two-condition filter with placeholders, same run.

    python bench/filters.py [--quick] [--items 100000] [--users 100000]

Builds a User-Personalization model (64 factors, ALS backend) on generated data through boto3
against an ``openpersonalize serve`` started on 127.0.0.1 (as bench/batch_inference.py), creates
the filter

    INCLUDE ItemID WHERE Items.GENRES IN ($G) AND Items.PRICE <= $MAX

and runs two batch inference jobs on the same users: one without a filter, one with the filter
and per-line ``filterValues`` (one or two genres, a price cap of 20, 30 or 40: 108 distinct value
sets, so the per-value-set binding is exercised). Prints records per second of each and the
share of throughput the filter costs (goal: at most 20 %).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from batch_inference import Server, check_output, load_average, prepare, run_job, wait, write_input  # noqa: E402

from openpersonalize import synthetic  # noqa: E402

FILTER = "INCLUDE ItemID WHERE Items.GENRES IN ($G) AND Items.PRICE <= $MAX"


def values(rng: np.random.Generator, count: int) -> list[dict]:
    genres = np.array(synthetic.GENRES)
    out = []
    for k in range(count):
        picked = rng.choice(genres, size=1 + int(rng.random() < 0.5), replace=False)
        out.append({"G": ",".join(f'"{g}"' for g in picked), "MAX": str(int(rng.choice([20, 30, 40])))})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=100_000, help="input lines (and users of the model)")
    parser.add_argument("--per-user", type=int, default=15)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    if args.quick:
        args.items, args.users, args.per_user = 30_000, 20_000, 10
    print(f"load average at start: {load_average()}")
    tmp = tempfile.mkdtemp(prefix="bench-filters-", dir=args.dir)
    server = Server(Path(tmp) / "server")
    try:
        server.start()
        group, version, folder = prepare(server, args, "flt")
        c = server.client("personalize")
        arn = c.create_filter(name="genre-price", datasetGroupArn=group, filterExpression=FILTER)["filterArn"]
        wait(lambda: c.describe_filter(filterArn=arn)["filter"], interval=0.2)
        user_ids = np.load(folder / "user_ids.npy")
        write_input(server.bucket("in/plain.json"), user_ids, args.users, seed=1)
        write_input(server.bucket("in/filtered.json"), user_ids, args.users, seed=1, filter_values=values)
        results = {}
        for rep in range(2):  # alternate, so a load change on the machine hits both alike
            for label, key, kw in (("plain", "in/plain.json", {}), ("filtered", "in/filtered.json", {"filterArn": arn})):
                seconds, peak, _ = run_job(server, version, key, f"{label}-{rep}", **kw)
                check_output(server, f"{label}-{rep}", key, args.users)
                rate = args.users / seconds
                results.setdefault(label, []).append(rate)
                print(f"  {label:8s} run {rep + 1}: {args.users:,} lines in {seconds:.1f}s = {rate:,.0f} rec/s, "
                      f"peak RSS {peak / 2**20:,.0f} MiB   [load {load_average()}]")
        plain, filtered = max(results["plain"]), max(results["filtered"])
        cost = 1 - filtered / plain
        # The filter holds: every recommended item of a few lines passes its line's values.
        out = server.bucket("out/filtered-0/filtered.json.out")
        with open(out) as f:
            head = [json.loads(next(f)) for _ in range(3)]
        assert all(len(h["output"]["recommendedItems"]) == 25 for h in head), head[0]
        print(f"filter cost: {cost:.1%} of throughput (goal <= 20%); best of 2: plain {plain:,.0f} rec/s, "
              f"filtered {filtered:,.0f} rec/s")
        print(json.dumps({"lines": args.users, "plain_rec_s": round(plain), "filtered_rec_s": round(filtered),
                          "filtered_vs_plain": round(filtered / plain, 3), "filter_cost": round(cost, 3)}))
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
