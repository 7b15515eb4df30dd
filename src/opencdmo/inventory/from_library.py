"""The HUB materials the tenant installed or forked into its library that its material master
does not hold yet, offered to the materials handler with what the content says of them: the
name, the type in the master's terms, the storage temperature, and the unit the library's
unit operations use it in (the bills of materials)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

from opencdmo.access.service import authorize
from opencdmo.db.tx import read_view
from opencdmo.hub.tables import LibraryItem
from opencdmo.inventory.tables import Material
from opencdmo.scope import TenantContext

# A HUB material's type, as the material master keeps it.
HUB_TYPES = {
    "reagent": "reagent",
    "cytokine": "reagent",
    "vector": "reagent",
    "media": "raw_material",
    "excipient": "raw_material",
    "consumable": "consumable",
    "starting-material": "starting_material",
    "human-starting-material": "starting_material",
}


@dataclass(frozen=True)
class Offered:
    library_item_id: UUID
    slug: str
    name: str
    material_type: str
    storage_condition: str
    unit: str | None  # as the library's bills of materials use it (None: none uses it)


def master_type(hub_type: object) -> str:
    return HUB_TYPES.get(str(hub_type), "raw_material")


def storage_condition(content: dict[str, Any]) -> str:
    """The content's storage temperature in words: "2 to 8 °C"."""
    storage = content.get("storage")
    if not isinstance(storage, dict):
        return ""
    low, high = storage.get("temperature_low"), storage.get("temperature_high")
    if not isinstance(low, int | float) or not isinstance(high, int | float):
        return ""

    def shown(value: float) -> str:
        return str(Decimal(str(value)).normalize())

    if low == high:
        return f"{shown(low)} °C"
    return f"{shown(low)} to {shown(high)} °C"


async def offered(ctx: TenantContext) -> list[Offered]:
    """The library's materials not in the master yet (by library item or by code), by name."""
    await authorize(ctx, "materials", "manage")
    async with read_view(ctx):
        items = await LibraryItem.select(
            LibraryItem.id,
            LibraryItem.kind,
            LibraryItem.slug,
            LibraryItem.name,
            LibraryItem.content,
        ).where(LibraryItem.kind.is_in(["material", "unit_operation"]))
        held = await Material.select(Material.code, Material.library_item_id)
    codes = {r["code"] for r in held}
    linked = {r["library_item_id"] for r in held if r["library_item_id"]}
    units: dict[str, str] = {}
    for item in items:
        if item["kind"] == "unit_operation":
            for line in _content(item).get("materials") or []:
                if isinstance(line, dict) and isinstance(line.get("material"), str):
                    units.setdefault(line["material"], str(line.get("unit")))
    found = []
    for item in items:
        if item["kind"] != "material" or item["id"] in linked or item["slug"] in codes:
            continue
        content = _content(item)
        found.append(
            Offered(
                item["id"],
                item["slug"],
                item["name"],
                master_type(content.get("material_type")),
                storage_condition(content),
                units.get(item["slug"]),
            )
        )
    found.sort(key=lambda o: o.name.lower())
    return found


def _content(item: dict[str, Any]) -> dict[str, Any]:
    content = item["content"]
    if isinstance(content, str):
        content = json.loads(content)
    return content if isinstance(content, dict) else {}
