"""Storage locations and container moves: the tenant's storage tree (``placing`` holds its
rules), creating and retiring locations, moving containers, what is stored where, each
container's history of moves, and the labels of containers (printed or still to print).

Every command is one unit of work with its audit events; the rows it changes are locked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from opencdmo import units
from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.db.tx import read_view, unit_of_work
from opencdmo.errors import Conflict, Forbidden, NotFound, ValidationFailed
from opencdmo.fields import check_name, check_reason, folded_text
from opencdmo.inventory import location_queries as lq
from opencdmo.inventory import placing, queries
from opencdmo.inventory.labels import ContainerLabel
from opencdmo.inventory.location_queries import (
    LocationRow,
    MoveRow,
    NewLocation,
    Node,
    Place,
    StoredRow,
)
from opencdmo.inventory.service import REASON_MAX, status_on, today
from opencdmo.scope import TenantContext
from opencdmo.tenancy import service as tenancy

CODE_MAX = 64
NAME_MAX = 200
CONDITION_MAX = 200


def _actor(ctx: TenantContext) -> UUID:
    if ctx.user_id is None:
        raise Forbidden("Only a signed-in person handles materials.")
    return ctx.user_id


def _text(value: str, field: str, label: str, limit: int, *, required: bool) -> str:
    """One line of text, spaces folded ("" when blank and not ``required``)."""
    if not folded_text(value, field, label, limit=limit):
        if required:
            raise ValidationFailed(f"{label} is required.", details={"field": field})
        return ""
    text = check_name(value, field, label)
    if len(text) > limit:
        raise ValidationFailed(f"{label} has at most {limit} characters.", details={"field": field})
    return text


def _why(value: str, *, required: bool) -> str:
    return check_reason(value, limit=REASON_MAX, required=required)


def _natural(text: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key that puts A2 before A10."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part.casefold())
        for part in re.split(r"(\d+)", text)
        if part
    )


# --- the tree ---------------------------------------------------------------------------------


async def create_location(
    ctx: TenantContext,
    kind: str,
    code: str = "",
    name: str = "",
    storage_condition: str = "",
    parent_id: UUID | None = None,
    site: str | None = None,
) -> LocationRow:
    """A location in the tree: a site's root (``site``: the site's code; one per site), or a
    location in ``parent_id`` of a kind that may stand there, its code unique among its
    siblings (case aside). Its name is "<Kind> <code>" when not given (a position: its code)."""
    code = _text(code, "code", "The code", CODE_MAX, required=kind != "site")
    name = _text(name, "name", "The name", NAME_MAX, required=False)
    condition = _text(
        storage_condition,
        "storage_condition",
        "The storage condition",
        CONDITION_MAX,
        required=False,
    )
    async with unit_of_work(ctx):
        await authorize(ctx, "materials", "manage")
        if kind == "site" or parent_id is None:
            new = await _site_root(kind, code, name, condition, parent_id, site, ctx)
        else:
            parent = await lq.location(parent_id, lock=True)
            new = await _child(parent, kind, code, name, condition)
        try:
            location_id = await lq.insert_location(ctx.tenant_id, new, _actor(ctx))
        except asyncpg.UniqueViolationError:
            # Two people adding the first location of one site at once (children queue on
            # their parent's lock and never get here).
            raise Conflict("That location was added a moment ago by someone else.") from None
        place = (await lq.places([location_id]))[location_id]
        await audit.record(
            ctx,
            "location.created",
            "location",
            location_id,
            new={
                "kind": new.kind,
                "code": new.code,
                "name": new.name,
                "path": place.path,
                "storage_condition": new.storage_condition,
                "parent_id": str(new.parent_id) if new.parent_id else None,
            },
        )
        return await lq.location(location_id)


async def _site_root(
    kind: str,
    code: str,
    name: str,
    condition: str,
    parent_id: UUID | None,
    site: str | None,
    ctx: TenantContext,
) -> NewLocation:
    placing.check_parent(kind, None)
    if parent_id is not None:
        raise ValidationFailed(
            "A site's location is the top of its tree: it stands in nothing.",
            details={"field": "parent_id"},
        )
    found = next((s for s in await tenancy.list_sites(ctx) if s.code == site), None)
    if found is None:
        raise ValidationFailed(
            "site: give the code of one of the tenant's sites.", details={"field": "site"}
        )
    if await lq.site_root(found.id) is not None:
        raise Conflict(f"Site {found.code} has its storage location already.")
    return NewLocation(None, found.id, "site", code or found.code, name or found.name, condition)


async def _child(
    parent: LocationRow, kind: str, code: str, name: str, condition: str
) -> NewLocation:
    if parent.retired_at is not None:
        raise Conflict(f"{parent.name} is retired: nothing new goes into it.")
    placing.check_parent(kind, parent)
    taken = {c.code.casefold() for c in await lq.children(parent.id)}
    if code.casefold() in taken:
        raise Conflict(f"{parent.name} has a location {code} already.")
    default = code if kind == "position" else f"{placing.kind_name(kind).capitalize()} {code}"
    if kind == "ln2_tank" and not name:
        default = f"LN2 tank {code}"
    return NewLocation(parent.id, parent.site_id, kind, code, name or default, condition)


async def retire_location(ctx: TenantContext, location_id: UUID, reason: str) -> LocationRow:
    """Take a location out of use, saying why: only once nothing is stored in it and every
    location in it is retired."""
    reason = _why(reason, required=True)
    async with unit_of_work(ctx):
        await authorize(ctx, "materials", "manage")
        location = await lq.location(location_id, lock=True)
        place = (await lq.places([location.id]))[location.id]
        if location.retired_at is not None:
            raise Conflict(f"{place.path} is retired already.")
        if await lq.children(location.id):
            raise Conflict(f"{place.path} still has locations in use: retire them first.")
        held = await lq.held_at(location.id)
        if held:
            raise Conflict(
                f"{place.path} holds {held} container{'s' if held != 1 else ''}: move "
                f"{'them' if held != 1 else 'it'} out first."
            )
        await lq.retire(location.id)
        await audit.record(
            ctx,
            "location.retired",
            "location",
            location.id,
            old={"retired": False},
            new={"retired": True, "path": place.path},
            reason=reason,
        )
        return await lq.location(location.id)


@dataclass(frozen=True)
class TreeEntry:
    node: Node
    kind_name: str


def _ordered(nodes: list[Node], root: UUID | None = None) -> list[TreeEntry]:
    """Depth first from ``root``'s children, siblings by code in natural order (A2 before
    A10)."""
    by_parent: dict[UUID | None, list[Node]] = {}
    for node in nodes:
        by_parent.setdefault(node.location.parent_id, []).append(node)
    found: list[TreeEntry] = []

    def walk(parent: UUID | None) -> None:
        for node in sorted(by_parent.get(parent, []), key=lambda n: _natural(n.location.code)):
            found.append(TreeEntry(node, placing.kind_name(node.location.kind)))
            walk(node.location.id)

    walk(root)
    return found


async def location_tree(ctx: TenantContext) -> list[TreeEntry]:
    """Every location in use, depth first, with its path and what it holds itself."""
    async with read_view(ctx):
        await authorize(ctx, "materials", "read")
        return _ordered(await lq.tree())


# --- what is stored where ---------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """A container as a page shows it: its lot's status as shown, where it is, and a warning
    when the place keeps another storage condition than its material's."""

    row: StoredRow
    status: str
    place: Place | None
    warning: str | None


