"""Automatic training: solutions with ``performAutoTraining`` create versions on their own.

The first automatic version comes ``auto_training_first_delay_seconds`` (an hour) after the
solution was created, unless the user created one by hand in that time; then one every
``rate(N days)`` of ``autoTrainingConfig.schedulingExpression`` (7 days by default). Automatic
versions have ``trainingType`` AUTOMATIC and ``trainingMode`` AUTOTRAIN. The next due time is kept
in the solution's record, so a restart or another server process continues the same schedule.
"""

from __future__ import annotations

import logging
import re
import threading
import time

from ..control.base import Context
from ..control.solutions import SolutionVersionOperations
from ..errors import ServiceError
from . import refresh

log = logging.getLogger("openpersonalize.scheduler")
_RATE = re.compile(r"rate\((\d+) days?\)")


def period_days(solution_doc: dict) -> int:
    expression = ((solution_doc.get("solutionConfig") or {}).get("autoTrainingConfig") or {}).get(
        "schedulingExpression") or "rate(7 days)"
    m = _RATE.fullmatch(expression.strip())
    return int(m.group(1)) if m else 7


def run_due(store, settings, now: float | None = None) -> list[str]:
    """Create the automatic versions that are due; returns their ARNs."""
    now = time.time() if now is None else now
    created = []
    day = settings.auto_training_day_seconds
    for row in store.query("solution", statuses=("ACTIVE",)):
        if not row.doc.get("performAutoTraining", True):
            continue
        due = row.doc.get("_nextAutoTraining")
        if due is None:
            due = row.created + settings.auto_training_first_delay_seconds
        if now < due:
            if "_nextAutoTraining" not in row.doc:
                store.update_doc(row.arn, {"_nextAutoTraining": due})
            continue
        following = now + period_days(row.doc) * day
        # The first run is skipped when the user trained by hand within the first delay.
        manual = [v for v in store.query("solution-version", parent_arn=row.arn)
                  if v.doc.get("trainingType") == "MANUAL" and v.created <= due]
        claimed = store.update_doc(row.arn, {"_nextAutoTraining": following}, expect_status=("ACTIVE",))
        if claimed is None:
            continue
        if "_nextAutoTraining" not in row.doc and manual:
            continue
        region = row.arn.split(":")[3]
        ctx = Context(settings=settings, store=store, region=region)
        try:
            out = SolutionVersionOperations().create_solution_version(
                ctx, {"solutionArn": row.arn, "trainingMode": "FULL"}, automatic=True)
        except ServiceError as exc:  # e.g. the pending-versions quota: try again next period
            log.warning("automatic training of %s skipped: %s", row.arn, exc.message)
            continue
        created.append(out["solutionVersionArn"])
        log.info("automatic training of %s: %s", row.arn, out["solutionVersionArn"])
    return created


class Every:
    """A daemon thread that calls ``work()`` every ``seconds`` until stopped; a failure is logged
    and the next round runs as usual."""

    def __init__(self, name: str, seconds: float, work):
        self.name, self.seconds, self.work = name, seconds, work
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.seconds):
            try:
                self.work()
            except Exception:
                log.exception("%s failed", self.name)


class Scheduler(Every):
    """A thread that starts what is due: automatic training, and automatic model updates
    (jobs/refresh.py)."""

    def __init__(self, store, settings, wake=None):
        self.store, self.settings, self.wake = store, settings, wake
        super().__init__("auto-training", settings.auto_training_check_seconds, self._due)

    def _due(self) -> None:
        for name, due in (("automatic training", run_due if self.settings.auto_training_enabled else None),
                          ("automatic model update", refresh.run_due)):
            if due is None:
                continue
            try:
                if due(self.store, self.settings) and self.wake:
                    self.wake()
            except Exception:
                log.exception("%s check failed", name)
