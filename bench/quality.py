"""Recommendation quality through the service API on MovieLens 100k, beside baselines in the same run.

For each of 5 seeds: every user's ratings are split 80/20 at random; the 80 % is imported as an
Interactions CSV into a fresh server (started here, embedded default); User-Personalization,
Popularity-Count and Similar-Items are trained with CreateSolutionVersion; one batch inference
job per recipe scores every user with an exclusion filter on what the user has seen
(``EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")``). Personalize's filters look at the
100 most recent interactions per user and event type, so the jobs ask for 500 items and any
older seen item is dropped here too: seen items excluded, all items ranked. Similar-Items is asked
for the items like each user's most recent training item. NDCG@10, Precision@10 and Recall@10
are averaged over users with test items.

Baselines on the same splits (bench/quality_offline.py): most-popular, EASE with l2 tuned on a
validation split, implicit ALS with factors and regularisation tuned on it.

    python bench/quality.py [path/to/u.data] [--seeds N]

Skips (exit 0) when the data set is absent; it is never copied into the repository.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3
import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT = HERE.parents[1] / "shared" / "data" / "ml-100k" / "u.data"
ROLE = "arn:aws:iam::000000000000:role/bench"
N = 10

_spec = importlib.util.spec_from_file_location("quality_offline", HERE / "quality_offline.py")
offline = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(offline)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, data_dir: Path):
        self.data_dir, self.port = data_dir, free_port()
        env = {**os.environ, "OPENPERSONALIZE_DATA_DIR": str(data_dir), "OPENPERSONALIZE_PORT": str(self.port),
               "OPENPERSONALIZE_AUTO_TRAINING_ENABLED": "false"}
        self.proc = subprocess.Popen([sys.executable, "-m", "openpersonalize.cli", "serve"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.endpoint = f"http://127.0.0.1:{self.port}"
        for _ in range(300):
            try:
                urllib.request.urlopen(self.endpoint + "/", timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(20)


def wait(describe):
    while True:
        doc = describe()
        if doc["status"] in ("ACTIVE", "CREATE FAILED"):
            if doc["status"] != "ACTIVE":
                raise RuntimeError(doc.get("failureReason"))
            return doc
        time.sleep(0.2)


def metrics(ranked: dict[str, list[str]], truth: dict[str, set[str]]) -> tuple[float, float, float]:
    discounts = 1.0 / np.log2(np.arange(2, N + 2))
    ndcg, prec, rec = [], [], []
    for user, relevant in truth.items():
        top = ranked.get(user, [])[:N]
        rel = np.array([i in relevant for i in top] + [False] * (N - len(top)), float)
        ndcg.append((rel * discounts).sum() / discounts[:min(N, len(relevant))].sum())
        prec.append(rel.sum() / N)
        rec.append(rel.sum() / len(relevant))
    return float(np.mean(ndcg)), float(np.mean(prec)), float(np.mean(rec))


def run_api(train_rows: np.ndarray, test_rows: np.ndarray, seed: int, work: Path) -> dict[str, tuple]:
    server = Server(work / f"seed{seed}")
    try:
        kw = dict(endpoint_url=server.endpoint, region_name="us-east-1", aws_access_key_id="b",
                  aws_secret_access_key="b")
        c = boto3.client("personalize", **kw)
        bucket = server.data_dir / "s3" / "ml"
        bucket.mkdir(parents=True, exist_ok=True)
        with open(bucket / "train.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"])
            w.writerows([[u, i, t, "rating"] for u, i, _, t in train_rows])
        schema = {"type": "record", "name": "Interactions", "fields": [
            {"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
            {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"}]}
        group = c.create_dataset_group(name="ml")["datasetGroupArn"]
        s = c.create_schema(name="ml", schema=json.dumps(schema))["schemaArn"]
        ds = c.create_dataset(name="ml", schemaArn=s, datasetGroupArn=group, datasetType="Interactions")["datasetArn"]
        job = c.create_dataset_import_job(jobName="ml", datasetArn=ds, roleArn=ROLE,
                                          dataSource={"dataLocation": "s3://ml/train.csv"})["datasetImportJobArn"]
        wait(lambda: c.describe_dataset_import_job(datasetImportJobArn=job)["datasetImportJob"])
        seen_filter = c.create_filter(name="seen", datasetGroupArn=group,
                                      filterExpression='EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")')
        wait(lambda: c.describe_filter(filterArn=seen_filter["filterArn"])["filter"])

        seen: dict[str, set[str]] = {}
        last: dict[str, tuple[int, str]] = {}
        for u, i, _, t in train_rows:
            seen.setdefault(str(u), set()).add(str(i))
            if str(u) not in last or t >= last[str(u)][0]:
                last[str(u)] = (int(t), str(i))
        truth: dict[str, set[str]] = {}
        for u, i, _, _ in test_rows:
            truth.setdefault(str(u), set()).add(str(i))
        users = sorted(truth)
        results = {}
        for recipe in ("aws-user-personalization", "aws-popularity-count", "aws-similar-items"):
            sol = c.create_solution(name=recipe, datasetGroupArn=group, performAutoTraining=False,
                                    recipeArn=f"arn:aws:personalize:::recipe/{recipe}")["solutionArn"]
            started = time.perf_counter()
            version = c.create_solution_version(solutionArn=sol)["solutionVersionArn"]
            wait(lambda: c.describe_solution_version(solutionVersionArn=version)["solutionVersion"])
            lines = [{"itemId": last[u][1], "userId": u} if recipe == "aws-similar-items" else {"userId": u}
                     for u in users]
            (bucket / recipe).mkdir(exist_ok=True)
            (bucket / recipe / "in.json").write_text("".join(json.dumps(x) + "\n" for x in lines))
            job = c.create_batch_inference_job(
                jobName=f"bi-{recipe}", solutionVersionArn=version, filterArn=seen_filter["filterArn"],
                numResults=500, roleArn=ROLE, jobInput={"s3DataSource": {"path": f"s3://ml/{recipe}/in.json"}},
                jobOutput={"s3DataDestination": {"path": f"s3://ml/{recipe}/out/"}})["batchInferenceJobArn"]
            wait(lambda: c.describe_batch_inference_job(batchInferenceJobArn=job)["batchInferenceJob"])
            elapsed = time.perf_counter() - started
            ranked = {}
            for row in map(json.loads, (bucket / recipe / "out" / "in.json.out").read_text().splitlines()):
                u = row["input"]["userId"]
                ranked[u] = [i for i in row["output"]["recommendedItems"] if i not in seen.get(u, ())]
            results[f"API {recipe}"] = (*metrics(ranked, truth), elapsed)
        return results
    finally:
        server.stop()


def run_baselines(train_rows, test_rows, rows, seed) -> dict[str, tuple]:
    users = np.unique(rows[:, 0].astype(str))
    items = np.unique(rows[:, 1].astype(str))
    d = offline.to_data(train_rows, users, items)
    X = offline.sp.csr_matrix((np.ones(d.n_interactions, np.float32), (d.user, d.item)),
                              shape=(len(users), len(items)))
    out = {}
    t = time.perf_counter()
    pop = np.asarray(X.sum(axis=0)).ravel()
    out["baseline most-popular"] = (*offline.evaluate(lambda b: np.tile(pop, (len(b), 1)), d, test_rows, users, items),
                                    time.perf_counter() - t)
    t = time.perf_counter()
    l2 = offline.tuned_ease_l2(train_rows, users, items, seed)
    B, _ = offline.ease(X, l2)
    out["baseline EASE (l2 tuned on validation)"] = (*offline.evaluate(lambda b: X[b] @ B, d, test_rows, users, items),
                                                     time.perf_counter() - t)
    t = time.perf_counter()
    factors, reg = offline.tuned_als(train_rows, users, items, seed)
    U, V = offline.fit_als(X.copy(), factors, offline.Settings(als_regularization=reg, als_alpha=1.0))
    out["baseline implicit ALS (tuned)"] = (*offline.evaluate(lambda b: U[b] @ V.T, d, test_rows, users, items),
                                            time.perf_counter() - t)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", default=str(DEFAULT))
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    path = Path(args.data)
    if not path.exists():
        print(f"skipped: {path} not found (MovieLens 100k u.data)")
        return 0
    rows = offline.load(path)
    table: dict[str, list[tuple]] = {}
    with tempfile.TemporaryDirectory(prefix="op-quality-") as work:
        for seed in range(args.seeds):
            train_rows, test_rows = offline.split(rows, seed)
            for name, value in {**run_baselines(train_rows, test_rows, rows, seed),
                                **run_api(train_rows, test_rows, seed, Path(work))}.items():
                table.setdefault(name, []).append(value)
            print(f"seed {seed} done", file=sys.stderr)
    print(f"MovieLens 100k, per-user random 80/20, seen items excluded, all items ranked, {args.seeds} seeds")
    print(f"{'method':44s} {'NDCG@10':>8s} {'P@10':>7s} {'R@10':>7s} {'s/seed':>7s}")
    for name, values in table.items():
        m = np.mean(values, axis=0)
        print(f"{name:44s} {m[0]:8.4f} {m[1]:7.4f} {m[2]:7.4f} {m[3]:7.1f}")
    ease = np.mean(table["baseline EASE (l2 tuned on validation)"], axis=0)[0]
    ours = np.mean(table["API aws-user-personalization"], axis=0)[0]
    popular = np.mean(table["baseline most-popular"], axis=0)[0]
    print(f"\nuser-personalization / EASE NDCG@10 = {ours / ease:.3f} (goal >= 1.0); / most-popular = {ours / popular:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
