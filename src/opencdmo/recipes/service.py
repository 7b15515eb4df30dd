"""Master recipes: revisions with optimistic concurrency, structural diffs, and the Part 11
lifecycle Draft -> In Review -> Approved -> Effective -> Superseded or Retired."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from opencdmo.access.sod import check_author_may_not_approve
from opencdmo.audit import service as audit
from opencdmo.canonical import content_hash
from opencdmo.db.tx import tenant_transaction
from opencdmo.errors import Conflict, Forbidden, NotFound, ValidationFailed
from opencdmo.hub.diff import Change, diff
from opencdmo.hub.rules import range_problems
from opencdmo.recipes import content as recipe_content
from opencdmo.recipes import publication
from opencdmo.settings import Settings
from opencdmo.signatures.service import sign
from opencdmo.tenancy.context import TenantContext

TRANSITIONS = {
    "submit": ("draft", "in_review"),
    "approve": ("in_review", "approved"),
    "make_effective": ("approved", "effective"),
    "retire": ("effective", "retired"),
}


@dataclass(frozen=True)
class RecipeRecord:
    """One revision of a recipe as a signable record."""

    record_id: str
    record_version: str
    author_id: UUID | None
    content: dict[str, Any]
    record_type: str = "master_recipe"

    def signed_content(self) -> Any:
        return self.content


async def create(
    ctx: TenantContext, name: str, product: str = "", *, source_hub_version_id: UUID | None = None
) -> UUID:
    name = " ".join(name.split())
    if not name:
        raise ValidationFailed("A recipe needs a name.", details={"field": "name"})
    content = recipe_content.empty()
    async with tenant_transaction(ctx) as connection:
        recipe_id = await connection.fetchval(
            "INSERT INTO master_recipes (tenant_id, name, product, author_id, "
            "source_hub_version_id) VALUES ($1, $2, $3, $4, $5) RETURNING id",
            ctx.tenant_id,
            name,
            product,
            ctx.user_id,
            source_hub_version_id,
        )
        await _insert_revision(connection, ctx, recipe_id, 1, content, "Created")
        await audit.record(
            ctx,
            "recipe.created",
            "master_recipe",
            recipe_id,
            new={
                "name": name,
                "product": product,
                "revision": 1,
                "source_hub_version_id": source_hub_version_id,
            },
        )
    assert isinstance(recipe_id, UUID)
    return recipe_id


async def _insert_revision(
    connection: Any,
    ctx: TenantContext,
    recipe_id: UUID,
    revision: int,
    content: dict[str, Any],
    message: str,
) -> None:
    await connection.execute(
        "INSERT INTO recipe_revisions (tenant_id, recipe_id, revision, content, content_hash, "
        "message, saved_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        ctx.tenant_id,
        recipe_id,
        revision,
        json.dumps(content),
        content_hash(content),
        message,
        ctx.user_id,
    )


async def _recipe(connection: Any, recipe_id: UUID, *, lock: bool = False) -> Any:
    row = await connection.fetchrow(
        "SELECT * FROM master_recipes WHERE id = $1" + (" FOR UPDATE" if lock else ""), recipe_id
    )
    if row is None:
        raise NotFound("No such recipe.")
    return row


async def _content(connection: Any, recipe_id: UUID, revision: int) -> dict[str, Any]:
    raw = await connection.fetchval(
        "SELECT content FROM recipe_revisions WHERE recipe_id = $1 AND revision = $2",
        recipe_id,
        revision,
    )
    if raw is None:
        raise NotFound(f"No revision {revision} of this recipe.")
    return dict(json.loads(raw))


async def _library(connection: Any) -> dict[str, dict[str, Any]]:
    """The tenant library's unit operations and QC methods by library item id."""
    rows = await connection.fetch(
        "SELECT id, kind, source, content, content_hash FROM library_items "
        "WHERE kind IN ('unit_operation', 'method')"
    )
    return {
        str(r["id"]): {
            **json.loads(r["content"]),
            "kind": r["kind"],
            "library_source": r["source"],
            "library_content_hash": r["content_hash"],
        }
        for r in rows
    }


# Where each kind of entry names the library item it pinned: (slug field, version field).
_NAMES = {"step": ("unit_operation", "version"), "method": ("method", "method_version")}


def _entries(content: Any) -> list[tuple[str, dict[str, Any]]]:
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
        entries = content.get(section)
        if isinstance(entries, list):
            found += [("method", e) for e in entries if isinstance(e, dict)]
    return found


