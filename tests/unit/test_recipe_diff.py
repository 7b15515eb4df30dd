"""Recipe revision diffs report exactly the edits made (property-based), including steps
added, removed and moved between unit procedures."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from opencdmo.hub.diff import diff


def recipe(procedures: int, steps: int) -> dict[str, Any]:
    return {
        "unit_procedures": [
            {
                "key": f"up{p}",
                "name": f"Procedure {p}",
                "operations": [
                    {
                        "key": f"s{p}-{i}",
                        "library_item_id": "lib",
                        "parameters": {"x": i},
                        "equipment_class": None,
                        "notes": "",
                    }
                    for i in range(steps)
                ],
            }
            for p in range(procedures)
        ],
        "formulas": [{"name": "base", "overrides": {"s0-0.x": 1}}],
    }


@st.composite
def edited(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], set[tuple[str, str]]]:
    old = recipe(draw(st.integers(1, 3)), draw(st.integers(2, 5)))
    new = copy.deepcopy(old)
    expected: set[tuple[str, str]] = set()
    up = draw(st.sampled_from(new["unit_procedures"]))
    base = f"unit_procedures[{up['key']}].operations"
    choice = draw(st.sampled_from(["value", "add", "remove", "notes", "formula", "name"]))
    if choice == "value":
        op = draw(st.sampled_from(up["operations"]))
        op["parameters"]["x"] += 100
        expected.add(("changed", f"{base}[{op['key']}].parameters.x"))
    elif choice == "add":
        up["operations"].append(
            {
                "key": "new-step",
                "library_item_id": "lib",
                "parameters": {},
                "equipment_class": None,
                "notes": "",
            }
        )
        expected.add(("added", f"{base}[new-step]"))
    elif choice == "remove":
        op = up["operations"].pop()
        expected.add(("removed", f"{base}[{op['key']}]"))
    elif choice == "notes":
        op = draw(st.sampled_from(up["operations"]))
        op["notes"] = "changed"
        expected.add(("changed", f"{base}[{op['key']}].notes"))
    elif choice == "formula":
        new["formulas"][0]["overrides"]["s0-0.x"] = 2
        expected.add(("changed", "formulas[base].overrides.s0-0.x"))
    else:
        up["name"] = "Renamed"
        expected.add(("changed", f"unit_procedures[{up['key']}].name"))
    return old, new, expected


@settings(max_examples=200, deadline=None)
@given(edited())
def test_recipe_diff_reports_exactly_the_edit(case: Any) -> None:
    old, new, expected = case
    assert {(c.op, c.path) for c in diff(old, new)} == expected


@given(st.integers(2, 6))
def test_swapping_two_steps_reports_both_moved(steps: int) -> None:
    old = recipe(1, steps)
    new = copy.deepcopy(old)
    ops = new["unit_procedures"][0]["operations"]
    ops[0], ops[-1] = ops[-1], ops[0]
    moved = {c.path for c in diff(old, new) if c.op == "moved"}
    assert moved == {f"unit_procedures[up0].operations[{k}]" for k in ("s0-0", f"s0-{steps - 1}")}


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 4), st.integers(1, 4), st.data())
def test_a_step_moved_to_another_procedure_is_one_move(
    procedures: int, steps: int, data: st.DataObject
) -> None:
    old = recipe(procedures, steps)
    new = copy.deepcopy(old)
    source, target = data.draw(
        st.lists(st.sampled_from(range(procedures)), min_size=2, max_size=2, unique=True)
    )
    ops = new["unit_procedures"][source]["operations"]
    step = ops.pop(data.draw(st.integers(0, len(ops) - 1)))
    where = data.draw(st.integers(0, len(new["unit_procedures"][target]["operations"])))
    new["unit_procedures"][target]["operations"].insert(where, step)
    changed = data.draw(st.booleans())
    if changed:
        step["parameters"]["x"] += 100
    path = f"unit_procedures[up{target}].operations[{step['key']}]"
    expected = {("moved", path)} | ({("changed", f"{path}.parameters.x")} if changed else set())
    changes = diff(old, new)
    # Steps after the insertion point keep their order relative to each other: no other move.
    assert {(c.op, c.path) for c in changes} == expected
    move = next(c for c in changes if c.op == "moved")
    assert (move.old, move.new) == (f"unit_procedures[up{source}]", f"unit_procedures[up{target}]")
