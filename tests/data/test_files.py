"""s3:// locations never leave their root."""

from __future__ import annotations

import os

import pytest

from openpersonalize.config import Settings
from openpersonalize.errors import InvalidInputException
from openpersonalize.store.files import Storage, split_uri
from tests.data.helpers import import_job


@pytest.mark.parametrize("uri", ["s3://b/../etc/passwd", "s3://b/a/../../x", "s3://b//etc/passwd",
                                 "s3://b/./x", "s3://b/a\\..\\x", "s3://b/a\x00", "s3://../x", "/etc/passwd",
                                 "file:///etc/passwd", "s3://b.."])
def test_escaping_locations_are_refused(uri):
    with pytest.raises(InvalidInputException) as exc:
        split_uri(uri, "dataSource.dataLocation")
    assert exc.value.message.startswith("Invalid dataSource.dataLocation: ")


def test_plain_locations_are_accepted():
    assert split_uri("s3://bucket/a/b.csv") == ("bucket", "a/b.csv")
    assert split_uri("s3://bucket/prefix/") == ("bucket", "prefix/")
    assert split_uri("s3://bucket") == ("bucket", "")


def test_symlinks_out_of_the_root_are_refused(tmp_path):
    secret = tmp_path / "outside.csv"
    secret.write_text("USER_ID\nx\n")
    bucket = tmp_path / "data" / "s3" / "b"
    bucket.mkdir(parents=True)
    os.symlink(secret, bucket / "link.csv")
    os.symlink(tmp_path, bucket / "dir")
    storage = Storage(Settings(data_dir=str(tmp_path / "data"), s3_backend="local"))
    for uri in ("s3://b/link.csv", "s3://b/dir/outside.csv"):
        with pytest.raises(InvalidInputException) as exc:
            storage.list_objects(uri)
        assert "symbolic link" in exc.value.message
    with pytest.raises(InvalidInputException):
        storage.write_object("s3://b/dir/new.csv")


def test_api_refuses_escaping_paths_and_jobs_refuse_links(server, personalize, unique, interactions_dataset):
    with pytest.raises(personalize.exceptions.InvalidInputException) as exc:
        personalize.create_dataset_import_job(jobName=unique("imp"), datasetArn=interactions_dataset,
                                              dataSource={"dataLocation": "s3://b/../../metadata.db"},
                                              roleArn="arn:aws:iam::000000000000:role/p")
    assert "Invalid dataSource.dataLocation: 's3://b/../../metadata.db'" in exc.value.response["Error"]["Message"]
    bucket = server.data_dir / "s3" / "links"
    bucket.mkdir(parents=True, exist_ok=True)
    link = bucket / (unique("l") + ".csv")
    os.symlink(server.data_dir / "metadata.db", link)
    job = import_job(personalize, interactions_dataset, f"s3://links/{link.name}", unique("imp"))
    assert job["status"] == "CREATE FAILED" and "symbolic link" in job["failureReason"]
