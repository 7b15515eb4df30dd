"""The gap report's records: each gap of a received package, where it stands and the choice
saved for it (``gaps`` makes them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from opencdmo.transfer import _capability
from opencdmo.transfer.import_queries import ImportRow, MappingRow
from opencdmo.transfer.queries import PackageRow
from opencdmo.transfer.verify import PackageContents

ITEM_STATUS = {
    "identical": "Identical content in the library",
    "other_version": "Another version in the library",
    "on_hub": "Available on the HUB",
    "missing": "Missing",
}


@dataclass(frozen=True)
class ItemGap:
    kind: str
    slug: str
    version: str
    content_hash: str
    name: str
    status: str
    library_id: UUID | None = None  # the identical copy
    other_versions: list[tuple[UUID, str]] = field(default_factory=list)
    hub_item_id: UUID | None = None
    hub_versions: list[str] = field(default_factory=list)
    mapping: MappingRow | None = None

    @property
    def ref(self) -> str:
        return f"{self.kind}:{self.slug}@{self.version}"

    @property
    def resolved(self) -> bool:
        return self.status == "identical" or self.mapping is not None

    @property
    def reason(self) -> str:
        if self.status == "other_version":
            return "The library holds version " + ", ".join(v for _, v in self.other_versions)
        if self.status == "on_hub":
            return "The HUB offers version " + ", ".join(self.hub_versions)
        return ITEM_STATUS[self.status]


@dataclass(frozen=True)
class Unit:
    code: str
    name: str
    site: str
    status: str


@dataclass(frozen=True)
class EquipmentGap:
    slug: str
    name: str
    steps: list[str]
    units: list[Unit]
    verdict: _capability.Verdict
    compared: list[str]
    mapping: MappingRow | None = None

    @property
    def ref(self) -> str:
        return self.slug

    @property
    def resolved(self) -> bool:
        """A unit of the class whose capability is not known to fall short, or a choice
        (a class whose units do not cover the steps' ranges is a gap until someone decides:
        another class, or this one knowingly)."""
        covered = bool(self.units) and self.verdict != "does_not_cover"
        return covered or self.mapping is not None

    @property
    def reason(self) -> str:
        units = ", ".join(u.code for u in self.units) or "no unit of this class"
        coverage = {
            "covers": "its capability covers the steps' ranges",
            "does_not_cover": "its capability does not cover the steps' ranges",
            "unknown": "coverage unknown (no comparable capability or parameter)",
        }[self.verdict]
        return f"{units}; {coverage}"


@dataclass(frozen=True)
class MaterialGap:
    slug: str
    material_id: UUID | None
    material_code: str | None
    mapping: MappingRow | None = None

    @property
    def ref(self) -> str:
        return self.slug

    @property
    def resolved(self) -> bool:
        return self.material_id is not None or self.mapping is not None

    @property
    def reason(self) -> str:
        if self.material_code is not None:
            return f"Mapped to material {self.material_code}"
        return "Not in the material master"


@dataclass(frozen=True)
class GapReport:
    package: PackageRow
    contents: PackageContents
    items: list[ItemGap]
    equipment: list[EquipmentGap]
    materials: list[MaterialGap]
    previous: ImportRow | None
    changes: list[str]
    imported: ImportRow | None

    @property
    def sender(self) -> str:
        return self.contents.manifest.sender.name

    def gaps(self) -> list[ItemGap | EquipmentGap | MaterialGap]:
        return [*self.items, *self.equipment, *self.materials]

    @property
    def resolved(self) -> bool:
        return all(g.resolved for g in self.gaps())

    @property
    def unresolved(self) -> list[str]:
        return [g.ref for g in self.gaps() if not g.resolved]

    def rows(self) -> list[dict[str, str]]:
        """Every gap as one row: {kind, ref, name, status, reason, resolution}."""
        found: list[dict[str, str]] = []
        for i in self.items:
            found.append(_row(i.kind, i.ref, i.name, i.status, i.reason, i.mapping))
        for e in self.equipment:
            status = "available" if e.units else "no_unit"
            found.append(_row("equipment_class", e.ref, e.name, status, e.reason, e.mapping))
        for m in self.materials:
            status = "mapped" if m.material_id else "not_mapped"
            found.append(_row("material", m.ref, m.slug, status, m.reason, m.mapping))
        return found


def _row(
    kind: str, ref: str, name: str, status: str, reason: str, mapping: MappingRow | None
) -> dict[str, str]:
    chosen = "" if mapping is None else f"{mapping.resolution} {mapping.target}".strip()
    return {
        "kind": kind,
        "ref": ref,
        "name": name,
        "status": status,
        "reason": reason,
        "resolution": chosen,
    }
