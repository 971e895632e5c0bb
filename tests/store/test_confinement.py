"""Nothing on the embedded store reaches outside its root through a symbolic link.

Every storage operation (read, write, move, remove, list, and the folders a write creates) refuses
a location that passes through a link before it touches anything, and its errors name s3://
locations only: never a path of the data folder, and never what lies beyond a link. The first
half drives ``Storage`` on a real folder; the second runs the jobs that touch the store (import,
batch inference, batch segment, export) through boto3 against the server, with links planted in
its buckets pointing at a folder outside its data folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from openpersonalize.config import Settings
from openpersonalize.errors import InvalidInputException
from openpersonalize.store.files import Storage
from tests.batch.conftest import ROLE, lab, wait  # noqa: F401  (the trained dataset group, on this module's server)
from tests.data.helpers import export_job, import_job

# Popularity scores batch inference, Item-Affinity batch segments; both train in a moment.
NEEDS = ("aws-popularity-count", "aws-item-affinity")


def tree(folder: Path) -> list[str]:
    """Everything under ``folder`` (links not followed), as sorted relative paths."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def local(tmp_path):
    """A Storage on its own data folder, a bucket ``b`` in it, and a folder ``outside`` holding a
    secret file and a folder, that links in the bucket point at."""
    data = tmp_path / "data"
    bucket = data / "s3" / "b"
    bucket.mkdir(parents=True)
    outside = tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "secret-name.csv").write_text("USER_ID\nu1\n")
    (outside / "folder" / "kept.out").write_text("kept\n")
    os.symlink(outside, bucket / "link")
    return Storage(Settings(data_dir=str(data), s3_backend="local")), bucket, outside


def assert_refused(exc: pytest.ExceptionInfo, tmp_path: Path, link: str = "s3://b/link", asked: str = "") -> str:
    """The refusal names the link by its s3:// location, no machine path, and nothing beyond the
    link that the caller did not name itself (``asked``)."""
    message = exc.value.message
    assert "symbolic link" in message and link in message, message
    assert str(tmp_path) not in message, message
    for beyond in ("secret-name", "kept.out"):
        assert beyond in asked or beyond not in message, message
    return message


# -- the store itself -----------------------------------------------------------------------------


def test_writes_never_create_folders_or_files_beyond_a_link(local, tmp_path):
    storage, bucket, outside = local
    before = tree(outside)
    for uri in ("s3://b/link/new.csv", "s3://b/link/new/deeper/x.out", "s3://b/link/folder/kept.out"):
        with pytest.raises(InvalidInputException) as exc:
            storage.write_object(uri, "jobOutput.s3DataDestination.path")
        assert assert_refused(exc, tmp_path, asked=uri).startswith(f"Invalid jobOutput.s3DataDestination.path: '{uri}'")
    # A link deeper down, below folders that exist: refused all the same.
    (bucket / "real" / "sub").mkdir(parents=True)
    os.symlink(outside, bucket / "real" / "sub" / "inner")
    with pytest.raises(InvalidInputException) as exc:
        storage.write_object("s3://b/real/sub/inner/made/here.out")
    assert_refused(exc, tmp_path, "s3://b/real/sub/inner")
    # A link as the object itself (a dangling one too) is not written through.
    os.symlink(outside / "secret-name.csv", bucket / "alias.csv")
    os.symlink(tmp_path / "nowhere.csv", bucket / "dangling.csv")
    for name in ("alias.csv", "dangling.csv"):
        with pytest.raises(InvalidInputException) as exc:
            storage.write_object(f"s3://b/{name}")
        assert_refused(exc, tmp_path, f"s3://b/{name}")
    assert tree(outside) == before and (outside / "secret-name.csv").read_text() == "USER_ID\nu1\n"
    assert not (tmp_path / "nowhere.csv").exists()
    # The same write inside the bucket creates its folders as before.
    with storage.write_object("s3://b/made/here/x.out") as fh:
        fh.write(b"ok")
    assert (bucket / "made" / "here" / "x.out").read_bytes() == b"ok"


