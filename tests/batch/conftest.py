"""A dataset group with generated data and one trained solution version per recipe type, shared
by the batch job tests (training happens once per module that asks for it)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from openpersonalize import synthetic
from tests.conftest import make_client
from tests.servers import ServerProcess, free_port

ROLE = "arn:aws:iam::000000000000:role/batch"


@pytest.fixture(scope="session")
def personalize(server):
    return make_client("personalize", server.endpoint)


def wait(describe, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        doc = describe()
        if doc["status"] in ("ACTIVE", "CREATE FAILED"):
            return doc
        time.sleep(0.1)
    raise AssertionError(f"still {doc['status']} after {timeout}s")


class Lab:
    """A trained dataset group and helpers to run batch jobs on the server's embedded buckets."""

    def __init__(self, server, personalize, catalogue, prefix: str):
        self.server, self.c, self.cat, self.prefix = server, personalize, catalogue, prefix
        self.bucket_dir = Path(server.data_dir) / "s3" / "batch"
        self.versions: dict[str, str] = {}
        self.counter = 0

    def put(self, key: str, lines: list) -> str:
        path = self.bucket_dir / self.prefix / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines))
        return f"s3://batch/{self.prefix}/{key}"

    def output(self, uri: str) -> list[dict]:
        path = self.bucket_dir / uri[len("s3://batch/"):]
        return [json.loads(l) for l in path.read_text().splitlines()]

    def name(self, what: str) -> str:
        self.counter += 1
        return f"{self.prefix}-{what}-{self.counter}"

    def filter(self, expression: str) -> str:
        """A filter on the lab's dataset group, once it is ACTIVE; its ARN."""
        arn = self.c.create_filter(name=self.name("f"), datasetGroupArn=self.group,
                                   filterExpression=expression)["filterArn"]
        assert wait(lambda: self.c.describe_filter(filterArn=arn)["filter"])["status"] == "ACTIVE"
        return arn

    def inference(self, recipe: str, input_uri: str, **kw) -> tuple[dict, str]:
        out = f"s3://batch/{self.prefix}/out/{self.name('o')}/"
        arn = self.c.create_batch_inference_job(
            jobName=self.name("bi"), solutionVersionArn=self.versions[recipe], roleArn=ROLE,
            jobInput={"s3DataSource": {"path": input_uri}}, jobOutput={"s3DataDestination": {"path": out}},
            **kw)["batchInferenceJobArn"]
        return wait(lambda: self.c.describe_batch_inference_job(batchInferenceJobArn=arn)["batchInferenceJob"]), out

    def segment(self, recipe: str, input_uri: str, **kw) -> tuple[dict, str]:
        out = f"s3://batch/{self.prefix}/out/{self.name('o')}/"
        arn = self.c.create_batch_segment_job(
            jobName=self.name("bs"), solutionVersionArn=self.versions[recipe], roleArn=ROLE,
            jobInput={"s3DataSource": {"path": input_uri}}, jobOutput={"s3DataDestination": {"path": out}},
            **kw)["batchSegmentJobArn"]
        return wait(lambda: self.c.describe_batch_segment_job(batchSegmentJobArn=arn)["batchSegmentJob"]), out


GENERATED = {"Interactions": (synthetic.INTERACTIONS_SCHEMA, "interactions.csv"),
             "Items": (synthetic.ITEMS_SCHEMA, "items.csv"), "Users": (synthetic.USERS_SCHEMA, "users.csv")}


def import_generated(c, group: str, prefix: str, location: str, kinds=("Interactions", "Items", "Users"),
                     **schema_args) -> dict:
    """Create the ``kinds`` datasets in ``group`` and import the CSVs that ``synthetic.write_csvs``
    wrote under ``location`` (an s3:// folder)."""
    return import_datasets(c, group, prefix, location, [(kind, *GENERATED[kind]) for kind in kinds], **schema_args)


def import_datasets(c, group: str, prefix: str, location: str, datasets, **schema_args) -> dict:
    """For each ``(dataset type, Avro schema, CSV name)``: a schema, a dataset in ``group`` and an
    import of ``<location>/<CSV name>`` that must end ACTIVE. ``schema_args`` go to CreateSchema
    (``domain``). Dataset ARNs by type."""
    arns = {}
    for kind, schema, csv in datasets:
        s = c.create_schema(name=f"{prefix}-{kind}", schema=json.dumps(schema), **schema_args)["schemaArn"]
        arns[kind] = c.create_dataset(name=f"{prefix}-{kind}", schemaArn=s, datasetGroupArn=group,
                                      datasetType=kind)["datasetArn"]
        job = c.create_dataset_import_job(jobName=f"{prefix}-{kind}", datasetArn=arns[kind], roleArn=ROLE,
                                          dataSource={"dataLocation": f"{location.rstrip('/')}/{csv}"})
        doc = wait(lambda: c.describe_dataset_import_job(datasetImportJobArn=job["datasetImportJobArn"])[
            "datasetImportJob"])
        assert doc["status"] == "ACTIVE", doc
    return arns


@contextmanager
def generated_group(folder: Path, name: str, cat, kinds=("Interactions",)) -> Iterator[tuple]:
    """A server of its own (test profile) on ``folder``, with a dataset group ``name`` whose
    ``kinds`` datasets hold the generated catalogue ``cat``: ``(server, client, group, dataset
    ARNs by type)``. The server stops at the end, however set-up ends."""
    server = ServerProcess(data_dir=folder, port=free_port(), env={"OPENPERSONALIZE_PROFILE": "test"})
    server.start()
    try:
        synthetic.write_csvs(cat, folder / "s3" / name / "data")
        c = make_client("personalize", server.endpoint)
        group = c.create_dataset_group(name=name)["datasetGroupArn"]
        yield server, c, group, import_generated(c, group, name, f"s3://{name}/data", kinds=kinds)
    finally:
        server.stop()


RECIPES = ("aws-user-personalization", "aws-similar-items", "aws-personalized-ranking", "aws-item-affinity",
           "aws-item-attribute-affinity", "aws-popularity-count")


@pytest.fixture(scope="module")
def lab(server, personalize, request):
    prefix = request.module.__name__.rsplit(".", 1)[-1].replace("_", "-")[:20] + f"-{int(time.time() * 1000) % 10**8}"
    cat = synthetic.generate(n_users=300, n_items=160, interactions_per_user=25, seed=11)
    lab = Lab(server, personalize, cat, prefix)
    synthetic.write_csvs(cat, lab.bucket_dir / prefix / "data")
    group = personalize.create_dataset_group(name=f"{prefix}-g")["datasetGroupArn"]
    lab.group = group
    import_generated(personalize, group, prefix, f"s3://batch/{prefix}/data")
    lab.versions = train_versions(personalize, group, prefix, getattr(request.module, "NEEDS", RECIPES))
    return lab


def train_versions(c, group: str, prefix: str, recipes) -> dict:
    """One solution (no automatic training) and one ACTIVE version per recipe, trained side by
    side. Version ARNs by recipe name."""
    versions = {}
    for recipe in recipes:
        sol = c.create_solution(name=f"{prefix}-{recipe}", datasetGroupArn=group, performAutoTraining=False,
                                recipeArn=f"arn:aws:personalize:::recipe/{recipe}")["solutionArn"]
        versions[recipe] = c.create_solution_version(solutionArn=sol)["solutionVersionArn"]
    for arn in versions.values():
        doc = wait(lambda: c.describe_solution_version(solutionVersionArn=arn)["solutionVersion"])
        assert doc["status"] == "ACTIVE", doc
    return versions
