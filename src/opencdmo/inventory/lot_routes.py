"""The lot's pages and forms: the receipt form, the lot page with QC's release or rejection
(signed), hold and unhold, and moving its containers (each form shown only to those who may
use it), and the printable labels of a lot's containers or of one container with the
"labels printed" command that takes them off the queue.

A refused form shows its page again with the message in the form and the values kept (a 404
stays a 404); a done one leads to the lot's page with a message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.params import FromPath
from litestar.response import Response, Template

from opencdmo.access.service import can
from opencdmo.errors import AppError, NotFound
from opencdmo.inventory import forms, labels, locations, placing, receipt, service
from opencdmo.inventory.edge import coa_upload
from opencdmo.inventory.location_schemas import (
    LabelsForm,
    MoveForm,
    ReasonForm,
    ReceiptForm,
    SignForm,
)
from opencdmo.inventory.locations import Labelled
from opencdmo.inventory.receipt import Receipt
from opencdmo.inventory.routes import LOT, LOTS
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.web.flash import see_other
from opencdmo.web.guards import requires
from opencdmo.web.pages import form_data, form_struct, page


def form_post(path: str, action: str, *, uploads: bool = False) -> post:
    """A page form's handler: a POST needing materials:``action``, answering with a page or
    a 303 (``uploads``: it takes a file, up to the upload limit)."""
    return post(
        path,
        opt=requires("materials", action, uploads=uploads),
        include_in_schema=False,
        status_code=303,
        media_type=MediaType.HTML,
    )


# --- receipt ----------------------------------------------------------------------------------


async def _receipt_page(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    *,
    status: int = 200,
    error: str | None = None,
    kept: dict[str, Any] | None = None,
) -> Template:
    materials = await service.list_materials(ctx)
    chosen = request.query_params.get("material", "")
    return await page(
        request,
        "inventory/receive.html",
        status_code=status,
        materials=[(str(m.id), f"{m.code} {m.name} ({m.default_unit})") for m in materials],
        stores=[("", "Not put away yet"), *await forms.store_options(ctx)],
        error=error,
        kept=kept or {"material_id": chosen},
    )


@get(LOTS + "/new", opt=requires("materials", "manage"), include_in_schema=False)
async def receipt_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template:
    """The receipt form: a delivery of a material into quarantine, split into containers and
    put at a location."""
    return await _receipt_page(request, ctx)


@form_post(LOTS, "manage", uploads=True)
async def receipt_form(
    request: Request[Any, Any, Any],
    settings: NamedDependency[Settings],
    ctx: NamedDependency[TenantContext],
) -> Template | Response[Any]:
    kept = await forms.kept(request)
    try:
        data, _ = await form_struct(request, ReceiptForm)
        row = await receipt.receive(
            ctx,
            Receipt(
                forms.an_id(data.material_id, "material_id", "a material"),
                data.lot_number,
                data.supplier,
                data.supplier_lot,
                forms.a_number(data.quantity, "quantity", "Quantity"),
                data.unit,
                forms.maybe_date(data.expiry_date, "expiry_date", "Expiry date"),
                forms.containers(data.containers),
                data.coa_note or None,
                location_id=forms.maybe_id(data.location_id, "location_id", "a location"),
            ),
            await coa_upload(await form_data(request), settings),
        )
    except AppError as exc:
        return await _receipt_page(
            request, ctx, status=exc.status_code, error=exc.message, kept=kept
        )
    return see_other(
        request,
        f"/t/{ctx.slug}/lots/{row.id}",
        flash=f"Lot {row.lot_number} received into quarantine.",
    )


# --- the lot's page ---------------------------------------------------------------------------


async def _lot_page(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    lot_id: UUID,
    *,
    status: int = 200,
    error: str | None = None,
    form: str = "",
    kept: dict[str, Any] | None = None,
) -> Template:
    view = await service.get_lot(ctx, lot_id)
    may_manage = await can(ctx, "materials", "manage")
    warnings = {
        c.id: placing.condition_warning(
            view.material.code, view.material.storage_condition, view.places[c.location_id]
        )
        for c in view.containers
        if c.location_id
    }
    return await page(
        request,
        "inventory/lot.html",
        status_code=status,
        view=view,
        warnings=warnings,
        status_names=service.STATUS_NAMES,
        may_manage=may_manage,
        may_release=await can(ctx, "materials", "release"),
        stores=await forms.store_options(ctx) if may_manage else [],
        error=error,
        form=form,
        kept=kept or {},
    )


@get(LOT, opt=requires("materials", "read"), include_in_schema=False)
async def lot_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], lot_id: FromPath[UUID]
) -> Template:
    """The lot: receipt, containers and where they are, status history, and the forms the
    person may use."""
    return await _lot_page(request, ctx, lot_id)


async def _command(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    lot_id: UUID,
    form: str,
    run: Callable[[], Awaitable[str]],
) -> Template | Response[Any]:
    kept = await forms.kept(request)
    kept.pop("password", None)
    try:
        said = await run()
    except AppError as exc:
        if exc.status_code == 404:
            raise
        return await _lot_page(
            request, ctx, lot_id, status=exc.status_code, error=exc.message, form=form, kept=kept
        )
    return see_other(request, f"/t/{ctx.slug}/lots/{lot_id}", flash=said)


def _decision_form(decision: str) -> Any:
    async def handler(
        request: Request[Any, Any, Any],
        ctx: NamedDependency[TenantContext],
        settings: NamedDependency[Settings],
        lot_id: FromPath[UUID],
    ) -> Template | Response[Any]:
        async def run() -> str:
            data, _ = await form_struct(request, SignForm)
            view = await service.decide(settings, ctx, lot_id, decision, data.password, data.reason)
            return f"Lot {view.lot.lot_number} {service.STATUS_NAMES[view.status]}."

        return await _command(request, ctx, lot_id, decision, run)

    handler.__name__ = f"{decision}_form"
    return form_post(LOT + f"/{decision}", "release")(handler)


release_form = _decision_form("release")
reject_form = _decision_form("reject")


def _hold_form(command: str) -> Any:
    async def handler(
        request: Request[Any, Any, Any],
        ctx: NamedDependency[TenantContext],
        lot_id: FromPath[UUID],
    ) -> Template | Response[Any]:
        async def run() -> str:
            data, _ = await form_struct(request, ReasonForm)
            act = service.hold if command == "hold" else service.unhold
            view = await act(ctx, lot_id, data.reason)
            return f"Lot {view.lot.lot_number} {service.STATUS_NAMES[view.status]}."

        return await _command(request, ctx, lot_id, command, run)

    handler.__name__ = f"{command}_form"
    return form_post(LOT + f"/{command}", "manage")(handler)


hold_form = _hold_form("hold")
unhold_form = _hold_form("unhold")


@form_post(LOT + "/move", "manage")
async def move_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], lot_id: FromPath[UUID]
) -> Template | Response[Any]:
    """Move some of the lot's containers to a location."""

    async def run() -> str:
        data, _ = await form_struct(request, MoveForm)
        chosen = forms.ids(data.container_ids)
        view = await service.get_lot(ctx, lot_id)
        if not set(chosen) <= {c.id for c in view.containers}:
            raise NotFound("No such container of this lot.")
        to = forms.an_id(data.to_location, "to_location", "where to")
        moved = await locations.move(ctx, chosen, to, data.reason or None)
        warned = [m.container.warning for m in moved if m.container.warning]
        where = moved[0].container.place.path if moved and moved[0].container.place else ""
        return f"{len(moved)} moved to {where}." + (f" {warned[0]}" if warned else "")

    return await _command(request, ctx, lot_id, "move", run)