async def _stored_pins(connection: Any, hashes: set[str]) -> dict[str, Any]:
    rows = await connection.fetch(
        "SELECT content_hash, kind, slug, version, content FROM pinned_contents "
        "WHERE content_hash = ANY($1::text[])",
        sorted(hashes),
    )
    return {r["content_hash"]: r for r in rows}


async def _pin(
    connection: Any, content: Any, library: dict[str, dict[str, Any]]
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Pin every entry to the content of its library item: a new entry (no ``content_hash``)
    to the item's current content; a pinned one keeps its pin, which must be content that
    item had. Returns the pinned contents by hash, and those not kept yet."""
    entries = _entries(content)
    wanted = {e["content_hash"] for _, e in entries if isinstance(e.get("content_hash"), str)}
    for _, entry in entries:
        item = library.get(str(entry.get("library_item_id")))
        if item is not None:
            wanted.add(item["library_content_hash"])
    stored = await _stored_pins(connection, wanted)
    pinned: dict[str, dict[str, Any]] = {}
    fresh: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for kind, entry in entries:
        item = library.get(str(entry.get("library_item_id")))
        if item is None:
            continue  # the content checks report it
        slug_field, version_field = _NAMES[kind]
        if entry.get("content_hash") is None:
            entry["content_hash"] = item["library_content_hash"]
            entry[slug_field], entry[version_field] = item.get("slug"), item.get("version")
        pin = entry["content_hash"]
        if pin == item["library_content_hash"]:
            pinned[pin] = item
            if pin not in stored:
                fresh[pin] = item
        elif pin in stored and stored[pin]["slug"] == item.get("slug"):
            pinned[pin] = {**json.loads(stored[pin]["content"]), "kind": stored[pin]["kind"]}
        else:
            name = entry.get("key") or entry.get("attribute")
            problems.append(
                f"{name}: content_hash {str(pin)[:12]}... is not a content its library item "
                f"{item.get('slug')} ever had here"
            )
    if problems:
        raise ValidationFailed("; ".join(problems), details={"problems": problems})
    return pinned, fresh


async def _keep_pins(connection: Any, ctx: TenantContext, fresh: dict[str, dict[str, Any]]) -> None:
    """Keep the contents a revision pins for the first time (content-addressed)."""
    for pin, item in fresh.items():
        body = {k: v for k, v in item.items() if k not in _LIBRARY_FIELDS}
        await connection.execute(
            "INSERT INTO pinned_contents (tenant_id, content_hash, kind, slug, version, "
            "content) VALUES ($1, $2, $3, $4, $5, $6) "
            "ON CONFLICT (tenant_id, content_hash) DO NOTHING",
            ctx.tenant_id,
            pin,
            item["kind"],
            item.get("slug", ""),
            item.get("version", ""),
            json.dumps(body),
        )


_LIBRARY_FIELDS = frozenset({"library_source", "library_content_hash"})


async def _pinned_of(connection: Any, *contents: dict[str, Any]) -> dict[str, dict[str, Any]]:
    hashes = {e["content_hash"] for c in contents for _, e in _entries(c) if e.get("content_hash")}
    stored = await _stored_pins(connection, hashes)
    return {h: {**json.loads(r["content"]), "kind": r["kind"]} for h, r in stored.items()}


async def pinned_contents(ctx: TenantContext, content: dict[str, Any]) -> dict[str, Any]:
    """The contents a revision's entries pinned, by hash (for pages and the printable
    record)."""
    async with tenant_transaction(ctx) as connection:
        return await _pinned_of(connection, content)


def _expanded(
    content: dict[str, Any], library: dict[str, dict[str, Any]], pinned: dict[str, Any]
) -> dict[str, Any]:
    """Each step with the ranges and materials of the content it pins, so that a diff shows
    the range and material changes that came with another unit operation version."""
    result = copy.deepcopy(content)
    for up in result["unit_procedures"]:
        for op in up["operations"]:
            unit_operation = recipe_content.step_content(op, library, pinned) or {}
            op["ranges"] = {
                key: {f: p[f] for f in RANGE_FIELDS if p.get(f) is not None}
                for key, p in recipe_content.parameters_of(unit_operation).items()
            }
            op["materials"] = unit_operation.get("materials", [])
    return result


RANGE_FIELDS = ("unit", "default", "normal_range", "proven_acceptable_range")


async def list_recipes(ctx: TenantContext) -> list[dict[str, Any]]:
    async with tenant_transaction(ctx) as connection:
        rows = await connection.fetch(
            "SELECT id, name, product, status, current_revision, effective_revision, "
            "updated_at FROM master_recipes ORDER BY name, id"
        )
    return [dict(r) for r in rows]


async def get(ctx: TenantContext, recipe_id: UUID) -> dict[str, Any]:
    async with tenant_transaction(ctx) as connection:
        row = dict(await _recipe(connection, recipe_id))
        row["content"] = await _content(connection, recipe_id, row["current_revision"])
    return row


async def save(
    ctx: TenantContext, recipe_id: UUID, content: Any, base_revision: int, message: str = ""
) -> int:
    """Save a new revision. If someone saved since ``base_revision``, 409 with what they
    changed, and nothing is lost: the caller still holds its own content. A change after any
    signature returns the recipe to Draft (its approvals no longer match)."""
    async with tenant_transaction(ctx) as connection:
        row = await _recipe(connection, recipe_id, lock=True)
        if row["status"] == "retired":
            raise Conflict("This recipe is retired: it can no longer change.")
        if row["current_revision"] != base_revision:
            theirs = await _content(connection, recipe_id, row["current_revision"])
            base = await _content(connection, recipe_id, base_revision)
            changes = diff(recipe_content.normalised(base), recipe_content.normalised(theirs))
            raise Conflict(
                f"Revision {row['current_revision']} was saved after your revision "
                f"{base_revision}: {len(changes)} change(s). Reload, reapply yours, save again.",
                details={
                    "current_revision": row["current_revision"],
                    "their_changes": [f"{c.op} {c.path}" for c in changes],
                },
            )
        library = await _library(connection)
        content = copy.deepcopy(content)
        pinned, fresh = await _pin(connection, content, library)
        recipe_content.check(content, library, pinned)
        content = recipe_content.normalised(content)
        old = await _content(connection, recipe_id, base_revision)
        changes = diff(recipe_content.normalised(old), content)
        if not changes:
            return int(base_revision)
        revision = base_revision + 1
        await _keep_pins(connection, ctx, fresh)
        await _insert_revision(connection, ctx, recipe_id, revision, content, message)
        reset = row["status"] in ("in_review", "approved")
        status = "draft" if reset or row["status"] == "effective" else row["status"]
        await connection.execute(
            "UPDATE master_recipes SET current_revision = $2, status = $3, "
            "updated_at = clock_timestamp() WHERE id = $1",
            recipe_id,
            revision,
            status,
        )
        await audit.record(
            ctx,
            "recipe.revised",
            "master_recipe",
            recipe_id,
            old={"revision": base_revision, "status": row["status"]},
            new={
                "revision": revision,
                "status": status,
                "changes": [f"{c.op} {c.path}" for c in changes],
            },
            reason=message or None,
        )
    return revision


async def history(ctx: TenantContext, recipe_id: UUID) -> list[dict[str, Any]]:
    """Every revision, newest first, with when it was in force (``effective_from``,
    ``effective_until`` and how that ended: superseded or retired), read from the audit
    trail."""
    async with tenant_transaction(ctx) as connection:
        await _recipe(connection, recipe_id)
        rows = await connection.fetch(
            "SELECT r.revision, r.content_hash, r.message, r.saved_at, u.full_name AS saved_by "
            "FROM recipe_revisions r LEFT JOIN users u ON u.id = r.saved_by "
            "WHERE r.recipe_id = $1 ORDER BY r.revision DESC",
            recipe_id,
        )
        events = await connection.fetch(
            "SELECT action, occurred_at, new_values FROM audit_events "
            "WHERE entity_type = 'master_recipe' AND entity_id = $1 "
            "AND action IN ('recipe.make_effective', 'recipe.retire') ORDER BY seq",
            str(recipe_id),
        )
    periods: dict[int, dict[str, Any]] = {}
    in_force: int | None = None
    for event in events:
        if in_force is not None:
            ended = "retired" if event["action"] == "recipe.retire" else "superseded"
            periods[in_force].update(effective_until=event["occurred_at"], ended=ended)
            in_force = None
        if event["action"] == "recipe.make_effective":
            in_force = int(json.loads(event["new_values"])["revision"])
            periods[in_force] = {"effective_from": event["occurred_at"]}
    return [{"effective_from": None, **dict(r), **periods.get(r["revision"], {})} for r in rows]


async def compare(ctx: TenantContext, recipe_id: UUID, left: int, right: int) -> list[Change]:
    """Structural diff of two revisions, with the parameter ranges and materials of the
    unit operation content each step pinned."""
    async with tenant_transaction(ctx) as connection:
        await _recipe(connection, recipe_id)
        older = recipe_content.normalised(await _content(connection, recipe_id, left))
        newer = recipe_content.normalised(await _content(connection, recipe_id, right))
        library = await _library(connection)
        pinned = await _pinned_of(connection, older, newer)
    return diff(_expanded(older, library, pinned), _expanded(newer, library, pinned))


# --- lifecycle --------------------------------------------------------------------------------


async def _record(connection: Any, row: Any) -> RecipeRecord:
    content = await _content(connection, row["id"], row["current_revision"])
    author = await connection.fetchval(
        "SELECT saved_by FROM recipe_revisions WHERE recipe_id = $1 AND revision = $2",
        row["id"],
        row["current_revision"],
    )
    return RecipeRecord(
        str(row["id"]), str(row["current_revision"]), author or row["author_id"], content
    )


async def _signers(connection: Any, row: Any) -> list[Any]:
    return list(
        await connection.fetch(
            "SELECT signer_id, meaning FROM signatures WHERE record_type = 'master_recipe' "
            "AND record_id = $1 AND record_version = $2",
            str(row["id"]),
            str(row["current_revision"]),
        )
    )


async def _move(ctx: TenantContext, recipe_id: UUID, action: str, **extra: Any) -> None:
    expected, target = TRANSITIONS[action]
    async with tenant_transaction(ctx) as connection:
        row = await _recipe(connection, recipe_id, lock=True)
        if row["status"] != expected:
            raise Conflict(
                f"A recipe in status {row['status']} cannot be sent to {target} "
                f"(it must be {expected})."
            )
        updates = "status = $2, updated_at = clock_timestamp()"
        args: list[Any] = [recipe_id, target]
        if action == "make_effective":
            updates += ", effective_revision = current_revision, effective_at = clock_timestamp()"
        if action == "retire":
            updates += ", effective_revision = NULL, retired_reason = $3"
            args.append(extra["reason"])
        await connection.execute(f"UPDATE master_recipes SET {updates} WHERE id = $1", *args)
        if action == "make_effective" and row["effective_revision"] is not None:
            await audit.record(
                ctx,
                "recipe.superseded",
                "master_recipe",
                recipe_id,
                old={"effective_revision": row["effective_revision"]},
                new={"effective_revision": row["current_revision"]},
            )
        await audit.record(
            ctx,
            f"recipe.{action}",
            "master_recipe",
            recipe_id,
            old={"status": row["status"]},
            new={"status": target, "revision": row["current_revision"]},
            reason=extra.get("reason"),
        )


async def submit(
    settings: Settings, ctx: TenantContext, recipe_id: UUID, password: str, reason: str
) -> None:
    """The author signs 'authored' and sends the current revision to review."""
    async with tenant_transaction(ctx) as connection:
        row = await _recipe(connection, recipe_id)
        if row["status"] != "draft":
            raise Conflict(f"Only a draft can be submitted; this recipe is {row['status']}.")
        record = await _record(connection, row)
    await sign(settings, ctx, record, "authored", reason, password)
    await _move(ctx, recipe_id, "submit", reason=reason)


async def approve(
    settings: Settings,
    ctx: TenantContext,
    recipe_id: UUID,
    password: str,
    reason: str,
    *,
    approvers_required: int | None = None,
) -> bool:
    """A QA approver signs 'approved'; with enough approvals the recipe is Approved. Returns
    whether it moved. The tenant's signature flow (its manifest) sets how many approvals, and
    whether one person may sign two stages (by default not); ``approvers_required`` overrides
    the count. The author never approves, and nobody approves one revision twice."""
    from opencdmo.tenancy.service import signature_flow

    required, unique = await signature_flow(ctx)
    required = approvers_required or required
    async with tenant_transaction(ctx) as connection:
        row = await _recipe(connection, recipe_id)
        if row["status"] != "in_review":
            raise Conflict(f"Only a recipe in review can be approved; this one is {row['status']}.")
        record = await _record(connection, row)
        signers = await _signers(connection, row)
    check_author_may_not_approve(record.author_id, ctx.user_id, "approved")
    mine = {s["meaning"] for s in signers if s["signer_id"] == ctx.user_id}
    if "approved" in mine or (unique and mine):
        raise Forbidden("You have already signed this revision; another person must approve.")
    await sign(settings, ctx, record, "approved", reason, password)
    approvals = len({s["signer_id"] for s in signers if s["meaning"] == "approved"}) + 1
    if approvals >= required:
        await _move(ctx, recipe_id, "approve", reason=reason)
        return True
    return False


async def make_effective(ctx: TenantContext, recipe_id: UUID) -> None:
    await _move(ctx, recipe_id, "make_effective")


async def retire(ctx: TenantContext, recipe_id: UUID, reason: str) -> None:
    if not reason.strip():
        raise ValidationFailed("Retiring a recipe needs a reason.", details={"field": "reason"})
    await _move(ctx, recipe_id, "retire", reason=reason.strip())


async def create_from_hub(
    ctx: TenantContext, hub_item_id: UUID, version: str | None = None
) -> UUID:
    """A master recipe from a HUB recipe, in one transaction: the recipe and its closure are
    installed (the recipe is forked, keeping its lineage), every pinned unit operation and
    QC method is referenced at exactly its pinned version (forked at that version when the
    library holds another), and the specification, sampling points and release
    specifications come along."""
    from opencdmo.hub import library

    async with tenant_transaction(ctx) as connection:
        chosen = await connection.fetchrow(
            "SELECT v.id, v.version, v.content, i.kind, i.name FROM hub_versions v "
            "JOIN hub_items i ON i.id = v.item_id WHERE v.item_id = $1 "
            "AND ($2::text IS NULL OR v.version = $2) "
            "AND ($2::text IS NOT NULL OR v.yanked_at IS NULL) "
            "ORDER BY v.major DESC, v.minor DESC, v.patch DESC LIMIT 1",
            hub_item_id,
            version,
        )
        if chosen is None or chosen["kind"] != "recipe":
            raise NotFound("No such HUB recipe.")
        hub_recipe = json.loads(chosen["content"])
        installed = await connection.fetchval(
            "SELECT id FROM library_items WHERE hub_item_id = $1 AND source = 'installed'",
            hub_item_id,
        )
        if installed is None:
            await library.install(ctx, hub_item_id, chosen["version"])
        await library.fork(ctx, hub_item_id, chosen["version"])
        slots = await _pinned_slots(connection, ctx, hub_recipe)
        source = f"{hub_recipe['slug']} {chosen['version']}"
        recipe_id = await create(
            ctx,
            hub_recipe["name"],
            hub_recipe.get("product", ""),
            source_hub_version_id=chosen["id"],
        )
        await save(
            ctx, recipe_id, _designer_content(hub_recipe, slots, source), 1, f"From HUB {source}"
        )
    return recipe_id


def _pins(hub_recipe: dict[str, Any]) -> set[tuple[str, str, str]]:
    pins = {
        ("unit_operation", op["unit_operation"], op["version"])
        for up in hub_recipe["unit_procedures"]
        for op in up["operations"]
    }
    for entry in [
        *hub_recipe.get("sampling_points", []),
        *hub_recipe.get("release_specifications", []),
    ]:
        pins.add(("method", entry["method"], entry["method_version"]))
    return pins


async def hub_item_id(ctx: TenantContext, publisher_id: UUID | None, slug: str) -> UUID | None:
    """A HUB recipe visible to the tenant, by publisher and slug."""
    async with tenant_transaction(ctx) as connection:
        found = await connection.fetchval(
            "SELECT id FROM hub_items WHERE kind = 'recipe' AND publisher_id = $1 AND slug = $2",
            publisher_id,
            slug,
        )
    assert found is None or isinstance(found, UUID)
    return found


async def _pinned_slots(
    connection: Any, ctx: TenantContext, hub_recipe: dict[str, Any]
) -> dict[tuple[str, str, str], str]:
    """(kind, slug, version) -> library item id, forking a pinned version the library lacks."""
    from opencdmo.hub import library

    rows = await connection.fetch(
        "SELECT id, kind, slug, version, hub_item_id FROM library_items "
        "WHERE kind IN ('unit_operation', 'method') ORDER BY source DESC, created_at"
    )
    items: dict[tuple[str, str, str], str] = {}
    hub_ids: dict[tuple[str, str], UUID] = {}
    for r in rows:  # installed copies first, then the oldest fork
        items.setdefault((r["kind"], r["slug"], r["version"]), str(r["id"]))
        hub_ids.setdefault((r["kind"], r["slug"]), r["hub_item_id"])
    for kind, slug, version in sorted(_pins(hub_recipe)):
        if (kind, slug, version) not in items:
            forked = await library.fork(ctx, hub_ids[(kind, slug)], version)
            items[(kind, slug, version)] = str(forked)
    return items


def _designer_content(
    hub_recipe: dict[str, Any], slots: dict[tuple[str, str, str], str], source: str
) -> dict[str, Any]:
    procedures = []
    for up in hub_recipe["unit_procedures"]:
        operations = []
        for op in up["operations"]:
            overrides = dict(op.get("parameter_overrides") or {})
            operations.append(
                {
                    "key": op["key"],
                    "library_item_id": slots[
                        ("unit_operation", op["unit_operation"], op["version"])
                    ],
                    "unit_operation": op["unit_operation"],
                    "version": op["version"],
                    "parameters": overrides,
                    "acknowledged": dict.fromkeys(overrides, f"value from HUB recipe {source}"),
                    "equipment_class": None,
                    "notes": op.get("note", ""),
                }
            )
        procedures.append({"key": up["key"], "name": up["name"], "operations": operations})
    return {
        "unit_procedures": procedures,
        "formulas": [],
        "specification": {
            "modality": hub_recipe.get("modality"),
            "batch_size": hub_recipe.get("batch_size"),
        },
        "sampling_points": [
            {
                "key": point["key"],
                "after_operation": point["after_operation"],
                "library_item_id": slots[("method", point["method"], point["method_version"])],
                "method": point["method"],
                "method_version": point["method_version"],
                "sample_volume": point["sample_volume"],
                "note": point.get("note", ""),
            }
            for point in hub_recipe.get("sampling_points", [])
        ],
        "release_specifications": [
            {
                **{
                    k: spec[k]
                    for k in ("attribute", "acceptance_criterion", "limits", "unit")
                    if k in spec
                },
                "library_item_id": slots[("method", spec["method"], spec["method_version"])],
                "method": spec["method"],
                "method_version": spec["method_version"],
            }
            for spec in hub_recipe.get("release_specifications", [])
        ],
    }


# --- publication to the HUB -----------------------------------------------------------------


def _library_ids(content: dict[str, Any]) -> list[str]:
    ids = [op["library_item_id"] for up in content["unit_procedures"] for op in up["operations"]]
    ids += [p["library_item_id"] for p in content.get("sampling_points") or []]
    ids += [r["library_item_id"] for r in content.get("release_specifications") or []]
    return sorted(set(ids))


def _unversioned(content: dict[str, Any]) -> str:
    return content_hash({k: v for k, v in content.items() if k not in ("version", "changelog")})


async def _hub_refs(
    connection: Any, content: dict[str, Any]
) -> tuple[dict[str, publication.Ref], dict[tuple[str, str, str], UUID]]:
    """What each library item of the content stands for on the HUB, and the HUB version id
    each (kind, slug, version) must resolve to."""
    rows = await connection.fetch(
        "SELECT l.id, l.kind, l.source, l.slug, l.version, l.content, l.content_hash, "
        "l.hub_version_id, l.published_item_id, v.content_hash AS origin_hash "
        "FROM library_items l JOIN hub_versions v ON v.id = l.hub_version_id "
        "WHERE l.id = ANY($1::uuid[])",
        _library_ids(content),
    )
    refs: dict[str, publication.Ref] = {}
    expected: dict[tuple[str, str, str], UUID] = {}
    for row in rows:
        if row["source"] == "installed" or row["content_hash"] == row["origin_hash"]:
            refs[str(row["id"])] = (row["slug"], row["version"])
            expected[(row["kind"], row["slug"], row["version"])] = row["hub_version_id"]
            continue
        fork = _unversioned(json.loads(row["content"]))
        published = [
            v
            for v in await connection.fetch(
                "SELECT id, version, content FROM hub_versions WHERE item_id = $1",
                row["published_item_id"],
            )
            if _unversioned(json.loads(v["content"])) == fork
        ]
        if published:
            refs[str(row["id"])] = (row["slug"], published[0]["version"])
            expected[(row["kind"], row["slug"], published[0]["version"])] = published[0]["id"]
        else:
            refs[str(row["id"])] = (
                f"it uses the edited fork of {row['kind'].replace('_', ' ')} {row['slug']}, "
                "which is not published in its current revision: publish the fork first"
            )
    return refs, expected


async def publish_to_hub(
    settings: Settings,
    ctx: TenantContext,
    recipe_id: UUID,
    listing: publication.Listing,
    password: str,
    reason: str,
) -> UUID:
    """Publish the effective revision as the tenant's HUB recipe: mapped and checked (schema,
    ranges, dependencies visible to the audience), signed "approved for publication" by
    someone other than the revision's author, then published with its lineage. Returns the
    HUB item id."""
    from opencdmo.hub import service as hub
    from opencdmo.hub.content import Reference, validate

    async with tenant_transaction(ctx) as connection:
        row = await _recipe(connection, recipe_id)
        if row["effective_revision"] is None:
            raise Conflict(
                f"Only an effective recipe is published; this one is {row['status']} "
                "with no effective revision."
            )
        effective = row["effective_revision"]
        content = await _content(connection, recipe_id, effective)
        author = await connection.fetchval(
            "SELECT saved_by FROM recipe_revisions WHERE recipe_id = $1 AND revision = $2",
            recipe_id,
            effective,
        )
        refs, expected = await _hub_refs(connection, content)
        changed = recipe_content.stale(content, await _library(connection))
    if changed:
        raise ValidationFailed(
            "The effective revision pins unit operation or method content that its library "
            "items no longer hold; adopt the library's versions, approve the revision and "
            "make it effective before publishing.",
            details={"library_item_ids": sorted(changed)},
        )
    if not publication.SLUG.match(listing.slug):
        raise ValidationFailed(
            f"'{listing.slug}' is not a HUB slug: lowercase letters, digits and single hyphens.",
            details={"field": "slug"},
        )
    data = publication.document(dict(row), content, refs, listing, [ctx.name])
    doc = validate(data, f"recipe {listing.slug} {listing.version}")
    problems = range_problems(data)
    if problems:
        raise ValidationFailed("; ".join(problems), details={"problems": problems})
    await hub.check_publishable(ctx, doc, listing.visibility)
    async with tenant_transaction(ctx) as connection:
        for (kind, slug, version), version_id in sorted(expected.items()):
            resolved = await hub.resolve(
                connection, ctx, Reference(kind, slug, version), listing.visibility
            )
            if resolved != version_id:
                raise Conflict(
                    f"{kind.replace('_', ' ')} {slug} {version} would resolve to another "
                    "publication with the same slug and version than the one in this "
                    "recipe; give your own publication another version.",
                    details={"reference": f"{kind} {slug} {version}"},
                )
    record = RecipeRecord(str(recipe_id), str(effective), author or row["author_id"], content)
    signature = await sign(settings, ctx, record, "approved for publication", reason, password)
    async with tenant_transaction(ctx) as connection:
        published = await hub.publish(
            ctx, doc, visibility=listing.visibility, forked_from=row["source_hub_version_id"]
        )
        await connection.execute(
            "UPDATE master_recipes SET published_item_id = $2 WHERE id = $1",
            recipe_id,
            published.item_id,
        )
        await audit.record(
            ctx,
            "recipe.published",
            "master_recipe",
            recipe_id,
            new={
                "hub_item_id": published.item_id,
                "hub_version_id": published.version_id,
                "slug": doc.slug,
                "version": doc.version,
                "content_hash": doc.hash,
                "revision": effective,
                "visibility": listing.visibility,
                "signature_id": signature.id,
            },
            reason=reason,
        )
    return published.item_id


async def publications(ctx: TenantContext, recipe_id: UUID) -> list[dict[str, Any]]:
    """The HUB versions this recipe was published as, newest first."""
    async with tenant_transaction(ctx) as connection:
        row = await _recipe(connection, recipe_id)
        if row["published_item_id"] is None:
            return []
        rows = await connection.fetch(
            "SELECT i.id AS item_id, i.slug, i.visibility, v.version, v.published_at "
            "FROM hub_items i JOIN hub_versions v ON v.item_id = i.id WHERE i.id = $1 "
            "ORDER BY v.major DESC, v.minor DESC, v.patch DESC",
            row["published_item_id"],
        )
    return [dict(r) for r in rows]


async def library(ctx: TenantContext) -> dict[str, dict[str, Any]]:
    """The tenant library's unit operations and QC methods by library item id."""
    async with tenant_transaction(ctx) as connection:
        return await _library(connection)
