"""Batch inference on Ray beside the local executor, in the same run.

    python bench/batch_ray.py [--users 20000] [--items 3000] [--lines 100000] [--cpus 2]

Starts, all on 127.0.0.1 in a temporary folder: a Ray instance (``--cpus`` CPUs), an
``openpersonalize serve`` with no job worker of its own, and one ``openpersonalize worker`` at a
time sharing its SQLite store. Through boto3 it imports generated data (users who prefer genres,
Zipf popularity) and trains a User-Personalization solution version, then runs the same
CreateBatchInferenceJob (``--lines`` lines, one userId each, numResults 25) with:

1. the ``local`` executor (the job scores in its own process, BLAS on every core);
2. the ``ray`` executor with 1 actor, then with 2 actors (each actor reserves one CPU);

each timed from create to ACTIVE, and checks that every output is the local one, byte for byte
(by SHA-256, read in pieces: the outputs of a big input are gigabytes).
Then the fixed cost: a 3-user job, local and on Ray (connecting, starting an actor, loading the
model). Jobs run in their own process, the default. Prints records per second and the ratio of
each Ray run to the local one; on a machine with few cores Ray can only add overhead, the ratio
worth watching is 2 actors against 1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from batch_inference import wait  # noqa: E402  (this folder: the scripts share their helpers)

from openpersonalize import synthetic  # noqa: E402

ROLE = "arn:aws:iam::000000000000:role/bench"
LOOPBACK_RAY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20000)
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--lines", type=int, default=100000)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    os.environ.update(LOOPBACK_RAY)  # read when Ray is imported
    import boto3
    import ray

    from tests.scale.workers import WorkerProcess
    from tests.servers import ServerProcess, free_port

    folder = Path(tempfile.mkdtemp(prefix="op-bench-ray-"))
    ray_temp = tempfile.mkdtemp(prefix="op-ray-")
    ctx = ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, _temp_dir=ray_temp)
    address = ctx.address_info["gcs_address"]
    store_url = f"sqlite:///{folder / 'metadata.db'}"
    server = ServerProcess(data_dir=folder, port=free_port(), store_url=store_url,
                           env={"OPENPERSONALIZE_WORKERS": "0", "OPENPERSONALIZE_MAX_PENDING_JOBS": "1000"})
    worker = None

    def start_worker(name: str, **env) -> WorkerProcess:
        nonlocal worker
        if worker is not None:
            worker.stop()
        worker = WorkerProcess(data_dir=folder, store_url=store_url, name=name,
                               env={**LOOPBACK_RAY, "OPENPERSONALIZE_POLL_SECONDS": "0.02", **env})
        worker.start()
        return worker

    try:
        server.start()
        c = boto3.client("personalize", endpoint_url=server.endpoint, region_name="us-east-1",
                         aws_access_key_id="bench", aws_secret_access_key="bench")
        start_worker("local", OPENPERSONALIZE_EXECUTOR="local")
        t = time.time()
        cat = synthetic.generate(n_users=args.users, n_items=args.items, interactions_per_user=20, seed=3)
        bucket = folder / "s3" / "bench"
        synthetic.write_csvs(cat, bucket / "data")
        group = c.create_dataset_group(name="bench")["datasetGroupArn"]
        for kind, schema, csv in (("Interactions", synthetic.INTERACTIONS_SCHEMA, "interactions.csv"),
                                  ("Items", synthetic.ITEMS_SCHEMA, "items.csv")):
            s = c.create_schema(name=f"bench-{kind}", schema=json.dumps(schema))["schemaArn"]
            ds = c.create_dataset(name=f"bench-{kind}", schemaArn=s, datasetGroupArn=group,
                                  datasetType=kind)["datasetArn"]
            job = c.create_dataset_import_job(jobName=f"bench-{kind}", datasetArn=ds, roleArn=ROLE,
                                              dataSource={"dataLocation": f"s3://bench/data/{csv}"})
            doc = wait(lambda: c.describe_dataset_import_job(
                datasetImportJobArn=job["datasetImportJobArn"])["datasetImportJob"])
            assert doc["status"] == "ACTIVE", doc
        sol = c.create_solution(name="bench-up", datasetGroupArn=group, performAutoTraining=False,
                                recipeArn="arn:aws:personalize:::recipe/aws-user-personalization")["solutionArn"]
        version = c.create_solution_version(solutionArn=sol)["solutionVersionArn"]
        doc = wait(lambda: c.describe_solution_version(solutionVersionArn=version)["solutionVersion"])
        assert doc["status"] == "ACTIVE", doc
        print(f"data and training: {args.users} users, {args.items} items, {time.time() - t:.1f}s", flush=True)

        users = [str(u) for u in cat.user_ids]
        big = bucket / "in" / "big.json"
        big.parent.mkdir(parents=True, exist_ok=True)
        with big.open("w") as f:  # in pieces: a 10-million-line input is a few hundred MB
            for start in range(0, args.lines, 100_000):
                f.write("".join(json.dumps({"userId": users[k % len(users)]}) + "\n"
                                for k in range(start, min(start + 100_000, args.lines))))
        (bucket / "in" / "small.json").write_text("".join(json.dumps({"userId": u}) + "\n" for u in users[:3]))
        counter = [0]

        def run(input_key: str) -> tuple[float, str]:
            """Seconds from create to ACTIVE, and a digest of the output (outputs of a big input
            are gigabytes: compared by digest, read in pieces)."""
            counter[0] += 1
            name = f"bench-{counter[0]}"
            t0 = time.time()
            arn = c.create_batch_inference_job(
                jobName=name, solutionVersionArn=version, roleArn=ROLE, numResults=25,
                jobInput={"s3DataSource": {"path": f"s3://bench/in/{input_key}"}},
                jobOutput={"s3DataDestination": {"path": f"s3://bench/out/{name}/"}})["batchInferenceJobArn"]
            doc = wait(lambda: c.describe_batch_inference_job(batchInferenceJobArn=arn)["batchInferenceJob"])
            seconds = time.time() - t0
            assert doc["status"] == "ACTIVE", doc
            digest = hashlib.sha256()
            with (bucket / "out" / name / f"{input_key}.out").open("rb") as f:
                for piece in iter(lambda: f.read(1 << 24), b""):
                    digest.update(piece)
            return seconds, digest.hexdigest()

        results = {}
        local_small, _ = run("small.json")  # warms the page cache and the model files
        local_small, _ = run("small.json")
        results["local"] = run("big.json")
        start_worker("ray-1", OPENPERSONALIZE_EXECUTOR="ray", OPENPERSONALIZE_RAY_ADDRESS=address,
                     OPENPERSONALIZE_RAY_WORKERS="1")
        run("small.json")  # the first job on a fresh Ray instance also warms its worker pool
        ray_small, _ = run("small.json")
        results["ray, 1 actor"] = run("big.json")
        start_worker("ray-2", OPENPERSONALIZE_EXECUTOR="ray", OPENPERSONALIZE_RAY_ADDRESS=address,
                     OPENPERSONALIZE_RAY_WORKERS="2")
        results["ray, 2 actors"] = run("big.json")

        base_seconds, base_output = results["local"]
        print(f"\nbatch inference, {args.lines} lines, numResults 25, Ray with {args.cpus} CPUs "
              f"({os.cpu_count()} cores on this machine)")
        print(f"{'executor':<16}{'seconds':>10}{'records/s':>12}{'vs local':>10}  output")
        for label, (seconds, output) in results.items():
            same = "identical" if output == base_output else "DIFFERENT"
            print(f"{label:<16}{seconds:>10.2f}{args.lines / seconds:>12.0f}{base_seconds / seconds:>10.2f}  {same}")
        one, two = results["ray, 1 actor"][0], results["ray, 2 actors"][0]
        print(f"2 actors vs 1: {one / two:.2f}x")
        print(f"\nfixed cost, a 3-user job (create to ACTIVE): local {local_small:.2f}s, ray {ray_small:.2f}s "
              f"(Ray adds {ray_small - local_small:.2f}s)")
        if any(output != base_output for _, output in results.values()):
            return 1
        return 0
    finally:
        if worker is not None:
            worker.stop()
        server.stop()
        ray.shutdown()
        shutil.rmtree(ray_temp, ignore_errors=True)
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
