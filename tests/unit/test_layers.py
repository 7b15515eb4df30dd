"""The dependency order of ARCHITECTURE.md section 2: a module imports only from its own layer
or below, never above (imports inside functions count too)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "opencdmo"

# Bottom to top. Packages of one layer may use each other; a later domain context may use an
# earlier one's services (recipes uses hub, batches will use inventory), never the other way
# round.
LAYERS: list[tuple[str, ...]] = [
    (
        "settings",
        "errors",
        "canonical",
        "scope",
        "timefmt",
        "fields",
        "units",
        "quantities",
        "labels",
    ),
    ("b2mml",),
    ("db", "storage", "web"),
    ("access", "audit"),
    ("identity", "tenancy", "signatures"),
    ("partners",),
    ("hub",),
    ("recipes",),
    ("inventory", "equipment"),
    ("batches",),
    ("transfer",),
    ("exports",),
    ("work", "search"),
    ("webapp", "jobs", "validation", "cli", "app", "ops"),
]
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}


def _unit(module: str) -> str:
    """The layered unit of ``opencdmo.x.y``: ``x`` (a package or a top-level module)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "opencdmo"


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "opencdmo":
                found += [f"opencdmo.{alias.name}" for alias in node.names]
            elif node.module.startswith("opencdmo."):
                found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("opencdmo.")]
    return found


def _modules() -> list[tuple[str, Path]]:
    return [
        (_unit("opencdmo." + ".".join(p.relative_to(SRC).with_suffix("").parts)), p)
        for p in sorted(SRC.rglob("*.py"))
        if "migrations" not in p.parts
    ]


def test_every_unit_has_a_layer() -> None:
    units = {unit for unit, _ in _modules()} - {"__init__"}
    assert not units - set(LEVEL), f"give these a layer: {sorted(units - set(LEVEL))}"


def test_no_module_imports_a_higher_layer() -> None:
    upward = []
    for unit, path in _modules():
        if unit not in LEVEL:
            continue
        for imported in _imports(path):
            target = _unit(imported)
            if target in LEVEL and LEVEL[target] > LEVEL[unit]:
                upward.append(f"{path.relative_to(SRC)} imports {imported}")
    assert not upward, "\n".join(upward)


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from opencdmo.webapp import errors\n")
    assert _imports(module) == ["opencdmo.webapp"]
    assert LEVEL["webapp"] > LEVEL["web"]
