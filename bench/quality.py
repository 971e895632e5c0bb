"""Recommendation quality as a Personalize user gets it, beside baselines computed in the same run.

For each data set and seed (bench/datasets.py) the training part is imported into a fresh server
(``openpersonalize serve``, embedded default, automatic training off) with boto3: a dataset
group, an Interactions schema and dataset, an import job from a CSV. Each recipe then gets a
solution with the default configuration (no hyperparameters, no HPO), a solution version, and a
batch inference job over the evaluated users with numResults 25 and **no filter**: whatever the
service returns is what is scored, outside the service, against the held-out truth. An item the
user already has counts as a miss unless it is in the truth; the share of such items in the lists
is reported beside NDCG@10, P@10 and R@10, as a user would notice it.

Costs: training time is CreateSolutionVersion to ACTIVE (the service's own metrics included, as a
user waits for them); batch time is CreateBatchInferenceJob to ACTIVE; peak MB is the largest
resident memory of the server's process tree (the server and the job processes it starts) seen
while the recipe trained and scored.

Baselines (bench/quality_offline.py) on the same split: most-popular, EASE (l2 tuned on a
validation split of the training part; skipped above 20,000 items) and implicit ALS (factors and
regularisation tuned likewise). They leave seen items out only where the training data has no
repeats (measured, and printed).

Per data set it prints the table and, per recipe, whether its NDCG@10 reaches the best baseline's
and whether its lists keep seen items to 2 % on data without repeats.

    python bench/quality.py [--datasets ml100k-random,beauty,...|all] [--recipes r1,r2]
                            [--seeds N] [--quick]

``--quick``: one seed each of ml100k-random, the re-purchase set and a 5,000-item generated sparse
set (a few minutes). Data sets whose file is absent are skipped with a line (exit 0); the data is
read in place and never copied into the repository.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from datasets import DATASETS, QUICK, DataSet, Split  # noqa: E402
from procs import Sampler, descendants  # noqa: E402
from quality_offline import LIST, Outcome, Table, baselines, score_lists, seen_rule  # noqa: E402

try:
    import psutil
except ImportError:  # /proc is read instead
    psutil = None

ROLE = "arn:aws:iam::000000000000:role/bench"
RECIPES = ("aws-user-personalization", "aws-user-personalization-v2", "aws-popularity-count")
SEEN_LIMIT = 0.02  # on data without repeats, lists should hold (almost) nothing the user has
BUCKET = "bench"


# ---------------------------------------------------------------- the server

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``openpersonalize serve`` in a child process on a free port, with its own data folder."""

    def __init__(self, data_dir: Path):
        self.data_dir, self.port = data_dir, free_port()
        env = {**os.environ, "OPENPERSONALIZE_DATA_DIR": str(data_dir), "OPENPERSONALIZE_PORT": str(self.port),
               "OPENPERSONALIZE_AUTO_TRAINING_ENABLED": "false"}
        self.log = open(data_dir / "server.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "openpersonalize.cli", "serve"], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.endpoint = f"http://127.0.0.1:{self.port}"
        for _ in range(600):
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}); see {data_dir / 'server.log'}")
            try:
                urllib.request.urlopen(self.endpoint + "/", timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not start")

    def client(self):
        return boto3.client("personalize", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="bench", aws_secret_access_key="bench")

    def bucket(self) -> Path:
        """The folder the embedded store serves as s3://bench/."""
        path = self.data_dir / "s3" / BUCKET
        path.mkdir(parents=True, exist_ok=True)
        return path

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# ---------------------------------------------------------------- peak memory of the process tree

def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (the job processes the server spawns)."""
    if psutil is not None:
        try:
            return [root] + [c.pid for c in psutil.Process(root).children(recursive=True)]
        except psutil.Error:
            return [root]
    return [root] + descendants(root)


def memory_kb(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of a process in kB; peak is the kernel's VmHWM where there is /proc."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                      if line.startswith(("VmRSS", "VmHWM")))
        return int(fields.get("VmRSS", "0 kB").split()[0]), int(fields.get("VmHWM", "0 kB").split()[0])
    except (OSError, ValueError):
        if psutil is None:
            return 0, 0
        try:
            rss = psutil.Process(pid).memory_info().rss // 1024
            return rss, rss
        except psutil.Error:
            return 0, 0


class PeakMemory(Sampler):
    """Samples the server's process tree while a recipe trains and scores.

    The peak is the larger of the highest summed RSS of the tree at any sample and the highest
    single-process VmHWM seen (which also catches a job process's peak between samples). The
    server's own VmHWM is reset first, so an earlier recipe's peak does not carry over.
    """

    def __init__(self, root: int, interval: float = 0.1):
        super().__init__(interval)
        self.root, self.peak_kb = root, 0

    def __enter__(self) -> PeakMemory:
        try:
            Path(f"/proc/{self.root}/clear_refs").write_text("5")
        except OSError:
            pass
        return super().__enter__()

    def sample(self) -> None:
        samples = [memory_kb(pid) for pid in process_tree(self.root)]
        self.peak_kb = max(self.peak_kb, sum(r for r, _ in samples), max((h for _, h in samples), default=0))

    @property
    def peak_mb(self) -> float:
        return self.peak_kb / 1024


# ---------------------------------------------------------------- the user's steps

def wait(describe, poll: float = 0.1) -> dict:
    """Poll a Describe call until the resource is ACTIVE; raise with the reason when it failed."""
    while True:
        doc = describe()
        if doc["status"] == "ACTIVE":
            return doc
        if "FAILED" in doc["status"]:
            raise RuntimeError(doc.get("failureReason") or doc["status"])
        time.sleep(poll)


def import_interactions(server: Server, split: Split) -> str:
    """The training part as an Interactions CSV, imported into a new dataset group; its ARN."""
    with open(server.bucket() / "interactions.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"])
        tr = split.train
        w.writerows(zip(tr.user.tolist(), tr.item.tolist(), tr.timestamp.tolist(), tr.event_type.tolist()))
    schema = {"type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema",
              "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
                         {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"}],
              "version": "1.0"}
    c = server.client()
    group = c.create_dataset_group(name="bench")["datasetGroupArn"]
    wait(lambda: c.describe_dataset_group(datasetGroupArn=group)["datasetGroup"])
    schema_arn = c.create_schema(name="bench-interactions", schema=json.dumps(schema))["schemaArn"]
    dataset = c.create_dataset(name="interactions", schemaArn=schema_arn, datasetGroupArn=group,
                               datasetType="Interactions")["datasetArn"]
    job = c.create_dataset_import_job(jobName="interactions", datasetArn=dataset, roleArn=ROLE,
                                      dataSource={"dataLocation": f"s3://{BUCKET}/interactions.csv"})
    wait(lambda: c.describe_dataset_import_job(datasetImportJobArn=job["datasetImportJobArn"])["datasetImportJob"])
    return group


def recommend_with(server: Server, group: str, recipe: str, users: list[str]) -> Outcome:
    """Default solution, a version, and a batch inference job (25 per user, no filter)."""
    c = server.client()
    folder = server.bucket() / recipe
    folder.mkdir(exist_ok=True)
    (folder / "users.json").write_text("".join(json.dumps({"userId": u}) + "\n" for u in users))
    with PeakMemory(server.proc.pid) as memory:
        solution = c.create_solution(name=recipe, datasetGroupArn=group, performAutoTraining=False,
                                     recipeArn=f"arn:aws:personalize:::recipe/{recipe}")["solutionArn"]
        started = time.perf_counter()
        version = c.create_solution_version(solutionArn=solution)["solutionVersionArn"]
        wait(lambda: c.describe_solution_version(solutionVersionArn=version)["solutionVersion"])
        trained = time.perf_counter()
        metrics = c.get_solution_metrics(solutionVersionArn=version).get("metrics") or {}
        job = c.create_batch_inference_job(
            jobName=f"batch-{recipe}", solutionVersionArn=version, numResults=LIST, roleArn=ROLE,
            jobInput={"s3DataSource": {"path": f"s3://{BUCKET}/{recipe}/users.json"}},
            jobOutput={"s3DataDestination": {"path": f"s3://{BUCKET}/{recipe}/out/"}})["batchInferenceJobArn"]
        wait(lambda: c.describe_batch_inference_job(batchInferenceJobArn=job)["batchInferenceJob"])
        scored = time.perf_counter()
    lists, errors = read_output(folder / "out" / "users.json.out")
    note = f"{errors} output lines with an error" if errors else ""
    return Outcome(lists, trained - started, scored - trained, memory.peak_mb, note,
                   service_ndcg=metrics.get("normalized_discounted_cumulative_gain_at_10"))


def read_output(path: Path) -> tuple[dict[str, list[str]], int]:
    """userId -> recommendedItems from a batch inference output, and the count of error lines."""
    lists, errors = {}, 0
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if row.get("error"):
            errors += 1
            continue
        lists[row["input"]["userId"]] = row["output"]["recommendedItems"]
    return lists, errors


def through_the_service(split: Split, recipes: list[str], work: Path, log) -> dict[str, Outcome | str]:
    """Each recipe's outcome on a fresh server, or the reason it failed."""
    folder = Path(tempfile.mkdtemp(prefix="server-", dir=work))
    server = Server(folder)
    try:
        group = import_interactions(server, split)
        users = sorted(split.truth)
        out: dict[str, Outcome | str] = {}
        for recipe in recipes:
            try:
                o = out[recipe] = recommend_with(server, group, recipe, users)
                log(f"  {recipe}: trained in {o.train_seconds:.1f} s, batch {o.batch_seconds:.1f} s, "
                    f"peak {o.peak_mb:.0f} MB" + (f"; {o.note}" if o.note else ""))
            except Exception as exc:  # a failed recipe is a result too; the others still run
                out[recipe] = f"failed: {exc}"
                log(f"  {recipe}: {out[recipe]}")
        return out
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------- one data set

def run_dataset(ds: DataSet, seeds: int, quick: bool, recipes: list[str], work: Path) -> None:
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    table, failures, rule = Table(), {}, ""
    for seed in range(seeds):
        split = ds.build(seed, quick)
        exclude, rule = seen_rule(split.train)
        tr = split.train
        shape = (f"{len(np.unique(tr.user)):,} users, {len(np.unique(tr.item)):,} items, {len(tr):,} training "
                 f"interactions, {len(split.truth):,} evaluated users")
        log(f"{ds.key} seed {seed}: {shape}; {rule}")
        seen = tr.histories()
        outcomes: dict[str, Outcome | str] = dict(baselines(split, exclude, log=log))
        outcomes.update(through_the_service(split, recipes, work, log))
        for name, o in outcomes.items():
            if isinstance(o, str):
                failures[name] = o
            else:
                table.add(name, score_lists(o.lists, split.truth, seen), o)
    print(f"\n== {ds.key}: {ds.title}{' (quick size)' if quick else ''}")
    print(f"{shape}; {seeds} seed(s)")
    print(rule)
    table.print()
    for name, reason in failures.items():
        print(f"{name}: {reason}")
    report_goals(table, recipes, failures, no_repeats=exclude)
    report_metrics_agreement(table, recipes, same_protocol=ds.key == "ml100k-personalize")


def report_metrics_agreement(table: Table, recipes: list[str], same_protocol: bool) -> None:
    """GetSolutionMetrics' NDCG@10 (the service's own hold-out of the training data, with the
    served model and its repeat policy) beside the outside scorer's. They measure the same thing
    only where the bench's split follows Personalize's protocol; there they should agree within
    the seed-to-seed spread."""
    for recipe in recipes:
        if recipe not in table.rows:
            continue
        service = [o.service_ndcg for _, o in table.rows[recipe] if o.service_ndcg is not None]
        outside = [s.ndcg for s, _ in table.rows[recipe]]
        if not service:
            continue
        line = (f"  GetSolutionMetrics NDCG@10 {np.mean(service):.4f} vs outside {np.mean(outside):.4f}")
        if not same_protocol:
            print(line + " (different protocols: not comparable)")
            continue
        spread = max(np.std(outside), np.std(service)) if len(outside) > 1 else None
        if spread is None:
            print(line + " (one seed: no spread to compare with)")
        else:
            agree = abs(np.mean(service) - np.mean(outside)) <= 2 * spread
            print(line + f": agree within 2 seed sd ({spread:.4f}): {'yes' if agree else 'no'}")


SEQUENTIAL_BASELINE = "baseline follow the last item"
SEQUENCE_RECIPES = ("aws-user-personalization-v2", "aws-hrnn", "aws-hrnn-metadata", "aws-hrnn-coldstart")


def report_goals(table: Table, recipes: list[str], failures: dict[str, str], no_repeats: bool) -> None:
    """The GOAL lines per recipe and its seen-share check. Every recipe is held to the best
    order-blind baseline (most-popular, EASE, ALS); the sequence recipes also to 1.1x that and
    to the follow-the-last-item baseline."""
    names = [n for n in table.rows if n.startswith("baseline") and n != SEQUENTIAL_BASELINE]
    best = max(names, key=lambda n: table.mean(n, "ndcg"))
    best_ndcg = table.mean(best, "ndcg")
    follow = table.mean(SEQUENTIAL_BASELINE, "ndcg") if SEQUENTIAL_BASELINE in table.rows else None
    print(f"best order-blind baseline: {best} (NDCG@10 {best_ndcg:.4f})")
    for recipe in recipes:
        if recipe not in table.rows:
            print(f"GOAL: {recipe} default >= best baseline: no ({failures.get(recipe, 'no result')})")
            continue
        ndcg = table.mean(recipe, "ndcg")
        ratio = ndcg / best_ndcg if best_ndcg > 0 else float("inf")
        print(f"GOAL: {recipe} default >= best baseline: {'yes' if ratio >= 1.0 else 'no'} (ratio {ratio:.2f})")
        if recipe in SEQUENCE_RECIPES and follow:
            ok = ratio >= 1.1 and ndcg >= follow
            print(f"  sequence goal (>= 1.1x order-blind, >= follow the last item): {'yes' if ok else 'no'} "
                  f"(ratios {ratio:.2f}, {ndcg / follow:.2f})")
        share = table.mean(recipe, "seen_share")
        if no_repeats:
            print(f"  seen share <= 2% on no-repeat data: {'yes' if share <= SEEN_LIMIT else 'no'} ({share:.2%})")
        else:
            print(f"  seen share <= 2% on no-repeat data: n/a (repeat data; seen share {share:.2%})")


# ---------------------------------------------------------------- main

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=None, help=f"comma-separated, or 'all' (default): {', '.join(DATASETS)}")
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated recipe names")
    parser.add_argument("--seeds", type=int, default=None, help="at most this many seeds per data set")
    parser.add_argument("--quick", action="store_true", help="one seed each of " + ", ".join(QUICK) + ", small sizes")
    args = parser.parse_args()
    if args.datasets in (None, "all"):
        keys = list(QUICK) if args.quick else list(DATASETS)
    else:
        keys = [k.strip() for k in args.datasets.split(",") if k.strip()]
        unknown = [k for k in keys if k not in DATASETS]
        if unknown:
            parser.error(f"unknown data set(s) {', '.join(unknown)}; choose from {', '.join(DATASETS)}")
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    with tempfile.TemporaryDirectory(prefix="op-quality-") as work:
        for key in keys:
            ds = DATASETS[key]
            if ds.missing():
                print(f"\n== {key}: skipped, {ds.missing()} not found")
                continue
            seeds = 1 if args.quick else min(ds.seeds, args.seeds or ds.seeds)
            run_dataset(ds, seeds, args.quick, recipes, Path(work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
