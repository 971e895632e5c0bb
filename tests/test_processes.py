"""``openpersonalize serve`` with several API processes on one port (``OPENPERSONALIZE_PROCESSES``).

Every process answers, and new connections go round them; a write answered by one shows in the
next request answered by another (events, deleted resources); /metrics counts the requests of
all of them; jobs created through any of them run; and the others do not outlive the first,
however it ends.

Requests here go over raw HTTP connections whose process is known (``/health`` names it), so
that "written through one, read through the other" is certain rather than likely.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import time

import pytest

from tests.batch.conftest import lab  # noqa: F401  (the trained dataset group, on this module's server)
from tests.batch.conftest import ROLE, wait
from tests.conftest import make_client
from tests.servers import running_server

NEEDS = ("aws-user-personalization",)
TARGET = "AmazonPersonalize."


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """This module's own server: two API processes."""
    # Long keep-alive: the pinned connections wait while a test trains or creates resources.
    yield from running_server(tmp_path_factory.mktemp("processes"),
                              env={"OPENPERSONALIZE_PROCESSES": "2", "OPENPERSONALIZE_KEEP_ALIVE_SECONDS": "600"})


@pytest.fixture(scope="module")
def personalize(server):
    return make_client("personalize", server.endpoint)


class Connection:
    """A kept-alive HTTP connection to one of the server's processes (unsigned requests: the
    server has no access keys)."""

    def __init__(self, port: int):
        self.http = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.pid = self.get("/health")["process"]

    def get(self, path: str) -> dict | str:
        self.http.request("GET", path)
        response = self.http.getresponse()
        body = response.read().decode()
        return json.loads(body) if path == "/health" else body

    def call(self, path: str, body: dict, target: str | None = None) -> tuple[int, dict]:
        headers = {"Content-Type": "application/x-amz-json-1.1" if target else "application/json"}
        if target:
            headers["X-Amz-Target"] = TARGET + target
        self.http.request("POST", path, body=json.dumps(body), headers=headers)
        response = self.http.getresponse()
        return response.status, json.loads(response.read() or b"{}")

    def control(self, operation: str, **params) -> dict:
        status, doc = self.call("/", params, operation)
        assert status == 200, doc
        return doc

    def recommend(self, campaign: str, user: str, **params) -> tuple[int, dict]:
        return self.call("/recommendations", {"campaignArn": campaign, "userId": user, "numResults": 10, **params})


def one_per_process(port: int, processes: int = 2, seconds: float = 30.0) -> dict[int, Connection]:
    """A connection answered by each process (new connections go to whichever process takes them;
    the others start answering a moment after the first)."""
    found: dict[int, Connection] = {}
    deadline = time.time() + seconds
    while time.time() < deadline:
        time.sleep(0.01)
        c = Connection(port)
        if c.pid in found:
            c.http.close()
        else:
            found[c.pid] = c
        if len(found) == processes:
            return found
    raise AssertionError(f"in {seconds} s, connections reached only the processes {sorted(found)}")


@pytest.fixture(scope="module")
def campaign(lab):
    c = lab.c
    arn = c.create_campaign(name=lab.name("c"), solutionVersionArn=lab.versions[NEEDS[0]])["campaignArn"]
    assert wait(lambda: c.describe_campaign(campaignArn=arn)["campaign"])["status"] == "ACTIVE"
    return arn


def test_both_processes_answer_and_only_the_first_runs_jobs(server, lab):
    conns = one_per_process(server.port)
    assert server.proc.pid in conns  # the first process is serve itself
    other = next(c for pid, c in conns.items() if pid != server.proc.pid)
    # A job created through the process without job workers runs (the first one picks it up).
    lab.put("in/health.json", [{"userId": str(lab.cat.user_ids[0])}])
    arn = other.control("CreateBatchInferenceJob", jobName=lab.name("bi"), solutionVersionArn=lab.versions[NEEDS[0]],
                        roleArn=ROLE, jobInput={"s3DataSource": {"path": f"s3://batch/{lab.prefix}/in/health.json"}},
                        jobOutput={"s3DataDestination": {"path": f"s3://batch/{lab.prefix}/out/health/"}}
                        )["batchInferenceJobArn"]
    doc = wait(lambda: other.control("DescribeBatchInferenceJob", batchInferenceJobArn=arn)["batchInferenceJob"])
    assert doc["status"] == "ACTIVE", doc


