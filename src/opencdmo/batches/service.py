"""Batch commands and reads: create a batch with its frozen control recipe, give it ISA-88
commands, list and read batches.

Every command owns one unit of work (``opencdmo.db.tx.unit_of_work``), authorizes the actor
it is given at the batch's site, and writes its audit event in the same transaction. The data
access is in ``opencdmo.batches.queries``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID
from zoneinfo import ZoneInfo

from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.batches import control, queries, states
from opencdmo.batches.queries import BatchFilter, BatchRow, ControlRecipeRow, NewBatch
from opencdmo.canonical import content_hash
from opencdmo.db.sql import clock
from opencdmo.db.tx import tenant_transaction, unit_of_work
from opencdmo.errors import Conflict, ValidationFailed
from opencdmo.fields import NAME_MAX, check_name, check_text
from opencdmo.recipes import service as recipes
from opencdmo.scope import TenantContext
from opencdmo.tenancy import service as tenancy
from opencdmo.tenancy.batch_numbering import (
    Parts,
    batch_number_pattern,
    counter_key,
    format_number,
)
from opencdmo.tenancy.queries.tenants import SiteRow

COI_FIELDS = ("donor_id", "coi_label", "apheresis_id")
COI_NAMES = {"donor_id": "donor id", "coi_label": "COI label", "apheresis_id": "apheresis id"}


@dataclass(frozen=True)
class ChainOfIdentity:
    """The patient or donor identifiers of an autologous batch (any may be absent for other
    batches)."""

    donor_id: str | None = None
    coi_label: str | None = None
    apheresis_id: str | None = None


@dataclass(frozen=True)
class CreatedBatch:
    id: UUID
    number: str
    control_recipe_hash: str


@dataclass(frozen=True)
class BatchSummary:
    """A batch as a list shows it: the row, its recipe's name and its site's code."""

    batch: BatchRow
    recipe_name: str
    site_code: str


@dataclass(frozen=True)
class BatchView(BatchSummary):
    """A batch with its control recipe and the commands its state allows."""

    control_recipe: ControlRecipeRow
    commands: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BatchPage:
    rows: list[BatchSummary]
    total: int


async def _site(ctx: TenantContext, code: str) -> SiteRow:
    sites = await tenancy.list_sites(ctx)
    for site in sites:
        if site.code == code:
            return site
    known = ", ".join(s.code for s in sites) or "none"
    raise ValidationFailed(
        f"There is no site '{code[:40]}' (the sites: {known}).", details={"field": "site"}
    )


def _chain(document: dict[str, object], given: ChainOfIdentity) -> ChainOfIdentity:
    """The identifiers as stored (blank ones as None); all three are required for an
    autologous batch."""
    values = {
        f: check_text((getattr(given, f) or "").strip(), f, limit=NAME_MAX) for f in COI_FIELDS
    }
    chain = ChainOfIdentity(**{f: v or None for f, v in values.items()})
    missing = [COI_NAMES[f] for f in COI_FIELDS if getattr(chain, f) is None]
    if missing and control.is_autologous(document):
        raise ValidationFailed(
            "This recipe makes an autologous product: the chain of identity needs the "
            + ", ".join(missing)
            + ".",
            details={"field": "chain_of_identity", "missing": missing},
        )
    return chain


async def _number(ctx: TenantContext, site: SiteRow) -> str:
    """The next number of the tenant's pattern at this site (the counter row stays locked
    until the unit of work ends: two creates at once get two consecutive numbers)."""
    pattern = await batch_number_pattern(ctx)
    day = (await clock()).astimezone(ZoneInfo(site.time_zone)).date()
    seq = await queries.next_counter(ctx.tenant_id, counter_key(pattern, site.code, day))
    number = format_number(pattern, Parts(site.code, day, seq))
    if await queries.number_taken(number):
        raise Conflict(
            f"The batch number {number} is taken already: the tenant's batch number pattern "
            "gives numbers that repeat (give it {yy} or {yyyy}, or a prefix it had not).",
            details={"number": number},
        )
    return number


async def create_batch(
    ctx: TenantContext,
    recipe_id: UUID,
    formula: str,
    site_code: str,
    planned_start: datetime,
    sponsor: str,
    chain_of_identity: ChainOfIdentity | None = None,
) -> CreatedBatch:
    """A batch of the recipe's effective revision with one of its formulas, at a site, for a
    sponsor; its control recipe frozen and hashed in the same transaction."""
    site = await _site(ctx, site_code)
    await authorize(ctx, "batches", "create", site_id=site.id)
    sponsor = check_name(sponsor, "sponsor", "The sponsor")
    if planned_start.tzinfo is None:
        raise ValidationFailed(
            "planned_start: give a time zone (e.g. 2026-05-04T08:00:00+02:00).",
            details={"field": "planned_start"},
        )
    async with unit_of_work(ctx):
        source = await recipes.in_force(ctx, recipe_id)
        document = control.freeze(source, formula)
        chain = _chain(document, chain_of_identity or ChainOfIdentity())
        number = await _number(ctx, site)
        new = NewBatch(
            number,
            recipe_id,
            source.revision,
            formula,
            site.id,
            sponsor,
            planned_start,
            chain.donor_id,
            chain.coi_label,
            chain.apheresis_id,
            ctx.user_id,
        )
        batch_id = await queries.insert_batch(ctx.tenant_id, new)
        hashed = content_hash(document)
        await queries.insert_control_recipe(ctx.tenant_id, batch_id, document, hashed)
        await audit.record(
            ctx,
            "batch.created",
            "batch",
            batch_id,
            new={
                "number": number,
                "recipe_id": str(recipe_id),
                "recipe": source.recipe.name,
                "revision": source.revision,
                "formula": formula,
                "site": site.code,
                "sponsor": sponsor,
                "planned_start": planned_start.isoformat(),
                **{f: getattr(chain, f) for f in COI_FIELDS if getattr(chain, f)},
                "control_recipe_hash": hashed,
            },
        )
    return CreatedBatch(batch_id, number, hashed)


async def command_batch(
    ctx: TenantContext, batch_id: UUID, command: str, reason: str = ""
) -> BatchRow:
    """Give the batch an ISA-88 command: the batch row locked, the state checked under the
    lock (a 409 naming the state and the states the command needs), moved and audited."""
    step = states.command_named(command)
    reason = check_text(reason, "reason", "The reason").strip()
    if step.needs_reason and not reason:
        raise ValidationFailed(
            f"'{command}' needs a reason.", details={"field": "reason", "command": command}
        )
    async with unit_of_work(ctx):
        row = await queries.batch(batch_id, lock=True)
        await authorize(ctx, "batches", "command", site_id=row.site_id)
        target = states.transition(row.status, command)
        await queries.set_status(batch_id, target)
        await audit.record(
            ctx,
            f"batch.{command}",
            "batch",
            batch_id,
            old={"status": row.status},
            new={"status": target, "number": row.number},
            reason=reason or None,
        )
    return await get_batch_row(ctx, batch_id)


async def get_batch_row(ctx: TenantContext, batch_id: UUID) -> BatchRow:
    async with tenant_transaction(ctx):
        return await queries.batch(batch_id)


async def _names(ctx: TenantContext) -> tuple[dict[UUID, str], dict[UUID, str]]:
    """Recipe names and site codes by id."""
    recipe_names = {r.id: r.name for r in await recipes.list_recipes(ctx)}
    site_codes = {s.id: s.code for s in await tenancy.list_sites(ctx)}
    return recipe_names, site_codes


async def get_batch(ctx: TenantContext, batch_id: UUID) -> BatchView:
    """The batch with its control recipe (read in the whole tenant or at the batch's site);
    another tenant's is the same 404 as none."""
    async with tenant_transaction(ctx):
        row = await queries.batch(batch_id)
        await authorize(ctx, "batches", "read", site_id=row.site_id)
        frozen = await queries.control_recipe(batch_id)
        recipe_names, site_codes = await _names(ctx)
    return BatchView(
        row,
        recipe_names.get(row.recipe_id, ""),
        site_codes.get(row.site_id, ""),
        frozen,
        states.allowed(row.status),
    )


async def list_batches(ctx: TenantContext, flt: BatchFilter) -> BatchPage:
    """One page of the tenant's batches matching the filter, latest planned start first."""
    await authorize(ctx, "batches", "read")
    if flt.status is not None and flt.status not in states.STATES:
        raise ValidationFailed(
            f"status: '{flt.status[:40]}' is not a batch state (the states: "
            f"{', '.join(states.STATES)}).",
            details={"field": "status"},
        )
    async with tenant_transaction(ctx):
        rows, total = await queries.batches(flt)
        recipe_names, site_codes = await _names(ctx)
    return BatchPage(
        [
            BatchSummary(r, recipe_names.get(r.recipe_id, ""), site_codes.get(r.site_id, ""))
            for r in rows
        ],
        total,
    )


async def site_id(ctx: TenantContext, code: str) -> UUID:
    """The id of the site with this code (a 422 naming the sites otherwise), for filters."""
    return (await _site(ctx, code)).id


async def recipe_choices(ctx: TenantContext) -> list[tuple[UUID, str]]:
    """(id, name) of the tenant's recipes, for the list's recipe filter."""
    return [(r.id, r.name) for r in await recipes.list_recipes(ctx)]


async def site_codes(ctx: TenantContext) -> list[str]:
    return [s.code for s in await tenancy.list_sites(ctx)]
