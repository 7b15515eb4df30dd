"""The OQ report from a real run of generated evidence tests (no database): a failing test
makes it say FAILED at the top, list the failure as a deviation and exit 1; a passing run
exits 0; the JSON follows its schema and does not change from one run to the next apart
from times and durations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from opencdmo.cli import main
from opencdmo.validation.output import REPORT_SCHEMA

TESTS = """
import pytest


def test_passes():
    assert sum([1, 2]) == 3


def test_fails():
    assert sum([1, 2]) == 4, "made to fail on purpose"


@pytest.mark.parametrize("n", [1, 2, 3])
def test_cases(n):
    assert n > 0


def test_not_referenced():
    pass
"""


def _row(key: str, title: str, tests: list[str]) -> dict[str, Any]:
    return {
        "id": f"URS-GEN-{key}",
        "source": "OpenCDMO URS",
        "title": title,
        "requirement": f"The generated evidence shows that {title.lower()} holds.",
        "kind": "system",
        "how": "A generated test module, run by the report command.",
        "tests": [f"test_generated.py::{t}" for t in tests],
    }


def _project(root: Path, *rows: dict[str, Any]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "test_generated.py").write_text(TESTS)
    matrix = {"title": "Generated matrix", "requirements": list(rows)}
    (root / "requirements.yaml").write_text(json.dumps(matrix))  # JSON is YAML


def _report(root: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, dict[str, Any], str]:
    monkeypatch.chdir(root)
    code = main(
        [
            "validation",
            "report",
            "--matrix",
            "requirements.yaml",
            "--output",
            "out",
            "--pytest-args",
            "-p no:asyncio -p no:cacheprovider -q",
        ]
    )
    document = json.loads((root / "out" / "oq-report.json").read_text())
    return code, document, (root / "out" / "oq-report.html").read_text()


def _schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(REPORT_SCHEMA.read_text())
    return loaded


def test_a_failed_evidence_test_fails_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(
        tmp_path,
        _row("01", "The passing part", ["test_passes", "test_cases"]),
        _row("02", "The failing part", ["test_fails"]),
    )
    code, document, html = _report(tmp_path, monkeypatch)
    assert code == 1
    jsonschema.validate(document, _schema())
    assert document["verdict"] == "failed"
    [deviation] = document["deviations"]
    assert deviation["nodeid"] == "test_generated.py::test_fails"
    assert (deviation["outcome"], deviation["requirements"]) == ("failed", ["URS-GEN-02"])
    assert "made to fail on purpose" in deviation["message"]
    statuses = {r["id"]: r["status"] for r in document["requirements"]}
    assert statuses == {"URS-GEN-01": "passed", "URS-GEN-02": "failed"}
    assert document["summary"]["tests"] == {
        "passed": 2,
        "failed": 1,
        "error": 0,
        "skipped": 0,
        "not_run": 0,
    }
    cases = document["requirements"][0]["tests"][1]["cases"]
    assert [c["nodeid"] for c in cases] == [
        f"test_generated.py::test_cases[{n}]" for n in (1, 2, 3)
    ]
    assert "test_not_referenced" not in json.dumps(document), "only the evidence ran"
    # The banner is the first thing on the page, and the failure is listed.
    banner = html.index('class="banner failed"')
    assert banner < html.index("<h2>")
    assert "FAILED: evidence tests failed" in html[banner : banner + 200]
    assert 'data-deviation="test_generated.py::test_fails"' in html
    assert "made to fail on purpose" in html
    assert "<script" not in html and "http://" not in html and "https://" not in html


def test_a_passing_run_exits_0_with_a_valid_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = (_row("01", "The passing part", ["test_passes", "test_cases"]),)
    _project(tmp_path / "one", *rows)
    code, first, html = _report(tmp_path / "one", monkeypatch)
    assert code == 0
    jsonschema.validate(first, _schema())
    assert (first["verdict"], first["deviations"]) == ("passed", [])
    assert first["summary"]["cases"]["passed"] == 4
    assert first["environment"]["postgresql"] is None, "these tests used no database"
    assert first["product"]["name"] == "opencdmo" and first["environment"]["packages"]["pytest"]
    assert 'class="banner passed"' in html and "FAILED" not in html
    # The same run again gives the same report apart from its times and durations.
    _project(tmp_path / "two", *rows)
    code, second, _ = _report(tmp_path / "two", monkeypatch)
    assert code == 0
    assert _timeless(first) == _timeless(second)
    # The schema is strict: a report without its deviations is not a report.
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({k: v for k, v in first.items() if k != "deviations"}, _schema())


def test_a_missing_evidence_test_is_a_deviation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(tmp_path, _row("01", "The missing part", ["test_passes", "test_was_renamed"]))
    code, document, html = _report(tmp_path, monkeypatch)
    assert code == 1
    assert document["verdict"] == "incomplete"
    [deviation] = document["deviations"]
    assert deviation["nodeid"] == "test_generated.py::test_was_renamed"
    assert (deviation["outcome"], deviation["message"]) == ("not_run", "no such test function")
    assert 'class="banner incomplete"' in html


def test_a_broken_matrix_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    row = _row("01", "A row", ["test_passes"])
    del row["how"]
    _project(tmp_path, row)
    monkeypatch.chdir(tmp_path)
    assert main(["validation", "report", "--matrix", "requirements.yaml"]) == 2
    assert "'how' is a required property" in capsys.readouterr().err
    assert not (tmp_path / "build").exists()


def _timeless(document: Any) -> Any:
    if isinstance(document, dict):
        return {
            k: _timeless(v)
            for k, v in document.items()
            if k not in ("duration", "started_at", "finished_at")
        }
    if isinstance(document, list):
        return [_timeless(v) for v in document]
    return document
