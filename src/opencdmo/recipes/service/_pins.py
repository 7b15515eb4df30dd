"""Pinned content: every step, sampling point and release specification of a revision pins
the content of its library item by hash, kept in ``pinned_contents`` (append-only), so that
a library upgrade or a fork edit never changes what a saved revision means."""

from __future__ import annotations

import copy
from typing import Any

from opencdmo.db.tx import tenant_transaction
from opencdmo.errors import ValidationFailed
from opencdmo.hub import library_queries as copies
from opencdmo.hub.library_queries import TypedCopy
from opencdmo.hub.model import Method, UnitOperation, encode, encode_part
from opencdmo.recipes import content as recipe_content
from opencdmo.recipes import queries
from opencdmo.recipes.content import Library, LibraryEntry, Pinned
from opencdmo.scope import TenantContext

# Where each kind of entry names the library item it pinned: (slug field, version field).
_NAMES = {"step": ("unit_operation", "version"), "method": ("method", "method_version")}
RANGE_FIELDS = ("unit", "default", "normal_range", "proven_acceptable_range")


async def library(ctx: TenantContext) -> Library:
    """The tenant library's unit operations and QC methods by library item id, their content
    decoded once here."""
    async with tenant_transaction(ctx):
        found = await copies.typed_copies("unit_operation", "method")
    return {str(item.id): _entry(item) for item in found}


async def names(ctx: TenantContext, *kinds: str) -> dict[str, str]:
    """The names of the library's items of those kinds by slug (materials and equipment
    classes, as a record shows them)."""
    async with tenant_transaction(ctx):
        found = await copies.typed_copies(*kinds)
    return {item.slug: item.content.name for item in found}


def _entry(item: TypedCopy) -> LibraryEntry:
    if not isinstance(item.content, UnitOperation | Method):
        raise ValueError(f"library item {item.id}: stored content is a {item.content.kind}")
    return LibraryEntry(str(item.id), item.source, item.content_hash, item.content)


def entries(content: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every entry that refers to a library item, with its kind (malformed parts skipped:
    the content checks name them)."""
    if not isinstance(content, dict):
        return []
    found: list[tuple[str, dict[str, Any]]] = []
    procedures = content.get("unit_procedures")
    for up in procedures if isinstance(procedures, list) else []:
        operations = up.get("operations") if isinstance(up, dict) else None
        found += [("step", op) for op in operations or [] if isinstance(op, dict)]
    for section in ("sampling_points", "release_specifications"):
        listed = content.get(section)
        if isinstance(listed, list):
            found += [("method", e) for e in listed if isinstance(e, dict)]
    return found


async def pin(content: Any, lib: Library) -> tuple[Pinned, Library]:
    """Pin every entry to the content of its library item: a new entry (no ``content_hash``)
    to the item's current content; a pinned one keeps its pin, which must be content that
    item had. Returns the pinned contents by hash, and the library entries whose content is
    not kept yet, by hash."""
    found = entries(content)
    wanted = {e["content_hash"] for _, e in found if isinstance(e.get("content_hash"), str)}
    for _, entry in found:
        item = lib.get(str(entry.get("library_item_id")))
        if item is not None:
            wanted.add(item.content_hash)
    stored = await queries.stored_pins(wanted)
    pinned: Pinned = {}
    fresh: Library = {}
    problems: list[str] = []
    for kind, entry in found:
        item = lib.get(str(entry.get("library_item_id")))
        if item is None:
            continue  # the content checks report it
        slug_field, version_field = _NAMES[kind]
        if entry.get("content_hash") is None:
            entry["content_hash"] = item.content_hash
            entry[slug_field], entry[version_field] = item.content.slug, item.content.version
        hashed = entry["content_hash"]
        if hashed == item.content_hash:
            pinned[hashed] = item.content
            if hashed not in stored:
                fresh[hashed] = item
        elif (
            isinstance(hashed, str)
            and hashed in stored
            and stored[hashed].slug == item.content.slug
        ):
            pinned[hashed] = stored[hashed].content
        else:
            name = entry.get("key") or entry.get("attribute")
            problems.append(
                f"{name}: content_hash {str(hashed)[:12]}... is not a content its library item "
                f"{item.content.slug} ever had here"
            )
    if problems:
        raise ValidationFailed("; ".join(problems), details={"problems": problems})
    return pinned, fresh


async def keep(ctx: TenantContext, fresh: Library) -> None:
    """Keep the contents a revision pins for the first time (content-addressed: the stored
    document is the library's, so its hash is the pin)."""
    for hashed, item in fresh.items():
        content = item.content
        await queries.keep_pin(
            ctx.tenant_id, hashed, content.kind, content.slug, content.version, encode(content)
        )


async def pinned_of(*contents: dict[str, Any]) -> Pinned:
    hashes = {
        e["content_hash"]
        for c in contents
        for _, e in entries(c)
        if isinstance(e.get("content_hash"), str)
    }
    stored = await queries.stored_pins(hashes)
    return {h: p.content for h, p in stored.items()}


async def pinned_contents(ctx: TenantContext, content: dict[str, Any]) -> Pinned:
    """The contents a revision's entries pinned, by hash (for pages and the printable
    record)."""
    async with tenant_transaction(ctx):
        return await pinned_of(content)


def expanded(content: dict[str, Any], lib: Library, pinned: Pinned) -> dict[str, Any]:
    """Each step with the ranges and materials of the content it pins, so that a diff shows
    the range and material changes that came with another unit operation version."""
    result = copy.deepcopy(content)
    for up in result["unit_procedures"]:
        for op in up["operations"]:
            unit_operation = recipe_content.step_content(op, lib, pinned)
            op["ranges"] = {
                key: _ranges(encode_part(p))
                for key, p in recipe_content.parameters_of(unit_operation).items()
            }
            op["materials"] = [
                encode_part(line) for line in (unit_operation.materials if unit_operation else ())
            ]
    return result


def _ranges(parameter: dict[str, object]) -> dict[str, object]:
    return {f: parameter[f] for f in RANGE_FIELDS if f in parameter}
