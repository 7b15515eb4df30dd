"""Setpoint writes through the JSON API and the run page's form: what each open phase of a
batch would write to the unit bound to its step, the writes made, and writing a phase's
setpoints (the list the operator confirmed; see ``batches.setpoints``)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any
from uuid import UUID

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.response import Response, Template

from opencdmo.batches import setpoints
from opencdmo.batches.routes import ONE
from opencdmo.batches.run_routes import RUN, run_command, run_form
from opencdmo.batches.setpoint_plan import Offer
from opencdmo.batches.setpoint_schemas import (
    OfferOut,
    SetpointOut,
    SetpointResultOut,
    SetpointsOut,
    SetpointWriteIn,
    WriteOut,
)
from opencdmo.equipment.setpoint_queries import WriteRow
from opencdmo.errors import ValidationFailed
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.web.guards import requires
from opencdmo.web.pages import form_data

RESULT_FIELDS = set(SetpointResultOut.__struct_fields__)


def offer_out(found: Offer) -> OfferOut:
    return OfferOut(
        step=found.step,
        phase=found.phase,
        equipment=found.code,
        writable=found.writable,
        setpoints=[SetpointOut(**asdict(s)) for s in found.setpoints],
    )


def result_out(result: dict[str, Any]) -> SetpointResultOut:
    found: dict[str, Any] = {k: result.get(k) for k in RESULT_FIELDS}
    return SetpointResultOut(**{**found, "ok": bool(result.get("ok"))})


def write_out(row: WriteRow, code: str, raised: list[str] | None = None, **kw: Any) -> WriteOut:
    return WriteOut(
        id=row.id,
        step=row.step,
        phase=row.phase,
        equipment=code,
        idempotency_key=row.idempotency_key,
        outcome=row.outcome,
        started_at=row.started_at,
        finished_at=row.finished_at,
        results=[result_out(r) for r in row.outcomes],
        exceptions=raised or [],
        **kw,
    )


@get(ONE + "/setpoints", opt=requires("batches", "read", site_scoped=True), tags=["batches"])
async def api_setpoints(
    ctx: NamedDependency[TenantContext], batch_id: FromPath[UUID]
) -> SetpointsOut:
    """What each open phase would write to the unit its step holds (each parameter the unit
    names in its OPC UA setpoints, with the formula's value and the node), and the batch's
    writes with each value's outcome and read-back, oldest first."""
    bench = await setpoints.at_the_bench(ctx, batch_id)
    return SetpointsOut(
        offers=[offer_out(o) for o in bench.offers.values()],
        writes=[write_out(w, bench.code(w)) for w in bench.writes],
    )


@post(
    ONE + "/setpoints",
    opt=requires("batches", "execute", site_scoped=True),
    tags=["batches"],
    status_code=201,
)
async def api_write_setpoints(
    settings: NamedDependency[Settings],
    ctx: NamedDependency[TenantContext],
    batch_id: FromPath[UUID],
    data: JSONBody[SetpointWriteIn],
) -> WriteOut:
    """Write a phase's setpoints to the unit bound to its step over OPC UA, read each back
    and record the outcome: an audit event per value and a setpoint_failed exception per
    failure (the connection or the write refused, a value read back that differs). A list
    that is no longer what the batch would write is a 409 and nothing is written; another
    write to the unit under way is a 409; a retry with the same key is given the first."""
    given = [{f: getattr(c, f) for f in c.__struct_fields__} for c in data.confirmed]
    done = await setpoints.write_setpoints(
        ctx,
        batch_id,
        data.step,
        data.phase,
        given,
        data.idempotency_key,
        pki=settings.data_dir / "opcua",
    )
    return write_out(done.write, done.code, done.raised, replayed=done.replayed)


@run_form(RUN + "/setpoints")
async def setpoints_form(
    request: Request[Any, Any, Any],
    settings: NamedDependency[Settings],
    ctx: NamedDependency[TenantContext],
    batch_id: FromPath[UUID],
) -> Template | Response[Any]:
    """The run page's "Write setpoints" confirmation: the list shown, sent back as it was."""
    data = await form_data(request)
    step, phase = str(data.get("step", ""))[:64], str(data.get("phase", ""))[:64]

    async def run() -> tuple[str, str]:
        try:
            shown = json.loads(str(data.get("confirmed", "")))
        except ValueError:
            raise ValidationFailed(
                "The list of setpoints sent is not the one shown: reload the page.",
                details={"field": "confirmed"},
            ) from None
        done = await setpoints.write_setpoints(
            ctx,
            batch_id,
            step,
            phase,
            shown,
            str(data.get("key", "")),
            pki=settings.data_dir / "opcua",
        )
        return said(done), "success" if done.ok else "warning"

    return await run_command(request, ctx, batch_id, f"s-{step}--{phase}", run)


def said(done: setpoints.Written) -> str:
    """The outcome in one sentence for the flash message."""
    again = " (this write was made before: its outcome is shown again)" if done.replayed else ""
    if done.ok:
        return f"Setpoints written to {done.code} and read back the same{again}."
    failed = [r for r in done.write.outcomes if not r.get("ok")]
    named = "; ".join(f"{r.get('name', r['parameter'])}: {r['problem']}" for r in failed)
    raised = f" {len(done.raised)} exception(s) raised." if done.raised else ""
    return f"Writing setpoints to {done.code} failed{again}: {named}.{raised}"


api = [api_setpoints, api_write_setpoints]
pages = [setpoints_form]
