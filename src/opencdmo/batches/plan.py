"""What a control recipe asks of the people running it, phase by phase, in recipe order.

One reading of the frozen document, used by every command and page that needs it:

- the phases in the order they run (unit procedures, their operations, their phases);
- the second person a phase needs: ``verified`` when its content says ``verify`` or when
  none is said and it has a critical process parameter (CPP), ``witnessed`` when it says
  ``witness``;
- whether a step handles the patient's or donor's material, so the operator checks the COI
  label on the container before it starts: every step of an autologous batch but the ones
  that prepare materials (category ``material-prep``, made before any patient material is at
  the bench);
- the fields a phase requires before it completes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opencdmo.batches.control import is_autologous
from opencdmo.hub.model import Phase, UnitOperation, decode

NO_PATIENT_MATERIAL = frozenset({"material-prep"})


@dataclass(frozen=True)
class PlannedPhase:
    position: int
    procedure: str
    procedure_name: str
    step: str
    step_name: str
    phase: str
    phase_name: str
    second_person: str | None  # "verified", "witnessed" or None
    identity_check: bool
    required: tuple[str, ...]  # data-capture fields required before it completes
    content: Phase

    @property
    def label(self) -> str:
        return f"{self.step_name}: {self.phase_name}"


def second_person(phase: Phase) -> str | None:
    if phase.second_person == "witness":
        return "witnessed"
    if phase.second_person == "verify":
        return "verified"
    if any(p.criticality == "CPP" for p in phase.parameters):
        return "verified"
    return None


def phases(document: dict[str, Any]) -> list[PlannedPhase]:
    """Every phase of the control recipe, in the order it runs."""
    autologous = is_autologous(document)
    found: list[PlannedPhase] = []
    for procedure in document["unit_procedures"]:
        for op in procedure["operations"]:
            content = decode(op["unit_operation_content"])
            assert isinstance(content, UnitOperation)
            patient = autologous and content.category not in NO_PATIENT_MATERIAL
            for phase in content.phases:
                found.append(
                    PlannedPhase(
                        len(found),
                        procedure["key"],
                        procedure["name"],
                        op["key"],
                        content.name,
                        phase.key,
                        phase.name,
                        second_person(phase),
                        patient,
                        tuple(f.key for f in phase.data_capture if f.required),
                        phase,
                    )
                )
    return found


def planned(document: dict[str, Any], step: str, phase: str) -> PlannedPhase | None:
    return next((p for p in phases(document) if p.step == step and p.phase == phase), None)
