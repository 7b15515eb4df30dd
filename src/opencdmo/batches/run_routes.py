"""The operator's pages of a batch: the run page at the bench (touch-first), and one field of
it as a fragment, which the page's entry queue reads back after an entry was sent.

Entries are not posted here: the page's script (``static/js/entry-queue.js``) keeps each
entry in the browser until the JSON API (``POST /api/v1/t/{slug}/batches/{id}/entries``)
has it, sending the signed-in session's cookie and the page's CSRF token, as htmx does.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.params import FromPath, QueryParameter
from litestar.response import Response, Template

from opencdmo import units
from opencdmo.batches import (
    equipment_use,
    execution,
    material_views,
    materials,
    outputs,
    record,
    run_sheet,
    service,
    setpoints,
    states,
    trend_charts,
)
from opencdmo.batches.material_schemas import ConsumptionIn, OutputIn
from opencdmo.batches.schemas import BatchCommand, CustodyIn, IdentityCheckIn, SignIn
from opencdmo.errors import AppError, Conflict, NotFound, ValidationFailed
from opencdmo.labels import label
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.web.flash import is_htmx, see_other
from opencdmo.web.guards import requires
from opencdmo.web.pages import form_data, form_struct, page

RUN = "/batches/{batch_id:uuid}/run"
Key = Annotated[str, QueryParameter(max_length=64, required=False)]
Opened = Annotated[str, QueryParameter(name="open", max_length=64, required=False)]


def _context(view: run_sheet.RunView) -> dict[str, Any]:
    return {
        "run": view,
        "batch": view.batch.batch,
        "check_names": run_sheet.CHECK_NAMES,
        "check_tones": run_sheet.CHECK_TONES,
        # A fresh key for each form a page shows: a form sent twice is one use.
        "new_key": lambda: uuid.uuid4().hex,
        "checks_json": json.dumps(
            {k: [run_sheet.CHECK_NAMES[k], t, label(k)] for k, t in run_sheet.CHECK_TONES.items()}
        ),
    }


async def _sheet_page(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    view: run_sheet.RunView,
    template: str,
    **extra: Any,
) -> Template:
    """The run page, or a part of it, with everything its steps show."""
    return await page(
        request, template, **extra, **await _benches(ctx, view.batch.batch.id), **_context(view)
    )


async def _benches(ctx: TenantContext, batch_id: UUID) -> dict[str, Any]:
    """What the run page shows of the batch's materials, equipment, setpoints and trends."""
    return {
        "bench": await material_views.at_the_bench(ctx, batch_id),
        "gear": await equipment_use.at_the_bench(ctx, batch_id),
        "setpoints": await setpoints.at_the_bench(ctx, batch_id),
        "trends": await trend_charts.at_the_bench(ctx, batch_id),
    }


def run_form(path: str, action: str = "execute") -> post:
    """A form of the run page: posted by someone who may ``action`` batches at the batch's
    site, answered with a redirect (or the page again with the refusal)."""
    return post(
        path,
        opt=requires("batches", action, site_scoped=True),
        include_in_schema=False,
        status_code=303,
        media_type=MediaType.HTML,
    )


@get(RUN, opt=requires("batches", "read", site_scoped=True), include_in_schema=False)
async def run_page(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    batch_id: FromPath[UUID],
    opened: Opened = "",
) -> Template:
    """The batch at the bench: every step's phases with their state and commands, their
    instructions, parameters and fields; inputs for a member who may record entries in a
    phase while it is Running. A step whose phases have all ended is folded to a summary
    (``open``: the key of one to show whole)."""
    view = await run_sheet.read(ctx, batch_id)
    return await _sheet_page(request, ctx, view, "batches/run.html", opened=opened)


@get(RUN + "/step", opt=requires("batches", "read", site_scoped=True), include_in_schema=False)
async def run_step(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    batch_id: FromPath[UUID],
    step: Key = "",
) -> Template:
    """One step of the run page, whole, as it stands now: what a folded step's Open loads
    in its place."""
    view = await run_sheet.read(ctx, batch_id)
    found = next((st for up in view.sheet.procedures for st in up.steps if st.key == step), None)
    if found is None:
        raise NotFound(f"This batch's control recipe has no step '{step}'.")
    return await _sheet_page(request, ctx, view, "batches/_run_step.html", st=found)


