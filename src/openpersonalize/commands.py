"""The commands that talk to a running server (``cp``, ``jobs``, ``wait``, ``import-report``):
through its endpoint only (client.py), never by opening its store or folder behind its back.

Each returns the process exit code; failures raise ``CommandError`` (one line, exit 1).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from .client import CommandError, ServerClient

# -- cp -----------------------------------------------------------------------------------------


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket:
        raise CommandError(f"{uri!r} names no bucket: write s3://bucket/key")
    return bucket, key


def _object_path(bucket: str, key: str) -> str:
    return f"/openpersonalize/objects/{bucket}/{key}"


def cp(client: ServerClient, source: str, target: str, *, recursive: bool = False, quiet: bool = False) -> int:
    """Copy like ``aws s3 cp``: local to s3:// or s3:// to local; a target ending in ``/`` (or an
    existing folder) receives the source's name; ``recursive`` copies a folder or a prefix."""
    up, down = target.startswith("s3://"), source.startswith("s3://")
    if up == down:
        raise CommandError("cp copies between a local path and an s3:// location: one of the two must be s3://")
    say = (lambda line: None) if quiet else print
    if up:
        return _upload(client, Path(source), target, recursive, say)
    return _download(client, source, target, recursive, say)


def _upload(client: ServerClient, source: Path, target: str, recursive: bool, say) -> int:
    bucket, key = _split(target)
    if not source.exists():
        raise CommandError(f"the local path {str(source)!r} does not exist")
    if source.is_dir():
        if not recursive:
            raise CommandError(f"{str(source)!r} is a folder: add --recursive to copy what is in it")
        files = sorted(p for p in source.rglob("*") if p.is_file())
        base = key if not key or key.endswith("/") else key + "/"
        pairs = [(p, base + p.relative_to(source).as_posix()) for p in files]
    else:
        pairs = [(source, key + source.name if not key or key.endswith("/") else key)]
    for path, object_key in pairs:
        with open(path, "rb") as fh:
            client.upload(_object_path(bucket, object_key), fh, path.stat().st_size)
        say(f"upload: {path} to s3://{bucket}/{object_key}")
    return 0


def _download(client: ServerClient, source: str, target_text: str, recursive: bool, say) -> int:
    bucket, key = _split(source)
    target = Path(target_text)
    if recursive:
        prefix = key if not key or key.endswith("/") else key + "/"
        found = client.json(f"/openpersonalize/objects/{bucket}", prefix=prefix)["objects"]
        pairs = [(o["key"], target / o["key"][len(prefix):]) for o in found]
    else:
        if not key or key.endswith("/"):
            raise CommandError(f"{source!r} is a prefix, not an object: add --recursive to copy what is under it")
        into_folder = target.is_dir() or target_text.endswith(("/", os.sep))
        pairs = [(key, target / key.rsplit("/", 1)[-1] if into_folder else target)]
    root = target.resolve()
    for object_key, path in pairs:
        if recursive and not path.resolve().is_relative_to(root):
            raise CommandError(f"refusing s3://{bucket}/{object_key}: its key would write outside {target_text!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(path.name + ".part")
        try:
            with open(temp, "wb") as out:
                client.download(_object_path(bucket, object_key), out)
            temp.replace(path)
        finally:
            temp.unlink(missing_ok=True)
        say(f"download: s3://{bucket}/{object_key} to {path}")
    return 0


# -- jobs ---------------------------------------------------------------------------------------

OUTCOMES = {"ACTIVE": "succeeded", "COMPLETED": "succeeded", "CREATE FAILED": "failed", "FAILED": "failed",
            "CREATE STOPPED": "stopped"}


def outcome(job: dict) -> str:
    """queued, running, succeeded, failed or stopped."""
    if job["state"] == "queued":
        return "queued"
    if job["state"] in ("running", "cancel"):
        return "stopping" if job["state"] == "cancel" else "running"
    return OUTCOMES.get(job.get("status") or "", (job.get("status") or "done").lower())


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def progress_text(p: dict | None) -> str:
    if not p or p.get("done") is None:
        return "-"
    unit = "B" if p.get("unit") == "bytes" else ""
    if p.get("total"):
        text = f"{p['done']:,}/{p['total']:,}{unit} {p.get('percent', 0):.0f}%"
        if p.get("secondsLeft") is not None:
            text += f" ~{_duration(p['secondsLeft'])} left"
        return text
    return f"{p['done']:,}{unit}"


def job_table(jobs: list[dict]) -> str:
    header = ("STATUS", "KIND", "NAME", "PROGRESS", "WORKER", "TRY", "ARN / REASON")
    rows = [header]
    for j in jobs:
        state = outcome(j)
        last = j["arn"] + (f"\n    reason: {j['failureReason']}" if state == "failed" and j.get("failureReason") else "")
        worker = j.get("worker") or "-" if state in ("running", "stopping") else "-"
        rows.append((state, j["kind"], j.get("name") or "-", progress_text(j.get("progress")), worker,
                     str(j["attempts"]), last))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows) + "\n"


