"""Two ``openpersonalize worker`` processes and a server sharing one PostgreSQL store: twenty jobs,
each finished exactly once; the worker holding a job is killed (SIGKILL) in the middle of it and
the job finishes on the other worker once the lease expires. While it runs, its progress shows
in the server's ``/metrics`` and in ``openpersonalize jobs``."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections import Counter

import pytest

from openpersonalize.store.metadata import Store
from tests.data.helpers import wait_for
from tests.scale.workers import WorkerProcess
from tests.servers import ServerProcess, free_port, reset_store

def test_jobs_run_once_across_workers_and_survive_a_killed_worker(postgres_url, tmp_path):
    reset_store(postgres_url)
    runs = tmp_path / "runs"
    runs.mkdir()
    server = ServerProcess(data_dir=tmp_path / "server", port=free_port(), store_url=postgres_url,
                           env={"OPENPERSONALIZE_WORKERS": "0"})
    env = {"OPENPERSONALIZE_JOB_MODULES": "tests.scale.job_bodies", "OPENPERSONALIZE_JOB_LEASE_SECONDS": "3",
           "OPENPERSONALIZE_POLL_SECONDS": "0.05", "OPENPERSONALIZE_WORKERS": "1"}
    workers = [WorkerProcess(data_dir=tmp_path / "shared", store_url=postgres_url, env=env, name=f"worker-{k}")
               for k in range(2)]
    store = Store(postgres_url)
    try:
        server.start()
        for w in workers:
            w.start()
        for k in range(20):
            name = f"job-{k:02d}"
            store.insert(arn=name, kind="scale-test", name=name, status="CREATE PENDING", job=True,
                         doc={"name": name, "status": "CREATE PENDING", "runs": str(runs), "hold": k == 0})

        # The held job is running somewhere and reporting progress.
        state = wait_for(lambda: (s := store.job_state("job-00")) and (s["progress"] or {}).get("done") and s,
                         timeout=90, what="job-00's progress")
        holder = next(w for w in workers if state["worker"].split(":")[1] == str(w.pid))
        survivor = next(w for w in workers if w is not holder)
        with urllib.request.urlopen(server.endpoint + "/metrics", timeout=10) as r:
            metrics = r.read().decode()
        assert f'openpersonalize_job_records_total{{arn="job-00",kind="scale-test",worker="{state["worker"]}"}} 1200' \
            in metrics
        assert 'openpersonalize_job_records_done{arn="job-00"' in metrics
        listed = subprocess.run([sys.executable, "-m", "openpersonalize.cli", "jobs", "--endpoint-url", server.endpoint],
                                capture_output=True, text=True, check=True).stdout
        row = next(line for line in listed.splitlines() if line.endswith("job-00"))
        assert row.startswith("running") and "/1,200 " in row and "%" in row and state["worker"] in row

        holder.stop(kill=True)  # the machine dies: no clean shutdown, no last heartbeat
        for k in range(20):
            row = wait_for(lambda: (r := store.get(f"job-{k:02d}")).status in ("ACTIVE", "CREATE FAILED") and r,
                           timeout=90, what=f"job-{k:02d} to finish")
            assert row.status == "ACTIVE", row.doc
        assert store.get("job-00").doc["numDeleted"] == survivor.pid
    finally:
        for w in workers:
            w.stop()
        server.stop()
        store.close()

    done = Counter(p.name.split(".")[0] for p in runs.glob("*.done"))
    started = Counter(p.name.split(".")[0] for p in runs.glob("*.start"))
    assert done == {f"job-{k:02d}": 1 for k in range(20)}  # every job finished exactly once
    # Only jobs the killed worker held were started twice: once there, once on the survivor.
    restarted = {name for name, n in started.items() if n > 1}
    assert "job-00" in restarted and all(n <= 2 for n in started.values())
    for name in restarted:
        assert {p.name.split(".")[1] for p in runs.glob(f"{name}.*.start")} == {str(holder.pid), str(survivor.pid)}
    assert {p.name.split(".")[1] for p in runs.glob("*.done")} <= {str(holder.pid), str(survivor.pid)}


@pytest.fixture(scope="module")
def postgres_url():
    """A PostgreSQL server of this module's own (the test empties its database)."""
    from tests.postgres import postgres_or_skip

    with postgres_or_skip() as url:
        yield url