async def run_command(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    batch_id: UUID,
    where: str,
    run: Callable[[], Awaitable[str | tuple[str, str]]],
) -> Template | Response[Any]:
    """Run a command of the run page and go back to the phase (``where``: its dom id) with
    what it says (and the kind of message, when it is not a success); a refusal shows the
    page again with the message at that phase (a 404 stays a 404)."""
    try:
        done = await run()
    except AppError as exc:
        if exc.status_code == 404:
            raise
        view = await run_sheet.read(ctx, batch_id)
        return await _sheet_page(
            request,
            ctx,
            view,
            "batches/run.html",
            status_code=exc.status_code,
            error=exc.message,
            error_at=where,
            opened="",
        )
    url = f"/t/{ctx.slug}/batches/{batch_id}/run"
    # Back at the phase; from a dialog (htmx) without the fragment, which would only scroll
    # the page it is on (the page scrolls to the current phase itself).
    said, kind = (done, "success") if isinstance(done, str) else done
    target = url if is_htmx(request) else f"{url}#{where}"
    return see_other(request, target, flash=said, kind=kind)


PHASE = RUN + "/phases/{step:str}/{phase:str}"


@run_form(PHASE + "/{command:str}")
async def phase_command_form(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    batch_id: FromPath[UUID],
    step: FromPath[str],
    phase: FromPath[str],
    command: FromPath[str],
) -> Template | Response[Any]:
    async def run() -> str:
        data, _ = await form_struct(request, BatchCommand)
        done = await execution.command_phase(ctx, batch_id, step, phase, command, data.reason)
        return f"{label(phase)}: {label(done.status)}."

    return await run_command(request, ctx, batch_id, f"p-{step[:64]}--{phase[:64]}", run)


@run_form(RUN + "/identity")
async def identity_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], batch_id: FromPath[UUID]
) -> Template | Response[Any]:
    data = await form_data(request)
    step = str(data.get("step", ""))[:64]

    async def run() -> str:
        found, _ = await form_struct(request, IdentityCheckIn)
        check = await execution.check_identity(ctx, batch_id, found.step, found.scanned)
        if not check.matched:
            raise Conflict(
                f"The label {check.scanned} is not this batch's COI label: the step is blocked "
                "and QA has been given a critical exception."
            )
        return "The COI label matches."

    first = await run_sheet.first_phase_of(ctx, batch_id, step)
    return await run_command(request, ctx, batch_id, first, run)


@run_form(RUN + "/custody")
async def custody_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], batch_id: FromPath[UUID]
) -> Template | Response[Any]:
    async def run() -> str:
        found, _ = await form_struct(request, CustodyIn)
        await execution.take_custody(ctx, batch_id, found.location)
        return f"You hold the material at {found.location}."

    return await run_command(request, ctx, batch_id, "custody", run)


@run_form(PHASE + "/verify", "verify")
async def verify_form(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    settings: NamedDependency[Settings],
    batch_id: FromPath[UUID],
    step: FromPath[str],
    phase: FromPath[str],
) -> Template | Response[Any]:
    async def run() -> str:
        signing, _ = await form_struct(request, SignIn)
        done = await execution.verify_phase(
            settings, ctx, batch_id, step, phase, signing.password, signing.reason
        )
        return f"{label(phase)}: {done.kind} by {done.signature.signer_name}."

    return await run_command(request, ctx, batch_id, f"p-{step[:64]}--{phase[:64]}", run)


@get(RUN + "/field", opt=requires("batches", "read", site_scoped=True), include_in_schema=False)
async def run_field(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    batch_id: FromPath[UUID],
    step: Key = "",
    phase: Key = "",
    field: Key = "",
) -> Template:
    """One field of the run page as it stands now (its current value, who, when, its check),
    the same markup the page has: the entry queue swaps it in after a send."""
    view = await run_sheet.read(ctx, batch_id)
    found = view.sheet.field(step, phase, field)
    return await page(request, "batches/_run_field.html", f=found, **_context(view))


@dataclass(frozen=True)
class PhaseRef:
    """A phase of the run page by its step and key."""

    step: str
    key: str

    @property
    def dom_id(self) -> str:
        return f"p-{self.step}--{self.key}"


@get(
    RUN + "/exceptions", opt=requires("batches", "read", site_scoped=True), include_in_schema=False
)
async def run_exceptions(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    batch_id: FromPath[UUID],
    step: Key = "",
    phase: Key = "",
) -> Template:
    """The exceptions of one phase as they stand now, the same markup the page has: the run
    page asks for them every 15 s while the phase runs (an excursion the capture worker
    raises shows without a reload)."""
    found = await record.read(ctx, batch_id)
    row = found.phase(step, phase)
    if row is None:
        raise NotFound(f"This batch has no phase '{phase[:64]}' in step '{step[:64]}'.")
    return await page(
        request,
        "batches/_run_exceptions.html",
        ph=PhaseRef(step, phase),
        rec=found,
        live=row.status == states.RUNNING,
    )


