"""Job bodies used by the job-runner tests. They live in a module (not a test function) so
that a child process can import them, as it imports every real body."""

import os
import time

from openpersonalize.jobs.contract import job_body
from openpersonalize.jobs.contract import JobFailed


@job_body("test-isolated", isolated=True)
def isolated(job):
    mode = job.doc.get("mode")
    if mode == "fail":
        raise JobFailed("the data says no")
    if mode == "crash":
        os._exit(3)
    if mode == "raise":
        raise KeyError("boom")
    if mode == "slow":
        for i in range(600):
            job.progress(i, 600)
            time.sleep(0.05)
    return {"numDeleted": os.getpid()}
