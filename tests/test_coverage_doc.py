"""docs/coverage.md is generated from botocore's models and the code; it must match both."""

from pathlib import Path

from openpersonalize.coverage import coverage_markdown, operation_states


def test_coverage_doc_is_current():
    doc = Path(__file__).resolve().parents[1] / "docs" / "coverage.md"
    assert doc.read_text() == coverage_markdown(), "run: openpersonalize coverage > docs/coverage.md"


def test_every_operation_is_listed():
    assert len(operation_states()) == 79
