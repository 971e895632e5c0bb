"""Batch inference throughput and peak memory, beside the naive numpy limit in the same run.

    python bench/batch_inference.py [--quick] [--items 100000] [--users 200000] [--executor local|ray]

Builds everything through boto3 against an ``openpersonalize serve`` that the script starts on
127.0.0.1 in a temporary folder: generated Items / Users / Interactions CSVs (genres, prices,
Zipf popularity; enough interactions that every item is seen) are imported, and a
User-Personalization solution version is trained with ``hidden_dimension`` 64 (a catalogue this
size uses the ALS backend). Then, in the same run:

1. the **naive limit** on the trained factors, read from the model folder: ``U[users] @ V.T`` and
   ``np.argpartition`` top-25 per row, in blocks, no I/O, no JSON, no softmax;
2. **implicit's own top-k**: ``AlternatingLeastSquares.recommend`` batched over the same users
   with the same factors;
3. the **job**: CreateBatchInferenceJob on a JSON Lines input of ``--users`` lines (one userId per
   line) and on an input 5 times larger, each timed from create to ACTIVE. The job runs in a child
   process of the server; its peak RSS (VmHWM) is sampled from /proc while it runs;
4. the fixed cost of a 3-user job (create to ACTIVE) on the idle server.

The naive and implicit baselines are rates (records per second), measured on the first
``--baseline-users`` users of the input (their cost per record does not depend on how many there
are); the job always runs on the whole input. Prints records per second and ratios against the
naive limit.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from openpersonalize import synthetic  # noqa: E402
from procs import PeakSampler, load_average  # noqa: E402

ROLE = "arn:aws:iam::000000000000:role/bench"
BUCKET = "bench"
TOP = 25


# -- generated data ----------------------------------------------------------------------------

def generate(n_users: int, n_items: int, per_user: int, seed: int = 0) -> dict[str, pa.Table]:
    """Items with genres and prices, users with one or two liked genres, and interactions that
    mostly follow the users' genres and a Zipf popularity. Vectorised: millions of rows in seconds.
    Every item gets at least one interaction, so the model knows the whole catalogue."""
    rng = np.random.default_rng(seed)
    genres = np.array(synthetic.GENRES)
    g = len(genres)
    primary = rng.integers(g, size=n_items)
    second = np.where(rng.random(n_items) < 0.2, (primary + 1 + rng.integers(g - 1, size=n_items)) % g, -1)
    item_ids = np.char.add("i", np.char.zfill(np.arange(n_items).astype(str), len(str(n_items))))
    genre_text = np.where(second >= 0, np.char.add(np.char.add(genres[primary], "|"), genres[np.maximum(second, 0)]),
                          genres[primary])
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    rng.shuffle(popularity)
    # Per genre: its items and the cumulative popularity used to sample them.
    by_genre = [np.flatnonzero(primary == k) for k in range(g)]
    cum = [np.cumsum(popularity[ix]) / popularity[ix].sum() for ix in by_genre]

    user_ids = np.char.add("u", np.char.zfill(np.arange(n_users).astype(str), len(str(n_users))))
    liked = rng.integers(g, size=n_users)
    counts = np.maximum(2, rng.poisson(per_user, size=n_users))
    users = np.repeat(np.arange(n_users), counts)
    n = len(users)
    genre_of = liked[users]
    off_genre = rng.random(n) < 0.1
    genre_of[off_genre] = rng.integers(g, size=int(off_genre.sum()))
    items = np.empty(n, dtype=np.int64)
    for k in range(g):
        sel = np.flatnonzero(genre_of == k)
        pos = np.searchsorted(cum[k], rng.random(len(sel)))
        items[sel] = by_genre[k][np.minimum(pos, len(by_genre[k]) - 1)]
    # Make sure every item is seen once (by a random user of its genre's fans, or anyone).
    unseen = np.setdiff1d(np.arange(n_items), items)
    users = np.concatenate([users, rng.integers(n_users, size=len(unseen))])
    items = np.concatenate([items, unseen])
    n = len(users)
    ts = synthetic.START + rng.integers(0, 90 * 86400, size=n)
    interactions = pa.table({
        "USER_ID": pa.array(user_ids[users]), "ITEM_ID": pa.array(item_ids[items]),
        "TIMESTAMP": pa.array(ts), "EVENT_TYPE": pa.array(np.where(rng.random(n) < 0.15, "purchase", "click")),
        "EVENT_VALUE": pa.array(np.round(rng.uniform(0.5, 5.0, size=n), 1))})
    items_t = pa.table({
        "ITEM_ID": pa.array(item_ids), "TITLE": pa.array(np.char.add("Title ", item_ids)),
        "GENRES": pa.array(genre_text),
        "DESCRIPTION": pa.array(np.array([synthetic._TOPICS[x] for x in genres])[primary]),
        "PRICE": pa.array(np.round(rng.uniform(1, 60, size=n_items), 2)),
        "CREATION_TIMESTAMP": pa.array(synthetic.START - rng.integers(0, 400 * 86400, size=n_items))})
    users_t = pa.table({"USER_ID": pa.array(user_ids),
                        "TIER": pa.array(rng.choice(["gold", "silver", "bronze"], size=n_users, p=[.2, .3, .5]))})
    return {"Interactions": interactions, "Items": items_t, "Users": users_t}


def write_input(path: Path, user_ids: np.ndarray, lines: int, seed: int, filter_values=None) -> None:
    """``lines`` JSON lines ``{"userId": ...}`` (users drawn in shuffled passes over ``user_ids``),
    optionally with per-line ``filterValues`` from ``filter_values(rng, count) -> list[dict]``."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        done = 0
        while done < lines:
            take = rng.permutation(user_ids)[: lines - done]
            fv = filter_values(rng, len(take)) if filter_values else None
            if fv is None:
                f.write("".join('{"userId": "%s"}\n' % u for u in take))
            else:
                f.write("".join(json.dumps({"userId": str(u), "filterValues": v}) + "\n" for u, v in zip(take, fv)))
            done += len(take)


