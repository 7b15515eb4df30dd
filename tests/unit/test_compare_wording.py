"""Two revisions compared in process language (recipes.compare)."""

from __future__ import annotations

from opencdmo.hub.diff import diff
from opencdmo.recipes import compare

NAMES: compare.StepNames = {
    "storage": ("Storage", {}),
    "thaw": ("Thaw", {}),
    "expand": ("Expansion", {"il2": ("IL-2 concentration", "[iU]/mL")}),
}


def _sentences(old: dict, new: dict) -> list[str]:
    before, after = compare.side(old, NAMES), compare.side(new, NAMES)
    return [d.text for d in compare.describe(diff(old, new), before, after)]


def _recipe(*procedures: tuple[str, str, list[dict]]) -> dict:
    return {
        "unit_procedures": [{"key": k, "name": n, "operations": ops} for k, n, ops in procedures]
    }


def test_a_step_moved_between_procedures_names_both_and_the_positions() -> None:
    storage, thaw = {"key": "storage"}, {"key": "thaw"}
    old = _recipe(("cryo", "Cryopreservation", [thaw, storage]), ("start", "Starting material", []))
    new = _recipe(("cryo", "Cryopreservation", [thaw]), ("start", "Starting material", [storage]))
    assert _sentences(old, new) == [
        "Storage moved from Cryopreservation to Starting material, position 2 to 1"
    ]


def test_a_parameter_reads_by_name_with_its_unit() -> None:
    old = _recipe(("up", "Expansion", [{"key": "expand", "parameters": {"il2": 100}}]))
    new = _recipe(("up", "Expansion", [{"key": "expand", "parameters": {"il2": 120}}]))
    assert _sentences(old, new) == ["Expansion: IL-2 concentration 100 IU/mL → 120 IU/mL"]


def test_steps_added_moved_within_and_sections() -> None:
    old = {
        **_recipe(("up", "Upstream", [{"key": "thaw"}, {"key": "storage"}])),
        "specification": {"modality": "car-t"},
        "release_specifications": [],
    }
    new = {
        **_recipe(("up", "Upstream", [{"key": "storage"}, {"key": "thaw"}, {"key": "expand"}])),
        "specification": {"modality": "tcr-t"},
        "release_specifications": [{"attribute": "viability"}],
    }
    assert sorted(_sentences(old, new)) == sorted(
        [
            "Release specification Viability added",
            "Specification: modality CAR-T → TCR-T",
            "Step Expansion added to Upstream at position 3",
            "Storage moved within Upstream, position 2 to 1",
            "Thaw moved within Upstream, position 1 to 2",
        ]
    )
