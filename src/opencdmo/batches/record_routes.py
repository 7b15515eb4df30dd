"""The batch record's pages: the record itself (and its printable view), its BatchML export,
QA's review by exception with its forms (accept, open a deviation, close one, release or
reject), and the live board of batches in progress."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.params import FromPath
from litestar.response import Response, Template

from opencdmo.batches import board, record, review, trend_charts
from opencdmo.batches.routes import ONE
from opencdmo.batches.schemas import AcceptIn, DeviationClose, DeviationIn, DispositionIn
from opencdmo.errors import AppError
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.web.flash import see_other
from opencdmo.web.guards import requires
from opencdmo.web.pages import form_struct, page

XML = "application/xml"


async def _record_page(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    batch_id: UUID,
    template: str,
    *,
    status: int = 200,
    error: str | None = None,
    form: dict[str, Any] | None = None,
) -> Template:
    found = await record.read(ctx, batch_id)
    reviewing = template == "batches/review.html"
    return await page(
        request,
        template,
        status_code=status,
        rec=found,
        trends=await trend_charts.for_review(ctx, batch_id) if reviewing else [],
        error=error,
        form=form or {},
    )


@get(ONE + "/record", opt=requires("batches", "read", site_scoped=True), include_in_schema=False)
async def record_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], batch_id: FromPath[UUID]
) -> Template:
    """The whole batch record: header, control recipe hash, every entry with its history,
    exceptions and their disposition, deviations, signatures, chain of identity and custody
    (printable: the print stylesheet shows it as the paper record)."""
    return await _record_page(request, ctx, batch_id, "batches/record.html")


@get(ONE + "/review", opt=requires("batches", "read", site_scoped=True), include_in_schema=False)
async def review_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], batch_id: FromPath[UUID]
) -> Template:
    """Review by exception: the batch's exceptions and deviations only, each to disposition,
    with everything in limits summarised as counts; release or reject."""
    return await _record_page(request, ctx, batch_id, "batches/review.html")


async def _command(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    batch_id: UUID,
    run: Any,
    done: str,
    form: dict[str, Any],
) -> Template | Response[Any]:
    """Run a review form's command (it returns what to say when done, or None for ``done``);
    a refusal shows the review page again with the message next to the form (a 404 stays a
    404)."""
    try:
        said = await run()
    except AppError as exc:
        if exc.status_code == 404:
            raise
        return await _record_page(
            request,
            ctx,
            batch_id,
            "batches/review.html",
            status=exc.status_code,
            error=exc.message,
            form=form,
        )
    return see_other(request, f"/t/{ctx.slug}/batches/{batch_id}/review", flash=said or done)


@post(
    ONE + "/exceptions/{exception_id:uuid}/accept",
    opt=requires("batches", "review", site_scoped=True),
    include_in_schema=False,
    status_code=303,
    media_type=MediaType.HTML,
)
async def accept_form(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    batch_id: FromPath[UUID],
    exception_id: FromPath[UUID],
) -> Template | Response[Any]:
    async def run() -> None:
        data, _ = await form_struct(request, AcceptIn)
        await review.accept_exception(ctx, batch_id, exception_id, data.comment)

    kept = {"form": f"accept-{exception_id}"}
    return await _command(request, ctx, batch_id, run, "Exception accepted.", kept)


@post(
    ONE + "/deviations",
    opt=requires("batches", "deviate", site_scoped=True),
    include_in_schema=False,
    status_code=303,
    media_type=MediaType.HTML,
)
async def deviation_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], batch_id: FromPath[UUID]
) -> Template | Response[Any]:
    async def run() -> None:
        data, _ = await form_struct(request, DeviationIn)
        await review.open_deviation(
            ctx, batch_id, data.exception_ids, data.classification, data.description
        )

    return await _command(request, ctx, batch_id, run, "Deviation opened.", {"form": "deviation"})


@post(
    ONE + "/deviations/{deviation_id:uuid}/close",
    opt=requires("batches", "review", site_scoped=True),
    include_in_schema=False,
    status_code=303,
    media_type=MediaType.HTML,
)
async def close_form(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    settings: NamedDependency[Settings],
    batch_id: FromPath[UUID],
    deviation_id: FromPath[UUID],
) -> Template | Response[Any]:
    async def run() -> None:
        data, _ = await form_struct(request, DeviationClose)
        await review.close_deviation(
            settings,
            ctx,
            batch_id,
            deviation_id,
            data.impact,
            data.root_cause,
            data.capa_reference,
            data.password,
            data.reason,
        )

    kept = {"form": f"close-{deviation_id}"}
    return await _command(request, ctx, batch_id, run, "Deviation closed.", kept)


@post(
    ONE + "/disposition",
    opt=requires("batches", "release", site_scoped=True),
    include_in_schema=False,
    status_code=303,
    media_type=MediaType.HTML,
)
async def disposition_form(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    settings: NamedDependency[Settings],
    batch_id: FromPath[UUID],
) -> Template | Response[Any]:
    async def run() -> str:
        data, _ = await form_struct(request, DispositionIn)
        view = await review.decide(
            settings, ctx, batch_id, data.decision, data.password, data.reason
        )
        return f"Batch {view.batch.number} {view.batch.disposition}."

    return await _command(request, ctx, batch_id, run, "Signed.", {"form": "disposition"})


@get("/batches/board", opt=requires("batches", "read", site_scoped=True), include_in_schema=False)
async def board_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template:
    """The live board: every batch in progress with its current step, who is on it, its open
    exceptions and its time against plan (the page refreshes itself)."""
    rows = await board.in_progress(ctx)
    return await page(request, "batches/board.html", block="board", rows=rows)


pages = [
    board_page,
    record_page,
    review_page,
    accept_form,
    deviation_form,
    close_form,
    disposition_form,
]
