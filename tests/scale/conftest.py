"""Fixtures for the scale-out tests: a real local Ray instance on loopback, real worker processes.

Ray is an optional extra: without it the Ray tests are skipped, except under CI (``CI=true``),
where ``.ci/run`` installs it and a missing Ray is a failure.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile

import pytest

# Ray advertises the machine's network address unless told the cluster is local-only; the
# tests keep everything on 127.0.0.1. Set before Ray starts, and inherited by worker processes.
LOOPBACK_RAY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def _ray_or_skip() -> None:
    if importlib.util.find_spec("ray") is None:
        if os.environ.get("CI"):
            pytest.fail("Ray is required under CI (pip install -e '.[test,ray]')")
        pytest.skip("ray is not installed (pip install -e '.[ray]')")


@pytest.fixture(scope="session")
def ray_address():
    """A local Ray instance (2 CPUs, no dashboard) for the session; yields its address."""
    _ray_or_skip()
    saved = {k: os.environ.get(k) for k in LOOPBACK_RAY}
    os.environ.update(LOOPBACK_RAY)  # read when Ray is imported: import it after
    import ray

    temp = tempfile.mkdtemp(prefix="op-ray-")  # short: Ray's socket paths must stay under 107 bytes
    ctx = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=temp)
    address = ctx.address_info["gcs_address"]
    assert address.startswith("127.0.0.1:"), address
    yield address
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
