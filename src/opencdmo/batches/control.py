"""The control recipe: a batch's frozen copy of the effective master recipe revision.

The document is self-contained: the revision's content with, for every step, the unit
operation content its revision pinned (phases, instructions, parameters with their ranges,
data-capture fields) and the value each parameter takes in this batch (the unit operation's
default, the step's own value, then the chosen formula's override); for every sampling point
and release specification the QC method it pinned. Nothing in it refers to content that can
change: its canonical hash (``opencdmo.canonical.content_hash``) is the batch's record of
what it was made to.

Autologous: a batch is made for one patient (the chain of identity is required) when the
recipe's modality is a patient-specific engineered T-cell therapy (``car-t``, ``tcr-t``), or
when any step pins a unit operation tagged ``autologous`` (for example apheresis receipt).
Vectors (``aav``, ``lvv``) and the cell-bank modalities (``msc``, ``ipsc``, ``nk``) are not,
unless a step says so by its tag.
"""

from __future__ import annotations

from typing import Any

from opencdmo.errors import ValidationFailed
from opencdmo.hub.model import LibraryContent, UnitOperation, encode, encode_part
from opencdmo.recipes.service import InForce

AUTOLOGOUS_MODALITIES = frozenset({"car-t", "tcr-t"})
AUTOLOGOUS_TAG = "autologous"


def formula_of(content: dict[str, Any], name: str, revision: int) -> dict[str, Any]:
    """The revision's formula of that name; a 422 naming the ones it has otherwise."""
    formulas = content.get("formulas") or []
    for formula in formulas:
        if formula.get("name") == name:
            return dict(formula)
    names = ", ".join(f"'{f.get('name')}'" for f in formulas) or "none"
    raise ValidationFailed(
        f"Revision {revision} of this recipe has no formula '{name}' (its formulas: {names}).",
        details={"field": "formula"},
    )


def freeze(source: InForce, formula_name: str) -> dict[str, Any]:
    """The control recipe document of a batch made from ``source`` with that formula."""
    content = source.content
    formula = formula_of(content, formula_name, source.revision)
    overrides: dict[str, Any] = formula.get("overrides") or {}
    recipe = source.recipe
    return {
        "recipe": {
            "id": str(recipe.id),
            "name": recipe.name,
            "product": recipe.product,
            "revision": source.revision,
            "content_hash": source.content_hash,
        },
        "formula": formula,
        "specification": content.get("specification") or {},
        "unit_procedures": [
            {
                **procedure,
                "operations": [
                    _operation(op, source.pinned, overrides) for op in procedure["operations"]
                ],
            }
            for procedure in content.get("unit_procedures") or []
        ],
        "sampling_points": [
            _with_method(p, source.pinned) for p in content.get("sampling_points") or []
        ],
        "release_specifications": [
            _with_method(s, source.pinned) for s in content.get("release_specifications") or []
        ],
    }


def _operation(
    op: dict[str, Any], pinned: dict[str, LibraryContent], overrides: dict[str, Any]
) -> dict[str, Any]:
    unit_operation = pinned.get(str(op.get("content_hash")))
    if not isinstance(unit_operation, UnitOperation):
        raise ValidationFailed(
            f"Step {op.get('key')}: the content it pins is not kept; the revision cannot run."
        )
    values = {}
    for key, parameter in unit_operation.parameters().items():
        value, came_from = parameter.default, "unit operation default"
        if key in (op.get("parameters") or {}):
            value, came_from = op["parameters"][key], "recipe"
        if f"{op['key']}.{key}" in overrides:
            value, came_from = overrides[f"{op['key']}.{key}"], "formula"
        values[key] = {**encode_part(parameter), "value": value, "value_from": came_from}
    return {**op, "values": values, "unit_operation_content": encode(unit_operation)}


def _with_method(entry: dict[str, Any], pinned: dict[str, LibraryContent]) -> dict[str, Any]:
    method = pinned.get(str(entry.get("content_hash")))
    return {**entry, "method_content": encode(method) if method is not None else None}


def is_autologous(document: dict[str, Any]) -> bool:
    """Whether a batch of this control recipe is made for one patient (see the module)."""
    modality = (document.get("specification") or {}).get("modality")
    if modality in AUTOLOGOUS_MODALITIES:
        return True
    return any(
        AUTOLOGOUS_TAG in (op["unit_operation_content"].get("tags") or [])
        for procedure in document["unit_procedures"]
        for op in procedure["operations"]
    )