def test_moves_never_publish_beyond_a_link(local, tmp_path):
    storage, bucket, outside = local
    before = tree(outside)
    with storage.write_object("s3://b/out/_temporary/j-1/x.json.out") as fh:
        fh.write(b"{}\n")
    os.symlink(outside / "folder", bucket / "out" / "sub")
    os.symlink(outside / "secret-name.csv", bucket / "out" / "alias.out")
    for target, link in (("s3://b/link/x.json.out", "s3://b/link"),               # the output folder
                         ("s3://b/out/sub/x.json.out", "s3://b/out/sub"),         # the file's parent
                         ("s3://b/out/sub", "s3://b/out/sub"),                    # a folder link as target
                         ("s3://b/out/alias.out", "s3://b/out/alias.out")):       # a file link as target
        with pytest.raises(InvalidInputException) as exc:
            storage.move("s3://b/out/_temporary/j-1/x.json.out", target, "jobOutput.s3DataDestination.path")
        assert_refused(exc, tmp_path, link)
    assert tree(outside) == before and (outside / "secret-name.csv").read_text() == "USER_ID\nu1\n"
    assert (bucket / "out" / "_temporary" / "j-1" / "x.json.out").read_bytes() == b"{}\n"  # not moved
    # Reading a source that is a link is refused too: a move never takes a file from outside.
    with pytest.raises(InvalidInputException) as exc:
        storage.move("s3://b/out/alias.out", "s3://b/out/stolen.out")
    assert_refused(exc, tmp_path, "s3://b/out/alias.out")
    assert not (bucket / "out" / "stolen.out").exists()
    storage.move("s3://b/out/_temporary/j-1/x.json.out", "s3://b/out/new/x.json.out")
    assert (bucket / "out" / "new" / "x.json.out").read_bytes() == b"{}\n"


def test_removes_never_delete_beyond_a_link(local, tmp_path):
    storage, bucket, outside = local
    before = tree(outside)
    for uri, link in (("s3://b/link/folder", "s3://b/link"), ("s3://b/link/secret-name.csv", "s3://b/link"),
                      ("s3://b/link/", "s3://b/link"), ("s3://b/link", "s3://b/link")):
        with pytest.raises(InvalidInputException) as exc:
            storage.remove(uri)
        assert_refused(exc, tmp_path, link, asked=uri)
    assert (bucket / "link").is_symlink()
    # A folder holding links is removed with its links; what they point at stays.
    temp = bucket / "out" / "_temporary" / "j-1"
    temp.mkdir(parents=True)
    (temp / "part.out").write_text("partial\n")
    os.symlink(outside, temp / "to-outside")
    os.symlink(outside / "secret-name.csv", temp / "file-link.out")
    storage.remove("s3://b/out/_temporary/j-1/")
    assert not temp.exists() and tree(outside) == before
    assert storage.remove_empty_folder("s3://b/out/_temporary/") and not (bucket / "out" / "_temporary").exists()
    # An empty folder reached through a link is never removed.
    (outside / "empty").mkdir()
    with pytest.raises(InvalidInputException):
        storage.remove_empty_folder("s3://b/link/empty/")
    assert (outside / "empty").is_dir()


def test_listing_and_reading_stop_at_a_link(local, tmp_path):
    storage, bucket, outside = local
    for uri in ("s3://b/", "s3://b/link/", "s3://b/li", "s3://b/link/secret-name.csv"):
        with pytest.raises(InvalidInputException) as exc:
            storage.list_objects(uri, "dataSource.dataLocation")
        assert_refused(exc, tmp_path, asked=uri)  # names s3://b/link, never the files beyond it
    with pytest.raises(InvalidInputException) as exc:
        storage.children("s3://b/link/")
    assert_refused(exc, tmp_path)
    # Links beside the prefix are neither followed nor refused.
    (bucket / "in").mkdir()
    (bucket / "in" / "a.json").write_text('{"userId": "u1"}\n')
    [obj] = storage.list_objects("s3://b/in/")
    assert obj.uri == "s3://b/in/a.json"
    # An object swapped for a link after it was listed is not read through the link.
    (bucket / "in" / "a.json").unlink()
    os.symlink(outside / "secret-name.csv", bucket / "in" / "a.json")
    with pytest.raises(InvalidInputException) as exc:
        storage.open_input(obj, member="jobInput.s3DataSource.path")
    assert_refused(exc, tmp_path, "s3://b/in/a.json")


