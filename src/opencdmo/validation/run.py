"""Running the evidence tests in a pytest process of their own, and what the report says
about where they ran: the product version, the source commit and the environment."""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from opencdmo.errors import AppError
from opencdmo.validation.matrix import Matrix, test_file

TEST_PACKAGES = ("pytest", "pytest-asyncio")


@dataclass(frozen=True)
class Source:
    commit: str | None
    dirty: bool | None


@dataclass(frozen=True)
class Environment:
    python: str
    os: str
    postgresql: str | None
    packages: dict[str, str]


@dataclass(frozen=True)
class Run:
    started_at: str
    finished_at: str
    duration: float
    exit_status: int
    pytest_args: list[str]
    results: dict[str, Any] = field(repr=False)


def product_version() -> str:
    try:
        return metadata.version("opencdmo")
    except metadata.PackageNotFoundError:
        return "unknown"


def source(root: Path) -> Source:
    """The commit checked out in root and whether the tree differs from it (None: no git)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(  # noqa: S603 - fixed arguments, no shell
                ["git", "-C", str(root), *args],  # noqa: S607 - git from PATH
                capture_output=True,
                text=True,
                check=False,
                timeout=30,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return Source(None, None)
    status = git("status", "--porcelain")
    return Source(commit.strip(), None if status is None else bool(status.strip()))


def environment(postgresql: str | None) -> Environment:
    return Environment(
        python=f"{platform.python_implementation()} {platform.python_version()}",
        os=_os_name(),
        postgresql=postgresql,
        packages=_packages(),
    )


def _os_name() -> str:
    try:
        pretty = platform.freedesktop_os_release().get("PRETTY_NAME")
    except OSError:
        pretty = None
    name = f"{platform.system()} {platform.release()} {platform.machine()}"
    return f"{pretty} ({name})" if pretty else name


def _packages() -> dict[str, str]:
    """The versions of the product's direct dependencies and of the test runner."""
    try:
        requires = metadata.requires("opencdmo") or []
    except metadata.PackageNotFoundError:
        requires = []
    names = {m.group(0) for r in requires if (m := re.match(r"[A-Za-z0-9._-]+", r))}
    found = {}
    for name in sorted(names | set(TEST_PACKAGES), key=str.lower):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # a dependency of another platform (uvloop on Windows)
    return found


def evidence_files(matrix: Matrix, root: Path) -> list[str]:
    """The test modules the matrix references that exist (a missing one is reported as
    evidence that did not run, instead of stopping the whole run)."""
    return sorted({test_file(t) for t in matrix.referenced() if (root / test_file(t)).is_file()})


def run_evidence(matrix: Matrix, root: Path, extra: str | None) -> Run:
    """pytest in a process of its own, in root, on the evidence tests only; each outcome
    is recorded by the plugin into a JSON file that this reads back."""
    pytest_args = shlex.split(extra or "")
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="opencdmo-oq-") as scratch:
        results = Path(scratch) / "results.json"
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "opencdmo.validation.plugin",
            "-m",
            "evidence",
            f"--validation-matrix={matrix.path.resolve()}",
            f"--oq-results={results}",
            f"--rootdir={root.resolve()}",
            *evidence_files(matrix, root),
            *pytest_args,
        ]
        status = subprocess.run(command, cwd=root, check=False, env=_env()).returncode  # noqa: S603
        if not results.is_file():
            raise AppError(f"The test run ended without results (pytest exit status {status}).")
        recorded: dict[str, Any] = json.loads(results.read_text())
    finished = datetime.now(UTC)
    return Run(
        started_at=_stamp(started),
        finished_at=_stamp(finished),
        duration=round((finished - started).total_seconds(), 3),
        exit_status=status,
        pytest_args=pytest_args,
        results=recorded,
    )


def _env() -> dict[str, str]:
    # A report run from inside a test session must not inherit that session's options.
    return {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS")}


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
