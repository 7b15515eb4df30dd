"""Batch commands and reads: create a batch with its frozen control recipe, give it ISA-88
commands, list and read batches.

Every command owns one unit of work (``opencdmo.db.tx.unit_of_work``), authorizes the actor
it is given at the batch's site, and writes its audit event in the same transaction. The data
access is in ``opencdmo.batches.queries``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from opencdmo.access.service import authorize, can
from opencdmo.audit import service as audit
from opencdmo.batches import (
    control,
    entries,
    entry_queries,
    equipment_release,
    equipment_values,
    exceptions,
    execution,
    queries,
    reservations,
    states,
)
from opencdmo.batches import execution_queries as xq
from opencdmo.batches.entry_queries import EntryRow, NewEntry
from opencdmo.batches.queries import BatchFilter, BatchRow, ControlRecipeRow, NewBatch
from opencdmo.canonical import content_hash
from opencdmo.db.sql import clock
from opencdmo.db.tx import tenant_transaction, unit_of_work
from opencdmo.errors import Conflict, NotFound, ValidationFailed
from opencdmo.fields import NAME_MAX, check_name, check_text
from opencdmo.partners import service as partners
from opencdmo.recipes import service as recipes
from opencdmo.scope import TenantContext
from opencdmo.tenancy import service as tenancy
from opencdmo.tenancy.batch_numbering import (
    Parts,
    batch_number_pattern,
    counter_key,
    format_number,
)
from opencdmo.tenancy.batch_rules import rules_of
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
    shortages: list[reservations.Shortage] = field(default_factory=list)


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
    *,
    reserve: bool = False,
) -> CreatedBatch:
    """A batch of the recipe's effective revision with one of its formulas, at a site, for a
    sponsor; its control recipe frozen and hashed in the same transaction. With ``reserve``,
    containers are reserved for its bill of materials in that transaction too (what is short
    is reported, not refused)."""
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
        sponsor_tenant = await partners.sponsor_tenant_for(ctx, sponsor)
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
            sponsor_tenant,
        )
        batch_id = await queries.insert_batch(ctx.tenant_id, new)
        hashed = content_hash(document)
        await queries.insert_control_recipe(ctx.tenant_id, batch_id, document, hashed)
        await execution.create_phases(ctx, batch_id, document)
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
                **({"sponsor_tenant_id": str(sponsor_tenant)} if sponsor_tenant else {}),
                "planned_start": planned_start.isoformat(),
                **{f: getattr(chain, f) for f in COI_FIELDS if getattr(chain, f)},
                "control_recipe_hash": hashed,
            },
        )
        shortages: list[reservations.Shortage] = []
        if reserve:
            await authorize(ctx, "batches", "reserve", site_id=site.id)
            reserved = await reservations.reserve_in(ctx, await queries.batch(batch_id))
            shortages = reserved.shortages
    return CreatedBatch(batch_id, number, hashed, shortages)


async def command_batch(
    ctx: TenantContext, batch_id: UUID, command: str, reason: str = ""
) -> BatchRow:
    """Give the batch an ISA-88 command: the batch row locked, the state checked under the
    lock (a 409 naming the state and the states the command needs), moved and audited. Who
    may give which command is the role policy's (the command is the action on ``batches``).
    Completing needs every phase complete, and raises a verification-missing exception for
    each phase still without its second person."""
    step = states.command_named(command)
    reason = check_text(reason, "reason", "The reason").strip()
    if step.needs_reason and not reason:
        raise ValidationFailed(
            f"'{command}' needs a reason.", details={"field": "reason", "command": command}
        )
    async with unit_of_work(ctx):
        row = await queries.batch(batch_id, lock=True)
        await authorize(ctx, "batches", command, site_id=row.site_id)
        target = states.transition(row.status, command)
        if command == "complete":
            await execution.batch_completion(ctx, row)
        await queries.set_status(batch_id, target)
        await xq.mark_batch_times(batch_id, starts=command == "start", ends=target in states.FINAL)
        await audit.record(
            ctx,
            f"batch.{command}",
            "batch",
            batch_id,
            old={"status": row.status},
            new={"status": target, "number": row.number},
            reason=reason or None,
        )
        if target in states.FINAL:
            await reservations.release_reservations_in(ctx, row, f"the batch is {target}")
            await equipment_release.release_in(ctx, row, None, f"the batch is {target}")
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
    """One page of the tenant's batches matching the filter, latest planned start first (a
    member who reads batches at some sites only sees theirs)."""
    flt = replace(flt, site_ids=await readable_sites(ctx))
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


async def awaiting_release(ctx: TenantContext, limit: int) -> tuple[list[BatchSummary], int]:
    """Complete batches awaiting QA's review and release (at the sites the member reads)."""
    sites = await readable_sites(ctx)
    async with tenant_transaction(ctx):
        rows, total = await queries.awaiting_disposition(sites, limit)
        recipe_names, site_codes = await _names(ctx)
    summaries = [
        BatchSummary(r, recipe_names.get(r.recipe_id, ""), site_codes.get(r.site_id, ""))
        for r in rows
    ]
    return summaries, total


