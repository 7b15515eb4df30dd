"""Recipe content as typed records: what a revision holds, validated once where it comes in
(the API body, the designer's edits, content built from a HUB recipe) and mapped in one place
each way between the structs and the stored JSON document.

The structs check the shape (types, lengths, ranges, no unknown fields); ``content.check``
then checks the content against the unit operations and methods it refers to.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

from opencdmo.errors import ValidationFailed
from opencdmo.fields import Count, Hash, Key, Name, Number, Short, Text, humanise

# JSON numbers keep their kind (2 stays 2, 2.5 stays 2.5), so stored content reads as sent.
Amount = Count | Number
Value = Count | Number | bool | Short
Ident = Annotated[str, Meta(min_length=1, max_length=100, pattern="^[0-9A-Za-z-]+$")]
Slug = Annotated[str, Meta(max_length=100)]
Version = Annotated[str, Meta(max_length=100)]
Unit = Annotated[str, Meta(min_length=1, max_length=40)]
Many = Meta(max_length=1000)


class _Record(Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class Quantity(_Record, kw_only=True):
    quantity: Amount  # above zero: content.check says so in its words
    unit: Unit


class Operation(_Record, kw_only=True):
    key: Key
    library_item_id: Ident
    unit_operation: Slug | None = None
    version: Version | None = None
    content_hash: Hash | None = None
    parameters: Annotated[dict[Key, Value], Many] = {}
    acknowledged: Annotated[dict[Key, Text], Many] = {}
    equipment_class: Slug | None = None
    notes: Text = ""


class UnitProcedure(_Record, kw_only=True):
    key: Key
    name: Name
    operations: Annotated[list[Operation], Many]


class Formula(_Record, kw_only=True):
    name: Name
    overrides: Annotated[dict[Annotated[str, Meta(max_length=140)], Value], Many]
    acknowledged: Annotated[dict[Annotated[str, Meta(max_length=140)], Text], Many] = {}


class Specification(_Record, kw_only=True):
    modality: Slug | None = None
    batch_size: Quantity | None = None


class SamplingPoint(_Record, kw_only=True):
    key: Key
    after_operation: Key
    library_item_id: Ident
    method: Slug | None = None
    method_version: Version | None = None
    content_hash: Hash | None = None
    sample_volume: Quantity
    note: Text = ""


class Limits(_Record, kw_only=True, omit_defaults=True):
    low: Amount | None = None
    high: Amount | None = None


class ReleaseSpecification(_Record, kw_only=True, omit_defaults=True):
    attribute: Key
    library_item_id: Ident
    method: Slug | None = None
    method_version: Version | None = None
    content_hash: Hash | None = None
    acceptance_criterion: Text
    limits: Limits | None = None
    unit: Unit | None = None


class RecipeContent(_Record, kw_only=True):
    """A master recipe revision's content."""

    unit_procedures: Annotated[list[UnitProcedure], Many]
    formulas: Annotated[list[Formula], Many] = []
    specification: Specification = msgspec.field(default_factory=Specification)
    sampling_points: Annotated[list[SamplingPoint], Many] = []
    release_specifications: Annotated[list[ReleaseSpecification], Many] = []


def parse_content(raw: Any) -> RecipeContent:
    """Typed content from a stored or sent JSON document; a 422 naming the field otherwise."""
    try:
        return msgspec.convert(raw, RecipeContent, strict=True)
    except msgspec.ValidationError as exc:
        message = humanise(str(exc), "content")
        raise ValidationFailed(message, details={"problems": [message]}) from None


def content_to_dict(content: RecipeContent) -> dict[str, Any]:
    """The stored JSON document of typed content (every section present)."""
    result: dict[str, Any] = msgspec.to_builtins(content)
    return result