def shown_containers(
    rows: Iterable[StoredRow], places: dict[UUID, Place], ctx: TenantContext
) -> list[Stored]:
    """The containers as a page shows them (``places``: where their locations are)."""
    on = today(ctx)
    found = []
    for row in rows:
        place = places.get(row.location_id) if row.location_id else None
        warning = (
            placing.condition_warning(row.material_code, row.material_condition, place)
            if place
            else None
        )
        status = status_on(row.lot_status, row.expiry_date, on)
        found.append(Stored(row, status, place, warning))
    return found


@dataclass(frozen=True)
class LocationView:
    location: LocationRow
    place: Place
    kind_name: str
    children: list[TreeEntry]
    stored: list[Stored]
    may_hold: bool  # containers may be put here (not a site's root, not retired, a free position)
    child_kinds: tuple[str, ...]  # the kinds that may stand in it


async def get_location(ctx: TenantContext, location_id: UUID) -> LocationView:
    async with read_view(ctx):
        await authorize(ctx, "materials", "read")
        location = await lq.location(location_id)
        place = (await lq.places([location.id]))[location.id]
        nodes = await lq.child_nodes(location, place)
        rows = await lq.stored_at([location.id])
        stored = shown_containers(rows, {location.id: place}, ctx)
    may_hold = location.kind != "site" and location.retired_at is None
    if location.kind == "position" and stored:
        may_hold = False
    kinds = tuple(k for k, parents in placing.PARENTS.items() if location.kind in parents)
    return LocationView(
        location,
        place,
        placing.kind_name(location.kind),
        _ordered(nodes, location.id),
        stored,
        may_hold,
        kinds if location.retired_at is None else (),
    )


async def places_of(ctx: TenantContext, location_ids: list[UUID | None]) -> dict[UUID, Place]:
    """Where these locations are (in the read view open in the context, or one of its own)."""
    async with read_view(ctx):
        return await lq.places(location_ids)


# --- moves ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Moved:
    container: Stored  # where it is now (with a warning if its material is kept otherwise)
    from_id: UUID | None
    from_place: Place | None