async def readable_sites(ctx: TenantContext) -> tuple[UUID, ...] | None:
    """The sites whose batches the member may read (None: every site, tenant-wide); a 403
    when none."""
    if await can(ctx, "batches", "read"):
        return None
    found: tuple[UUID, ...] = ()
    for site in await tenancy.list_sites(ctx):
        if await can(ctx, "batches", "read", site_id=site.id):
            found += (site.id,)
    if not found:
        await authorize(ctx, "batches", "read")  # the refusal, worded as every other
    return found


async def site_id(ctx: TenantContext, code: str) -> UUID:
    """The id of the site with this code (a 422 naming the sites otherwise), for filters."""
    return (await _site(ctx, code)).id


async def recipe_choices(ctx: TenantContext) -> list[tuple[UUID, str]]:
    """(id, name) of the tenant's recipes, for the list's recipe filter."""
    return [(r.id, r.name) for r in await recipes.list_recipes(ctx)]


async def creatable(ctx: TenantContext) -> list[tuple[str, str]]:
    """("recipe id|formula", "recipe: formula") of every recipe in force and its formulas,
    for the create form."""
    return [
        (f"{recipe_id}|{formula}", f"{name}: {formula}")
        for recipe_id, name, formulas in await recipes.formulas_in_force(ctx)
        for formula in formulas
    ]


async def sites_to_create_at(ctx: TenantContext) -> list[str]:
    """The codes of the sites where the member may create batches."""
    return [
        s.code
        for s in await tenancy.list_sites(ctx)
        if await can(ctx, "batches", "create", site_id=s.id)
    ]


async def site_codes(ctx: TenantContext) -> list[str]:
    return [s.code for s in await tenancy.list_sites(ctx)]


@dataclass(frozen=True)
class RecordedEntry:
    """An entry and whether this call made it (False: a retry, given the first entry)."""

    entry: EntryRow
    created: bool


def _shown(entry: EntryRow) -> str:
    return f"{entry.value} {entry.unit}" if entry.unit else str(entry.value)


async def record_entry(
    ctx: TenantContext,
    batch_id: UUID,
    step: str,
    phase: str,
    field: str,
    value: Any,
    unit: str | None,
    idempotency_key: str,
    device_time: datetime | None = None,
    supersedes: UUID | None = None,
    reason: str | None = None,
    source: str = "manual",
    from_equipment: bool = False,
) -> RecordedEntry:
    """Record a value for a field of a phase of a step of a running batch, checked at once
    against the field's limits and the parameter's ranges; a correction (``supersedes`` and a
    reason) is a new entry, the old one stays.

    The batch row is locked until the unit of work ends, so entries of one batch are made one
    at a time: a retry with the same idempotency key waits for the first and is given it
    unchanged; a second first entry for a field already written is a 409 showing its value.

    ``from_equipment``: the value (and its unit) is not given but taken, under the lock, from
    the unit bound to the step (``equipment_values.reading``), with source equipment and the
    samples it came from.
    """
    reason = check_text(reason or "", "reason", "The reason").strip() or None
    if supersedes is not None and reason is None:
        raise ValidationFailed("A correction needs a reason.", details={"field": "reason"})
    if source not in entries.SOURCES:
        raise ValidationFailed(
            f"source: must be one of {', '.join(entries.SOURCES)}.", details={"field": "source"}
        )
    if device_time is not None and device_time.tzinfo is None:
        raise ValidationFailed(
            "device_time: give a time zone (e.g. 2026-05-04T08:00:00+02:00).",
            details={"field": "device_time"},
        )
    async with unit_of_work(ctx):
        row = await queries.lock_head(batch_id)
        await authorize(ctx, "batches", "execute", site_id=row.site_id)
        # One read: the phase's state, the entry of this key (a retry), and the field's entries.
        read = await entry_queries.for_entry(batch_id, idempotency_key, step, phase, field)
        if read.first is not None:
            return RecordedEntry(read.first, False)
        history = read.history
        execution.running(row, "an entry")
        frozen = await queries.control_recipe_of(ctx.tenant_id, batch_id)
        target = entries.target(frozen.operations, step, phase, field)
        _phase_takes_entries(read.phase_status, target, supersedes)
        provenance = None
        if from_equipment:
            taken = await equipment_values.reading(batch_id, target)
            value, unit, source, provenance = taken.value, taken.unit, "equipment", taken.source()
        stored_unit = entries.validated(target, value, unit)
        now = entry_queries.current(history)
        _may_write(target, history, now, supersedes)
        checked = entries.check(target, value)
        assert ctx.user_id is not None
        new = NewEntry(
            batch_id,
            step,
            phase,
            field,
            value,
            stored_unit,
            source,
            ctx.user_id,
            device_time,
            idempotency_key,
            supersedes,
            reason,
            checked.result,
            checked.message,
            provenance,
        )
        inserted = await entry_queries.insert(ctx.tenant_id, new)
        if inserted is None:  # a concurrent retry with this key got there first
            first = await entry_queries.by_key(batch_id, idempotency_key)
            assert first is not None
            return RecordedEntry(first, False)
        entry = inserted
        found = exceptions.of_entry(
            target,
            checked,
            corrected=supersedes is not None,
            source=source,
            device_time=device_time,
            now=entry.entered_at,
            rules=rules_of(
                row.exception_severities, row.late_entry_minutes, row.excursion_debounce_seconds
            )
            if exceptions.may_raise(checked, supersedes is not None, source, device_time, target)
            else None,
        )
        await audit.record(
            ctx,
            "batch.entry_corrected" if supersedes else "batch.entry_recorded",
            "batch",
            batch_id,
            old={"value": now.value, "unit": now.unit, "entry_id": str(now.id)}
            if supersedes and now is not None
            else None,
            new={
                "number": row.number,
                "entry_id": str(entry.id),
                "step": step,
                "phase": phase,
                "field": field,
                "field_name": target.name,
                "value": value,
                "unit": stored_unit,
                "source": source,
                "check": checked.result,
                "device_time": device_time.isoformat() if device_time else None,
                **({"equipment_source": provenance} if provenance else {}),
            },
            reason=reason,
            at=entry.entered_at,
        )
        await exceptions.raise_all(ctx, batch_id, row.number, found, entry.id)
    return RecordedEntry(entry, True)