def test_connections_go_round_the_processes(server):
    """A client's pool opening its keep-alive connections at once gets them spread evenly: each
    process takes its turn (api/accepting.py), where an event loop's accept loop would take all
    the connections waiting when it wakes."""
    one_per_process(server.port)  # both are up
    for _ in range(5):
        time.sleep(0.2)  # the last round's connections are closed on the server side too
        pool = [http.client.HTTPConnection("127.0.0.1", server.port, timeout=60) for _ in range(8)]
        for c in pool:
            c.connect()
        per_process: dict[int, int] = {}
        for c in pool:
            c.request("GET", "/health")
            pid = json.loads(c.getresponse().read())["process"]
            per_process[pid] = per_process.get(pid, 0) + 1
            c.close()
        # Other tests' connections may still be open on one process: it then takes fewer.
        assert len(per_process) == 2 and max(per_process.values()) <= 6, per_process


def test_a_process_that_stopped_looking_in_takes_no_turns():
    """api/accepting.Turns: a process holding more connections than a live one waits for it;
    one that has not looked in for STALE_MS (dead, or not started) is not waited for."""
    from openpersonalize.api import accepting

    slots = [0] * 4  # (connections, last look-in) for two processes
    me, other = accepting.Turns(slots, 0), accepting.Turns(slots, 1)
    me.looked_in()
    me.add(3)
    assert me.my_turn()  # the other has never looked in: not started
    other.looked_in()
    assert not me.my_turn() and other.my_turn()  # the other holds fewer: its turn
    other.add(3)
    assert me.my_turn() and other.my_turn()
    other.add(-3)
    slots[3] -= accepting.STALE_MS + 1  # the other stopped looking in
    assert me.my_turn()


def test_an_event_sent_to_one_process_shows_in_the_other_at_once(server, lab, campaign):
    conns = list(one_per_process(server.port).values())
    tracker = lab.c.create_event_tracker(name=lab.name("t"), datasetGroupArn=lab.group)["eventTrackerArn"]
    tracking = wait(lambda: lab.c.describe_event_tracker(eventTrackerArn=tracker)["eventTracker"])["trackingId"]
    expression = 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("sampled-out")'
    flt = lab.filter(expression)
    user = str(lab.cat.user_ids[3])
    for k in range(6):  # each round writes through one process and reads through the other
        writer, reader = conns[k % 2], conns[(k + 1) % 2]
        status, doc = reader.recommend(campaign, user, filterArn=flt)
        assert status == 200, doc
        top = doc["itemList"][0]["itemId"]
        status, doc = writer.call("/events", {"trackingId": tracking, "userId": user, "sessionId": f"s{k}",
                                              "eventList": [{"eventType": "sampled-out", "itemId": top,
                                                             "sentAt": time.time()}]})
        assert status == 200, doc
        status, doc = reader.recommend(campaign, user, filterArn=flt)
        assert status == 200, doc
        assert top not in [i["itemId"] for i in doc["itemList"]], (k, top, writer.pid, reader.pid)


def test_a_resource_deleted_through_one_process_is_gone_in_the_other_at_once(server, lab, campaign):
    a, b = one_per_process(server.port).values()
    for k in range(3):
        flt = lab.filter('EXCLUDE ItemID WHERE Items.GENRES IN ("Horror")')
        user = str(lab.cat.user_ids[k])
        for conn in (a, b):  # both processes read (and keep) the filter's row
            status, doc = conn.recommend(campaign, user, filterArn=flt)
            assert status == 200, doc
        writer, reader = (a, b) if k % 2 == 0 else (b, a)
        writer.control("DeleteFilter", filterArn=flt)
        status, doc = reader.recommend(campaign, user, filterArn=flt)
        assert status == 404 and doc["__type"].endswith("ResourceNotFoundException"), (status, doc)


