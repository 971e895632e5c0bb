"""The runnable examples the docs point to run as documented."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_ab_test_example_finds_the_personalized_arm_better():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENPERSONALIZE_", "AWS_"))}
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "ab_test.py"), "--visits", "800"],
                         capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    verdict = next(line for line in lines if "points" in line)
    # User-Personalization (B) knows the shoppers' tastes; Popularity-Count (A) does not.
    rates = {line.split()[0].rsplit("/", 1)[1]: float(line.split()[5].rstrip("%")) for line in lines
             if line.startswith("arn:") and "%" in line and "points" not in line}
    assert rates["ab-B"] > rates["ab-A"] and "significant at 5%" in verdict and "not significant" not in verdict