def _phase_takes_entries(
    status: str | None, target: entries.Target, supersedes: UUID | None
) -> None:
    """A first entry needs its phase Running; a correction, Running or Complete (None: the
    batch has no such phase)."""
    if status is None:
        raise NotFound(f"This batch has no phase {target.phase[:64]} in step {target.step[:64]}.")
    wanted = {states.RUNNING} if supersedes is None else {states.RUNNING, states.COMPLETE}
    if status not in wanted:
        doing = "an entry" if supersedes is None else "a correction"
        needs = " or ".join(states.STATE_NAMES[s] for s in sorted(wanted, reverse=True))
        raise Conflict(
            f"Phase {target.phase} of step {target.step} is "
            f"{states.STATE_NAMES.get(status, status)}: {doing} needs it {needs}.",
            details={"status": status, "phase": target.phase},
        )


def _may_write(
    target: entries.Target,
    history: list[EntryRow],
    now: EntryRow | None,
    supersedes: UUID | None,
) -> None:
    """A first entry needs the field empty; a correction needs the field's current entry."""
    if supersedes is None:
        if now is not None:
            raise Conflict(
                f"{target.name} has been recorded already: {_shown(now)}. To change it, "
                "correct that entry (supersedes, with a reason).",
                details={
                    "current": {
                        "id": str(now.id),
                        "value": now.value,
                        "unit": now.unit,
                        "entered_by": str(now.entered_by),
                        "entered_at": now.entered_at.isoformat(),
                    }
                },
            )
        return
    if supersedes not in {e.id for e in history}:
        raise ValidationFailed(
            f"The entry to correct is not an entry of {target.name} in this batch.",
            details={"field": "supersedes"},
        )
    if now is None or now.id != supersedes:
        shown = _shown(now) if now is not None else "none"
        raise Conflict(
            f"That entry of {target.name} has been corrected already; its current value is "
            f"{shown}.",
            details={"current": {"id": str(now.id) if now else None}},
        )


@dataclass(frozen=True)
class EntryHistory:
    """An entry and the entry that corrects it (None: it is the field's current value)."""

    entry: EntryRow
    superseded_by: UUID | None


async def list_entries(ctx: TenantContext, batch_id: UUID) -> list[EntryHistory]:
    """Every entry of the batch, oldest first, each with the entry that supersedes it."""
    async with tenant_transaction(ctx):
        row = await queries.batch(batch_id)
        await authorize(ctx, "batches", "read", site_id=row.site_id)
        found = await entry_queries.of_batch(batch_id)
    by = {e.supersedes: e.id for e in found if e.supersedes is not None}
    return [EntryHistory(e, by.get(e.id)) for e in found]