def test_metrics_count_the_requests_of_every_process(server):
    conns = one_per_process(server.port)

    def counted() -> float:
        text = next(iter(conns.values())).get("/metrics")
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith('openpersonalize_requests_total{operation="ListDatasetGroups"'))

    before = counted()
    for conn in conns.values():
        for _ in range(5):
            conn.control("ListDatasetGroups")
    assert counted() - before == 5 * len(conns)


def test_the_other_processes_end_with_the_first_however_it_ends(tmp_path):
    for how in (signal.SIGTERM, signal.SIGKILL):
        gen = running_server(tmp_path / how.name, env={"OPENPERSONALIZE_PROCESSES": "2",
                                                       "OPENPERSONALIZE_KEEP_ALIVE_SECONDS": "600"})
        srv = next(gen)
        try:
            pids = set(one_per_process(srv.port))
            others = pids - {srv.proc.pid}
            assert len(others) == 1
            os.kill(srv.proc.pid, how)
            srv.proc.wait(30)
            deadline = time.time() + 20
            while time.time() < deadline and any(alive(p) for p in others):
                time.sleep(0.1)
            assert not any(alive(p) for p in others), f"an API process outlived the first after {how.name}"
        finally:
            gen.close()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_what_one_process_lets_go_of_the_other_lets_go_of_too(server, lab, campaign):
    """A campaign deleted through one process: the other, holding it deployed, lets it go at its
    next request (state.py through signals.py) instead of keeping its memory until evicted."""
    a, b = one_per_process(server.port).values()
    c = lab.c
    doomed = c.create_campaign(name=lab.name("c"), solutionVersionArn=lab.versions[NEEDS[0]])["campaignArn"]
    assert wait(lambda: c.describe_campaign(campaignArn=doomed)["campaign"])["status"] == "ACTIVE"
    user = str(lab.cat.user_ids[5])
    for arn in (campaign, doomed):
        assert b.recommend(arn, user)[0] == 200

    def deployments(conn) -> float:
        return next(float(line.rsplit(" ", 1)[1]) for line in conn.get("/metrics").splitlines()
                    if line.startswith("openpersonalize_process_deployments "))

    held = deployments(b)
    assert held >= 2
    a.control("DeleteCampaign", campaignArn=doomed)
    status, doc = b.recommend(doomed, user)
    assert status == 404 and doc["__type"].endswith("ResourceNotFoundException"), (status, doc)
    assert b.recommend(campaign, user)[0] == 200  # loaded again; the deleted one is not held
    assert deployments(b) == 1


def fork_servers(pid: int) -> list[int]:
    """The server's child processes that are multiprocessing fork servers."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                children = [int(c) for c in f.read().split()]
        except OSError:
            continue
        for child in children:
            try:
                with open(f"/proc/{child}/cmdline", "rb") as f:
                    if b"forkserver" in f.read():
                        found.append(child)
            except OSError:
                pass
    return found


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="reads the process tree from /proc")
def test_the_fork_server_of_job_processes_starts_with_the_server_when_asked(tmp_path):
    """A server warms the fork server that job processes come from at its start, so that its first
    training or batch job starts as fast as the later ones; without it the first job starts it."""
    for warm in ("true", "false"):
        gen = running_server(tmp_path / warm, env={"OPENPERSONALIZE_WARM_JOB_PROCESSES": warm})
        srv = next(gen)
        try:
            deadline = time.time() + (30 if warm == "true" else 3)
            while time.time() < deadline and not fork_servers(srv.proc.pid):
                time.sleep(0.1)
            assert bool(fork_servers(srv.proc.pid)) == (warm == "true")
        finally:
            gen.close()
