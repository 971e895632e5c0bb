"""Day-to-day operation as a user meets it: the ``openpersonalize`` command run from another folder
against a running server, the request log, ``/metrics`` read with prometheus_client's parser, and
the health probes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ITEMS_SCHEMA
from tests.data.helpers import wait

CSV = "ITEM_ID,GENRES,PRICE,CREATION_TIMESTAMP\n" + "".join(f"i{k},Comedy,{k}.5,1700000000\n" for k in range(30))


def cli(server, *args, cwd: Path, env: dict | None = None):
    """``openpersonalize ARGS`` in ``cwd``, finding the server through OPENPERSONALIZE_ENDPOINT."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OPENPERSONALIZE_", "AWS_"))}
    environ.update({"OPENPERSONALIZE_ENDPOINT": server.endpoint, **(env or {})})
    out = subprocess.run([sys.executable, "-m", "openpersonalize.cli", *args], cwd=cwd, env=environ,
                         capture_output=True, text=True, timeout=120)
    return out.returncode, out.stdout, out.stderr


@pytest.fixture
def elsewhere(tmp_path):
    """A folder that is not the server's: nothing may appear in it but what a command copies."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def test_cp_behaves_like_aws_s3_cp(server, elsewhere, unique):
    bucket = unique("cp")
    (elsewhere / "items.csv").write_text(CSV)
    (elsewhere / "tree" / "sub").mkdir(parents=True)
    (elsewhere / "tree" / "a.csv").write_text("a\n")
    (elsewhere / "tree" / "sub" / "b.csv").write_text("b\n")
    s3 = server.data_dir / "s3" / bucket

    code, out, err = cli(server, "cp", "items.csv", f"s3://{bucket}/folder/", cwd=elsewhere)
    assert code == 0, err
    assert out.strip() == f"upload: items.csv to s3://{bucket}/folder/items.csv"
    assert (s3 / "folder" / "items.csv").read_text() == CSV  # a trailing slash names a folder

    code, out, err = cli(server, "cp", "tree", f"s3://{bucket}/tree", cwd=elsewhere)
    assert code == 1 and err.strip() == "openpersonalize cp: 'tree' is a folder: add --recursive to copy what is in it"
    code, out, err = cli(server, "cp", "tree", f"s3://{bucket}/tree", "--recursive", cwd=elsewhere)
    assert code == 0, err
    assert sorted(str(p.relative_to(s3 / "tree")) for p in (s3 / "tree").rglob("*.csv")) == ["a.csv", "sub/b.csv"]

    code, out, err = cli(server, "cp", f"s3://{bucket}/folder/items.csv", "back/", cwd=elsewhere)
    assert code == 0, err
    assert (elsewhere / "back" / "items.csv").read_text() == CSV
    code, out, err = cli(server, "cp", f"s3://{bucket}/tree", "copy", "--recursive", cwd=elsewhere)
    assert code == 0 and (elsewhere / "copy" / "sub" / "b.csv").read_text() == "b\n", err

    for args, message in [
        (("missing.csv", f"s3://{bucket}/x.csv"), "the local path 'missing.csv' does not exist"),
        ((f"s3://{bucket}/none.csv", "."), f"ResourceNotFoundException: No object s3://{bucket}/none.csv."),
        ((f"s3://{bucket}/a", f"s3://{bucket}/b"), "one of the two must be s3://"),
        (("items.csv", "s3://../x"), "InvalidInputException"),
    ]:
        code, out, err = cli(server, "cp", *args, cwd=elsewhere)
        assert code == 1 and message in err and "Traceback" not in err, (args, err)
    # Nothing of the server's appeared here: no store, no data folder.
    assert sorted(p.name for p in elsewhere.iterdir()) == ["back", "copy", "items.csv", "tree"]


def test_no_server_is_one_clear_line(elsewhere):
    class Nowhere:
        endpoint = "http://127.0.0.1:9"

    code, out, err = cli(Nowhere, "jobs", cwd=elsewhere)
    assert code == 1 and err.startswith("openpersonalize jobs: no server answers at http://127.0.0.1:9")
    assert "Traceback" not in err and not list(elsewhere.iterdir())


def test_wait_jobs_and_import_report_through_the_endpoint(server, personalize, elsewhere, unique):
    bucket = unique("w")
    (elsewhere / "items.csv").write_text(",ITEM_ID,GENRES,PRICE,CREATION_TIMESTAMP\n0,i1,Comedy,abc,1700000000\n"
                                         "1,i2,Drama,3.5,1700000000\n")
    assert cli(server, "cp", "items.csv", f"s3://{bucket}/items.csv", cwd=elsewhere)[0] == 0
    group = personalize.create_dataset_group(name=unique("g"))["datasetGroupArn"]
    schema = personalize.create_schema(name=unique("s"), schema=json.dumps(ITEMS_SCHEMA))["schemaArn"]
    dataset = personalize.create_dataset(name=unique("d"), schemaArn=schema, datasetGroupArn=group,
                                         datasetType="Items")["datasetArn"]
    good = personalize.create_dataset_import_job(jobName=unique("ok"), datasetArn=dataset,
                                                 dataSource={"dataLocation": f"s3://{bucket}/items.csv"})[
        "datasetImportJobArn"]
    code, out, err = cli(server, "wait", good, cwd=elsewhere)
    assert code == 0 and out.strip().endswith(f"ACTIVE  {good}"), (out, err)

    bad = personalize.create_dataset_import_job(jobName=unique("bad"), datasetArn=dataset,
                                                dataSource={"dataLocation": f"s3://{bucket}/nothing.csv"})[
        "datasetImportJobArn"]
    code, out, err = cli(server, "wait", bad, cwd=elsewhere)
    assert code == 1 and "failed: Invalid Data location" in err, (out, err)

    code, out, err = cli(server, "jobs", "--all", "--json", cwd=elsewhere)
    assert code == 0, err
    rows = {j["arn"]: j for j in json.loads(out)}
    assert rows[good]["status"] == "ACTIVE" and rows[bad]["status"] == "CREATE FAILED"
    assert "Invalid Data location" in rows[bad]["failureReason"]
    code, out, err = cli(server, "jobs", "--all", cwd=elsewhere)
    table = out.splitlines()
    assert any(line.startswith("succeeded") and good in line for line in table)
    assert any(line.startswith("failed") and bad in line for line in table)
    assert any("reason: Invalid Data location" in line for line in table)

    code, out, err = cli(server, "jobs", "--all", "--watch", cwd=elsewhere)  # returns once no job runs
    assert code == 0 and "succeeded" in out and good.rsplit("/", 1)[1] in out, err

    code, out, err = cli(server, "import-report", good, cwd=elsewhere)
    assert code == 0, err
    report = json.loads(out)
    assert report["status"] == "ACTIVE" and "PRICE" in json.dumps(report["report"])
    assert not (elsewhere / "openpersonalize-data").exists() and not (elsewhere / "metadata.db").exists()


def test_progress_has_a_total_a_percent_and_time_left():
    from openpersonalize.api.operator_endpoints import progress

    shown = progress({"done": 250, "total": 1000, "since": 100.0, "stage": "scoring"}, now=110.0)
    assert shown == {"done": 250, "total": 1000, "unit": "records", "stage": "scoring", "percent": 25.0,
                     "secondsLeft": 30.0}
    by_bytes = progress({"done": 5, "total": None, "bytes_done": 50, "bytes_total": 200, "since": 0.0}, now=10.0)
    assert by_bytes["unit"] == "bytes" and by_bytes["percent"] == 25.0 and by_bytes["secondsLeft"] == 30.0


# -- metrics, logs and probes ---------------------------------------------------------------------


def scrape(server) -> dict[tuple[str, tuple], float]:
    text = urllib.request.urlopen(server.endpoint + "/metrics", timeout=30).read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def change(before: dict, after: dict):
    """``delta(name, **labels)``: how much a sample grew between two scrapes (absent ones count 0
    before; a sample missing after raises)."""
    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after[key] - before.get(key, 0.0)

    return delta


def test_metrics_count_requests_latency_and_errors_per_operation(server, personalize, unique):
    before = scrape(server)
    for _ in range(3):
        personalize.list_schemas()
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.describe_schema(schemaArn="arn:aws:personalize:us-east-1:000000000000:schema/none")
    delta = change(before, scrape(server))

    assert delta("openpersonalize_requests_total", operation="ListSchemas", status="200") == 3
    assert delta("openpersonalize_requests_total", operation="DescribeSchema", status="400") == 1
    assert delta("openpersonalize_request_duration_seconds_count", operation="ListSchemas", status="200") == 3
    assert delta("openpersonalize_request_duration_seconds_bucket", operation="ListSchemas", status="200",
                 le="+Inf") == 3
    assert delta("openpersonalize_process_deployments") == 0  # present: what this process holds


def test_events_and_runtime_calls_are_counted(server, personalize, events, runtime, group, interactions_dataset,
                                             unique):
    tracking = personalize.create_event_tracker(name=unique("t"), datasetGroupArn=group)["trackingId"]
    before = scrape(server)
    events.put_events(trackingId=tracking, userId="u1", sessionId="s", eventList=[
        {"eventType": "click", "itemId": "i1", "sentAt": 1_700_000_000},
        {"eventType": "click", "itemId": "i2", "sentAt": 1_700_000_001}])
    with pytest.raises(events.exceptions.InvalidInputException):
        events.put_events(trackingId="no-such-tracker", userId="u", sessionId="s",
                          eventList=[{"eventType": "click", "itemId": "i", "sentAt": 1_700_000_000}])
    campaign = "arn:aws:personalize:us-east-1:000000000000:campaign/" + unique("none")
    with pytest.raises(runtime.exceptions.ResourceNotFoundException):
        runtime.get_recommendations(campaignArn=campaign, userId="u1")
    delta = change(before, scrape(server))

    assert delta("openpersonalize_requests_total", operation="PutEvents", status="200") == 1
    assert delta("openpersonalize_requests_total", operation="PutEvents", status="400") == 1
    assert delta("openpersonalize_events_received_total", operation="PutEvents") == 2  # refused ones are not
    assert delta("openpersonalize_requests_total", operation="GetRecommendations", status="404") == 1


def test_one_log_line_per_request_and_probes(server, personalize):
    personalize.list_solutions(maxResults=7)
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.describe_solution(solutionArn="arn:aws:personalize:us-east-1:000000000000:solution/missing")
    wanted = ("openpersonalize.requests: POST / ListSolutions 200 - ",
              "openpersonalize.requests: POST / DescribeSolution 400 ResourceNotFoundException ")
    deadline = time.time() + 10  # a writer thread writes the lines, a moment after the answers
    while not all(w in server.log() for w in wanted) and time.time() < deadline:
        time.sleep(0.05)
    assert all(w in server.log() for w in wanted), server.log()[-2000:]
    for path, status, body in (("/health", 200, "openpersonalize"), ("/ready", 200, '"ready":true')):
        answer = urllib.request.urlopen(server.endpoint + path, timeout=10)
        assert answer.status == status and body in answer.read().decode()
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(server.endpoint + "/no/such/page", timeout=10)
    assert caught.value.code == 404


def serve_once(tmp_path, *args, env: dict | None = None):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OPENPERSONALIZE_")}
    environ.update({"OPENPERSONALIZE_DATA_DIR": str(tmp_path / "data"), **(env or {})})
    out = subprocess.run([sys.executable, "-m", "openpersonalize.cli", "serve", *args], env=environ,
                         capture_output=True, text=True, timeout=60)
    return out.returncode, out.stdout + out.stderr


def test_start_up_errors_are_one_line_before_anything_is_announced(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out = serve_once(tmp_path, "--port", str(port))
    assert code == 1 and out.strip() == (f"openpersonalize serve: cannot listen on 127.0.0.1:{port}: Address already "
                                         "in use (another server runs there? choose a port with --port)")
    code, out = serve_once(tmp_path, env={"OPENPERSONALIZE_WORKERS": "many"})
    assert code == 1 and out.strip() == "openpersonalize serve: OPENPERSONALIZE_WORKERS='many' is not a valid whole number"
    code, out = serve_once(tmp_path, "--processes", "-1")
    assert code == 1 and out.strip() == ("openpersonalize serve: OPENPERSONALIZE_PROCESSES (--processes) must be 0 "
                                         "(one per core) or a number of processes, not -1")
    code, out = serve_once(tmp_path, "--store-url", "postgresql+psycopg://me:secret@127.0.0.1:1/db")
    assert code == 1 and len(out.strip().splitlines()) == 1, out
    assert out.startswith("openpersonalize serve: the metadata store postgresql+psycopg://me:***@127.0.0.1:1/db "
                          "cannot be opened") and "secret" not in out


def test_json_logs(tmp_path):
    from tests.conftest import make_client
    from tests.servers import ServerProcess, free_port

    server = ServerProcess(data_dir=tmp_path, port=free_port(), env={"OPENPERSONALIZE_LOG_FORMAT": "json"})
    server.start()
    try:
        make_client("personalize", server.endpoint).list_recipes()
    finally:
        server.stop()
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    call = next(line for line in lines if line.get("operation") == "ListRecipes")
    assert call["status"] == 200 and call["error"] == "-" and call["ms"] >= 0