def jobs(client: ServerClient, *, everything: bool = False, as_json: bool = False, watch: bool = False) -> int:
    if watch:
        return _watch(client, everything)
    listed = client.json("/openpersonalize/jobs", all=int(everything))["jobs"]
    sys.stdout.write(json.dumps(listed, indent=2) + "\n" if as_json else job_table(listed))
    return 0


def _watch(client: ServerClient, everything: bool) -> int:
    """Progress bars for the running jobs, refreshed every second, until none runs or is queued."""
    from rich.console import Group
    from rich.live import Live
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    def view(listed: list[dict]):
        table = Table(box=None, expand=False)
        for name in ("status", "kind", "name", "progress", "", "reason"):
            table.add_column(name)
        for j in listed:
            p = j.get("progress") or {}
            bar = ProgressBar(total=100.0, completed=p.get("percent", 0.0), width=30) if p.get("total") else ""
            table.add_row(outcome(j), j["kind"], j.get("name") or "-", bar, progress_text(p),
                          j.get("failureReason") or "" if outcome(j) == "failed" else "")
        return Group(table)

    with Live(view([]), refresh_per_second=4, transient=False) as live:
        seen: dict[str, dict] = {}
        while True:
            listed = client.json("/openpersonalize/jobs", all=1)["jobs"]
            active = [j for j in listed if j["state"] != "done"]
            for j in listed:
                if j["arn"] in seen or j["state"] != "done":
                    seen[j["arn"]] = j
            shown = listed if everything else list(seen.values())
            live.update(view(shown))
            if not active:
                return 0
            time.sleep(1.0)


# -- wait ---------------------------------------------------------------------------------------

DONE = ("ACTIVE", "COMPLETED")


def describe_call(arn: str) -> tuple[str, str, str]:
    """The boto3 method, its ARN parameter and its result key for the resource ``arn`` names."""
    from botocore import xform_name

    from .control.base import kind_of_arn, operation_for

    kind = kind_of_arn(arn)
    if kind is None:
        raise CommandError(f"{arn!r} is not a Personalize ARN (arn:aws:personalize:<region>:<account>:<type>/<name>)")
    operation, member = operation_for("Describe", kind)
    return xform_name(operation), member, member[: -len("Arn")]


def wait(client: ServerClient, arn: str, *, timeout: float = 3600.0, interval: float = 1.0) -> int:
    """Poll until the resource is ACTIVE or COMPLETED (exit 0) or failed or stopped (its reason, exit 1)."""
    method, member, key = describe_call(arn)
    personalize = client.boto3("personalize")
    if not hasattr(personalize, method):
        raise CommandError(f"{arn!r}: resources of this type have no status to wait for")
    deadline = time.time() + timeout
    last = None
    while True:
        try:
            doc = getattr(personalize, method)(**{member: arn})[key]
        except personalize.exceptions.ResourceNotFoundException as exc:
            raise CommandError(str(exc)) from None
        status = doc.get("status") or ""
        if status != last:
            print(f"{status}  {arn}", flush=True)
            last = status
        if status in DONE:
            return 0
        if status.endswith(("FAILED", "STOPPED")):
            print(f"failed: {doc.get('failureReason') or status}", file=sys.stderr)
            return 1
        if time.time() > deadline:
            raise CommandError(f"still {status} after {timeout:.0f} s: {arn}")
        time.sleep(interval)


def import_report(client: ServerClient, arn: str) -> int:
    print(json.dumps(client.json("/openpersonalize/import-report", arn=arn), indent=2))
    return 0