def test_other_errors_name_locations_not_machine_paths(local, tmp_path):
    storage, bucket, _ = local
    (bucket / "folder").mkdir()
    (bucket / "object.csv").write_text("x\n")
    with pytest.raises(OSError) as exc:
        storage.write_object("s3://b/folder")
    assert "s3://b/folder" in str(exc.value) and str(tmp_path) not in str(exc.value)
    with pytest.raises(InvalidInputException) as exc:
        storage.write_object("s3://b/object.csv/x.out", "jobOutput.s3DataDestination.path")
    assert "s3://b/object.csv" in exc.value.message and str(tmp_path) not in exc.value.message
    with pytest.raises(FileNotFoundError) as exc:
        storage.move("s3://b/missing.out", "s3://b/x.out")
    assert "s3://b/missing.out" in str(exc.value) and str(tmp_path) not in str(exc.value)
    storage.remove("s3://b/nothing/here")  # absent: nothing to do
    assert storage.list_objects("s3://b/object.csv/x") == [] and storage.list_objects("s3://nobucket/x") == []


# -- the jobs, through the server ----------------------------------------------------------------


@pytest.fixture
def planted(lab, tmp_path, unique):
    """A folder of this module's lab in the server's bucket, and a folder outside the server's
    data folder holding a secret file: ``(s3:// prefix, its folder, the outside folder)``."""
    name = unique("conf")
    folder = lab.bucket_dir / lab.prefix / name
    folder.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret-name.json").write_text('{"userId": "u1"}\n')
    return f"s3://batch/{lab.prefix}/{name}", folder, outside


def batch_inference(lab, input_uri: str, output_uri: str, name: str) -> dict:
    arn = lab.c.create_batch_inference_job(
        jobName=name, solutionVersionArn=lab.versions["aws-popularity-count"], roleArn=ROLE,
        jobInput={"s3DataSource": {"path": input_uri}},
        jobOutput={"s3DataDestination": {"path": output_uri}})["batchInferenceJobArn"]
    return wait(lambda: lab.c.describe_batch_inference_job(batchInferenceJobArn=arn)["batchInferenceJob"])


def assert_failed_on_link(job: dict, tmp_path: Path, link: str, asked: str = "") -> None:
    """The job failed with the refusal as its reason: the link's s3:// location, no machine
    path, and nothing beyond the link that the job's own locations (``asked``) do not name."""
    reason = job.get("failureReason", "")
    assert job["status"] == "CREATE FAILED", job
    assert "symbolic link" in reason and link in reason and "Internal error" not in reason, reason
    assert str(tmp_path) not in reason and ("secret-name" in asked or "secret-name" not in reason), reason


def users_file(lab, folder: Path, key: str, n: int = 20) -> None:
    path = folder / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"userId": str(u)}) + "\n" for u in lab.cat.user_ids[:n]))


def test_import_errors_never_name_what_lies_beyond_a_link(server, personalize, unique, planted, tmp_path,
                                                        interactions_dataset):
    prefix, folder, outside = planted
    os.symlink(outside, folder / "data")
    for location in (f"{prefix}/data/", f"{prefix}/data/secret-name.json", f"{prefix}/"):
        job = import_job(personalize, interactions_dataset, location, unique("imp"))
        assert_failed_on_link(job, tmp_path, f"{prefix}/data", asked=location)


def test_batch_output_folder_that_is_a_link_fails_and_touches_nothing_outside(lab, planted, tmp_path, unique):
    prefix, folder, outside = planted
    users_file(lab, folder, "in/users.json")
    os.symlink(outside, folder / "out")
    before = tree(outside)
    job = batch_inference(lab, f"{prefix}/in/users.json", f"{prefix}/out/", unique("bi"))
    assert_failed_on_link(job, tmp_path, f"{prefix}/out")
    assert tree(outside) == before  # no _temporary/, no .out written there


