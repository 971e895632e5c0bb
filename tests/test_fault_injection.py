"""Crash every kind of job at each of its stages, restart, and check what is left.

The server runs with ``OPENPERSONALIZE_CRASH_AT=<kind>:<stage>``: when a job's body reaches that
stage (``JobContext.reached``) the whole process group is killed with SIGKILL, as when the machine
dies (``<kind>:<stage>:process`` kills only the process running the body). A new server on the
same data folder then finishes the work, and each case checks the end state: the job ends (ACTIVE,
or failed with a reason), never hangs; no partial or temporary output remains; the dataset holds
its rows exactly once (an INCREMENTAL import published just before the crash is not added twice).
The count of kill points survived is printed at the end.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from openpersonalize import synthetic
from openpersonalize.config import Settings
from openpersonalize.data.rows import Dataset
from openpersonalize.store.metadata import Store
from openpersonalize.store.models import model_dir
from tests.batch.conftest import GENERATED, ROLE, import_datasets, train_versions
from tests.data.helpers import wait
from tests.conftest import make_client
from tests.servers import ServerProcess, free_port

USERS, ITEMS, PER_USER = 200, 80, 8
SURVIVED: list[str] = []


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


class Lab:
    """One data folder, a server that is either plain or armed to crash, and what the cases share."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.port = free_port()
        self.server: ServerProcess | None = None
        self.settings = Settings(data_dir=str(data_dir))
        self.cat = synthetic.generate(n_users=USERS, n_items=ITEMS, interactions_per_user=PER_USER, seed=3)
        self.counter = 0
        self.armed = False

    def start(self, crash_at: str | None = None) -> None:
        self.stop()
        env = {"OPENPERSONALIZE_MAX_DATASET_GROUPS": "50"}  # a fresh group per case
        if crash_at:
            env["OPENPERSONALIZE_CRASH_AT"] = crash_at
        self.server = ServerProcess(data_dir=self.data_dir, port=self.port, env=env)
        self.server.start()
        self.armed = bool(crash_at)
        self.c = make_client("personalize", self.server.endpoint)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def died(self, timeout: float = 120.0) -> int:
        """Wait for the armed server to crash; its exit code."""
        try:
            return self.server.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the server did not crash within {timeout:.0f} s:\n{self.server.log()[-3000:]}")

    def name(self, what: str) -> str:
        self.counter += 1
        return f"{what}-{self.counter}"

    def bucket(self, key: str) -> Path:
        return self.data_dir / "s3" / "faults" / key

    def dataset(self, arn: str) -> Dataset:
        return Dataset(Store(self.settings.resolved_store_url()), self.settings, arn)

    def files(self, arn: str) -> set[str]:
        ds = self.dataset(arn)
        return set(ds.root.walk_files(f"{ds.dir}/parts"))

    def rows(self, arn: str, before: set[str] = frozenset()) -> int:
        """Bulk rows the dataset lists. Every bulk file in its folder is a listed one, or one of
        the files ``before`` the job (replaced files stay a while for readers that started
        earlier): nothing a job wrote and did not publish is left."""
        ds = self.dataset(arn)
        listed = {p["file"] for p in ds.bulk_state().parts}
        left = self.files(arn) - listed - set(before)
        assert not left, f"unlisted bulk files left: {sorted(left)}"
        return sum(p["rows"] for p in ds.bulk_state().parts)

    def interactions_group(self) -> tuple[str, str]:
        """A fresh dataset group with its generated interactions imported: (group, dataset)."""
        name = self.name("g")
        synthetic.write_csvs(self.cat, self.bucket(name))
        group = self.c.create_dataset_group(name=name)["datasetGroupArn"]
        arns = import_datasets(self.c, group, name, f"s3://faults/{name}",
                               [("Interactions", *GENERATED["Interactions"])])
        return group, arns["Interactions"]


@dataclass
class Case:
    """A kill point: ``prepare`` runs on a plain server, ``create`` on the armed one (and returns
    the job's describe call), ``check`` after the restart."""

    point: str
    prepare: Callable[[Lab], dict]
    create: Callable[[Lab, dict], Callable[[], dict]]
    check: Callable[[Lab, dict, dict], None]


# -- imports -----------------------------------------------------------------------------------