# -- compare ------------------------------------------------------------------------------------


def epoch(text: str | None) -> float | None:
    """Epoch seconds from ``text``: a number, or an ISO 8601 date or time (UTC unless it says)."""
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    from datetime import datetime, timezone

    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"{text!r} is neither epoch seconds nor an ISO 8601 time (2026-12-01T00:00)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _percent(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _with_window(query: dict, since: str | None, until: str | None) -> dict:
    """``query`` with ``since`` / ``until`` as epoch seconds, when given."""
    for name, value in (("since", epoch(since)), ("until", epoch(until))):
        if value is not None:
            query[name] = value
    return query


def _print_table(rows: list[tuple]) -> None:
    """Rows of text in aligned columns, the first row the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print("\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows))


def compare(client: ServerClient, group: str, event_type: str, *, since: str | None = None,
            until: str | None = None, as_json: bool = False) -> int:
    doc = client.json("/openpersonalize/compare",
                      **_with_window({"datasetGroupArn": group, "eventType": event_type}, since, until))
    if as_json:
        print(json.dumps(doc, indent=2))
        return 0
    rows = [("SOURCE", "IMPRESSIONS", "EVENTS", event_type.upper(), "VALUE", "RATE", "95% INTERVAL")]
    for s in doc["sources"]:
        rows.append((s["source"], f"{s['impressions']:,}", f"{s['events']:,}", f"{s['conversions']:,}",
                     f"{s['value']:,.2f}", _percent(s["rate"]), f"{_percent(s['low'])} - {_percent(s['high'])}"))
    _print_table(rows)
    for c in doc["comparisons"]:
        if c["difference"] is None:
            continue
        verdict = "significant" if c["significant"] else "not significant"
        print(f"{c['b']} - {c['a']}: {100 * c['difference']:+.2f} points "
              f"(95% {100 * c['low']:+.2f} to {100 * c['high']:+.2f}), p = {c['p']:.3g}: {verdict} at 5%")
    return 0


# -- evaluate -----------------------------------------------------------------------------------

SHOWN_METRICS = ("normalized_discounted_cumulative_gain_at_10", "precision_at_10", "mean_reciprocal_rank_at_25",
                 "coverage")


def evaluate(client: ServerClient, versions: list[str], *, since: str | None = None, until: str | None = None,
             as_json: bool = False) -> int:
    doc = client.json("/openpersonalize/evaluate", **_with_window({"solutionVersionArn": versions}, since, until))
    if as_json:
        print(json.dumps(doc, indent=2))
        return 0
    print(f"{doc['events']:,} events of {doc['usersWithEvents']:,} users since {doc['since']:.0f} (epoch s); "
          f"ranked by {doc['rankedBy']}")
    rows = [("VERSION", "RECIPE", "USERS", "NDCG@10", "PRECISION@10", "MRR@25", "COVERAGE")]
    for v in doc["versions"]:
        m = v["metrics"]
        rows.append((v["solutionVersionArn"], str(v["recipe"]).rsplit("/", 1)[-1], f"{v['usersScored']:,}",
                     *(f"{m[k]:.4f}" if k in m else "-" for k in SHOWN_METRICS)))
    _print_table(rows)
    return 0


# -- explain ------------------------------------------------------------------------------------


def explain(client: ServerClient, arn: str, user: str, item: str, *, as_json: bool = False) -> int:
    member = "recommenderArn" if ":recommender/" in arn else "campaignArn"
    doc = client.json("/openpersonalize/explain", **{member: arn, "userId": user, "itemId": item})
    if as_json:
        print(json.dumps(doc, indent=2))
        return 0
    print(doc["explanation"])
    if doc["contributions"]:
        total = sum(c["contribution"] for c in doc["contributions"])
        width = max(len(c["itemId"]) for c in doc["contributions"])
        for c in doc["contributions"]:
            share = f" ({100 * c['contribution'] / doc['score']:.0f}% of the score)" if doc.get("score") else ""
            print(f"  {c['itemId'].ljust(width)}  {c['contribution']:+.4g}{share}")
        if doc.get("boost"):
            print(f"  (objective boost {doc['boost']:+.4g}; the {len(doc['contributions'])} shown sum to {total:+.4g})")
    return 0