def test_batch_output_file_whose_parent_is_a_link_is_not_published_outside(lab, planted, tmp_path, unique):
    prefix, folder, outside = planted
    users_file(lab, folder, "in/top.json")
    users_file(lab, folder, "in/sub/users.json")  # its output goes to out/sub/users.json.out
    (folder / "out").mkdir()
    os.symlink(outside, folder / "out" / "sub")
    before = tree(outside)
    job = batch_inference(lab, f"{prefix}/in/", f"{prefix}/out/", unique("bi"))
    assert_failed_on_link(job, tmp_path, f"{prefix}/out/sub")
    assert tree(outside) == before
    # Nothing is half published either: the output folder holds only the link it had.
    assert tree(folder / "out") == ["sub"]


def test_a_failed_jobs_cleanup_deletes_nothing_through_a_link(lab, planted, tmp_path, unique):
    prefix, folder, outside = planted
    users_file(lab, folder, "in/users.json")
    name = unique("bi")
    # What the job's cleanup would remove, had _temporary/ been a real folder: it must survive.
    (outside / f"{name}-1").mkdir()
    (outside / f"{name}-1" / "users.json.out").write_text("not yours\n")
    (folder / "out").mkdir()
    os.symlink(outside, folder / "out" / "_temporary")
    before = tree(outside)
    job = batch_inference(lab, f"{prefix}/in/users.json", f"{prefix}/out/", name)
    assert_failed_on_link(job, tmp_path, f"{prefix}/out/_temporary")
    assert tree(outside) == before and (outside / f"{name}-1" / "users.json.out").read_text() == "not yours\n"

    # An earlier attempt's folder that is a link is refused too, and what it points at kept.
    os.unlink(folder / "out" / "_temporary")
    (folder / "out" / "_temporary").mkdir()
    other = unique("bi") + "x"
    os.symlink(outside / f"{name}-1", folder / "out" / "_temporary" / f"{other}-2")
    job = batch_inference(lab, f"{prefix}/in/users.json", f"{prefix}/out/", other)
    assert_failed_on_link(job, tmp_path, f"{prefix}/out/_temporary/{other}-2")
    assert tree(outside) == before


def test_batch_jobs_create_no_folder_through_a_link(lab, planted, tmp_path, unique):
    prefix, folder, outside = planted
    users_file(lab, folder, "in/users.json")
    os.symlink(outside, folder / "link")
    before = tree(outside)
    job = batch_inference(lab, f"{prefix}/in/users.json", f"{prefix}/link/new/deeper/", unique("bi"))
    assert_failed_on_link(job, tmp_path, f"{prefix}/link")
    (folder / "in" / "items.json").write_text("".join(json.dumps({"itemId": str(i)}) + "\n"
                                                      for i in lab.cat.item_ids[:5]))
    arn = lab.c.create_batch_segment_job(
        jobName=unique("bs"), solutionVersionArn=lab.versions["aws-item-affinity"], roleArn=ROLE,
        jobInput={"s3DataSource": {"path": f"{prefix}/in/items.json"}},
        jobOutput={"s3DataDestination": {"path": f"{prefix}/link/segments/"}})["batchSegmentJobArn"]
    job = wait(lambda: lab.c.describe_batch_segment_job(batchSegmentJobArn=arn)["batchSegmentJob"])
    assert_failed_on_link(job, tmp_path, f"{prefix}/link")
    # The input side: a linked input folder is refused, naming the link only.
    os.symlink(outside, folder / "in-link")
    job = batch_inference(lab, f"{prefix}/in-link/", f"{prefix}/out-in/", unique("bi"))
    assert_failed_on_link(job, tmp_path, f"{prefix}/in-link")
    assert tree(outside) == before


def test_exports_write_nothing_through_a_link(lab, planted, tmp_path, unique):
    prefix, folder, outside = planted
    os.symlink(outside, folder / "link")
    before = tree(outside)
    dataset = lab.c.list_datasets(datasetGroupArn=lab.group)["datasets"]
    interactions = next(d["datasetArn"] for d in dataset if d["datasetType"].upper() == "INTERACTIONS")
    name = unique("exp")
    job = export_job(lab.c, interactions, f"{prefix}/link/", name, mode="BULK")
    assert_failed_on_link(job, tmp_path, f"{prefix}/link")
    assert tree(outside) == before
