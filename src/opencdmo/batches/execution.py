"""Running a batch: phase commands, chain-of-identity checks, the chain of custody, and the
second person's verification or witness.

Every command owns one unit of work, locks the batch row first (so the commands and entries
of one batch are made one at a time, and every check below sees the state it changes),
authorizes the actor at the batch's site, and writes its audit events and any exception it
raises in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.batches import (
    entry_queries,
    equipment_release,
    exceptions,
    excursions,
    plan,
    queries,
    states,
)
from opencdmo.batches import execution_queries as xq
from opencdmo.batches.execution_queries import NewException, PhaseRow
from opencdmo.batches.queries import BatchRow
from opencdmo.db.tx import after_commit, tenant_transaction, unit_of_work
from opencdmo.errors import Conflict, Forbidden, ValidationFailed
from opencdmo.fields import NAME_MAX, check_text
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.signatures import service as signatures
from opencdmo.signatures.service import SignedRecord
from opencdmo.tenancy.batch_rules import exception_rules

#: Phase states in which the phase counts as done for the order of the steps.
DONE = states.FINAL


def _state(status: str) -> str:
    return states.STATE_NAMES.get(status, status)


def running(row: BatchRow | queries.BatchHead, doing: str) -> None:
    """A 409 unless the batch is Running (``doing``: what needs it, for the message)."""
    if row.status != states.RUNNING:
        raise Conflict(
            f"This batch is {_state(row.status)}: {doing} needs it Running.",
            details={"status": row.status},
        )


def _identity_problem(
    planned: plan.PlannedPhase, checks: list[xq.IdentityCheckRow], open_mismatch: bool
) -> str | None:
    """Why the step may not start for want of a chain-of-identity check (None: it may)."""
    if not planned.identity_check:
        return None
    if open_mismatch:
        return (
            f"Step {planned.step_name} is blocked: a COI label did not match and QA has not "
            "dispositioned the exception yet."
        )
    latest = next((c for c in reversed(checks) if c.step == planned.step), None)
    if latest is None or not latest.matched:
        return (
            f"Step {planned.step_name} handles the patient's material: scan or type the COI "
            "label on the container first."
        )
    return None


async def command_phase(
    ctx: TenantContext,
    batch_id: UUID,
    step: str,
    phase: str,
    command: str,
    reason: str = "",
) -> PhaseRow:
    """Give a phase an ISA-88 command (the same table as the batch's). Starting a phase
    before the phases before it are done needs a reason and raises an out-of-order exception;
    a step that handles patient material starts only after a matching COI label check.
    Completing needs every required field recorded (or a reason, which raises a
    required-field exception for each) and no outside-PAR or identity exception of the phase
    left without QA's disposition."""
    step_command = states.command_named(command)
    reason = check_text(reason, "reason", "The reason").strip()
    if step_command.needs_reason and not reason:
        raise ValidationFailed(
            f"'{command}' needs a reason.", details={"field": "reason", "command": command}
        )
    async with unit_of_work(ctx):
        row = await queries.batch(batch_id, lock=True)
        await authorize(ctx, "batches", "execute", site_id=row.site_id)
        running(row, "a phase command")
        frozen = await queries.control_recipe(batch_id)
        planned = frozen.planned(step, phase)
        if planned is None:
            raise ValidationFailed(
                f"This batch has no phase '{phase[:64]}' in step '{step[:64]}'.",
                details={"field": "phase"},
            )
        current = await xq.phase(batch_id, step, phase)
        target = states.transition(current.status, command)
        rules = await exception_rules(ctx)
        raised: list[NewException] = []
        if command == "start":
            all_phases = await xq.phases(batch_id)
            earlier = [p for p in all_phases if p.position < current.position]
            pending = [p for p in earlier if p.status not in DONE]
            open_rows = [e for e in await xq.exceptions(batch_id) if e.disposition is None]
            mismatch = any(e.kind == "identity_mismatch" and e.step == step for e in open_rows)
            problem = _identity_problem(planned, await xq.identity_checks(batch_id), mismatch)
            if problem:
                raise Conflict(problem, details={"identity_check": True})
            if pending:
                names = _names(frozen.phases, pending)
                if not reason:
                    raise Conflict(
                        f"{planned.label} comes after {names}, not done yet: give a reason to "
                        "start it out of order (it is an exception).",
                        details={"field": "reason", "pending": [p.phase for p in pending]},
                    )
                raised.append(
                    NewException(
                        "out_of_order",
                        rules.severity("out_of_order"),
                        f"{planned.label} started before {names}: {reason}",
                        step,
                        phase,
                    )
                )
        if command == "complete":
            raised += await _completion_problems(batch_id, planned, reason, rules)
        await xq.set_phase_status(
            batch_id,
            step,
            phase,
            target,
            actor(ctx),
            starts=command == "start",
            ends=target in DONE,
        )
        await audit.record(
            ctx,
            f"batch.phase_{command}",
            "batch",
            batch_id,
            old={"status": current.status},
            new={
                "status": target,
                "number": row.number,
                "step": step,
                "phase": phase,
                "phase_name": planned.label,
            },
            reason=reason or None,
        )
        await exceptions.raise_all(ctx, batch_id, row.number, raised)
        if target in DONE:  # an excursion open at the phase's end ends there
            tenant = ctx.tenant_id
            after_commit(
                f"excursions:{batch_id}", lambda: excursions.evaluate_quietly(tenant, batch_id)
            )
        if target in DONE and all(
            p.status in DONE for p in await xq.phases(batch_id) if p.step == step
        ):
            await equipment_release.release_in(ctx, row, step, "the step is done")
        return await xq.phase(batch_id, step, phase)


def _names(phases: list[plan.PlannedPhase], rows: list[PhaseRow]) -> str:
    labels = {(p.step, p.phase): p.label for p in phases}
    shown = [labels.get((r.step, r.phase), r.phase) for r in rows[:3]]
    more = f" and {len(rows) - 3} more" if len(rows) > 3 else ""
    return ", ".join(shown) + more


def actor(ctx: TenantContext) -> UUID:
    if ctx.user_id is None:
        raise Forbidden("Only a signed-in person runs a batch.")
    return ctx.user_id


async def _completion_problems(
    batch_id: UUID, planned: plan.PlannedPhase, reason: str, rules: Any
) -> list[NewException]:
    """What completing the phase raises; a 409 when QA must act first or a reason is due."""
    found = [
        e
        for e in await xq.exceptions(batch_id)
        if e.step == planned.step
        and e.phase == planned.phase
        and e.disposition is None
        and e.kind in exceptions.NEEDS_QA_TO_COMPLETE
    ]
    if found:
        raise Conflict(
            f"{planned.label} cannot be completed before QA dispositions: "
            + "; ".join(e.message for e in found[:3]),
            details={"exceptions": [str(e.id) for e in found]},
        )
    entries = entry_queries.current_values(
        await entry_queries.of_phase(batch_id, planned.step, planned.phase)
    )
    missing = [f for f in planned.content.data_capture if f.required and f.key not in entries]
    if missing and not reason:
        raise Conflict(
            f"{planned.label} has required fields not recorded: "
            + ", ".join(f.name for f in missing)
            + ". Record them, or complete with a reason (each is an exception).",
            details={"field": "reason", "missing": [f.key for f in missing]},
        )
    return [
        NewException(
            "required_missing",
            rules.severity("required_missing"),
            f"{f.name} was not recorded when {planned.label} completed: {reason}",
            step=planned.step,
            phase=planned.phase,
            field=f.key,
        )
        for f in missing
    ]


async def check_identity(
    ctx: TenantContext, batch_id: UUID, step: str, scanned: str
) -> xq.IdentityCheckRow:
    """Record the COI label scanned or typed on the container at a step. A label that is not
    the batch's raises a critical identity exception and blocks the step until QA has
    dispositioned it; the check is kept either way (it commits with its exception)."""
    scanned = check_text(scanned.strip(), "scanned", "The scanned label", limit=NAME_MAX)
    if not scanned:
        raise ValidationFailed("Scan or type the COI label.", details={"field": "scanned"})
    async with unit_of_work(ctx):
        row = await queries.batch(batch_id, lock=True)
        await authorize(ctx, "batches", "execute", site_id=row.site_id)
        running(row, "a chain-of-identity check")
        steps = {p.step: p for p in (await queries.control_recipe(batch_id)).phases}
        planned = steps.get(step)
        if planned is None:
            raise ValidationFailed(
                f"This batch has no step '{step[:64]}'.", details={"field": "step"}
            )
        if row.coi_label is None:
            raise Conflict(
                "This batch has no COI label: it is not made for one patient.",
                details={"field": "scanned"},
            )
        matched = scanned == row.coi_label
        check = await xq.insert_identity_check(
            ctx.tenant_id, batch_id, step, scanned, matched, actor(ctx)
        )
        await audit.record(
            ctx,
            "batch.identity_checked",
            "batch",
            batch_id,
            new={
                "number": row.number,
                "step": step,
                "step_name": planned.step_name,
                "scanned": scanned,
                "matched": matched,
            },
        )
        if not matched:
            rules = await exception_rules(ctx)
            await exceptions.raise_all(
                ctx,
                batch_id,
                row.number,
                [
                    NewException(
                        "identity_mismatch",
                        rules.severity("identity_mismatch"),
                        f"The label scanned at {planned.step_name} ({scanned}) is not this "
                        f"batch's COI label ({row.coi_label}).",
                        step=step,
                    )
                ],
            )
    return check


async def take_custody(ctx: TenantContext, batch_id: UUID, location: str) -> None:
    """The signed-in person takes the batch's material at a location: the chain of custody
    gains a holder from now (the previous holder's custody ends here)."""
    location = check_text(location.strip(), "location", "The location", limit=NAME_MAX)
    if not location:
        raise ValidationFailed("Say where the material is.", details={"field": "location"})
    async with unit_of_work(ctx):
        row = await queries.batch(batch_id, lock=True)
        await authorize(ctx, "batches", "execute", site_id=row.site_id)
        if row.status in states.FINAL:
            raise Conflict(
                f"This batch is {_state(row.status)}: custody is recorded while it runs.",
                details={"status": row.status},
            )
        await xq.insert_custody(ctx.tenant_id, batch_id, actor(ctx), location)
        await audit.record(
            ctx,
            "batch.custody_taken",
            "batch",
            batch_id,
            new={"number": row.number, "location": location},
        )


def phase_record(batch_id: UUID, planned: plan.PlannedPhase, values: dict[str, Any]) -> Any:
    """A performed phase as a signable record: the signature covers its current values."""
    return SignedRecord(
        "batch_phase",
        f"{batch_id}/{planned.step}/{planned.phase}",
        "1",
        None,
        {"batch": str(batch_id), "step": planned.step, "phase": planned.phase, "values": values},
    )


@dataclass(frozen=True)
class Verification:
    kind: str
    signature: signatures.SignatureView


async def verify_phase(
    settings: Settings,
    ctx: TenantContext,
    batch_id: UUID,
    step: str,
    phase: str,
    password: str,
    reason: str,
) -> Verification:
    """A second person signs a phase its content asks for: 'verified' once the phase is
    complete, 'witnessed' while it runs or once it is complete. Nobody who performed the
    phase (started, completed or recorded in it) may sign it."""
    async with tenant_transaction(ctx):
        row = await queries.batch(batch_id)
    await authorize(ctx, "batches", "verify", site_id=row.site_id)
    kind = await _verification_kind(ctx, batch_id, step, phase, row)
    signing = await signatures.prepare(settings, ctx, kind, reason, password)
    async with unit_of_work(ctx):
        row = await queries.batch(batch_id, lock=True)
        kind = await _verification_kind(ctx, batch_id, step, phase, row)
        planned = (await queries.control_recipe(batch_id)).planned(step, phase)
        assert planned is not None
        values = entry_queries.current_values(await entry_queries.of_phase(batch_id, step, phase))
        signature = await signatures.apply(
            ctx, signing, phase_record(batch_id, planned, _signed_values(values))
        )
        await xq.insert_verification(
            ctx.tenant_id, batch_id, step, phase, kind, signature.id, actor(ctx)
        )
        await audit.record(
            ctx,
            f"batch.phase_{kind}",
            "batch",
            batch_id,
            new={
                "number": row.number,
                "step": step,
                "phase": phase,
                "phase_name": planned.label,
                "signature_id": str(signature.id),
            },
            reason=signing.reason,
        )
    return Verification(kind, signature)


def _signed_values(values: dict[str, entry_queries.EntryRow]) -> dict[str, Any]:
    return {
        key: {"entry": str(e.id), "value": e.value, "unit": e.unit}
        for key, e in sorted(values.items())
    }


async def _verification_kind(
    ctx: TenantContext, batch_id: UUID, step: str, phase: str, row: BatchRow
) -> str:
    """The kind of signature the phase asks for now; a 409 or 403 saying why not."""
    async with tenant_transaction(ctx):
        planned = (await queries.control_recipe(batch_id)).planned(step, phase)
        if planned is None:
            raise ValidationFailed(
                f"This batch has no phase '{phase[:64]}' in step '{step[:64]}'.",
                details={"field": "phase"},
            )
        current = await xq.phase(batch_id, step, phase)
        done = {(v.step, v.phase, v.kind) for v in await xq.verifications(batch_id)}
        performers = await phase_performers(batch_id, current)
    kind = planned.second_person
    if kind is None:
        raise Conflict(
            f"{planned.label} does not ask for a second person.", details={"field": "phase"}
        )
    if row.status in (states.STOPPED, states.ABORTED) or row.disposition is not None:
        raise Conflict(f"This batch is {_state(row.status)}: it takes no more signatures.")
    wanted = {states.COMPLETE} if kind == "verified" else {states.RUNNING, states.COMPLETE}
    if current.status not in wanted:
        needs = " or ".join(_state(s) for s in sorted(wanted))
        raise Conflict(
            f"{planned.label} is {_state(current.status)}: it is {kind} when {needs}.",
            details={"status": current.status},
        )
    if (step, phase, kind) in done:
        raise Conflict(f"{planned.label} has been {kind} already.")
    if ctx.user_id in performers:
        raise Forbidden(
            f"Separation of duties: you performed {planned.label}; a second person signs it "
            f"as {kind}."
        )
    return kind


async def phase_performers(batch_id: UUID, current: PhaseRow) -> set[UUID]:
    """Who started, ended or recorded in the phase."""
    found = {u for u in (current.started_by, current.ended_by) if u is not None}
    found |= {
        e.entered_by for e in await entry_queries.of_phase(batch_id, current.step, current.phase)
    }
    return found


async def create_phases(ctx: TenantContext, batch_id: UUID, document: dict[str, Any]) -> None:
    """The phase rows of a new batch, idle, in recipe order (in the creating unit of work)."""
    await xq.insert_phases(
        ctx.tenant_id,
        batch_id,
        [(p.position, p.procedure, p.step, p.phase) for p in plan.phases(document)],
    )


async def batch_completion(ctx: TenantContext, row: BatchRow) -> None:
    """Before a batch completes: every phase done (a 409 naming the ones that are not), and a
    verification-missing exception for each phase still without its second person."""
    planned = (await queries.control_recipe(row.id)).phases
    all_phases = await xq.phases(row.id)
    pending = [p for p in all_phases if p.status != states.COMPLETE]
    if pending:
        raise Conflict(
            f"This batch cannot complete: {_names(planned, pending)} not complete.",
            details={"pending": [f"{p.step}/{p.phase}" for p in pending]},
        )
    done = {(v.step, v.phase) for v in await xq.verifications(row.id)}
    rules = await exception_rules(ctx)
    missing = [
        NewException(
            "verification_missing",
            rules.severity("verification_missing"),
            f"{p.label} was not {p.second_person} by a second person.",
            step=p.step,
            phase=p.phase,
        )
        for p in planned
        if p.second_person and (p.step, p.phase) not in done
    ]
    await exceptions.raise_all(ctx, row.id, row.number, missing)
