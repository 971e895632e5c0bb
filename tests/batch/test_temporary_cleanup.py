"""No partial or temporary output outlives a job.

Batch jobs write under ``<output>/_temporary/<job>-<attempt>/`` and exports under temporary names
in their folder. Whether the job ends ACTIVE, fails, or is run again after its process was killed,
every attempt's temporaries are gone when it ends, and no empty helper folder is left: a reader
listing the output prefix finds whole outputs only.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from openpersonalize import synthetic
from tests.batch.conftest import ROLE, import_generated, train_versions, wait
from tests.conftest import make_client
from tests.data.helpers import export_job
from tests.servers import ServerProcess, free_port

NEEDS = ("aws-popularity-count", "aws-item-affinity")


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def users_lines(lab, n: int) -> list[dict]:
    return [{"userId": str(lab.cat.user_ids[k % len(lab.cat.user_ids)])} for k in range(n)]


def test_finished_jobs_leave_only_their_outputs(lab):
    lab.put("ok/in/users.json", users_lines(lab, 30))
    lab.put("ok/in/sub/more.json", users_lines(lab, 5))
    job, out = lab.inference("aws-popularity-count", f"s3://batch/{lab.prefix}/ok/in/")
    assert job["status"] == "ACTIVE", job
    folder = lab.bucket_dir / out[len("s3://batch/"):]
    assert tree(folder) == ["sub", "sub/more.json.out", "users.json.out"]  # no _temporary/, even empty

    uri = lab.put("ok/items.json", [{"itemId": str(i)} for i in lab.cat.item_ids[:3]])
    job, out = lab.segment("aws-item-affinity", uri, numResults=5)
    assert job["status"] == "ACTIVE", job
    assert tree(lab.bucket_dir / out[len("s3://batch/"):]) == ["items.json.out"]


def test_a_failed_job_leaves_no_partial_output(lab):
    # The second file holds more queries than a segment job reads: the job fails after the first
    # file's output and several shards of the second were written.
    lab.put("bad/in/a.json", [{"itemId": str(i)} for i in lab.cat.item_ids[:10]])
    lab.put("bad/in/b.json", [{"itemId": str(lab.cat.item_ids[k % 50])} for k in range(501)])
    job, out = lab.segment("aws-item-affinity", f"s3://batch/{lab.prefix}/bad/in/", numResults=3)
    assert job["status"] == "CREATE FAILED" and "more than 500" in job["failureReason"], job
    # The output folder did not exist before the job: nothing of it remains, not even empty.
    assert not (lab.bucket_dir / out[len("s3://batch/"):]).exists()


def test_earlier_attempts_leftovers_go_and_other_jobs_temporaries_stay(lab):
    uri = lab.put("left/in/users.json", users_lines(lab, 12))
    out = f"s3://batch/{lab.prefix}/left/out/"
    temp = lab.bucket_dir / lab.prefix / "left" / "out" / "_temporary"
    name = lab.name("bi")
    # What attempts of this job that died left behind: a partial output, nested folders.
    for rel in (f"{name}-1/users.json.out", f"{name}-3/sub/x.json.out",
                # another job's attempt (a running job writing to the same output), and the
                # attempt of a job whose name extends this one's: both are kept
                "other-1/users.json.out", f"{name}-1-1/users.json.out"):
        (temp / rel).parent.mkdir(parents=True, exist_ok=True)
        (temp / rel).write_text('{"input": {"userId": "partial\n')
    arn = lab.c.create_batch_inference_job(
        jobName=name, solutionVersionArn=lab.versions["aws-popularity-count"], roleArn=ROLE,
        jobInput={"s3DataSource": {"path": uri}}, jobOutput={"s3DataDestination": {"path": out}})[
        "batchInferenceJobArn"]
    job = wait(lambda: lab.c.describe_batch_inference_job(batchInferenceJobArn=arn)["batchInferenceJob"])
    assert job["status"] == "ACTIVE", job
    assert tree(temp) == sorted([f"{name}-1-1", f"{name}-1-1/users.json.out", "other-1", "other-1/users.json.out"])
    assert len(lab.output(out + "users.json.out")) == 12


def test_exports_leave_no_temporary_parts(lab):
    interactions = next(d["datasetArn"] for d in lab.c.list_datasets(datasetGroupArn=lab.group)["datasets"]
                        if d["datasetType"].upper() == "INTERACTIONS")
    name = lab.name("exp")
    folder = lab.bucket_dir / lab.prefix / "exports" / name
    folder.mkdir(parents=True)
    (folder / ".part-00000.csv.0badc0de.tmp").write_text("USER_ID\npartial")  # a dead attempt's part
    job = export_job(lab.c, interactions, f"s3://batch/{lab.prefix}/exports/", name, mode="BULK")
    assert job["status"] == "ACTIVE", job
    assert tree(folder) == ["part-00000.csv"]


# -- a crash in the middle of a batch job ---------------------------------------------------------


def test_a_batch_job_killed_midway_leaves_no_temporaries_after_recovery(tmp_path):
    port = free_port()
    first = ServerProcess(data_dir=tmp_path, port=port)
    first.start()
    second = None
    try:
        c = make_client("personalize", first.endpoint)
        cat = synthetic.generate(n_users=300, n_items=120, interactions_per_user=10, seed=5)
        synthetic.write_csvs(cat, tmp_path / "s3" / "crash" / "data")
        group = c.create_dataset_group(name="crash")["datasetGroupArn"]
        import_generated(c, group, "crash", "s3://crash/data", kinds=("Interactions",))
        version = train_versions(c, group, "crash", ("aws-popularity-count",))["aws-popularity-count"]
        # Enough lines that the job is still writing its output when it is killed.
        lines = "".join(json.dumps({"userId": str(cat.user_ids[k % 300])}) + "\n" for k in range(250_000))
        (tmp_path / "s3" / "crash" / "in").mkdir(parents=True)
        (tmp_path / "s3" / "crash" / "in" / "users.json").write_text(lines)
        arn = c.create_batch_inference_job(
            jobName="crash-bi", solutionVersionArn=version, roleArn=ROLE, numResults=10,
            jobInput={"s3DataSource": {"path": "s3://crash/in/users.json"}},
            jobOutput={"s3DataDestination": {"path": "s3://crash/out/"}})["batchInferenceJobArn"]
        out = tmp_path / "s3" / "crash" / "out"
        partial = out / "_temporary" / "crash-bi-1" / "users.json.out"
        deadline, polls = time.time() + 120, 0
        while not (partial.exists() and partial.stat().st_size > 0):
            polls += 1
            if polls % 100 == 0:  # the job must not have ended before it could be killed
                status = c.describe_batch_inference_job(batchInferenceJobArn=arn)["batchInferenceJob"]["status"]
                assert status not in ("ACTIVE", "CREATE FAILED") and time.time() < deadline, status
            time.sleep(0.005)
        first.stop(kill=True)  # the machine dies: the job's process with it
        assert partial.exists() and not (out / "users.json.out").exists()

        second = ServerProcess(data_dir=tmp_path, port=port)
        second.start()
        c = make_client("personalize", second.endpoint)
        job = wait(lambda: c.describe_batch_inference_job(batchInferenceJobArn=arn)["batchInferenceJob"])
        assert job["status"] == "ACTIVE", job
        assert tree(out) == ["users.json.out"]  # the dead attempt's partial output is gone
        with open(out / "users.json.out", "rb") as fh:
            assert sum(1 for _ in fh) == 250_000
    finally:
        first.stop()
        if second is not None:
            second.stop()