# -- the server ---------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``openpersonalize serve`` on 127.0.0.1 in its own process group, data in ``data_dir``."""

    def __init__(self, data_dir: Path, env: dict | None = None):
        self.data_dir = Path(data_dir)
        self.port = free_port()
        self.env = env or {}
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OPENPERSONALIZE_DATA_DIR": str(self.data_dir),
               "OPENPERSONALIZE_PORT": str(self.port), "OPENPERSONALIZE_HOST": "127.0.0.1",
               "OPENPERSONALIZE_MAX_PENDING_JOBS": "100", "OPENPERSONALIZE_MAX_DATASET_GROUPS": "50",
               **self.env}
        log = open(self.data_dir / "server.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "openpersonalize.cli", "serve"], env=env,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited:\n{(self.data_dir / 'server.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.endpoint + "/", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def client(self, service: str):
        import boto3
        from botocore.config import Config

        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="bench", aws_secret_access_key="bench",
                            config=Config(retries={"max_attempts": 0}, max_pool_connections=64))

    def bucket(self, key: str = "") -> Path:
        return self.data_dir / "s3" / BUCKET / key


def wait(describe, timeout: float = 3600, interval: float = 0.02) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        doc = describe()
        if doc["status"] in ("ACTIVE", "CREATE FAILED"):
            return doc
        time.sleep(interval)
    raise SystemExit(f"still {doc['status']} after {timeout}s")


def build_group(server: Server, tables: dict[str, pa.Table], name: str, factors: int) -> tuple[str, str]:
    """Import the tables into a new dataset group and train a User-Personalization version on it;
    returns (group ARN, solution version ARN)."""
    c = server.client("personalize")
    schemas = {"Interactions": synthetic.INTERACTIONS_SCHEMA, "Items": synthetic.ITEMS_SCHEMA,
               "Users": synthetic.USERS_SCHEMA}
    group = c.create_dataset_group(name=name)["datasetGroupArn"]
    jobs = []
    for kind, table in tables.items():
        key = f"{name}/data/{kind.lower()}.csv"
        server.bucket(key).parent.mkdir(parents=True, exist_ok=True)
        pacsv.write_csv(table, server.bucket(key))
        schema = c.create_schema(name=f"{name}-{kind}", schema=json.dumps(schemas[kind]))["schemaArn"]
        ds = c.create_dataset(name=f"{name}-{kind}", schemaArn=schema, datasetGroupArn=group,
                              datasetType=kind)["datasetArn"]
        jobs.append(c.create_dataset_import_job(jobName=f"{name}-{kind}", datasetArn=ds, roleArn=ROLE,
                                                dataSource={"dataLocation": f"s3://{BUCKET}/{key}"}
                                                )["datasetImportJobArn"])
    for arn in jobs:
        doc = wait(lambda: c.describe_dataset_import_job(datasetImportJobArn=arn)["datasetImportJob"], interval=0.2)
        assert doc["status"] == "ACTIVE", doc
    sol = c.create_solution(name=f"{name}-up", datasetGroupArn=group, performAutoTraining=False,
                            recipeArn="arn:aws:personalize:::recipe/aws-user-personalization",
                            solutionConfig={"algorithmHyperParameters": {"hidden_dimension": str(factors)}}
                            )["solutionArn"]
    version = c.create_solution_version(solutionArn=sol)["solutionVersionArn"]
    doc = wait(lambda: c.describe_solution_version(solutionVersionArn=version)["solutionVersion"], interval=0.2)
    assert doc["status"] == "ACTIVE", doc
    return group, version


