"""The requirements and traceability matrix (docs/validation/requirements.yaml): loading,
schema validation, and the test functions that exist in the test modules."""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from opencdmo.errors import ValidationFailed

DOCS = Path(__file__).resolve().parents[3] / "docs" / "validation"
MATRIX = DOCS / "requirements.yaml"
SCHEMA = DOCS / "requirements.schema.json"
DEFAULT_MATRIX = Path("docs/validation/requirements.yaml")
KINDS = ("system", "shared", "procedural")


@dataclass(frozen=True)
class Requirement:
    id: str
    source: str
    clause: str | None
    title: str
    requirement: str
    kind: str
    how: str
    procedure: str | None
    tests: tuple[str, ...]


@dataclass(frozen=True)
class Matrix:
    path: Path
    sha256: str
    requirements: tuple[Requirement, ...]

    def referenced(self) -> set[str]:
        """Every test id the rows reference."""
        return {test for row in self.requirements for test in row.tests}

    def rows_for(self, test: str) -> list[str]:
        return sorted(row.id for row in self.requirements if test in row.tests)


def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA.read_text())
    return loaded


def read(path: Path) -> Any:
    """The matrix file as data; a missing or malformed file is a ValidationFailed naming it."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValidationFailed(f"{path}: no such matrix file.") from None
    except yaml.YAMLError as exc:
        raise ValidationFailed(f"{path}: not valid YAML: {exc}") from None


def problems(data: Any) -> list[str]:
    """What is wrong with the matrix: schema errors (with the place) and duplicate ids."""
    validator = jsonschema.Draft202012Validator(schema())
    found = [
        f"{'.'.join(str(p) for p in error.absolute_path) or '(top level)'}: {error.message}"
        for error in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    ]
    if found:
        return found
    seen: set[str] = set()
    for row in data["requirements"]:
        if row["id"] in seen:
            found.append(f"{row['id']}: the id is used by more than one row")
        seen.add(row["id"])
    return found


def load(path: Path = MATRIX) -> Matrix:
    raw = path.read_bytes() if path.is_file() else b""
    data = read(path)
    found = problems(data)
    if found:
        raise ValidationFailed(f"{path}: " + "; ".join(found[:5]))
    rows = tuple(
        Requirement(
            id=row["id"],
            source=row["source"],
            clause=row.get("clause"),
            title=row["title"],
            requirement=" ".join(row["requirement"].split()),
            kind=row["kind"],
            how=" ".join(row["how"].split()),
            procedure=" ".join(row["procedure"].split()) if row.get("procedure") else None,
            tests=tuple(row["tests"]),
        )
        for row in data["requirements"]
    )
    return Matrix(path, hashlib.sha256(raw).hexdigest(), rows)


def test_file(test_id: str) -> str:
    return test_id.split("::", 1)[0]


def base_id(nodeid: str, name: str, originalname: str | None) -> str:
    """A collected item's id without its parameters: a matrix reference to a function
    covers all of its parametrized cases."""
    if originalname and name != originalname and nodeid.endswith(name):
        return nodeid[: len(nodeid) - len(name)] + originalname
    return nodeid


def defined_tests(root: Path, files: set[str]) -> set[str]:
    """The test functions the given modules define (module level and in Test* classes),
    found by reading their syntax trees: exact for tests written as functions, and fast."""
    found: set[str] = set()
    for name in sorted(files):
        path = root / name
        if not path.is_file() or not Path(name).name.startswith("test_"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in tree.body:
            found |= {f"{name}::{test}" for test in _tests_in(node)}
    return found


def _tests_in(node: ast.stmt) -> list[str]:
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    if isinstance(node, functions) and node.name.startswith("test"):
        return [node.name]
    if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
        return [
            f"{node.name}::{child.name}"
            for child in node.body
            if isinstance(child, functions) and child.name.startswith("test")
        ]
    return []


def hand_marked(root: Path, files: list[Path]) -> set[str]:
    """Tests marked ``@pytest.mark.evidence`` in the source, by hand (decorator or a
    module-level ``pytestmark``)."""
    found: set[str] = set()
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        name = path.relative_to(root).as_posix()
        module_marked = any(_assigns_evidence(node) for node in tree.body)
        for node in tree.body:
            for test in _tests_in(node):
                if module_marked or _decorated(node, test):
                    found.add(f"{name}::{test}")
    return found


def _decorated(node: ast.stmt, test: str) -> bool:
    target: ast.stmt = node
    if isinstance(node, ast.ClassDef):
        if any(_is_evidence(d) for d in node.decorator_list):
            return True
        method = test.split("::")[-1]
        target = next(c for c in node.body if getattr(c, "name", None) == method)
    decorators = getattr(target, "decorator_list", [])
    return any(_is_evidence(d) for d in decorators)


def _assigns_evidence(node: ast.stmt) -> bool:
    if not isinstance(node, ast.Assign):
        return False
    if not any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
        return False
    values = node.value.elts if isinstance(node.value, ast.List | ast.Tuple) else [node.value]
    return any(_is_evidence(v) for v in values)


def _is_evidence(node: ast.expr) -> bool:
    if isinstance(node, ast.Call):
        node = node.func
    return isinstance(node, ast.Attribute) and node.attr == "evidence"
