"""The in-process samples and release specifications of a BatchML master recipe (written by
the export as 'Other' formula parameters with their fields nested), against the library's
QC methods."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from opencdmo.hub.content import common_enum
from opencdmo.hub.model import Method
from opencdmo.recipes.batchml_recipe import _vocabulary as v
from opencdmo.recipes.batchml_recipe._document import DocParameter, MasterRecipeDoc
from opencdmo.recipes.batchml_recipe._tree import Resolved, number

QC_KINDS = (v.SAMPLING_POINT, v.RELEASE_SPECIFICATION)
AddGap = Callable[[str, str, str, str], None]


def fields_of(raw: DocParameter) -> dict[str, DocParameter]:
    """A sampling point's or release specification's fields, by name."""
    return {c.id.rstrip("/").rsplit("/", 1)[-1]: c for c in raw.children if c.kind == v.FIELD}


def field_text(fields: Mapping[str, DocParameter], name: str) -> str:
    found = fields.get(name)
    return found.value.text if found is not None and found.value is not None else ""


def methods_of(doc: MasterRecipeDoc) -> set[tuple[str, str]]:
    """The QC methods (slug, version) the document's samples and specifications use."""
    found = set()
    for raw in doc.formula:
        if raw.kind in QC_KINDS:
            fields = fields_of(raw)
            found.add((field_text(fields, "method"), field_text(fields, "method_version")))
    return found


def _number_of(field: DocParameter | None) -> int | float | None:
    if field is None or field.value is None or not field.value.text:
        return None
    return number(field.value.text, field.value.data_type)


class Quality:
    def __init__(
        self, gap: AddGap, step_keys: Mapping[str, str], methods: Mapping[tuple[str, str], Resolved]
    ) -> None:
        self.gap = gap
        self.step_keys = step_keys
        self.methods = methods
        self.keys: set[str] = set()

    def method(
        self, kind: str, raw: DocParameter, fields: Mapping[str, DocParameter]
    ) -> Resolved | None:
        slug, version = field_text(fields, "method"), field_text(fields, "method_version")
        found = self.methods.get((slug, version))
        if found is None or found.library_item_id is None or not isinstance(found.content, Method):
            why = (
                found.note if found is not None and found.note else f"no QC method {slug} {version}"
            )
            self.gap(kind, raw.id, raw.name, f"{why}: not imported")
            return None
        if found.note:
            self.gap(kind, raw.id, raw.name, found.note)
        pinned = field_text(fields, v.METHOD_HASH)
        if pinned and pinned != found.content_hash:
            self.gap(
                kind,
                raw.id,
                raw.name,
                f"the library's content of {slug} {version} is not the content the document "
                f"pinned ({pinned[:12]}...)",
            )
        return found

    @staticmethod
    def _reference(found: Resolved) -> dict[str, Any]:
        assert isinstance(found.content, Method)
        return {
            "library_item_id": found.library_item_id,
            "method": found.content.slug,
            "method_version": found.content.version,
            "content_hash": found.content_hash,
        }

    def sampling_point(self, raw: DocParameter) -> list[dict[str, Any]]:
        fields = fields_of(raw)
        key = raw.id.rstrip("/").rsplit("/", 1)[-1]
        after = self.step_keys.get(field_text(fields, "after_operation"))
        volume = fields.get("sample_volume")
        quantity = _number_of(volume)
        unit = volume.value.unit if volume is not None and volume.value is not None else ""
        problem = None
        if not key or key in self.keys:
            problem = "its key is empty or used twice"
        elif after is None:
            problem = f"step '{field_text(fields, 'after_operation')}' is not imported"
        elif quantity is None or quantity <= 0 or unit not in common_enum("ucum_unit"):
            problem = "the sample volume needs a quantity above zero and a UCUM unit"
        if problem is not None:
            self.gap("sampling_point", raw.id, raw.name, f"{problem}: not imported")
            return []
        found = self.method("sampling_point", raw, fields)
        if found is None:
            return []
        self.keys.add(key)
        return [
            {
                "key": key,
                "after_operation": after,
                **self._reference(found),
                "sample_volume": {"quantity": quantity, "unit": unit},
                "note": field_text(fields, "note")[:10_000],
            }
        ]

    def release(self, raw: DocParameter) -> list[dict[str, Any]]:
        fields = fields_of(raw)
        attribute = raw.id.rstrip("/").rsplit("/", 1)[-1]
        criterion = field_text(fields, "acceptance_criterion")
        found = self.method("release_specification", raw, fields)
        if found is None:
            return []
        method = found.content
        assert isinstance(method, Method)
        unit = field_text(fields, "unit") or None
        problem = None
        if method.result_field(attribute) is None:
            problem = f"{method.slug} {method.version} reports no result '{attribute}'"
        elif not criterion.strip():
            problem = "it has no acceptance criterion"
        elif unit is not None and unit not in common_enum("ucum_unit"):
            problem = f"'{unit}' is not a known UCUM unit"
        if problem is not None:
            self.gap("release_specification", raw.id, raw.name, f"{problem}: not imported")
            return []
        spec: dict[str, Any] = {
            "attribute": attribute,
            **self._reference(found),
            "acceptance_criterion": criterion[:10_000],
        }
        limits = {b: n for b in ("low", "high") if (n := _number_of(fields.get(b))) is not None}
        if limits:
            spec["limits"] = limits
        if unit is not None:
            spec["unit"] = unit
        return [spec]
