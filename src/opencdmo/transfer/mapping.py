"""Mapping a received package's gaps to the receiver's own library, equipment classes and
materials (``transfer:import``): each choice one audited command, saved as it goes (a new
choice for the same gap replaces the last), the package ``in_mapping`` from the first.

The choices, by kind of gap:

- an item: ``use`` a library item of the same kind (``target_id``: its library id);
  ``install`` the item from the HUB (``target``: the version, default the package's when the
  HUB offers it, else the latest), installed in this command and then used;
  ``fork`` the sender's pinned content into the library as a fork with its lineage (the
  sender, the package, the content hash; kept in the fork's audit event), which keeps the
  HUB item it comes from (so the HUB must offer the slug);
- an equipment class: ``use`` a class the tenant may register units of (``target``: its slug);
- a material: ``use`` a material of the master (``target_id``: its id).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from uuid import UUID

from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.db.tx import read_view, unit_of_work
from opencdmo.equipment import queries as equipment
from opencdmo.errors import Conflict, ValidationFailed
from opencdmo.hub import library
from opencdmo.hub import library_queries as copies
from opencdmo.hub import queries as hub_versions
from opencdmo.inventory import queries as inventory
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.transfer import gaps
from opencdmo.transfer import import_queries as iq
from opencdmo.transfer import queries as q
from opencdmo.transfer.gaps import GapReport, ItemGap
from opencdmo.transfer.import_queries import Choice

CHOICES = {"item": ("use", "install", "fork"), "equipment_class": ("use",), "material": ("use",)}


@dataclass(frozen=True)
class Given:
    gap_kind: str
    ref: str
    resolution: str
    target_id: UUID | None = None
    target: str = ""


def _invalid(message: str, field: str) -> ValidationFailed:
    return ValidationFailed(message, details={"field": field})


def _checked_shape(given: Given) -> None:
    allowed = CHOICES.get(given.gap_kind)
    if allowed is None:
        raise _invalid(f"gap_kind: must be one of {', '.join(CHOICES)}.", "gap_kind")
    if given.resolution not in allowed:
        raise _invalid(
            f"resolution: a {given.gap_kind.replace('_', ' ')} gap is resolved by "
            f"{', '.join(allowed[:-1]) + ' or ' if len(allowed) > 1 else ''}{allowed[-1]}.",
            "resolution",
        )
    if len(given.target) > 200:
        raise _invalid("target: at most 200 characters.", "target")


async def _fork(ctx: TenantContext, gap: ItemGap, report: GapReport) -> Choice:
    if gap.mapping is not None and gap.mapping.resolution == "fork":
        return Choice("item", gap.ref, "fork", gap.mapping.target_id, gap.mapping.target)
    offered = gap.version if gap.version in gap.hub_versions else None
    origin = None
    if gap.hub_item_id is not None:
        origin = await hub_versions.version_content(gap.hub_item_id, offered)
    if origin is None:
        raise _invalid(
            f"{gap.ref}: a fork keeps the HUB item it comes from, and the HUB offers no "
            f"{gap.slug}: use a library item instead.",
            "resolution",
        )
    content = next(
        i["content"] for i in report.contents.items if i["content_hash"] == gap.content_hash
    )
    sender = report.contents.manifest.sender
    copied = replace(origin, version=gap.version, content=content, content_hash=gap.content_hash)
    library_id = await copies.insert_copy(ctx.tenant_id, "forked", copied, ctx.user_id)
    await audit.record(
        ctx,
        "library.forked",
        "library_item",
        library_id,
        new={
            "forked_from_item": origin.item_id,
            "forked_from_version": origin.version,
            "content_hash": gap.content_hash,
            "from_package": str(report.package.id),
            "sender_tenant_id": sender.tenant_id,
            "sender": sender.name,
        },
    )
    return Choice("item", gap.ref, "fork", library_id, f"{gap.slug} {gap.version} (fork)")


async def _item_choice(ctx: TenantContext, gap: ItemGap, given: Given, report: GapReport) -> Choice:
    if given.resolution == "fork":
        return await _fork(ctx, gap, report)
    if given.resolution == "install":
        if gap.hub_item_id is None:
            raise _invalid(f"{gap.ref}: the HUB does not offer this item.", "resolution")
        version = given.target or (gap.version if gap.version in gap.hub_versions else "")
        if version and version not in gap.hub_versions:
            raise _invalid(
                f"target: the HUB offers {gap.slug} in {', '.join(gap.hub_versions)}.", "target"
            )
        await library.install(ctx, gap.hub_item_id, version or None)
        installed = await copies.installed_copy(gap.hub_item_id)
        assert installed is not None
        copy = await copies.stored_copy(installed, lock=False)
        assert copy is not None
        return Choice("item", gap.ref, "install", installed, copy.version)
    if given.target_id is None:
        raise _invalid("target_id: the library item to use.", "target_id")
    found = await copies.stored_copy(given.target_id, lock=False)
    if found is None or found.kind != gap.kind:
        raise _invalid(
            f"target_id: no {gap.kind.replace('_', ' ')} of that id in the library.", "target_id"
        )
    return Choice("item", gap.ref, "use", found.id, f"{found.slug} {found.version}")


async def _class_choice(given: Given) -> Choice:
    known = dict(await equipment.class_slugs())
    if given.target not in known:
        raise _invalid("target: no equipment class of that slug.", "target")
    return Choice("equipment_class", given.ref, "use", None, given.target)


async def _material_choice(given: Given) -> Choice:
    found = (
        None
        if given.target_id is None
        else (await inventory.materials_by_id([given.target_id])).get(given.target_id)
    )
    if found is None:
        raise _invalid("target_id: no material of that id in the material master.", "target_id")
    return Choice("material", given.ref, "use", found.id, found.code)


async def _choice(ctx: TenantContext, report: GapReport, given: Given) -> Choice:
    if given.gap_kind == "item":
        item = next((i for i in report.items if i.ref == given.ref), None)
        if item is None:
            raise _invalid(f"ref: this package pins no item {given.ref[:200]}.", "ref")
        if item.status == "identical":
            raise _invalid(f"{item.ref}: identical content is in the library already.", "ref")
        return await _item_choice(ctx, item, given, report)
    refs = {e.ref for e in report.equipment} | {m.ref for m in report.materials}
    if given.ref not in refs:
        noun = given.gap_kind.replace("_", " ")
        raise _invalid(f"ref: this package uses no {noun} {given.ref[:200]}.", "ref")
    if given.gap_kind == "equipment_class":
        return await _class_choice(given)
    return await _material_choice(given)


async def choose(
    settings: Settings, ctx: TenantContext, package_id: UUID, given: Given
) -> GapReport:
    """Save the receiver's choice for one gap; returns the report with it."""
    _checked_shape(given)
    async with read_view(ctx):
        await authorize(ctx, "transfer", "import")
        row = await gaps.analysable(package_id)
    contents = await gaps.load(settings, ctx, row)
    async with unit_of_work(ctx):
        await authorize(ctx, "transfer", "import")
        row = await gaps.analysable(package_id, lock=True)
        if row.status == "imported":
            raise Conflict("This package was imported already: its mapping no longer changes.")
        chosen = await _choice(ctx, await gaps.report_in(row, contents), given)
        await iq.save_mapping(ctx.tenant_id, package_id, chosen, gaps.person(ctx))
        if row.status == "verified":
            await q.set_status(package_id, "in_mapping")
        await audit.record(
            ctx,
            "transfer.gap_mapped",
            "transfer_package",
            package_id,
            old={"status": row.status},
            new={
                "status": "in_mapping",
                "gap_kind": chosen.gap_kind,
                "ref": chosen.gap_ref,
                "resolution": chosen.resolution,
                "target_id": None if chosen.target_id is None else str(chosen.target_id),
                "target": chosen.target,
            },
        )
        return await gaps.report_in(await q.received(package_id), contents)
