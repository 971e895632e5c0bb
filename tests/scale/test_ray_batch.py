"""Batch jobs on a real local Ray instance give the local executor's output, byte for byte.

One server (``--workers 0``) and a store shared with worker processes: a ``local`` worker trains
the models and runs every batch job of the suite below; then it stops, a ``ray`` worker (shards
of one scoring chunk, two actors) runs the same jobs again, and every output file is compared
with the local one. The inputs are big enough for several shards per file, with bad and blank
lines, filters with placeholders, several files under one prefix, themes and both segment
recipes.
"""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest

from openpersonalize import synthetic
from tests.batch.conftest import ROLE, Lab, import_generated, train_versions, wait
from tests.conftest import make_client
from tests.scale.conftest import LOOPBACK_RAY
from tests.scale.workers import WorkerProcess
from tests.servers import ServerProcess, free_port

RECIPES = ("aws-user-personalization", "aws-similar-items", "aws-personalized-ranking", "aws-item-affinity",
           "aws-item-attribute-affinity")
QUOTAS = {"OPENPERSONALIZE_MAX_DATASET_GROUPS": "10000", "OPENPERSONALIZE_MAX_PENDING_JOBS": "10000"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, ray_address):
    data_dir = tmp_path_factory.mktemp("ray-batch")
    store_url = f"sqlite:///{data_dir / 'metadata.db'}"
    server = ServerProcess(data_dir=data_dir, port=free_port(), store_url=store_url,
                           env={**QUOTAS, "OPENPERSONALIZE_WORKERS": "0"})
    server.start()
    # Jobs run in the workers' threads (no process spawned per job keeps the suite fast); the
    # last check runs one job in its own process, the default.
    common = {**LOOPBACK_RAY, "OPENPERSONALIZE_POLL_SECONDS": "0.05", "OPENPERSONALIZE_WORKERS": "2",
              "OPENPERSONALIZE_JOB_ISOLATION": "thread"}
    ray = {"OPENPERSONALIZE_EXECUTOR": "ray", "OPENPERSONALIZE_RAY_ADDRESS": ray_address,
           "OPENPERSONALIZE_RAY_WORKERS": "2", "OPENPERSONALIZE_SHARD_RECORDS": "1"}
    workers = {
        "local": WorkerProcess(data_dir=data_dir, store_url=store_url, name="local-worker",
                               env={**common, "OPENPERSONALIZE_EXECUTOR": "local"}),
        "ray": WorkerProcess(data_dir=data_dir, store_url=store_url, name="ray-worker", env={**common, **ray}),
        "ray-process": WorkerProcess(data_dir=data_dir, store_url=store_url, name="ray-process-worker",
                                     env={**common, **ray, "OPENPERSONALIZE_JOB_ISOLATION": "process"}),
    }
    yield server, workers
    for proc in (*workers.values(), server):
        proc.stop()


def trained_lab(server) -> Lab:
    c = make_client("personalize", server.endpoint)
    prefix = f"ray-{int(time.time() * 1000) % 10**8}"
    lab = Lab(server, c, synthetic.generate(n_users=300, n_items=160, interactions_per_user=25, seed=11), prefix)
    synthetic.write_csvs(lab.cat, lab.bucket_dir / prefix / "data")
    lab.group = c.create_dataset_group(name=f"{prefix}-g")["datasetGroupArn"]
    import_generated(c, lab.group, prefix, f"s3://batch/{prefix}/data")
    lab.versions = train_versions(c, lab.group, prefix, RECIPES)
    return lab


