"""HUB library content as typed records: one frozen struct per kind (material, equipment
class, QC method, unit operation, recipe), mirroring its JSON Schema in ``hub_content/schema/``,
and the one mapping each way between the structs and the stored JSON document.

The JSON Schema stays the published contract: authors validate against it and the HUB
checks every document with it where content comes in (``content.validate``), including the
conditional rules a struct cannot say (a choice needs choices, a number a unit...). The
structs carry what the schema says of each field (type, optionality, enumerations, lengths
and patterns, no unknown fields), so that the rest of the code reads attributes, not dict
keys. ``decode`` reads a stored or validated document; ``encode`` gives it back exactly
(numbers keep their kind, absent fields stay absent), so content hashes, which are always
computed on the stored JSON, never change by passing through the structs.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, TypeGuard

import msgspec
from msgspec import Meta, Struct

# --- shared definitions (common.schema.json#/$defs) ------------------------------------------

Slug = Annotated[str, Meta(pattern="^[a-z0-9]+(-[a-z0-9]+)*$", max_length=80)]
Key = Annotated[str, Meta(pattern="^[a-z][a-z0-9]*(_[a-z0-9]+)*$", max_length=64)]
_IDENT = "(0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)"
Semver = Annotated[
    str,
    Meta(
        pattern="^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)"
        f"(-({_IDENT}(\\.{_IDENT})*))?"
        "(\\+([0-9a-zA-Z-]+(\\.[0-9a-zA-Z-]+)*))?$"
    ),
]
OneLine = Annotated[str, Meta(min_length=1, max_length=240, pattern="^[^\\n\\r]+$")]
Text = Annotated[str, Meta(min_length=1)]
Author = Annotated[str, Meta(min_length=1)]
Choice = Annotated[str, Meta(min_length=1)]
# JSON numbers keep their kind (2 stays 2, 2.5 stays 2.5): the encoded document is the stored
# one, byte for byte in canonical JSON.
Number = int | float
Positive = Annotated[int, Meta(gt=0)] | Annotated[float, Meta(gt=0)]
Scalar = int | float | str | bool


def is_number(value: object) -> TypeGuard[Number]:
    """A JSON number (true and false are not numbers, though Python counts them as ints)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


Licence = Literal["CC-BY-4.0", "CC-BY-SA-4.0", "CC0-1.0"]
Modality = Literal["car-t", "tcr-t", "aav", "lvv", "msc", "ipsc", "nk"]
Criticality = Literal["CPP", "KPP", "non-critical"]
FieldType = Literal["number", "integer", "text", "choice", "boolean", "datetime"]
ParameterType = Literal["number", "integer", "text", "choice", "boolean", "duration"]
Category = Literal[
    "cell-processing",
    "upstream",
    "downstream",
    "fill-finish",
    "qc-sampling",
    "material-prep",
    "storage-logistics",
]
MaterialType = Literal[
    "reagent", "media", "cytokine", "vector", "consumable", "excipient", "starting-material"
]
Grade = Literal[
    "GMP",
    "compendial",
    "medical-device",
    "sterile-single-use",
    "human-starting-material",
    "technical",
    "research-grade",
]
# The closed list of UCUM codes (common.schema.json#/$defs/ucum_unit; a test keeps them equal).
Unit = Literal[
    "1", "%", "Cel", "K/min", "s", "min", "h", "d", "uL", "mL", "L", "mL/min",
    "L/min", "mL/cm2", "/d", "ug", "mg", "g", "kg", "g/g", "g/L", "mg/mL", "ug/mL",
    "ng/mL", "pg/mL", "ng/{dose}", "mmol/L", "umol/L", "mol/L", "mosm/kg", "U",
    "U/mL", "[iU]", "[iU]/mL", "[pH]", "mS/cm", "bar", "mbar", "Pa", "[g]", "/min",
    "/s", "deg", "W/m3", "m/s", "cm/h", "cm", "um", "cm2", "m2", "L/m2", "L/(m2.h)",
    "L/(m2.h.bar)", "/cm2", "10*6/cm2", "10*6", "10*9", "10*6/mL", "10*6/kg", "/m3",
    "{copies}/{cell}", "{bead}/{cell}", "{bead}", "{events}", "{droplets}",
    "{vg}/mL", "{cp}/mL", "{TU}/mL", "{TU}/{cell}", "{TCID50}/mL", "{vg}/{IU}",
    "{vg}/{cp}", "{EU}/mL", "{mAU}", "{CV}", "{MV}/min", "{CFU}/mL", "[ppm]",
    "{bag}", "{vessel}", "{vial}", "{kit}", "{set}", "{filter}", "{column}",
    "{module}", "{flask}", "{tube}", "{syringe}", "{dose}",
]  # fmt: skip
Kind = Literal["material", "equipment_class", "method", "unit_operation", "recipe"]


