"""Audit trail page, CSV/JSON export and API."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.params import QueryParameter
from litestar.response import Response, Stream, Template

from opencdmo.audit import queries, sentences
from opencdmo.audit.schemas import AuditEventOut, AuditPage
from opencdmo.exports import routes as export_routes
from opencdmo.exports import service as exports
from opencdmo.exports.audit_trail import csv_cell
from opencdmo.exports.schemas import ExportOut
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.web.guards import requires
from opencdmo.web.pages import form_data, page

PAGE_SIZE = 50
__all__ = ["csv_cell"]  # the CSV export's cell, where it was


Actor = Annotated[str | None, QueryParameter(name="actor", required=False, max_length=200)]
Entity = Annotated[str | None, QueryParameter(name="entity", required=False, max_length=200)]
Action = Annotated[str | None, QueryParameter(name="action", required=False, max_length=200)]
Since = Annotated[str | None, QueryParameter(name="since", required=False, max_length=200)]
Until = Annotated[str | None, QueryParameter(name="until", required=False, max_length=200)]
Before = Annotated[int | None, QueryParameter(name="before", required=False, ge=1)]
Limit = Annotated[int, QueryParameter(name="limit", ge=1, le=500)]


def _loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def _out(row: queries.AuditRow) -> AuditEventOut:
    values = {"old_values": _loads(row.old_values), "new_values": _loads(row.new_values)}
    return AuditEventOut(**{**row.as_dict(), **values})


@get(
    "/audit",
    opt=requires("audit", "read"),
    include_in_schema=False,
)
async def audit_page(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    actor: Actor = None,
    entity: Entity = None,
    action: Action = None,
    since: Since = None,
    until: Until = None,
    before: Before = None,
) -> Template:
    flt = queries.parse_filter(ctx, actor, entity, action, since, until)
    rows, next_before = await queries.page(ctx, flt, before=before, limit=PAGE_SIZE)
    return await page(
        request,
        "audit/trail.html",
        block="results",
        events=await sentences.describe(ctx, rows),
        next_before=next_before,
        flt=flt,
        raw={"since": since or "", "until": until or ""},
        actions=sentences.action_names(),
        entity_types=sentences.entity_types(),
        people=await sentences.people(ctx),
    )


@get(
    "/audit",
    opt=requires("audit", "read"),
    tags=["audit"],
)
async def api_audit(
    ctx: NamedDependency[TenantContext],
    actor: Actor = None,
    entity: Entity = None,
    action: Action = None,
    since: Since = None,
    until: Until = None,
    before: Before = None,
    limit: Limit = 100,
) -> AuditPage:
    """Audit events, newest first. ``entity`` is ``type`` or ``type:id``; ``action`` a prefix;
    ``since``/``until`` dates or ISO times (without a zone: the site's zone). Page with
    ``before`` = the previous page's ``next_before``."""
    flt = queries.parse_filter(ctx, actor, entity, action, since, until)
    rows, next_before = await queries.page(ctx, flt, before=before, limit=limit)
    return AuditPage([_out(row) for row in rows], next_before)


Format = Annotated[Literal["csv", "json"], QueryParameter(name="format")]


@dataclass
class ExportOperation(Operation):
    """The export answers CSV or JSON, as ``format`` asks: the schema says so (a streamed
    response would otherwise be documented as JSON only)."""

    def __post_init__(self) -> None:
        success = (self.responses or {}).get("200")
        if isinstance(success, OpenAPIResponse):
            success.description = "The audit events, oldest first, with their hashes"
            success.content = {
                "text/csv": OpenAPIMediaType(
                    schema=Schema(
                        type=OpenAPIType.STRING,
                        description="UTF-8 with a byte order mark; one header row ("
                        + ", ".join(queries.COLUMNS)
                        + "); cells that a spreadsheet would read as a formula start with '",
                    )
                ),
                "application/json": OpenAPIMediaType(
                    schema=Schema(type=OpenAPIType.ARRAY, items=Schema(type=OpenAPIType.OBJECT))
                ),
            }


@post(
    "/audit/export",
    opt=requires("audit", "export"),
    include_in_schema=False,
    status_code=303,
    media_type=MediaType.HTML,
)
async def audit_export_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Response[Any]:
    """Ask for the (filtered) trail as CSV or JSON: the job worker builds it; the export's
    page follows. The form sends the format and the filter the page shows."""
    sent = await form_data(request)
    fields = ("format", "actor", "entity", "action", "since", "until")
    subject = {k: str(sent[k]) for k in fields if isinstance(sent.get(k), str) and sent[k]}
    row = await exports.request(ctx, exports.AUDIT_TRAIL, subject)
    return export_routes.redirect_to(request, ctx, row)


@get(
    "/audit/export",
    opt=requires("audit", "export", writes=True),
    tags=["audit"],
    operation_class=ExportOperation,
    responses={202: ResponseSpec(ExportOut, description="Not built yet: the export to poll")},
)
async def api_audit_export(
    ctx: NamedDependency[TenantContext],
    settings: NamedDependency[Settings],
    format_: Format = "json",
    actor: Actor = None,
    entity: Entity = None,
    action: Action = None,
    since: Since = None,
    until: Until = None,
) -> Stream | Response[ExportOut]:
    """The whole (filtered) trail, oldest first, as CSV or JSON, with each event's hashes.
    Built by the job worker: answered once built (within ``OPENCDMO_EXPORT_WAIT_SECONDS``),
    else 202 with the export to poll (``GET .../exports/{id}``)."""
    raw = {"format": format_, "actor": actor, "entity": entity, "action": action}
    subject = {k: v for k, v in {**raw, "since": since, "until": until}.items() if v}
    return await export_routes.requested(ctx, settings, exports.AUDIT_TRAIL, subject)


# Pages of a tenant, under /t/{slug} (the app mounts them in the context's router).
pages = [
    audit_page,
    audit_export_form,
]

# The JSON API of a tenant, under /api/v1/t/{slug} (the app mounts it likewise).
api = [
    api_audit,
    api_audit_export,
]