def model_folder(server: Server, version_arn: str) -> Path:
    from openpersonalize.config import Settings
    from openpersonalize.store.models import model_dir

    return model_dir(Settings(data_dir=str(server.data_dir)), version_arn)


def run_job(server: Server, version: str, input_key: str, name: str, **kw) -> tuple[float, int, dict]:
    """(seconds from create to ACTIVE, peak RSS bytes of the job process, job description)."""
    c = server.client("personalize")
    out = f"s3://{BUCKET}/out/{name}/"
    with PeakSampler(server.proc.pid) as sampler:
        t = time.perf_counter()
        arn = c.create_batch_inference_job(jobName=name, solutionVersionArn=version, roleArn=ROLE,
                                           jobInput={"s3DataSource": {"path": f"s3://{BUCKET}/{input_key}"}},
                                           jobOutput={"s3DataDestination": {"path": out}}, **kw
                                           )["batchInferenceJobArn"]
        doc = wait(lambda: c.describe_batch_inference_job(batchInferenceJobArn=arn)["batchInferenceJob"])
        seconds = time.perf_counter() - t
    assert doc["status"] == "ACTIVE", doc
    return seconds, sampler.peak_kb * 1024, doc


def check_output(server: Server, name: str, input_key: str, lines: int) -> None:
    """The output has one line per input line, and its first lines parse with 25 items."""
    path = server.bucket(f"out/{name}/{Path(input_key).name}.out")
    with open(path, "rb") as f:
        head = [json.loads(next(f)) for _ in range(min(lines, 3))]
    with open(path, "rb") as f:
        count = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 24), b""))
    assert count == lines, (count, lines)
    assert all(h["error"] is None and len(h["output"]["recommendedItems"]) == TOP for h in head), head[0]


# -- baselines ---------------------------------------------------------------------------------

def naive_rate(U: np.ndarray, V: np.ndarray, users: np.ndarray, block: int = 1024) -> float:
    """Records per second of ``U[users] @ V.T`` + argpartition top-25 (+ sorting the 25)."""
    t = time.perf_counter()
    for s in range(0, len(users), block):
        S = U[users[s:s + block]] @ V.T
        part = np.argpartition(-S, TOP - 1, axis=1)[:, :TOP]
        vals = np.take_along_axis(S, part, axis=1)
        np.take_along_axis(part, np.argsort(-vals, axis=1), axis=1)
    return len(users) / (time.perf_counter() - t)


def gemm_rate(U: np.ndarray, V: np.ndarray, users: np.ndarray, block: int = 1024) -> float:
    """Records per second of the matrix product alone (a floor no scorer can go under)."""
    t = time.perf_counter()
    for s in range(0, len(users), block):
        U[users[s:s + block]] @ V.T
    return len(users) / (time.perf_counter() - t)


def implicit_rate(U: np.ndarray, V: np.ndarray, users: np.ndarray) -> float:
    from implicit.cpu.als import AlternatingLeastSquares

    m = AlternatingLeastSquares(factors=U.shape[1])
    m.user_factors, m.item_factors = U, V
    t = time.perf_counter()
    for s in range(0, len(users), 8192):
        m.recommend(users[s:s + 8192], None, N=TOP, filter_already_liked_items=False)
    return len(users) / (time.perf_counter() - t)


