"""Importing a received package (``transfer:import``): when every gap is resolved, one unit of
work creates a DRAFT master recipe from the package's revision with the mapping applied (each
pin pointing at the tenant's own library item), records its lineage (the sender, package,
recipe, revision and content hash, the sender's content, the mapping as applied), sets the
package ``imported`` and audits it. A later package of a sender recipe imported before is a
new revision of the recipe it became. The draft then goes through the tenant's own approval
lifecycle.

Applying the mapping to the sender's content: a step, sampling point or release
specification keeps its pin when it maps onto a library item with identical content; mapped
onto another content (another version, an item installed from the HUB), it is pinned afresh
to that item's content and checked against it like any saved revision. A mapped equipment
class replaces the step's class.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.db.tx import read_view, unit_of_work
from opencdmo.errors import Conflict
from opencdmo.hub import library_queries as copies
from opencdmo.recipes import queries as recipes
from opencdmo.recipes.service._pins import entries
from opencdmo.recipes.service._revisions import create_in, save_in
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.transfer import gaps
from opencdmo.transfer import import_queries as iq
from opencdmo.transfer import queries as q
from opencdmo.transfer.gaps import GapReport
from opencdmo.transfer.import_queries import NewImport


@dataclass(frozen=True)
class Imported:
    recipe_id: UUID
    revision: int
    new_recipe: bool


async def mapped_content(report: GapReport) -> dict[str, Any]:
    """The sender's content with the mapping applied (in the open transaction)."""
    content: dict[str, Any] = copy.deepcopy(report.contents.revision["content"])
    refs = {
        i["content_hash"]: f"{i['kind']}:{i['slug']}@{i['version']}" for i in report.contents.items
    }
    items = {i.ref: i for i in report.items}
    for _, entry in entries(content):
        item = items.get(refs.get(entry.get("content_hash"), ""))
        if item is None:
            continue  # pins nothing the package holds: the checks on save name it
        target = item.mapping.target_id if item.mapping is not None else item.library_id
        entry["library_item_id"] = str(target)
        chosen = await copies.stored_copy(target, lock=False) if target else None
        if chosen is None or chosen.content_hash != item.content_hash:
            entry.pop("content_hash", None)  # pinned afresh to the item's content
    classes = {e.slug: e.mapping.target for e in report.equipment if e.mapping is not None}
    for kind, entry in entries(content):
        if kind == "step" and entry.get("equipment_class") in classes:
            entry["equipment_class"] = classes[entry["equipment_class"]]
    return content


def _mapping(report: GapReport) -> list[dict[str, Any]]:
    return [g.mapping.applied() for g in report.gaps() if g.mapping is not None]


async def _into_recipe(ctx: TenantContext, report: GapReport, content: dict[str, Any]) -> Imported:
    revision = report.contents.revision
    message = (
        f"Imported from {report.sender}: {revision['name']} revision {revision['revision']} "
        f"(package {report.package.id})"
    )
    if report.previous is not None:
        recipe_id = report.previous.recipe_id
        row = await recipes.recipe(recipe_id, lock=True)
        saved = await save_in(ctx, recipe_id, content, row.current_revision, message)
        return Imported(recipe_id, saved, False)
    recipe_id = await create_in(ctx, revision["name"], revision["product"])
    return Imported(recipe_id, await save_in(ctx, recipe_id, content, 1, message), True)


async def import_package(settings: Settings, ctx: TenantContext, package_id: UUID) -> Imported:
    """Import the package as a draft (or a new revision), see the module."""
    async with read_view(ctx):
        await authorize(ctx, "transfer", "import")
        row = await gaps.analysable(package_id)
    contents = await gaps.load(settings, ctx, row)
    async with unit_of_work(ctx):
        await authorize(ctx, "transfer", "import")
        row = await gaps.analysable(package_id, lock=True)
        if row.status == "imported":
            raise Conflict("This package was imported already.")
        report = await gaps.report_in(row, contents)
        open_gaps = report.unresolved
        if open_gaps:
            raise Conflict(
                f"{len(open_gaps)} gap(s) are not resolved yet: {', '.join(open_gaps)}.",
                details={"unresolved": open_gaps},
            )
        made = await _into_recipe(ctx, report, await mapped_content(report))
        sender, revision = contents.manifest.sender, contents.revision
        mapping = _mapping(report)
        await iq.insert_import(
            ctx.tenant_id,
            NewImport(
                package_id,
                made.recipe_id,
                made.revision,
                UUID(sender.tenant_id),
                sender.name,
                UUID(revision["recipe_id"]),
                revision["revision"],
                revision["content_hash"],
                revision["content"],
                mapping,
            ),
            gaps.person(ctx),
        )
        await q.set_status(package_id, "imported")
        await audit.record(
            ctx,
            "transfer.package_imported",
            "transfer_package",
            package_id,
            old={"status": row.status},
            new={
                "status": "imported",
                "recipe_id": str(made.recipe_id),
                "revision": made.revision,
                "new_recipe": made.new_recipe,
                "sender_tenant_id": sender.tenant_id,
                "sender": sender.name,
                "sender_recipe_id": revision["recipe_id"],
                "sender_revision": revision["revision"],
                "content_hash": revision["content_hash"],
                "mapping": mapping,
                "changes": report.changes,
            },
        )
        return made
