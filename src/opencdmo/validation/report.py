"""The operational qualification report: every requirement of the matrix with the outcome of
each of its tests in one run, a summary, and every deviation. Built only from the matrix and
the run's results, in a fixed order, so the same commit and environment give the same
report apart from its times and durations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opencdmo.validation.matrix import KINDS, Matrix, Requirement, defined_tests, test_file
from opencdmo.validation.run import Environment, Run, Source

OUTCOMES = ("passed", "failed", "error", "skipped", "not_run")
STATUSES = ("passed", "failed", "incomplete", "not_tested")
WORST_FIRST = ("error", "failed", "not_run", "skipped", "passed")


@dataclass(frozen=True)
class Case:
    nodeid: str
    outcome: str
    duration: float
    message: str | None


@dataclass(frozen=True)
class TestOutcome:
    id: str
    outcome: str
    duration: float
    cases: list[Case]


@dataclass(frozen=True)
class RequirementOutcome:
    id: str
    source: str
    clause: str | None
    title: str
    kind: str
    requirement: str
    how: str
    procedure: str | None
    status: str
    tests: list[TestOutcome]


@dataclass(frozen=True)
class Deviation:
    nodeid: str
    test: str
    outcome: str
    message: str
    requirements: list[str]


@dataclass(frozen=True)
class Report:
    title: str
    verdict: str
    product: dict[str, str]
    source: dict[str, Any]
    run: dict[str, Any]
    environment: Environment
    summary: dict[str, Any]
    deviations: list[Deviation]
    requirements: list[RequirementOutcome]


def build(
    matrix: Matrix, root: Path, version: str, where: Source, run: Run, env: Environment
) -> Report:
    outcomes = _test_outcomes(matrix, root, run.results.get("tests", {}))
    rows = [_requirement(row, outcomes) for row in matrix.requirements]
    deviations = _deviations(matrix, outcomes, run)
    return Report(
        title="OpenCDMO operational qualification report",
        verdict=_verdict(deviations),
        product={"name": "opencdmo", "version": version},
        source={
            "commit": where.commit,
            "dirty": where.dirty,
            "matrix": _relative(matrix.path, root),
            "matrix_sha256": matrix.sha256,
        },
        run={
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "duration": run.duration,
            "pytest_exit_status": run.exit_status,
            "pytest_args": run.pytest_args,
        },
        environment=env,
        summary=_summary(rows, outcomes),
        deviations=deviations,
        requirements=rows,
    )


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def _test_outcomes(matrix: Matrix, root: Path, recorded: dict[str, Any]) -> dict[str, TestOutcome]:
    """Each referenced test with its cases (a function's parametrized cases are its cases)."""
    by_test: dict[str, list[Case]] = {test: [] for test in matrix.referenced()}
    for nodeid in sorted(recorded):
        entry = recorded[nodeid]
        test = entry["test"]
        if test in by_test:
            by_test[test].append(
                Case(nodeid, entry["outcome"], round(entry["duration"], 3), entry["message"])
            )
    existing = defined_tests(root, {test_file(t) for t in by_test})
    outcomes = {}
    for test, cases in sorted(by_test.items()):
        if not cases:
            why = "did not run" if test in existing else "no such test function"
            cases = [Case(test, "not_run", 0.0, why)]
        worst = min((c.outcome for c in cases), key=WORST_FIRST.index)
        duration = round(sum(c.duration for c in cases), 3)
        outcomes[test] = TestOutcome(test, worst, duration, cases)
    return outcomes


def _requirement(row: Requirement, outcomes: dict[str, TestOutcome]) -> RequirementOutcome:
    tests = [outcomes[t] for t in row.tests]
    seen = {t.outcome for t in tests}
    if not tests:
        status = "not_tested"
    elif seen & {"failed", "error"}:
        status = "failed"
    elif seen - {"passed"}:
        status = "incomplete"
    else:
        status = "passed"
    return RequirementOutcome(
        row.id,
        row.source,
        row.clause,
        row.title,
        row.kind,
        row.requirement,
        row.how,
        row.procedure,
        status,
        tests,
    )


def _deviations(matrix: Matrix, outcomes: dict[str, TestOutcome], run: Run) -> list[Deviation]:
    found = [
        Deviation(case.nodeid, test.id, case.outcome, case.message or "", matrix.rows_for(test.id))
        for test in outcomes.values()
        for case in test.cases
        if case.outcome != "passed"
    ]
    for error in run.results.get("collection_errors", []):
        found.append(Deviation(error["nodeid"], "", "error", error["message"], []))
    if run.exit_status not in (0, 1, 5):  # interrupted, internal or usage error
        found.append(
            Deviation(
                "(test run)",
                "",
                "error",
                f"pytest ended with exit status {run.exit_status}",
                [],
            )
        )
    return sorted(found, key=lambda d: (d.nodeid, d.outcome))


def _verdict(deviations: list[Deviation]) -> str:
    if any(d.outcome in ("failed", "error") for d in deviations):
        return "failed"
    return "incomplete" if deviations else "passed"


def _summary(rows: list[RequirementOutcome], outcomes: dict[str, TestOutcome]) -> dict[str, Any]:
    by_kind = {kind: dict.fromkeys(STATUSES, 0) for kind in KINDS}
    for row in rows:
        by_kind[row.kind][row.status] += 1
    tests = dict.fromkeys(OUTCOMES, 0)
    cases = dict.fromkeys(OUTCOMES, 0)
    for test in outcomes.values():
        tests[test.outcome] += 1
        for case in test.cases:
            cases[case.outcome] += 1
    return {
        "requirements": len(rows),
        "requirements_by_kind": by_kind,
        "tests": tests,
        "cases": cases,
    }