def inputs(lab: Lab) -> list[tuple[str, str, str, dict]]:
    """(kind, recipe, input location, extra arguments) of every job in the suite."""
    users = [str(u) for u in lab.cat.user_ids]
    items = [str(i) for i in lab.cat.item_ids]
    big = []
    for k in range(9000):  # three shards of 4096 records
        if k % 97 == 5:
            big.append("{broken")
        elif k % 131 == 7:
            big.append({"userId": users[k % len(users)], "colour": "red"})
        elif k % 211 == 11:
            big.append("")
        elif k % 307 == 13:
            big.append({"userId": f"never-seen-{k}"})
        else:
            big.append({"userId": users[k % len(users)]})
    values = [{"G": '"Comedy","Drama"', "MAX": "30"}, {"G": '"Horror"', "MAX": "80"}, {"MAX": "ten", "G": '"x"'}, {}]
    filtered = [{"userId": users[k % len(users)], "filterValues": values[k % 4]} for k in range(1300)]
    tiers = [{"TIER": '"gold"'}, {"TIER": '"silver"'}, {}]
    genre = lab.filter("INCLUDE ItemID WHERE Items.GENRES IN ($G) AND Items.PRICE <= $MAX")
    gold = lab.filter("INCLUDE UserID WHERE Users.TIER IN ($TIER)")
    lab.put("up/big.json", big)
    lab.put("up/b.json", ["", "  "])  # only blank lines: an empty output
    lab.put("up/sub/c.json", [{"userId": u} for u in users[20:50]] + ["[1, 2]"])
    themes = {"numResults": 6, "batchInferenceJobMode": "THEME_GENERATION",
              "themeGenerationConfig": {"fieldsForThemeGeneration": {"itemName": "TITLE"}}}
    return [
        ("inference", "aws-user-personalization", f"s3://batch/{lab.prefix}/up/", {"numResults": 10}),
        ("inference", "aws-user-personalization", lab.put("filtered.json", filtered),
         {"numResults": 5, "filterArn": genre}),
        ("inference", "aws-personalized-ranking", lab.put("rank/in.json", [
            {"userId": users[k % 300], "itemList": [items[(k * 7 + j) % 160] for j in range(12)] + ["unknown-item"]}
            for k in range(400)] + [{"userId": users[0], "itemList": []}]), {}),
        ("inference", "aws-similar-items", lab.put("related/in.json", [{"itemId": i} for i in items] +
                                                  [{"itemId": "not-an-item"}]), {"numResults": 8}),
        ("inference", "aws-similar-items", lab.put("themes/in.json", [{"itemId": i} for i in items[:12]]), themes),
        ("inference", "aws-similar-items", lab.put("themes/too-many.json", [{"itemId": i} for i in items[:101]]),
         themes),
        ("segment", "aws-item-affinity", lab.put("seg/items.json", [
            {"itemId": i, "filterValues": tiers[k % 3]} for k, i in enumerate(items[:150])] +
            [{"itemId": "no-such-item"}, {"item": "x"}]), {"numResults": 20, "filterArn": gold}),
        ("segment", "aws-item-attribute-affinity", lab.put("seg/attrs.json", [
            '{"itemAttributes": "ITEMS.GENRES = \\"Horror\\""}',
            '{"itemAttributes": "items.GENRES = \\"Horror\\" and ITEMS.PRICE = 9999"}',
            '{"itemAttributes": "ITEMS.DESCRIPTION = \\"x\\""}']), {"numResults": 15}),
    ]


def run_all(lab: Lab, suite) -> list[tuple[dict, Path]]:
    """Create every job at once, wait for each; returns (description, output folder)."""
    created = []
    for kind, recipe, uri, extra in suite:
        out = f"s3://batch/{lab.prefix}/out/{lab.name('o')}/"
        args = dict(solutionVersionArn=lab.versions[recipe], roleArn=ROLE, jobInput={"s3DataSource": {"path": uri}},
                    jobOutput={"s3DataDestination": {"path": out}}, **extra)
        if kind == "inference":
            arn = lab.c.create_batch_inference_job(jobName=lab.name("bi"), **args)["batchInferenceJobArn"]
            describe = (lambda a: lambda: lab.c.describe_batch_inference_job(batchInferenceJobArn=a)[
                "batchInferenceJob"])(arn)
        else:
            arn = lab.c.create_batch_segment_job(jobName=lab.name("bs"), **args)["batchSegmentJobArn"]
            describe = (lambda a: lambda: lab.c.describe_batch_segment_job(batchSegmentJobArn=a)[
                "batchSegmentJob"])(arn)
        created.append((describe, lab.bucket_dir / out[len("s3://batch/"):]))
    return [(wait(describe, timeout=240), folder) for describe, folder in created]


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_ray_executor_writes_the_local_executors_output_byte_for_byte(cluster):
    server, workers = cluster
    workers["local"].start()
    lab = trained_lab(server)
    suite = inputs(lab)
    by_local = run_all(lab, suite)
    workers["local"].stop()
    workers["ray"].start()
    by_ray = run_all(lab, suite)
    workers["ray"].stop()

    failed = [d.get("failureReason") for d, _ in by_local if d["status"] != "ACTIVE"]
    assert len(failed) == 1 and "exceeds 100" in failed[0], failed  # the themed job over 100 lines
    for (want, want_dir), (got, got_dir), (kind, recipe, uri, _) in zip(by_local, by_ray, suite):
        assert got["status"] == want["status"], (uri, got, workers["ray"].log()[-3000:])
        assert got.get("failureReason") == want.get("failureReason"), uri
        if want["status"] == "ACTIVE":
            expected = files(want_dir)
            assert expected and files(got_dir) == expected, uri  # nothing left under _temporary either
    outputs = files(by_ray[0][1])
    assert sorted(outputs) == ["b.json.out", "big.json.out", "sub/c.json.out"] and outputs["b.json.out"] == b""
    assert len(outputs["big.json.out"].splitlines()) == 9000 - sum(k % 211 == 11 and k % 97 != 5 for k in range(9000))

    # The default isolation: the job's own process connects to the cluster.
    workers["ray-process"].start()
    [(doc, folder)] = run_all(lab, suite[6:7])  # the segment job with a user filter
    assert doc["status"] == "ACTIVE" and files(folder) == files(by_local[6][1])

    # The ray workers' jobs really ran on Ray actors, and the server's metrics count the jobs.
    import ray

    actors = [a for a in ray._private.state.actors().values() if a["ActorClassName"] == "ShardWorker"]
    assert len(actors) >= len(suite)
    with urllib.request.urlopen(server.endpoint + "/metrics", timeout=10) as r:
        text = r.read().decode()
    assert 'openpersonalize_jobs{kind="batch-inference-job",state="done"} 12' in text
    assert 'openpersonalize_jobs{kind="batch-segment-job",state="done"} 5' in text