# --- labels -----------------------------------------------------------------------------------


def _printable(found: list[Labelled]) -> list[dict[str, Any]]:
    return [
        {
            "item": f,
            "barcode": labels.code128_svg(str(f.label.container_id)),
            "qr": labels.qr_svg(labels.payload(f.label)),
        }
        for f in found
    ]


@get(LOT + "/labels", opt=requires("materials", "read"), include_in_schema=False)
async def lot_labels_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], lot_id: FromPath[UUID]
) -> Template:
    """The labels of the lot's containers, one per printed page (50 x 25 mm)."""
    view = await service.get_lot(ctx, lot_id)
    found = await locations.lot_labels(ctx, lot_id)
    return await page(
        request,
        "inventory/labels.html",
        view=view,
        labels=_printable(found),
        action=f"/t/{ctx.slug}/lots/{lot_id}/labels-printed",
        may_manage=await can(ctx, "materials", "manage"),
        single=False,
    )


@get(
    "/containers/{container_id:uuid}/label",
    opt=requires("materials", "read"),
    include_in_schema=False,
)
async def container_label_page(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    container_id: FromPath[UUID],
) -> Template:
    """One container's label, to print (again)."""
    found = await locations.container_label(ctx, container_id)
    view = await service.get_lot(ctx, found.container.row.lot_id)
    return await page(
        request,
        "inventory/labels.html",
        view=view,
        labels=_printable([found]),
        action=f"/t/{ctx.slug}/lots/{view.lot.id}/labels-printed",
        may_manage=await can(ctx, "materials", "manage"),
        single=True,
    )


@form_post(LOT + "/labels-printed", "manage")
async def labels_printed_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], lot_id: FromPath[UUID]
) -> Template | Response[Any]:
    """Record that the labels were printed (the containers given, or all the lot's)."""

    async def run() -> str:
        data, _ = await form_struct(request, LabelsForm)
        chosen = forms.ids(data.container_ids) or None
        numbers = await locations.labels_printed(ctx, lot_id, chosen)
        return f"Labels recorded as printed: container{'s' if len(numbers) != 1 else ''} " + (
            ", ".join(str(n) for n in numbers)
        )

    return await _command(request, ctx, lot_id, "labels", run)


pages = [
    receipt_page,
    receipt_form,
    lot_page,
    release_form,
    reject_form,
    hold_form,
    unhold_form,
    move_form,
    lot_labels_page,
    container_label_page,
    labels_printed_form,
]