def import_case(mode: str):
    def prepare(lab: Lab) -> dict:
        group, dataset = lab.interactions_group()
        key = lab.name("more") + ".csv"
        lines = ["USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE"]
        lines += [f"new{k % 50},{lab.cat.item_ids[k % ITEMS]},{1_700_000_000 + k},click,1.0" for k in range(1500)]
        lab.bucket(key).parent.mkdir(parents=True, exist_ok=True)
        lab.bucket(key).write_text("\n".join(lines) + "\n")
        return {"dataset": dataset, "before": lab.rows(dataset), "files": lab.files(dataset), "added": 1500,
                "csv": f"s3://faults/{key}"}

    def create(lab: Lab, ctx: dict):
        arn = lab.c.create_dataset_import_job(jobName=lab.name("imp"), datasetArn=ctx["dataset"], roleArn=ROLE,
                                              dataSource={"dataLocation": ctx["csv"]}, importMode=mode)[
            "datasetImportJobArn"]
        return lambda c: c.describe_dataset_import_job(datasetImportJobArn=arn)["datasetImportJob"]

    def check(lab: Lab, ctx: dict, doc: dict) -> None:
        assert doc["status"] == "ACTIVE", doc
        expected = ctx["added"] + (ctx["before"] if mode == "INCREMENTAL" else 0)
        assert lab.rows(ctx["dataset"], ctx["files"]) == expected  # whole, and once

    return prepare, create, check


# -- training ----------------------------------------------------------------------------------


def prepare_training(lab: Lab) -> dict:
    if not hasattr(lab, "trained_group"):
        lab.trained_group, lab.trained_dataset = lab.interactions_group()
    return {"group": lab.trained_group}


def training_case(*, killed_alone: bool):
    def create(lab: Lab, ctx: dict):
        name = lab.name("sol")
        solution = lab.c.create_solution(name=name, datasetGroupArn=ctx["group"],
                                         recipeArn="arn:aws:personalize:::recipe/aws-user-personalization")[
            "solutionArn"]
        arn = lab.c.create_solution_version(solutionArn=solution)["solutionVersionArn"]
        ctx["version"] = arn
        return lambda c: c.describe_solution_version(solutionVersionArn=arn)["solutionVersion"]

    def check(lab: Lab, ctx: dict, doc: dict) -> None:
        folder = model_dir(lab.settings, ctx["version"])
        if killed_alone:  # the job's process died under a running server: failed, nothing left
            assert doc["status"] == "CREATE FAILED" and "process was killed by SIGKILL" in doc["failureReason"], doc
            assert not folder.exists()
        else:
            assert doc["status"] == "ACTIVE", doc
            metrics = lab.c.get_solution_metrics(solutionVersionArn=ctx["version"])["metrics"]
            assert metrics["normalized_discounted_cumulative_gain_at_10"] > 0

    return prepare_training, create, check


# -- batch inference and batch segment ---------------------------------------------------------


def prepare_batch(lab: Lab) -> dict:
    if not hasattr(lab, "versions"):
        group, _ = lab.interactions_group()
        lab.versions = train_versions(lab.c, group, lab.name("v"), ("aws-popularity-count", "aws-item-affinity"))
    return {}


