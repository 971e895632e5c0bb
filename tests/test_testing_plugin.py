"""The pytest plugin as a user meets it: the example in docs/testing.md, copied into a folder of
its own, passes under a plain ``python -m pytest`` (the plugin loads through its entry point)."""

import os
import subprocess
import sys
from pathlib import Path


def test_the_documented_user_test_passes_with_the_plugin(tmp_path):
    doc = (Path(__file__).resolve().parents[1] / "docs" / "testing.md").read_text()
    code = doc.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "test_my_recs.py").write_text(code)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENPERSONALIZE_", "AWS_", "PYTEST_"))}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_my_recs.py"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "1 passed" in out.stdout


def test_the_profile_relaxes_minimums_and_variables_still_win():
    from openpersonalize.config import Settings

    aws = Settings.from_env({})
    test = Settings.from_env({"OPENPERSONALIZE_PROFILE": "test", "OPENPERSONALIZE_MIN_TRAINING_INTERACTIONS": "500"})
    assert (aws.min_import_interactions, aws.min_training_interactions, aws.max_dataset_groups) == (1000, 1000, 5)
    assert (test.min_import_interactions, test.min_training_interactions, test.max_dataset_groups) == (1, 500, 1000)
    try:
        Settings.from_env({"OPENPERSONALIZE_PROFILE": "fast"})
    except ValueError as exc:
        assert "OPENPERSONALIZE_PROFILE='fast' is not a profile; the profiles are test" == str(exc)
    else:
        raise AssertionError("an unknown profile was accepted")
