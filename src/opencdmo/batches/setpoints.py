"""Writing a phase's setpoints to the unit bound to its step, over OPC UA, and recording
what happened.

The operator sees each parameter with the formula's value and the node it goes to
(``setpoint_plan``) and confirms that list; the command refuses a list that is no longer
what the batch would write (a 409: nothing is written unseen). Then, in three parts:

1. a unit of work claims the write (``batch_setpoint_writes``: one attempt per idempotency
   key, one write under way per unit), on the locked batch and unit; a retry with the same
   key is given the first attempt's outcome, and nothing is written twice;
2. outside any transaction, the values are written with the unit's security and user and
   read back (``setpoint_client``, imported only now);
3. one unit of work records the outcome: a ``batch.setpoints_written`` audit event for each
   value (parameter, node, value and unit, the value read back, ok) and a ``setpoint_failed``
   exception (severity from the tenant's rules) for each failure: the connection refused, the
   write refused, or a value read back that is not the one written. Never silent.

A claim whose outcome was never recorded (its process stopped in between) holds the unit for
``STALE_AFTER``; the next write to the unit then records it as abandoned, with an exception
for each of its values: nobody can tell whether they were written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast
from uuid import UUID

import asyncpg

from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.batches import exceptions, queries, states
from opencdmo.batches import execution_queries as xq
from opencdmo.batches.execution import actor, running
from opencdmo.batches.execution_queries import NewException
from opencdmo.batches.setpoint_plan import Offer, Setpoint, confirmed, matches, offer, offers
from opencdmo.db.tx import read_view, unit_of_work
from opencdmo.equipment import queries as eq
from opencdmo.equipment import setpoint_queries as sq
from opencdmo.equipment import trust
from opencdmo.equipment.queries import UnitRow
from opencdmo.equipment.setpoint_queries import NewWrite, WriteRow
from opencdmo.errors import Conflict, ValidationFailed
from opencdmo.scope import TenantContext
from opencdmo.tenancy.batch_rules import exception_rules

if TYPE_CHECKING:
    from opencdmo.equipment.opcua_security import Mode

logger = logging.getLogger(__name__)

KIND: Final = "setpoint_failed"
STALE_AFTER: Final = timedelta(minutes=2)
KEY_MAX: Final = 200


@dataclass(frozen=True)
class Written:
    """A write's record: its row (outcome and each value's result), the unit's code, the
    kinds of exception it raised, and whether it is an earlier attempt given again."""

    write: WriteRow
    code: str
    raised: list[str]
    replayed: bool

    @property
    def ok(self) -> bool:
        return self.write.outcome == "ok"


@dataclass(frozen=True)
class _Claim:
    write_id: UUID
    batch_id: UUID
    number: str
    unit: UnitRow
    offer: Offer
    key: str


def _key(value: str) -> str:
    key = value.strip()
    if not 1 <= len(key) <= KEY_MAX or any(ord(c) < 32 for c in key):
        raise ValidationFailed(
            f"idempotency_key: 1 to {KEY_MAX} characters, no control characters.",
            details={"field": "idempotency_key"},
        )
    return key


async def write_setpoints(
    ctx: TenantContext,
    batch_id: UUID,
    step: str,
    phase: str,
    given: Any,
    key: str,
    *,
    pki: Path | None,
) -> Written:
    """Write the phase's setpoints the operator confirmed (``given``) and record the outcome
    (see the module). ``pki``: the OPC UA directory (own certificate, trust lists)."""
    key, wanted = _key(key), confirmed(given)
    claimed = await _claim(ctx, batch_id, step, phase, wanted, key)
    if isinstance(claimed, Written):
        return claimed
    try:
        results = await _write(ctx, claimed, pki)
    except Exception as exc:  # recorded as a failure of every value, never lost
        logger.exception("writing the setpoints of %s failed", claimed.unit.code)
        results = [_result(s, None, f"the write failed: {exc}") for s in claimed.offer.setpoints]
    return await _finish(ctx, claimed, results)


async def _claim(
    ctx: TenantContext,
    batch_id: UUID,
    step: str,
    phase: str,
    wanted: set[tuple[str, float, str | None, str]],
    key: str,
) -> _Claim | Written:
    async with unit_of_work(ctx):
        batch = await queries.batch(batch_id, lock=True)
        await authorize(ctx, "batches", "execute", site_id=batch.site_id)
        by = actor(ctx)
        earlier = await sq.by_key(batch_id, key)
        if earlier is not None:
            return await _earlier(earlier)
        running(batch, "writing setpoints")
        frozen = await queries.control_recipe(batch_id)
        planned = frozen.planned(step, phase)
        if planned is None:
            raise ValidationFailed(
                f"This batch has no phase '{phase[:64]}' in step '{step[:64]}'.",
                details={"field": "phase"},
            )
        if (await xq.phase(batch_id, step, phase)).status in states.FINAL:
            raise Conflict(f"{planned.label} is done: its setpoints are not written any more.")
        held = next((b for b in await eq.bindings(batch_id, active=True) if b.step == step), None)
        unit = await eq.unit(held.equipment_id, lock=True) if held else None
        found = offer(frozen, planned, held, unit)
        if found is None or unit is None:
            raise Conflict(
                f"No unit taken for {planned.step_name} has setpoint nodes for the parameters "
                f"of {planned.label}."
            )
        _same(found, wanted)
        await _unit_free(ctx, unit)
        new = NewWrite(batch_id, step, phase, unit.id, key, [s.confirmed for s in found.setpoints])
        try:
            write_id = await sq.claim(ctx.tenant_id, new, by)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"Setpoints are being written to {unit.code} now.") from None
        return _Claim(write_id, batch_id, batch.number, unit, found, key)


async def _earlier(row: WriteRow) -> Written:
    if row.finished_at is None:
        raise Conflict(
            "This write is under way: its outcome is on the run page when it is done.",
            details={"write_id": str(row.id)},
        )
    return Written(row, (await eq.unit(row.equipment_id)).code, [], True)


def _same(found: Offer, wanted: set[tuple[str, float, str | None, str]]) -> None:
    problems = [s.problem for s in found.setpoints if s.problem]
    if problems:
        raise ValidationFailed(" ".join(f"{p}." for p in problems), details={"field": "confirmed"})
    if found.keys() != wanted:
        now = "; ".join(f"{s.name} {s.value} {s.unit or ''} to {s.node}" for s in found.setpoints)
        raise Conflict(
            f"The setpoints are not the ones you confirmed; they are now: {now}. Look at them "
            "again and confirm.",
            details={"field": "confirmed"},
        )


async def _unit_free(ctx: TenantContext, unit: UnitRow) -> None:
    """A 409 while another write to the unit is under way; one whose outcome was never
    recorded is recorded as abandoned."""
    under_way = await sq.open_on(unit.id, lock=True)
    if under_way is None:
        return
    if under_way.started_at > await eq.now() - STALE_AFTER:
        raise Conflict(
            f"Setpoints are being written to {unit.code} now: look again in a moment.",
            details={"write_id": str(under_way.id)},
        )
    why = "its outcome was never recorded (the writer stopped): the values may or may not be set"
    results = [{**c, "read_back": None, "ok": False, "problem": why} for c in under_way.confirmed]
    await sq.finish(under_way.id, "abandoned", results)
    batch = await queries.batch(under_way.batch_id)
    await _record(ctx, under_way, batch.number, unit.code, results, "batch.setpoints_abandoned")


async def _write(ctx: TenantContext, claim: _Claim, pki: Path | None) -> list[dict[str, Any]]:
    # asyncua: imported only when a write is made (the web workers start without it)
    from opencdmo.equipment import setpoint_client
    from opencdmo.equipment.opcua_security import Security

    described = claim.unit.connection or {}
    mode = cast("Mode", (described.get("security") or {}).get("mode", "None"))
    setpoints = claim.offer.setpoints
    if mode != "None" and pki is None:
        why = f"{mode} needs the OPC UA certificate directory, and none is configured"
        return [_result(s, None, why) for s in setpoints]
    security = Security()
    if mode != "None" and pki is not None:
        trusted = await trust.trust_dir(ctx.tenant_id, pki)
        security = Security(mode, certificate_dir=pki / "setpoints", trust_dir=trusted)
    user = described.get("user")
    outcomes = await setpoint_client.write_and_read(
        described["endpoint"],
        [(s.node, s.node_value or 0.0) for s in setpoints],
        security,
        setpoint_client.User(user["name"], user["password_env"]) if user else None,
    )
    return [_result(s, o.read_back, o.problem) for s, o in zip(setpoints, outcomes, strict=True)]


def _result(setpoint: Setpoint, read_back: float | None, problem: str | None) -> dict[str, Any]:
    value = setpoint.node_value
    if problem is None and (read_back is None or value is None or not matches(value, read_back)):
        problem = f"read back {read_back} {setpoint.node_unit}, not the {value} written"
    return {
        **setpoint.confirmed,
        "name": setpoint.name,
        "written": value,
        "node_unit": setpoint.node_unit,
        "read_back": read_back,
        "ok": problem is None,
        "problem": problem,
    }


async def _finish(ctx: TenantContext, claim: _Claim, results: list[dict[str, Any]]) -> Written:
    outcome = "ok" if all(r["ok"] for r in results) else "failed"
    async with unit_of_work(ctx):
        await queries.batch(claim.batch_id, lock=True)
        row = await sq.one(claim.write_id, lock=True)
        if not await sq.finish(row.id, outcome, results):
            logger.warning("setpoint write %s was recorded as abandoned meanwhile", row.id)
        raised = await _record(
            ctx, row, claim.number, claim.unit.code, results, "batch.setpoints_written"
        )
        return Written(await sq.one(row.id), claim.unit.code, raised, False)


async def _record(
    ctx: TenantContext,
    row: WriteRow,
    number: str,
    code: str,
    results: list[dict[str, Any]],
    action: str,
) -> list[str]:
    """An audit event per value and an exception per failure, in the open unit of work."""
    rules = await exception_rules(ctx)
    found: list[NewException] = []
    for result in results:
        await audit.record(
            ctx,
            action,
            "batch",
            row.batch_id,
            new={
                "number": number,
                "write_id": str(row.id),
                "idempotency_key": row.idempotency_key,
                "step": row.step,
                "phase": row.phase,
                "code": code,
                "parameter": result["parameter"],
                "node": result["node"],
                "value": result.get("written", result.get("value")),
                "unit": result.get("node_unit", result.get("unit")),
                "recipe_value": result["value"],
                "recipe_unit": result["unit"],
                "read_back": result["read_back"],
                "ok": result["ok"],
                "problem": result["problem"],
            },
        )
        if not result["ok"]:
            message = (
                f"Setpoint {result.get('name', result['parameter'])} on {code} "
                f"({result['node']}): {result['problem']}."
            )
            found.append(
                NewException(
                    KIND, rules.severity(KIND), message, row.step, row.phase, result["parameter"]
                )
            )
    raised = await exceptions.raise_all(ctx, row.batch_id, number, found)
    return [e.kind for e in raised]


# --- reads ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AtTheBench:
    offers: dict[tuple[str, str], Offer]  # each open phase's setpoints, by (step, phase)
    writes: list[WriteRow]  # the batch's writes, oldest first
    codes: dict[str, str]  # the code of each unit written to, by its id

    def code(self, row: WriteRow) -> str:
        return self.codes.get(str(row.equipment_id), "")

    def last(self, step: str, phase: str) -> WriteRow | None:
        """The phase's latest write."""
        found = [w for w in self.writes if w.step == step and w.phase == phase]
        return found[-1] if found else None


async def at_the_bench(ctx: TenantContext, batch_id: UUID) -> AtTheBench:
    """For the run page and the API: what each open phase would write, and the writes made."""
    async with read_view(ctx):
        batch = await queries.batch(batch_id)
        await authorize(ctx, "batches", "read", site_id=batch.site_id)
        frozen = await queries.control_recipe(batch_id)
        active = await eq.bindings(batch_id, active=True)
        units = await eq.units_by_id([b.equipment_id for b in active])
        status = {(p.step, p.phase): p.status for p in await xq.phases(batch_id)}
        writes = await sq.of_batch(batch_id)
        codes = await eq.codes(list({w.equipment_id for w in writes}))
    open_phases = [p for p in frozen.phases if status.get((p.step, p.phase)) not in states.FINAL]
    return AtTheBench(offers(frozen, open_phases, active, units), writes, codes)