def load_factors(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    U = np.ascontiguousarray(np.load(folder / "user_factors.npy"))
    V = np.ascontiguousarray(np.load(folder / "item_factors.npy"))
    ids = np.load(folder / "user_ids.npy")
    return U, V, ids


def baselines(folder: Path, input_users: list[str], label: str = "") -> dict[str, float]:
    U, V, ids = load_factors(folder)
    sorter = np.argsort(ids)
    users = sorter[np.searchsorted(ids, np.asarray(input_users), sorter=sorter)]
    out = {"naive": naive_rate(U, V, users), "gemm": gemm_rate(U, V, users), "implicit": implicit_rate(U, V, users)}
    print(f"  baselines on {len(users):,} users{label}: naive numpy {out['naive']:,.0f} rec/s, "
          f"implicit.recommend {out['implicit']:,.0f} rec/s, matrix product alone {out['gemm']:,.0f} rec/s")
    return out


def breakdown(folder: Path, input_path: Path, lines: int = 16_384) -> dict[str, float]:
    """Where a batch job's time goes, per record (microseconds), on one scoring thread: the job's
    own code (batch/inference.py's LineScorer on the trained model, read from its folder) with a
    timer around each stage. The job runs two such threads; these are what each one does."""
    from threadpoolctl import threadpool_limits

    import openpersonalize.recipes.registry  # noqa: F401  (model classes)
    from openpersonalize.batch import inference
    from openpersonalize.recipes import factorization, repeats
    from openpersonalize.recipes.base import Model
    from openpersonalize.recipes.registry import capabilities

    stages = [(factorization, "product_with_normalisers", "product"),  # split below
              (factorization.CollaborativeModel, "_rewrite_unscored_rows", "cold and refolded rows"),
              (repeats.RepeatPolicy, "adjust_block", "repeat policy"),
              (factorization.PersonalizationModel, "_top_with_own_items", "selection"),
              (inference.Scorer, "_item_rows", "output objects"),
              (inference, "dumps", "serialisation"),
              (inference, "records", "parsing")]
    spent: dict[str, float] = {}
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in stages]

    def timed(original, part: str):
        def wrapper(*a, **kw):
            t = time.perf_counter()
            try:
                out = original(*a, **kw)
                return list(out) if part == "parsing" else out  # a generator: parsed as it is read
            finally:
                spent[part] = spent.get(part, 0.0) + time.perf_counter() - t
                if part == "product":
                    bare_product(*a)
        return wrapper

    def bare_product(left, right, out, *_):
        """The fused product's block again as one plain product: its time splits the fused
        pass into the product and the normalisation (and leaves the job's total)."""
        scratch = blocks.get(out.shape)
        if scratch is None:  # reused, and touched once untimed: no page faults, as the job's
            scratch = blocks[out.shape] = np.zeros_like(out)
        t = time.perf_counter()
        np.matmul(left, right.T, out=scratch)
        bare["seconds"] += time.perf_counter() - t

    bare = {"seconds": 0.0}
    blocks: dict = {}

    model = Model.load(folder)
    with open(input_path, "rb") as f:
        data = b"".join(next(f) for _ in range(lines))
    can = capabilities("aws-user-personalization")
    scorer = inference.LineScorer(inference.Scorer(model, can, TOP, None, None), can, threads=1)
    scorer.shard((1, data[:data.index(b"\n") + 1]))  # warm
    try:
        for (owner, name, part), (_, _, original) in zip(stages, originals):
            setattr(owner, name, timed(original, part))
        with threadpool_limits(1, "blas"), tempfile.NamedTemporaryFile() as f:
            t = time.perf_counter()
            out, _ = scorer.shard((1, data))
            w = time.perf_counter()
            f.write(out)
            f.flush()
            os.fsync(f.fileno())
            spent["writing"] = time.perf_counter() - w
            total = time.perf_counter() - t
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
    total -= bare.get("seconds", 0.0)
    fused = spent.pop("product", 0.0)
    spent["product"] = min(bare.get("seconds", 0.0), fused)
    spent["normalisation"] = fused - spent["product"]
    spent["other"] = total - sum(spent.values())  # chunking, line checks, the cold-user pass
    us = {part: round(seconds / lines * 1e6, 1) for part, seconds in spent.items()}
    us["total"] = round(total / lines * 1e6, 1)
    print(f"  where the time goes, one scoring thread, {lines:,} lines ({lines / total:,.0f} rec/s), per record: "
          + ", ".join(f"{k} {v:.1f} us ({v / us['total']:.0%})" for k, v in us.items() if k != "total"))
    return us