@run_form(RUN + "/materials")
async def consume_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], batch_id: FromPath[UUID]
) -> Template | Response[Any]:
    """A container used in a step, scanned (its label carries its id) or picked."""
    data = await form_data(request)
    step = str(data.get("step", ""))[:64]

    async def run() -> str:
        scanned = str(data.get("scanned", "")).strip() or str(data.get("picked", "")).strip()
        found, _ = await form_struct(
            request,
            ConsumptionIn,
            values={
                "step": step,
                "container_id": _container_id(scanned),
                "quantity": str(data.get("quantity", "")).strip(),
                "unit": str(data.get("unit", "")).strip(),
                **({"idempotency_key": key} if (key := str(data.get("key", "")).strip()) else {}),
            },
        )
        done = await materials.consume(
            ctx,
            batch_id,
            found.step,
            found.container_id,
            found.quantity,
            found.unit,
            found.idempotency_key,
        )
        used = done.consumption
        said = f"Used {used.quantity} {used.unit} at {label(step)}."
        if done.raised:
            said += " Exception raised: " + ", ".join(label(k) for k in done.raised) + "."
        return said

    return await run_command(request, ctx, batch_id, f"m-{step}", run)


@run_form(RUN + "/equipment")
async def equipment_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], batch_id: FromPath[UUID]
) -> Template | Response[Any]:
    """The equipment unit for a step, scanned (its code) or picked."""
    data = await form_data(request)
    step = str(data.get("step", ""))[:64]

    async def run() -> str:
        scanned = str(data.get("scanned", "")).strip() or str(data.get("picked", "")).strip()
        done = await equipment_use.bind(ctx, batch_id, step, scanned[:64])
        said = f"{done.unit.code} taken for {label(step)}."
        if done.raised:
            said += " Exception raised: " + ", ".join(label(k) for k in done.raised) + "."
        return said

    return await run_command(request, ctx, batch_id, f"e-{step}", run)


@run_form(RUN + "/from-equipment")
async def from_equipment_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], batch_id: FromPath[UUID]
) -> Template | Response[Any]:
    """A data-capture field's value taken from the equipment bound to its step."""
    data = await form_data(request)
    step, phase = str(data.get("step", ""))[:64], str(data.get("phase", ""))[:64]
    field = str(data.get("field", ""))[:64]

    async def run() -> str:
        key = str(data.get("key", "")).strip()[:200] or uuid.uuid4().hex
        done = await service.record_entry(
            ctx, batch_id, step, phase, field, None, None, key, from_equipment=True
        )
        entry, source = done.entry, done.entry.equipment_source or {}
        said = (
            f"{label(field)}: {units.quantity(entry.value, entry.unit)} from {source.get('code')}."
        )
        return said if entry.check_result == "in_limits" else f"{said} {entry.message}"

    return await run_command(request, ctx, batch_id, f"p-{step}--{phase}", run)


@run_form(RUN + "/outputs")
async def output_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], batch_id: FromPath[UUID]
) -> Template | Response[Any]:
    """What a step made: a lot in quarantine with the batch as its origin."""
    data = await form_data(request)
    step = str(data.get("step", ""))[:64]

    async def run() -> str:
        count = str(data.get("containers", "")).strip()
        expiry = str(data.get("expiry_date", "")).strip()
        found, _ = await form_struct(
            request,
            OutputIn,
            values={
                "step": step,
                "material_id": str(data.get("material_id", "")).strip(),
                "quantity": str(data.get("quantity", "")).strip(),
                "unit": str(data.get("unit", "")).strip(),
                **({"containers": count} if count else {}),
                **({"expiry_date": expiry} if expiry else {}),
            },
        )
        made = await outputs.produce(
            ctx,
            batch_id,
            outputs.Output(
                found.step,
                found.material_id,
                found.quantity,
                found.unit,
                found.lot_number,
                found.containers if isinstance(found.containers, int) else None,
                found.expiry_date,
            ),
        )
        return f"Lot {made.lot_number} recorded, in quarantine until QC releases it."

    return await run_command(request, ctx, batch_id, f"o-{step}", run)


def _container_id(scanned: str) -> str:
    """The container's id from what was scanned or typed: the id itself, or a label's QR
    text that ends with it (``opencdmo:container:<id>``)."""
    if not scanned:
        raise ValidationFailed(
            "Scan the container's label or pick a container.", details={"field": "scanned"}
        )
    tail = re.split(r"[/:]", scanned.rstrip("/"))[-1]
    try:
        return str(UUID(tail))
    except ValueError:
        raise ValidationFailed(
            f"'{scanned[:80]}' is not a container label.", details={"field": "scanned"}
        ) from None


pages = [
    run_page,
    run_field,
    run_step,
    run_exceptions,
    identity_form,
    custody_form,
    verify_form,
    phase_command_form,
    consume_form,
    equipment_form,
    from_equipment_form,
    output_form,
]
