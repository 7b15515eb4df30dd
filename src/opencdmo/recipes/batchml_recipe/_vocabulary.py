"""Where a master recipe's parts go in BatchML, shared by the export and the import: element
ids are paths ('expansion/seed/count'), and what the standard has no code for is an 'Other'
code naming it (``OtherValue``)."""

from __future__ import annotations

B2MML_NS = {"b": "http://www.mesa.org/xml/B2MML"}
SCHEMA_FILE = "BatchML-BatchInformation.xsd"
ROOT = "{http://www.mesa.org/xml/B2MML}BatchInformation"

PROCEDURE = "procedure"
MATERIAL = "material"  # the path segment of a material: 'expansion/seed/material/il-2'

# ParameterType: the standard's codes and ours ('Other' with an OtherValue).
PROCESS_PARAMETER = "ProcessParameter"
PROCESS_INPUT = "ProcessInput"
PARAMETER_TYPES = frozenset({"ProcessInput", "ProcessOutput", "ProcessParameter"})
DATA_CAPTURE = "DataCapture"
SAMPLING_POINT = "SamplingPoint"  # an in-process sample: 'sampling/<key>' in the Formula
RELEASE_SPECIFICATION = "ReleaseSpecification"  # 'release/<attribute>' in the Formula
SAMPLING = "sampling"
RELEASE = "release"
# The fields of a sampling point or a release specification: nested parameters, by name.
SAMPLING_FIELDS = ("after_operation", "method", "method_version", "sample_volume", "note")
RELEASE_FIELDS = (
    "method",
    "method_version",
    "acceptance_criterion",
    "low",
    "high",
    "unit",
)
METHOD_HASH = "content_hash"
FIELD = "Field"  # the ParameterType of those fields
FORMULA_VALUE = "FormulaValue"
ACKNOWLEDGEMENT = "Acknowledgement"
# A parameter's ranges and a data-capture field's limits, as nested parameters.
RANGE_SLOTS = {
    ("normal_range", "low"): "NormalLow",
    ("normal_range", "high"): "NormalHigh",
    ("proven_acceptable_range", "low"): "ProvenAcceptableLow",
    ("proven_acceptable_range", "high"): "ProvenAcceptableHigh",
}
LIMIT_SLOTS = {"low": "LimitLow", "high": "LimitHigh"}
SLOT_NAMES = {
    "NormalLow": "Normal range, low end",
    "NormalHigh": "Normal range, high end",
    "ProvenAcceptableLow": "Proven acceptable range, low end",
    "ProvenAcceptableHigh": "Proven acceptable range, high end",
    "LimitLow": "Low limit",
    "LimitHigh": "High limit",
}
# ParameterSubType: a step's own value (not the unit operation's default) and a material.
RECIPE_VALUE = "RecipeValue"
MATERIAL_DEFINITION = "MaterialDefinition"
UCUM = "UCUM:"  # a data-capture field's unit, as a ParameterSubType 'UCUM:mL'

# EquipmentRequirement/Constraint/ID: the class the step is bound to, or one it may use.
BOUND = "bound"
ALLOWED = "allowed"

# OtherInformation ids of the master recipe and of its operations.
CONTENT_HASH = "content_hash"
EXPORTED_AT = "exported_at"
MODALITY = "modality"
FORMULA = "formula"
NOTES = "notes"
PINNED_HASH = "pinned_content_hash"
KNOWN_INFORMATION = frozenset({CONTENT_HASH, EXPORTED_AT, MODALITY, FORMULA})

# Recipe statuses as BatchML shows them (BatchStatus has only execution states: 'Other').
STATUS_NAMES = {
    "draft": "Draft",
    "in_review": "In review",
    "approved": "Approved",
    "effective": "Effective",
    "superseded": "Superseded",
    "retired": "Retired",
}


def path(*parts: str) -> str:
    return "/".join(parts)
