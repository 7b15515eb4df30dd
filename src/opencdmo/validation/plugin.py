"""A pytest plugin (loaded by the project's pytest options): it marks every collected test
that the matrix references with ``evidence`` (so ``pytest -m evidence`` runs exactly the
evidence), and with ``--oq-results FILE`` it records each test's outcome and duration, the
collection errors, and the PostgreSQL server the tests ran on, for the OQ report."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from opencdmo.errors import ValidationFailed
from opencdmo.validation.matrix import DEFAULT_MATRIX, base_id, load

MARKER = "evidence: referenced by the validation matrix (marked automatically)"
SEVERITY = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("validation", "validation evidence")
    group.addoption(
        "--validation-matrix",
        default=None,
        help="the requirements matrix whose tests get the evidence marker "
        "(default: docs/validation/requirements.yaml under the rootdir)",
    )
    group.addoption("--oq-results", default=None, help="write each test's outcome to this JSON")


def pytest_configure(config: pytest.Config) -> None:
    if not any(line.startswith("evidence:") for line in config.getini("markers")):
        config.addinivalue_line("markers", MARKER)
    results = config.getoption("oq_results")
    if results:
        config.pluginmanager.register(Recorder(Path(results)), "opencdmo-oq-recorder")


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    option = config.getoption("validation_matrix")
    path = Path(option) if option else config.rootpath / DEFAULT_MATRIX
    if not option and not path.is_file():
        return
    try:
        referenced = load(path).referenced()
    except ValidationFailed as exc:
        raise pytest.UsageError(exc.message) from None
    for item in items:
        if item_id(item) in referenced:
            item.add_marker(pytest.mark.evidence)


def item_id(item: pytest.Item) -> str:
    return base_id(item.nodeid, item.name, getattr(item, "originalname", None))


class Recorder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.tests: dict[str, dict[str, Any]] = {}
        self.collection_errors: list[dict[str, str]] = []
        self.postgresql: str | None = None
        self.functions: dict[str, str] = {}

    def pytest_itemcollected(self, item: pytest.Item) -> None:
        self.functions[item.nodeid] = item_id(item)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        entry = self.tests.setdefault(
            report.nodeid,
            {
                "test": self.functions.get(report.nodeid, report.nodeid),
                "outcome": "passed",
                "duration": 0.0,
                "message": None,
            },
        )
        entry["duration"] += report.duration
        outcome = _outcome(report)
        if SEVERITY[outcome] > SEVERITY[entry["outcome"]]:
            entry["outcome"], entry["message"] = outcome, _message(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_errors.append(
                {"nodeid": report.nodeid or "(session)", "message": _message(report) or ""}
            )

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: Any, request: Any) -> Any:
        """The test suite's ``database`` fixture gives the URLs the tests use: ask that
        server its version, once."""
        result = yield
        owner = getattr(result, "owner", None)
        if fixturedef.argname == "database" and self.postgresql is None and isinstance(owner, str):
            self.postgresql = server_version(owner)
        return result

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        document = {
            "exit_status": int(exitstatus),
            "postgresql": self.postgresql,
            "tests": self.tests,
            "collection_errors": self.collection_errors,
        }
        self.path.write_text(json.dumps(document, indent=2, sort_keys=True))


def _outcome(report: pytest.TestReport) -> str:
    if report.failed:
        return "failed" if report.when == "call" else "error"
    if report.skipped:
        return "skipped"
    return "passed"


def _message(report: pytest.TestReport | pytest.CollectReport) -> str | None:
    longrepr = report.longrepr
    if longrepr is None:
        return None
    if isinstance(longrepr, tuple):  # a skip: (file, line, reason)
        text = str(longrepr[2])
    else:
        crash = getattr(longrepr, "reprcrash", None)
        text = str(crash.message) if crash is not None else str(longrepr).strip().splitlines()[-1]
    if getattr(report, "wasxfail", None) is not None:
        text = f"expected to fail: {text}"
    return text[:1000]


def server_version(url: str) -> str | None:
    """``SHOW server_version`` on that server, from a thread of its own (a test's event
    loop may be running in this one)."""
    found: list[str | None] = [None]

    async def ask() -> None:
        import asyncpg

        connection = await asyncpg.connect(url, timeout=10)
        try:
            found[0] = str(await connection.fetchval("SHOW server_version"))
        finally:
            await connection.close()

    def run() -> None:
        try:
            asyncio.run(ask())
        except Exception as exc:  # the report says what went wrong instead of a version
            found[0] = f"unknown ({type(exc).__name__})"

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return found[0]
