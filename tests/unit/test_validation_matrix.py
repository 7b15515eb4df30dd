"""The requirements and traceability matrix checks itself: it follows its schema, lists every
clause of 21 CFR Part 11 and of EU GMP Annex 11 exactly once, references only tests that
exist, gives every system and shared clause a test, and every test hand-marked as evidence is
referenced by a row. (Tests that the matrix references are marked `evidence` automatically by
the validation plugin, so `pytest -m evidence` runs exactly them.)"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import jsonschema

from opencdmo.validation import matrix

ROOT = Path(__file__).resolve().parents[2]

PART_11 = [
    *(f"11.10({letter})" for letter in "abcdefghijk"),
    "11.30",
    "11.50(a)",
    "11.50(b)",
    "11.70",
    "11.100(a)",
    "11.100(b)",
    "11.100(c)",
    "11.200(a)(1)",
    "11.200(a)(2)",
    "11.200(a)(3)",
    "11.200(b)",
    *(f"11.300({letter})" for letter in "abcde"),
]
ANNEX_11 = ["Principle", *(str(n) for n in range(1, 18))]
PREFIX = {"21 CFR Part 11": "P11-", "EU GMP Annex 11": "A11-"}


def test_the_matrix_matches_its_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(matrix.schema())
    assert matrix.problems(matrix.read(matrix.MATRIX)) == []
    for row in matrix.load().requirements:
        if row.source in PREFIX:
            assert row.id == PREFIX[row.source] + (row.clause or ""), row.id
    # The checks can fail: a row without tests for a system clause, and a duplicate id.
    broken = matrix.read(matrix.MATRIX)
    first = broken["requirements"][0]
    broken["requirements"].append({**first, "kind": "system", "tests": []})
    found = matrix.problems(broken)
    assert any("should be non-empty" in p for p in found), found
    broken["requirements"][-1] = first
    assert matrix.problems(broken) == [f"{first['id']}: the id is used by more than one row"]


def test_every_clause_is_present_once() -> None:
    rows = matrix.load().requirements
    listed = Counter((r.source, r.clause) for r in rows if r.source in PREFIX)
    expected = [("21 CFR Part 11", c) for c in PART_11] + [("EU GMP Annex 11", c) for c in ANNEX_11]
    assert sorted(listed) == sorted(expected)
    assert set(listed.values()) == {1}
    assert any(r.source == "OpenCDMO URS" for r in rows)


def test_every_referenced_test_exists() -> None:
    loaded = matrix.load()
    referenced = loaded.referenced()
    files = {matrix.test_file(t) for t in referenced}
    assert all(f.startswith("tests/") for f in files), files
    missing = referenced - matrix.defined_tests(ROOT, files)
    assert not missing, sorted(missing)


def test_every_system_clause_has_a_test() -> None:
    untested = [
        r.id for r in matrix.load().requirements if r.kind in ("system", "shared") and not r.tests
    ]
    assert not untested
    procedural = [r for r in matrix.load().requirements if r.kind != "system"]
    assert all(r.procedure for r in procedural), "say what the company's procedure covers"


def test_hand_marked_evidence_is_referenced(tmp_path: Path) -> None:
    modules = sorted((ROOT / "tests").rglob("test_*.py"))
    unreferenced = matrix.hand_marked(ROOT, modules) - matrix.load().referenced()
    assert not unreferenced, sorted(unreferenced)
    # The search finds a hand-made mark, by decorator or by module mark.
    (tmp_path / "test_marked.py").write_text(
        "import pytest\n\n@pytest.mark.evidence\ndef test_a():\n    pass\n\n"
        "def test_b():\n    pass\n\nclass TestC:\n    @pytest.mark.evidence\n"
        "    def test_d(self):\n        pass\n"
    )
    (tmp_path / "test_module.py").write_text(
        "import pytest\n\npytestmark = [pytest.mark.evidence]\n\ndef test_e():\n    pass\n"
    )
    found = matrix.hand_marked(tmp_path, sorted(tmp_path.glob("test_*.py")))
    assert found == {
        "test_marked.py::test_a",
        "test_marked.py::TestC::test_d",
        "test_module.py::test_e",
    }
