"""Job bodies for the worker tests, imported by worker processes through the ``job_modules``
setting. Each run leaves marker files (``<runs>/<name>.<worker pid>.<attempt>.start`` and
``.done``) so a test can count how often each job started and finished, across processes."""

import os
import time
from pathlib import Path

from openpersonalize.jobs.contract import job_body


@job_body("scale-test")
def marked(job):
    runs = Path(job.doc["runs"])
    stem = f"{job.doc['name']}.{os.getpid()}.{job.attempt}"
    (runs / f"{stem}.start").touch()
    if job.doc.get("hold") and job.attempt == 1:
        # The first attempt of a held job runs until its worker is killed (at most a minute).
        for i in range(1200):
            job.progress(i, 1200)
            time.sleep(0.05)
    else:
        time.sleep(0.1)
    (runs / f"{stem}.done").touch()
    return {"numDeleted": os.getpid()}