async def move(
    ctx: TenantContext,
    container_ids: list[UUID],
    to_location: UUID,
    reason: str | None = None,
) -> list[Moved]:
    """Move containers to a location, one audit event each with where from and where to. A
    container of any lot may move (a rejected one to destruction); a position holds one."""
    if not container_ids:
        raise ValidationFailed("Choose the containers to move.", details={"field": "container_ids"})
    if len(container_ids) > 1000:
        raise ValidationFailed(
            "At most 1000 containers move at once.", details={"field": "container_ids"}
        )
    said = _why(reason or "", required=False) or None
    async with unit_of_work(ctx):
        await authorize(ctx, "materials", "manage")
        done = await placing.put(ctx.tenant_id, _actor(ctx), to_location, container_ids, said)
        before = await lq.places(list(done.before.values()))
        rows = await lq.stored(list(done.before))
        for row in rows:
            came = done.before[row.id]
            await audit.record(
                ctx,
                "container.moved",
                "container",
                row.id,
                old={
                    "location_id": str(came) if came else None,
                    "location": before[came].path if came else None,
                },
                new={
                    "location_id": str(done.location.id),
                    "location": done.place.path,
                    "lot_number": row.lot_number,
                    "material": row.material_code,
                    "container": row.number,
                },
                reason=said,
            )
        shown = shown_containers(rows, {done.location.id: done.place}, ctx)
    return [_moved(s, done.before[s.row.id], before) for s in shown]


def _moved(stored: Stored, came: UUID | None, places: dict[UUID, Place]) -> Moved:
    return Moved(stored, came, places.get(came) if came else None)


@dataclass(frozen=True)
class MoveView:
    move: MoveRow
    from_place: Place | None
    to_place: Place


@dataclass(frozen=True)
class ContainerView:
    container: Stored
    moves: list[MoveView]


async def get_container(ctx: TenantContext, container_id: UUID) -> ContainerView:
    """The container, where it is and every move it made (its receipt first)."""
    async with read_view(ctx):
        await authorize(ctx, "materials", "read")
        found = await lq.stored([container_id])
        if not found:
            raise NotFound("No such container.")
        history = await lq.moves([container_id])
        ids: list[UUID | None] = [found[0].location_id]
        for m in history:
            ids += [m.from_location_id, m.to_location_id]
        places = await lq.places(ids)
        (shown,) = shown_containers(found, places, ctx)
    return ContainerView(
        shown,
        [
            MoveView(
                m,
                places.get(m.from_location_id) if m.from_location_id else None,
                places[m.to_location_id],
            )
            for m in history
        ],
    )


# --- labels -----------------------------------------------------------------------------------


def _label(stored: Stored) -> ContainerLabel:
    row = stored.row
    return ContainerLabel(
        container_id=row.id,
        lot_number=row.lot_number,
        material_name=row.material_name,
        material_code=row.material_code,
        quantity=units.quantity(row.quantity, row.unit),
        expiry=row.expiry_date,
        storage=row.material_condition,
        status=stored.status,
        received=row.received_at.date(),
    )


@dataclass(frozen=True)
class Labelled:
    container: Stored
    label: ContainerLabel


async def lot_labels(ctx: TenantContext, lot_id: UUID) -> list[Labelled]:
    """The labels of the lot's containers, in their order."""
    async with read_view(ctx):
        await authorize(ctx, "materials", "read")
        await queries.lot(lot_id)
        rows = await lq.stored_of_lot(lot_id)
        shown = shown_containers(rows, await lq.places([r.location_id for r in rows]), ctx)
    return [Labelled(s, _label(s)) for s in shown]


async def container_label(ctx: TenantContext, container_id: UUID) -> Labelled:
    view = await get_container(ctx, container_id)
    return Labelled(view.container, _label(view.container))


async def labels_printed(
    ctx: TenantContext, lot_id: UUID, container_ids: list[UUID] | None = None
) -> list[int]:
    """Record that the labels of the lot's containers (those given, or all) have been printed:
    they leave the queue of containers to label. Returns the containers' numbers."""
    async with unit_of_work(ctx):
        await authorize(ctx, "materials", "manage")
        lot = await queries.lot(lot_id, lock=True)
        rows = await lq.stored_of_lot(lot_id)
        if container_ids is not None:
            wanted = set(container_ids)
            rows = [r for r in rows if r.id in wanted]
            if len(rows) != len(wanted):
                raise NotFound("No such container of this lot.")
        if not rows:
            raise ValidationFailed("The lot has no containers to label.")
        await lq.mark_printed([r.id for r in rows], _actor(ctx))
        material = await queries.material(lot.material_id)
        numbers = [r.number for r in rows]
        await audit.record(
            ctx,
            "lot.labels_printed",
            "lot",
            lot.id,
            new={"lot_number": lot.lot_number, "material": material.code, "containers": numbers},
        )
    return numbers