def first_users(path: Path, count: int) -> list[str]:
    with open(path) as f:
        return [json.loads(next(f))["userId"] for _ in range(count)]


def sizes(args) -> None:
    if args.quick:
        args.items, args.users, args.per_user = min(args.items, 30_000), min(args.users, 20_000), 10
        args.baseline_users = min(args.baseline_users, 5_000)


def prepare(server: Server, args, name: str = "bi") -> tuple[str, str, Path]:
    t = time.perf_counter()
    tables = generate(args.users, args.items, args.per_user)
    n = tables["Interactions"].num_rows
    print(f"generated {args.users:,} users, {args.items:,} items, {n:,} interactions "
          f"in {time.perf_counter() - t:.1f}s")
    t = time.perf_counter()
    group, version = build_group(server, tables, name, args.factors)
    folder = model_folder(server, version)
    print(f"imported and trained (ALS, {args.factors} factors) through the API in {time.perf_counter() - t:.1f}s")
    return group, version, folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=200_000, help="input lines (and users of the model)")
    parser.add_argument("--per-user", type=int, default=15, help="mean interactions per user")
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--baseline-users", type=int, default=20_000)
    parser.add_argument("--scale", type=int, default=5, help="the larger input is this many times bigger")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--executor", default="local", choices=["local", "ray"],
                        help="where the job runs; ray: bench/batch_ray.py, local beside 1 and 2 Ray actors")
    parser.add_argument("--dir", default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    sizes(args)
    if args.executor == "ray":  # the same job on the local executor and on Ray, in one run
        import runpy

        sys.argv = [str(Path(__file__).with_name("batch_ray.py")), "--users", str(args.users), "--items",
                    str(args.items), "--lines", str(args.users)]
        runpy.run_path(sys.argv[0], run_name="__main__")
        return
    print(f"load average at start: {load_average()}")
    tmp = tempfile.mkdtemp(prefix="bench-batch-", dir=args.dir)
    server = Server(Path(tmp) / "server")
    try:
        server.start()
        _, version, folder = prepare(server, args)
        user_ids = np.load(folder / "user_ids.npy")
        results = {}
        for label, lines in (("1x", args.users), (f"{args.scale}x", args.users * args.scale)):
            key = f"in/users-{label}.json"
            write_input(server.bucket(key), user_ids, lines, seed=lines)
            base = baselines(folder, first_users(server.bucket(key), min(args.baseline_users, lines)))
            seconds, peak, _ = run_job(server, version, key, f"job-{label}")
            check_output(server, f"job-{label}", key, lines)
            rate = lines / seconds
            results[label] = {"lines": lines, "job_rec_s": round(rate), "job_peak_mib": round(peak / 2**20),
                              "naive_rec_s": round(base["naive"]), "implicit_rec_s": round(base["implicit"]),
                              "gemm_rec_s": round(base["gemm"]),
                              "job_vs_naive": round(rate / base["naive"], 2),
                              "job_vs_implicit": round(rate / base["implicit"], 2)}
            print(f"  job {label}: {lines:,} lines in {seconds:.1f}s = {rate:,.0f} rec/s "
                  f"({rate / base['naive']:.2f}x naive, {rate / base['implicit']:.2f}x implicit), "
                  f"job process peak RSS {peak / 2**20:,.0f} MiB   [load {load_average()}]")
        results["breakdown_us_per_record"] = breakdown(folder, server.bucket("in/users-1x.json"),
                                                       min(16_384, args.users))
        write_input(server.bucket("in/three.json"), user_ids, 3, seed=3)
        fixed = []
        for k in range(3):
            seconds, _, _ = run_job(server, version, "in/three.json", f"three-{k}")
            fixed.append(seconds)
        print(f"  3-user job, create to ACTIVE: {', '.join(f'{s:.2f}s' for s in fixed)} (goal < 5 s)")
        results["three_user_job_s"] = round(min(fixed), 2)
        results[f"peak_growth_{args.scale}x_vs_1x"] = round(results[f"{args.scale}x"]["job_peak_mib"] /
                                                max(results["1x"]["job_peak_mib"], 1), 2)
        print(json.dumps(results))
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