class _Part(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """A part of a document. Optional fields default to None, which the schema never allows
    as a value, so an absent field decodes to None and encodes as absent again."""


class Quantity(_Part, frozen=True, kw_only=True):
    quantity: Positive
    unit: Unit


class Range(_Part, frozen=True, kw_only=True):
    """A closed interval; either bound may be omitted for a one-sided range."""

    low: Number | None = None
    high: Number | None = None

    def holds(self, value: Number) -> bool:
        """Whether ``value`` lies inside (a missing bound does not limit)."""
        return (self.low is None or self.low <= value) and (self.high is None or value <= self.high)

    def span(self) -> str:
        """The range as people read it: ``20-30``, ``at least 20``, ``at most 30``."""
        if self.low is not None and self.high is not None:
            return f"{self.low}-{self.high}"
        if self.low is not None:
            return f"at least {self.low}"
        return f"at most {self.high}" if self.high is not None else "unbounded"


Aggregate = Literal["latest", "mean", "min", "max"]


class EquipmentSignal(_Part, frozen=True, kw_only=True):
    equipment_class: Slug
    signal: Key
    aggregate: Aggregate | None = None  # None: latest

    @property
    def how(self) -> Aggregate:
        """The value a field takes from the signal: latest (the default), mean, min or max."""
        return self.aggregate or "latest"


class DataCaptureField(_Part, frozen=True, kw_only=True):
    """A value recorded during execution (unit operation phase) or reported by a QC method."""

    key: Key
    name: OneLine
    description: Text | None = None
    type: FieldType
    unit: Unit | None = None
    choices: Annotated[tuple[Choice, ...], Meta(min_length=2)] | None = None
    limits: Range | None = None
    required: bool
    equipment_capturable: bool
    equipment_signal: EquipmentSignal | None = None


class Parameter(_Part, frozen=True, kw_only=True):
    """A process parameter: default (set point), normal operating range, proven acceptable
    range and criticality."""

    key: Key
    name: OneLine
    description: Text | None = None
    type: ParameterType
    unit: Unit | None = None
    default: Scalar
    choices: Annotated[tuple[Choice, ...], Meta(min_length=2)] | None = None
    normal_range: Range | None = None
    proven_acceptable_range: Range | None = None
    criticality: Criticality


class _Item(
    Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    omit_defaults=True,
    tag_field="kind",
):
    """The fields every kind has; ``kind`` is the tag that tells the kinds apart."""

    kind: ClassVar[Kind]
    slug: Slug
    name: OneLine
    summary: OneLine
    description: Text
    version: Semver
    changelog: Text
    authors: Annotated[tuple[Author, ...], Meta(min_length=1)]
    licence: Licence
    tags: tuple[Slug, ...]


# --- material ---------------------------------------------------------------------------------


class Storage(_Part, frozen=True, kw_only=True):
    temperature_low: Number
    temperature_high: Number
    unit: Literal["Cel"]
    note: Text | None = None


class Material(_Item, frozen=True, kw_only=True, tag="material"):
    kind: ClassVar[Literal["material"]] = "material"
    material_type: MaterialType
    grade: Grade
    grade_note: Text | None = None
    storage: Storage


# --- equipment class --------------------------------------------------------------------------


class Signal(_Part, frozen=True, kw_only=True):
    key: Key
    name: OneLine
    unit: Unit | None = None


class EquipmentClass(_Item, frozen=True, kw_only=True, tag="equipment_class"):
    kind: ClassVar[Literal["equipment_class"]] = "equipment_class"
    equipment_type: Slug
    capabilities: Annotated[tuple[OneLine, ...], Meta(min_length=1)]
    qualification_required: bool
    opc_ua_capable: bool
    typical_signals: tuple[Signal, ...]


# --- QC method --------------------------------------------------------------------------------


class AcceptanceCriterion(_Part, frozen=True, kw_only=True):
    field: Key
    criterion: Text
    low: Number | None = None
    high: Number | None = None


class Method(_Item, frozen=True, kw_only=True, tag="method"):
    kind: ClassVar[Literal["method"]] = "method"
    technique: Text
    sample_type: OneLine
    sample_volume: Quantity
    result_fields: Annotated[tuple[DataCaptureField, ...], Meta(min_length=1)]
    acceptance_criteria: tuple[AcceptanceCriterion, ...]
    compendial_references: tuple[OneLine, ...]
    equipment_classes: tuple[Slug, ...] | None = None
    turnaround: Quantity | None = None

    def result_field(self, key: str) -> DataCaptureField | None:
        return next((f for f in self.result_fields if f.key == key), None)


# --- unit operation ---------------------------------------------------------------------------


class MaterialLine(_Part, frozen=True, kw_only=True):
    material: Slug
    quantity: Positive
    unit: Unit
    note: OneLine | None = None


class Phase(_Part, frozen=True, kw_only=True):
    key: Key
    name: OneLine
    instructions: Text
    parameters: tuple[Parameter, ...]
    data_capture: tuple[DataCaptureField, ...]
    second_person: Literal["verify", "witness"] | None = None


class UnitOperation(_Item, frozen=True, kw_only=True, tag="unit_operation"):
    kind: ClassVar[Literal["unit_operation"]] = "unit_operation"
    modalities: Annotated[tuple[Modality, ...], Meta(min_length=1)]
    category: Category
    equipment_classes: tuple[Slug, ...]
    materials: tuple[MaterialLine, ...]
    phases: Annotated[tuple[Phase, ...], Meta(min_length=1)]

    def parameters(self) -> dict[str, Parameter]:
        """Every parameter of every phase, by key (keys are unique in the operation)."""
        return {p.key: p for phase in self.phases for p in phase.parameters}


# --- recipe -----------------------------------------------------------------------------------


class Operation(_Part, frozen=True, kw_only=True):
    key: Key
    unit_operation: Slug
    version: Semver
    note: Text | None = None
    parameter_overrides: dict[Key, Scalar]


class UnitProcedure(_Part, frozen=True, kw_only=True):
    key: Key
    name: OneLine
    description: Text | None = None
    operations: Annotated[tuple[Operation, ...], Meta(min_length=1)]


class SamplingPoint(_Part, frozen=True, kw_only=True):
    key: Key
    after_operation: Key
    method: Slug
    method_version: Semver
    sample_volume: Quantity
    note: Text | None = None


class ReleaseSpecification(_Part, frozen=True, kw_only=True):
    method: Slug
    method_version: Semver
    attribute: Key
    acceptance_criterion: Text
    limits: Range | None = None
    unit: Unit | None = None


class Recipe(_Item, frozen=True, kw_only=True, tag="recipe"):
    """An ISA-88 general recipe: unit procedures of operations pinning unit-operation
    versions, sampling points and release specifications pinning method versions."""

    kind: ClassVar[Literal["recipe"]] = "recipe"
    product: OneLine
    modality: Modality
    batch_size: Quantity
    unit_procedures: Annotated[tuple[UnitProcedure, ...], Meta(min_length=1)]
    sampling_points: tuple[SamplingPoint, ...]
    release_specifications: tuple[ReleaseSpecification, ...]


LibraryContent = Material | EquipmentClass | Method | UnitOperation | Recipe
KINDS: dict[str, type[LibraryContent]] = {
    kind.kind: kind for kind in (Material, EquipmentClass, Method, UnitOperation, Recipe)
}

_from_json = msgspec.json.Decoder(LibraryContent)


def decode(data: object) -> LibraryContent:
    """The typed content of a document (a mapping with its ``kind``), as read from a file or
    sent; ``msgspec.ValidationError`` names the field that does not fit."""
    content: LibraryContent = msgspec.convert(data, LibraryContent, strict=True)
    return content


def decode_json(raw: str | bytes) -> LibraryContent:
    """The typed content of a stored document (its JSON text), decoded once where it is read."""
    try:
        return _from_json.decode(raw)
    except msgspec.ValidationError as exc:
        # Stored content was validated when it was written: this is damage, not input.
        raise ValueError(f"stored library content does not fit its kind: {exc}") from None


def encode(content: LibraryContent) -> dict[str, object]:
    """The JSON document of typed content: ``encode(decode(document)) == document``."""
    return _document(content)


def encode_part(part: _Part) -> dict[str, object]:
    """One part of a document (a parameter, a material line) as it stands in the document."""
    return _document(part)


def _document(struct: Struct) -> dict[str, object]:
    # Through JSON, so that the tuples of the frozen structs come back as JSON arrays (lists).
    document = _to_builtins.decode(_to_json.encode(struct))
    assert isinstance(document, dict)
    return document


_to_json = msgspec.json.Encoder()
_to_builtins = msgspec.json.Decoder()
