"""The routes that ask for an export where the export was served before: the batch
record's BatchML (``.../batches/{id}/record.xml``), the sponsor's shared record
(``.../partners/batches/{id}/record.xml``) and the audit trail (``.../audit/export``). The
pages post to ask and go to the export's page; the API asks, waits and answers the file
(or 202 with the export to poll)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal
from uuid import UUID

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.params import FromPath, QueryParameter
from litestar.response import Response, Stream

from opencdmo.audit import queries
from opencdmo.audit.routes import Action, Actor, Entity, Since, Until
from opencdmo.batches.routes import ONE
from opencdmo.batches.sponsor_routes import RECORD, RECORD_OPT
from opencdmo.exports import routes as export_routes
from opencdmo.exports import service as exports
from opencdmo.exports.schemas import ExportOut
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.web.guards import requires
from opencdmo.web.pages import form_data

XML = "application/xml"


@post(
    ONE + "/record.xml",
    opt=requires("batches", "read", site_scoped=True),
    include_in_schema=False,
    status_code=303,
    media_type=MediaType.HTML,
)
async def record_xml_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], batch_id: FromPath[UUID]
) -> Response[Any]:
    """Ask for the record's BatchML: the job worker builds it; the export's page follows."""
    row = await exports.request(ctx, exports.BATCH_RECORD, {"batch_id": str(batch_id)})
    return export_routes.redirect_to(request, ctx, row)


@get(
    ONE + "/record.xml",
    opt=requires("batches", "read", site_scoped=True, writes=True),
    tags=["batches"],
    media_type=XML,
    responses={202: ResponseSpec(ExportOut, description="Not built yet: the export to poll")},
)
async def api_record_xml(
    ctx: NamedDependency[TenantContext],
    settings: NamedDependency[Settings],
    batch_id: FromPath[UUID],
) -> Stream | Response[ExportOut]:
    """The batch record as an ISA-88 BatchML BatchProductionRecord (B2MML V0700): header,
    control recipe and its hash, the procedure with every element's state, every entry with
    its history, exceptions and their disposition, deviations, signatures, custody. Built by
    the job worker: answered once built (within ``OPENCDMO_EXPORT_WAIT_SECONDS``), else 202
    with the export to poll (``GET .../exports/{id}``)."""
    subject = {"batch_id": str(batch_id)}
    return await export_routes.requested(ctx, settings, exports.BATCH_RECORD, subject)


@get(
    RECORD,
    opt=RECORD_OPT,
    tags=["partners"],
    media_type=XML,
    responses={202: ResponseSpec(ExportOut, description="Not built yet: the export to poll")},
)
async def api_shared_record(
    ctx: NamedDependency[TenantContext],
    settings: NamedDependency[Settings],
    batch_id: FromPath[UUID],
) -> Stream | Response[ExportOut]:
    """A released batch's record as BatchML, when its CDMO shares records with us. Built by
    the job worker: answered once built (within ``OPENCDMO_EXPORT_WAIT_SECONDS``), else 202
    with the export to poll (``GET .../exports/{id}``)."""
    subject = {"batch_id": str(batch_id), "shared": True}
    return await export_routes.requested(ctx, settings, exports.BATCH_RECORD, subject)


@post(
    RECORD,
    opt=requires("partners", "read"),
    include_in_schema=False,
    status_code=303,
    media_type=MediaType.HTML,
)
async def shared_record_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], batch_id: FromPath[UUID]
) -> Response[Any]:
    """Ask for the shared record's BatchML: the job worker builds it; its page follows."""
    subject = {"batch_id": str(batch_id), "shared": True}
    row = await exports.request(ctx, exports.BATCH_RECORD, subject)
    return export_routes.redirect_to(request, ctx, row)


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


pages = [record_xml_form, shared_record_form, audit_export_form]
api = [api_record_xml, api_shared_record, api_audit_export]
