"""Gap analysis of a verified received package against the receiving tenant (read-only).

- every pinned item (unit operation, QC method): ``identical`` (the library holds that kind,
  slug and version with the same content hash), ``other_version`` (the slug, other versions:
  which), ``on_hub`` (the HUB offers the slug: the versions it has), or ``missing``;
- every equipment class the recipe's steps use: the tenant's units of that class (code, site,
  status), and whether the class's stated capability covers the steps' parameter ranges
  (``_capability`` says exactly what is compared); a class with no unit is a gap;
- every material the pinned unit operations use: mapped (a tenant material linked to a
  library item of that slug, or whose code is the slug) or not.

A gap is resolved when it needs nothing (identical item, a unit of the class, a mapped
material) or the receiver saved a choice for it (``mapping``). A package of a sender recipe
imported before carries the structural diff against the last imported revision.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import tempfile
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast
from uuid import UUID

from opencdmo.access.service import authorize
from opencdmo.db.tx import read_view
from opencdmo.equipment import queries as equipment
from opencdmo.errors import Conflict, Forbidden
from opencdmo.hub import library_queries as copies
from opencdmo.hub import publication_queries as hub
from opencdmo.hub.diff import diff
from opencdmo.inventory import queries as inventory
from opencdmo.recipes import compare as wording
from opencdmo.recipes import content as recipe_content
from opencdmo.recipes.batchml_recipe.service import _cell
from opencdmo.recipes.service._pins import entries
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.storage.blobs import blobs
from opencdmo.storage.streams import CheckedReader, copy_to
from opencdmo.tenancy.queries import tenants
from opencdmo.transfer import _capability
from opencdmo.transfer import import_queries as iq
from opencdmo.transfer import queries as q
from opencdmo.transfer._gap_model import (
    EquipmentGap,
    GapReport,
    ItemGap,
    MaterialGap,
    Unit,
)
from opencdmo.transfer.import_queries import ImportRow, MappingRow
from opencdmo.transfer.queries import PackageRow
from opencdmo.transfer.verify import PackageContents, Progress, verify_file

__all__ = ["EquipmentGap", "GapReport", "ItemGap", "MaterialGap", "Unit", "analyse", "csv_of"]

CSV_COLUMNS = ("kind", "ref", "name", "status", "reason", "resolution")
ANALYSED = ("verified", "in_mapping", "imported")


# --- the package's contents ---------------------------------------------------------------


def _check(path: Path, progress: Progress | None = None) -> PackageContents:
    result = verify_file(path, None, progress=progress)
    if result.contents is None or result.findings:
        found = "; ".join(f.message for f in result.findings) or "no contents"
        raise Conflict(f"The stored package no longer verifies: {found}")
    return result.contents


def _copy_out(reader: CheckedReader, path: Path) -> None:
    with reader, path.open("wb") as out:
        copy_to(cast(BinaryIO, reader), out)


@asynccontextmanager
async def fetched(
    settings: Settings, ctx: TenantContext, row: PackageRow, progress: Progress | None = None
) -> AsyncIterator[tuple[Path, PackageContents]]:
    """The stored package verified again, for as long as the block runs: read where it is
    when the storage is on this machine's disk, else streamed to a temporary file (never
    whole in memory; its SHA-256 checked against the stored one); no transaction may be
    open."""
    stored = blobs().local_file(ctx, row.storage_key)
    if stored is not None:  # a stored file is never written again: read it where it is
        contents = await asyncio.to_thread(_check, stored, progress)
        _remember((ctx.tenant_id, row.id, row.sha256), contents)
        yield stored, contents
        return
    folder = settings.data_dir / "transfer-tmp"
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix="received-", suffix=".zip", dir=folder)
    os.close(handle)
    path = Path(name)
    try:
        await asyncio.to_thread(_copy_out, await blobs().open(ctx, row.storage_key), path)
        contents = await asyncio.to_thread(_check, path, progress)
        _remember((ctx.tenant_id, row.id, row.sha256), contents)
        yield path, contents
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)


# The contents of packages verified lately, by (tenant, package, the package's SHA-256): the
# gap report and each mapping choice read the manifest, revision and items (a few kilobytes)
# without reading a package of a gigabyte again. The import verifies the stored file afresh.
_VERIFIED: OrderedDict[tuple[UUID, UUID, str], PackageContents] = OrderedDict()
VERIFIED_KEPT = 16


def _remember(key: tuple[UUID, UUID, str], contents: PackageContents) -> None:
    _VERIFIED[key] = contents
    _VERIFIED.move_to_end(key)
    while len(_VERIFIED) > VERIFIED_KEPT:
        _VERIFIED.popitem(last=False)


async def load(settings: Settings, ctx: TenantContext, row: PackageRow) -> PackageContents:
    """The package's contents as verified (see ``fetched``), from the recent ones when this
    process verified the same stored package lately; no transaction may be open."""
    known = _VERIFIED.get((ctx.tenant_id, row.id, row.sha256))
    if known is not None:
        return known
    async with fetched(settings, ctx, row) as (_, contents):
        return contents


def person(ctx: TenantContext) -> UUID:
    """The person acting (a package is mapped and imported by a person, never the system)."""
    if ctx.user_id is None:
        raise Forbidden("A package is mapped and imported by a signed-in person.")
    return ctx.user_id


async def analysable(package_id: UUID, *, lock: bool = False) -> PackageRow:
    row = await q.received(package_id, lock=lock)
    if row.status not in ANALYSED:
        raise Conflict(
            f"This package is {row.status.replace('_', ' ')}: only a verified package is "
            "analysed and imported.",
            details={"status": row.status},
        )
    return row


# --- the analysis -------------------------------------------------------------------------


def steps_of(contents: PackageContents) -> list[tuple[str, str, dict[str, Any]]]:
    """Each step: (key, equipment class, the unit operation content it pinned)."""
    by_hash = {i["content_hash"]: i["content"] for i in contents.items}
    found = []
    for kind, entry in entries(contents.revision["content"]):
        if kind == "step":
            pinned = by_hash.get(entry.get("content_hash"), {})
            found.append((str(entry.get("key")), str(entry.get("equipment_class", "")), pinned))
    return found


async def _item(
    item: dict[str, Any], library: list[copies.TypedCopy], mapping: MappingRow | None
) -> ItemGap:
    kind, slug, version = item["kind"], item["slug"], item["version"]
    name = str(item["content"].get("name", slug))
    same = [c for c in library if c.kind == kind and c.slug == slug]
    base = {
        "kind": kind,
        "slug": slug,
        "version": version,
        "content_hash": item["content_hash"],
        "name": name,
        "mapping": mapping,
    }
    identical = next((c for c in same if c.content_hash == item["content_hash"]), None)
    if identical is not None:
        return ItemGap(**base, status="identical", library_id=identical.id)
    if same:
        others = [(c.id, c.version) for c in same]
        return ItemGap(**base, status="other_version", other_versions=others)
    for hub_item in await hub.visible_items(kind, slug):
        versions = [v.version for v in await hub.published_versions(hub_item)]
        if versions:
            return ItemGap(**base, status="on_hub", hub_item_id=hub_item, hub_versions=versions)
    return ItemGap(**base, status="missing")


async def _equipment(
    contents: PackageContents, mappings: dict[tuple[str, str], MappingRow]
) -> list[EquipmentGap]:
    steps = steps_of(contents)
    sites = {s.id: s.code for s in await tenants.sites()}
    units = await equipment.units()
    found = []
    for slug in sorted({c for _, c, _ in steps if c}):
        used = [(key, uo) for key, c, uo in steps if c == slug]
        of_class = await equipment.equipment_class(slug)
        capability = _capability.ranges(list(of_class.capabilities)) if of_class else []
        compared = _capability.compare(used, capability)
        mine = [
            Unit(u.code, u.name, sites.get(u.site_id, ""), u.status)
            for u in units
            if u.class_slug == slug
        ]
        found.append(
            EquipmentGap(
                slug,
                of_class.name if of_class else slug,
                [k for k, _ in used],
                mine,
                _capability.verdict(compared),
                [c.text for c in compared],
                mappings.get(("equipment_class", slug)),
            )
        )
    return found


async def _materials(
    contents: PackageContents,
    library: list[copies.TypedCopy],
    mappings: dict[tuple[str, str], MappingRow],
) -> list[MaterialGap]:
    slugs = sorted(
        {
            str(line.get("material"))
            for _, _, uo in steps_of(contents)
            for line in uo.get("materials") or []
            if isinstance(line, dict) and line.get("material")
        }
    )
    linked = {c.id: c.slug for c in library if c.kind == "material"}
    master = await inventory.materials()
    found = []
    for slug in slugs:
        material = next(
            (m for m in master if m.library_item_id and linked.get(m.library_item_id) == slug),
            None,
        ) or next((m for m in master if m.code.casefold() == slug.casefold()), None)
        found.append(
            MaterialGap(
                slug,
                None if material is None else material.id,
                None if material is None else material.code,
                mappings.get(("material", slug)),
            )
        )
    return found


def _step_names(contents: PackageContents) -> wording.StepNames:
    """Each step's unit operation name and its parameters' (name, unit), from the package."""
    return {
        key: (
            str(uo.get("name", key)),
            {
                str(p.get("key")): (str(p.get("name", p.get("key"))), p.get("unit"))
                for p in _capability.parameters(uo)
            },
        )
        for key, _, uo in steps_of(contents)
    }


def _changes(previous: ImportRow | None, contents: PackageContents) -> list[str]:
    """The structural diff against the last imported revision, in process language."""
    if previous is None:
        return []
    older = recipe_content.normalised(previous.content)
    newer = recipe_content.normalised(contents.revision["content"])
    names = _step_names(contents)
    before, after = wording.side(older, names), wording.side(newer, names)
    return [d.text for d in wording.describe(diff(older, newer), before, after)]


async def report_in(row: PackageRow, contents: PackageContents) -> GapReport:
    """The analysis, in the transaction open in the context."""
    library = await copies.typed_copies("unit_operation", "method", "material", "equipment_class")
    mappings = await iq.mappings(row.id)
    items = [
        await _item(i, library, mappings.get(("item", f"{i['kind']}:{i['slug']}@{i['version']}")))
        for i in sorted(contents.items, key=lambda i: (i["kind"], i["slug"], i["version"]))
    ]
    sender = contents.manifest.sender
    previous = await iq.last_import(UUID(sender.tenant_id), UUID(contents.revision["recipe_id"]))
    imported = await iq.import_of(row.id)
    if imported is not None and previous is not None and previous.id == imported.id:
        previous = None  # this package's own import is not a "previous" one
    return GapReport(
        row,
        contents,
        items,
        await _equipment(contents, mappings),
        await _materials(contents, library, mappings),
        previous,
        _changes(previous, contents),
        imported,
    )


async def analyse(settings: Settings, ctx: TenantContext, package_id: UUID) -> GapReport:
    """The gap report of a verified received package (``transfer:import``)."""
    async with read_view(ctx):
        await authorize(ctx, "transfer", "import")
        row = await analysable(package_id)
    contents = await load(settings, ctx, row)
    async with read_view(ctx):
        return await report_in(row, contents)


@dataclass(frozen=True)
class Choices:
    """What the receiver may choose from on the report's forms."""

    library: list[tuple[UUID, str, str, str]]  # (id, kind, slug, version)
    classes: list[tuple[str, str]]  # (slug, name)
    materials: list[tuple[UUID, str, str]]  # (id, code, name)


async def choices(ctx: TenantContext) -> Choices:
    async with read_view(ctx):
        library = await copies.typed_copies("unit_operation", "method")
        classes = await equipment.class_slugs()
        master = await inventory.materials()
    return Choices(
        [(c.id, c.kind, c.slug, c.version) for c in library],
        classes,
        [(m.id, m.code, m.name) for m in master],
    )


def csv_of(report: GapReport) -> str:
    """The gap report as CSV: a header, then one line per gap (cells a spreadsheet shows as
    text: ``batchml_recipe``'s rule)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["Kind", "Reference", "Name", "Status", "Why", "Resolution"])
    for row in report.rows():
        writer.writerow([_cell(row[n]) for n in CSV_COLUMNS])
    return out.getvalue()