def batch_case(kind: str, *, killed_alone: bool):
    lines = 3000

    def create(lab: Lab, ctx: dict):
        name = lab.name(kind)
        folder = lab.bucket(f"{name}/in")
        folder.mkdir(parents=True)
        if kind == "inference":
            rows = [{"userId": str(lab.cat.user_ids[k % USERS])} for k in range(lines)]
        else:
            rows = [{"itemId": str(lab.cat.item_ids[k % ITEMS])} for k in range(lines // 10)]
        (folder / "q.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
        ctx.update(out=lab.bucket(f"{name}/out"), lines=len(rows))
        common = dict(jobName=name, roleArn=ROLE, jobInput={"s3DataSource": {"path": f"s3://faults/{name}/in/q.json"}},
                      jobOutput={"s3DataDestination": {"path": f"s3://faults/{name}/out/"}})
        if kind == "inference":
            arn = lab.c.create_batch_inference_job(solutionVersionArn=lab.versions["aws-popularity-count"],
                                                   batchInferenceJobConfig={"itemExplorationConfig": {}},
                                                   **common)["batchInferenceJobArn"]
            return lambda c: c.describe_batch_inference_job(batchInferenceJobArn=arn)["batchInferenceJob"]
        arn = lab.c.create_batch_segment_job(solutionVersionArn=lab.versions["aws-item-affinity"], numResults=5,
                                             **common)["batchSegmentJobArn"]
        return lambda c: c.describe_batch_segment_job(batchSegmentJobArn=arn)["batchSegmentJob"]

    def check(lab: Lab, ctx: dict, doc: dict) -> None:
        if killed_alone:
            assert doc["status"] == "CREATE FAILED" and "process was killed by SIGKILL" in doc["failureReason"], doc
            assert not ctx["out"].exists(), tree(ctx["out"])
            return
        assert doc["status"] == "ACTIVE", doc
        assert tree(ctx["out"]) == ["q.json.out"]
        with open(ctx["out"] / "q.json.out", "rb") as fh:
            assert sum(1 for _ in fh) == ctx["lines"]

    return prepare_batch, create, check


# -- exports and data deletion -----------------------------------------------------------------


def prepare_data(lab: Lab) -> dict:
    group, dataset = lab.interactions_group()
    return {"group": group, "dataset": dataset, "before": lab.rows(dataset), "files": lab.files(dataset)}


def export_case():
    def create(lab: Lab, ctx: dict):
        name = lab.name("exp")
        ctx["folder"] = lab.bucket(f"exports/{name}")
        arn = lab.c.create_dataset_export_job(jobName=name, datasetArn=ctx["dataset"], roleArn=ROLE, ingestionMode="BULK",
                                              jobOutput={"s3DataDestination": {"path": "s3://faults/exports/"}})[
            "datasetExportJobArn"]
        return lambda c: c.describe_dataset_export_job(datasetExportJobArn=arn)["datasetExportJob"]

    def check(lab: Lab, ctx: dict, doc: dict) -> None:
        assert doc["status"] == "ACTIVE", doc
        files = tree(ctx["folder"])
        assert files and all(f.startswith("part-") and f.endswith(".csv") for f in files), files
        rows = sum(len(p.read_text().splitlines()) - 1 for p in ctx["folder"].iterdir())
        assert rows == ctx["before"]

    return prepare_data, create, check


def users_of(lab: Lab, dataset: str) -> list[str]:
    ds = lab.dataset(dataset)
    return [u for part in ds.bulk_state().parts for b in ds.iter_part(part) for u in b.column("USER_ID").to_pylist()]


def deletion_case():
    def create(lab: Lab, ctx: dict):
        name = lab.name("del")
        doomed = [str(u) for u in lab.cat.user_ids[:20]]
        lab.bucket(f"{name}.csv").write_text("USER_ID\n" + "\n".join(doomed) + "\n")
        ctx["doomed"] = set(doomed)
        ctx["doomed_rows"] = sum(u in ctx["doomed"] for u in users_of(lab, ctx["dataset"]))
        arn = lab.c.create_data_deletion_job(jobName=name, datasetGroupArn=ctx["group"], roleArn=ROLE,
                                             dataSource={"dataLocation": f"s3://faults/{name}.csv"})[
            "dataDeletionJobArn"]
        return lambda c: c.describe_data_deletion_job(dataDeletionJobArn=arn)["dataDeletionJob"]

    def check(lab: Lab, ctx: dict, doc: dict) -> None:
        assert doc["status"] == "COMPLETED", doc
        assert not set(users_of(lab, ctx["dataset"])) & ctx["doomed"]
        assert ctx["doomed_rows"] and lab.rows(ctx["dataset"], ctx["files"]) == ctx["before"] - ctx["doomed_rows"]

    return prepare_data, create, check


CASES = [
    *(Case(f"dataset-import-job:{stage}", *import_case("FULL")) for stage in ("reading", "written", "published")),
    Case("dataset-import-job:published", *import_case("INCREMENTAL")),
    *(Case(f"solution-version:{stage}", *training_case(killed_alone=False)) for stage in ("read", "trained", "saved")),
    Case("solution-version:trained:process", *training_case(killed_alone=True)),
    *(Case(f"batch-inference-job:{stage}", *batch_case("inference", killed_alone=False))
      for stage in ("writing", "written", "published")),
    Case("batch-inference-job:writing:process", *batch_case("inference", killed_alone=True)),
    *(Case(f"batch-segment-job:{stage}", *batch_case("segment", killed_alone=False))
      for stage in ("writing", "written", "published")),
    Case("batch-segment-job:written:process", *batch_case("segment", killed_alone=True)),
    *(Case(f"dataset-export-job:{stage}", *export_case()) for stage in ("writing", "written", "published")),
    *(Case(f"data-deletion-job:{stage}", *deletion_case()) for stage in ("rewritten", "published")),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory, request):
    lab = Lab(tmp_path_factory.mktemp("faults"))
    lab.start()
    yield lab
    lab.stop()
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"fault injection: {len(SURVIVED)} of {len(CASES)} kill points survived")


@pytest.mark.parametrize("case", CASES, ids=[f"{c.point}-{k}" for k, c in enumerate(CASES)])
def test_a_crash_at_each_stage_leaves_a_whole_result(lab, case):
    if lab.armed or lab.server.proc.poll() is not None:
        lab.start()
    ctx = case.prepare(lab)
    lab.start(crash_at=case.point)
    describe = case.create(lab, ctx)
    if case.point.endswith(":process"):
        # Only the job's process dies; the server records the failure and cleans up at once.
        doc = wait(lambda: describe(lab.c))
    else:
        assert lab.died() == -9, lab.server.log()[-3000:]
        lab.start()
        started = time.time()
        doc = wait(lambda: describe(lab.c))
        assert time.time() - started < 170, "the job did not end after the restart"
    case.check(lab, ctx, doc)
    SURVIVED.append(case.point)
