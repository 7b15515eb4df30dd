"""The structural diff reports exactly the edits made: property-based over the real library."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from opencdmo.hub.diff import Change, diff

ROOT = Path(__file__).resolve().parents[2] / "hub_content"
OPERATIONS = [
    yaml.safe_load(p.read_text()) for p in sorted((ROOT / "unit_operations").rglob("*.yaml"))
]


def _numeric(doc: dict[str, Any]) -> list[tuple[int, int]]:
    return [
        (pi, qi)
        for pi, phase in enumerate(doc["phases"])
        for qi, p in enumerate(phase.get("parameters", []))
        if p["type"] in ("number", "integer") and "normal_range" in p
    ]


@st.composite
def edited(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], set[tuple[str, str]]]:
    """A unit operation, an edited copy, and the (op, path) set the edits should produce."""
    old = draw(st.sampled_from(OPERATIONS))
    new = copy.deepcopy(old)
    expected: set[tuple[str, str]] = set()
    numeric = _numeric(new)
    # Change some ranges and defaults of distinct parameters.
    for pi, qi in (
        draw(st.lists(st.sampled_from(numeric), unique=True, max_size=3)) if numeric else []
    ):
        phase, param = new["phases"][pi], new["phases"][pi]["parameters"][qi]
        base = f"phases[{phase['key']}].parameters[{param['key']}]"
        field = draw(
            st.sampled_from(["normal_range.low", "proven_acceptable_range.high", "default"])
        )
        if field == "default":
            param["default"] = param["default"] + 1000
        else:
            section, end = field.split(".")
            param[section][end] = param[section][end] + 1000
        expected.add(("changed", f"{base}.{field}"))
    # Remove one parameter from a phase that has one (not one already edited).
    edited_keys = {op_path[1].split(".parameters[")[1].split("]")[0] for op_path in expected}
    removable = [
        (pi, qi)
        for pi, phase in enumerate(new["phases"])
        for qi, p in enumerate(phase.get("parameters", []))
        if p["key"] not in edited_keys
    ]
    if removable and draw(st.booleans()):
        pi, qi = draw(st.sampled_from(removable))
        phase = new["phases"][pi]
        removed = phase["parameters"].pop(qi)
        expected.add(("removed", f"phases[{phase['key']}].parameters[{removed['key']}]"))
    # Add a parameter to a phase.
    if draw(st.booleans()):
        phase = draw(st.sampled_from(new["phases"]))
        phase.setdefault("parameters", []).append(
            {
                "key": "added_param",
                "name": "Added",
                "type": "number",
                "unit": "h",
                "default": 1,
                "criticality": "KPP",
            }
        )
        expected.add(("added", f"phases[{phase['key']}].parameters[added_param]"))
    # Equipment classes and materials.
    if draw(st.booleans()):
        new["equipment_classes"].append("new-equipment-class")
        expected.add(("added", "equipment_classes[new-equipment-class]"))
    if new["materials"] and draw(st.booleans()):
        line = new["materials"].pop(0)
        expected.add(("removed", f"materials[{line['material']}]"))
    elif new["materials"] and draw(st.booleans()):
        new["materials"][0]["quantity"] = new["materials"][0]["quantity"] * 2 + 1
        expected.add(("changed", f"materials[{new['materials'][0]['material']}].quantity"))
    if draw(st.booleans()):
        new["summary"] = new["summary"] + " (edited)"
        expected.add(("changed", "summary"))
    return old, new, expected


@settings(max_examples=150, deadline=None)
@given(edited())
def test_diff_reports_exactly_the_edits(
    case: tuple[dict[str, Any], dict[str, Any], set[tuple[str, str]]],
) -> None:
    old, new, expected = case
    assert {(c.op, c.path) for c in diff(old, new)} == expected


@given(st.sampled_from(OPERATIONS))
def test_identical_versions_have_no_changes(doc: dict[str, Any]) -> None:
    assert diff(doc, copy.deepcopy(doc)) == []


@given(edited())
def test_diff_is_symmetric(
    case: tuple[dict[str, Any], dict[str, Any], set[tuple[str, str]]],
) -> None:
    old, new, _ = case
    forward = {(c.op, c.path) for c in diff(old, new)}
    flip = {"added": "removed", "removed": "added", "changed": "changed", "moved": "moved"}
    backward = {(flip[c.op], c.path) for c in diff(new, old)}
    assert forward == backward


def test_moved_phases_and_version_metadata() -> None:
    old = next(d for d in OPERATIONS if len(d["phases"]) >= 3)
    new = copy.deepcopy(old)
    new["phases"][0], new["phases"][1] = new["phases"][1], new["phases"][0]
    new["version"], new["changelog"] = "9.9.9", "changed"
    changes = diff(old, new)
    keys = [old["phases"][0]["key"], old["phases"][1]["key"]]
    assert {(c.op, c.path) for c in changes} == {("moved", f"phases[{k}]") for k in keys}


def test_real_versions_in_the_library() -> None:
    base = ROOT / "unit_operations" / "lentiviral-transduction"
    v1 = yaml.safe_load((base / "1.1.0.yaml").read_text())
    v2 = yaml.safe_load((base / "2.0.0.yaml").read_text())
    changes = diff(v1, v2)
    added_phases = [
        c
        for c in changes
        if c.op == "added" and c.path.startswith("phases[") and c.path.count("[") == 1
    ]
    assert len(added_phases) == 1
    assert all(isinstance(c, Change) for c in changes)
