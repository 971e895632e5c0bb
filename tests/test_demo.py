"""The README's main command: the end-to-end demo runs on a fresh data folder and writes every output."""

import subprocess
import sys

from tests.servers import free_port


def test_demo_runs_end_to_end(tmp_path):
    out = subprocess.run([sys.executable, "-m", "openpersonalize.cli", "demo", "--data-dir", str(tmp_path),
                          "--port", str(free_port())], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    for step in ("CreateDatasetImportJob", "CreateSolutionVersion", "GetRecommendations", "CreateBatchInferenceJob",
                 "CreateBatchSegmentJob", "CreateDatasetExportJob"):
        assert step in out.stdout
    after_clicks = next(line for line in out.stdout.splitlines() if "horror clicks (PutEvents" in line)
    assert "Horror" in after_clicks  # the events changed the campaign's answer
    outputs = {p.name for p in (tmp_path / "s3" / "demo").rglob("*") if p.is_file()}
    assert {"users.json.out", "items.json.out", "part-00000.csv"} <= outputs
