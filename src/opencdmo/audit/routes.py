"""Audit trail page, CSV/JSON export and API."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.params import QueryParameter
from litestar.response import Stream, Template

from opencdmo.audit import queries, sentences
from opencdmo.audit.schemas import AuditEventOut, AuditPage
from opencdmo.audit.service import record
from opencdmo.canonical import canonical_json
from opencdmo.db.tx import unit_of_work
from opencdmo.scope import TenantContext
from opencdmo.web.guards import requires
from opencdmo.web.pages import page

PAGE_SIZE = 50


Actor = Annotated[str | None, QueryParameter(name="actor", required=False, max_length=200)]
Entity = Annotated[str | None, QueryParameter(name="entity", required=False, max_length=200)]
Action = Annotated[str | None, QueryParameter(name="action", required=False, max_length=200)]
Since = Annotated[str | None, QueryParameter(name="since", required=False, max_length=200)]
Until = Annotated[str | None, QueryParameter(name="until", required=False, max_length=200)]
Before = Annotated[int | None, QueryParameter(name="before", required=False, ge=1)]
Limit = Annotated[int, QueryParameter(name="limit", ge=1, le=500)]


# A spreadsheet reads a cell that begins with one of these as a formula (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A cell as written to the CSV export: text that a spreadsheet would run as a formula is
    prefixed with a single quote (OWASP), so it shows as the text it is."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


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


async def _export(ctx: TenantContext, flt: queries.AuditFilter, fmt: str) -> AsyncIterator[bytes]:
    if fmt == "csv":
        yield ("\ufeff" + ",".join(queries.COLUMNS) + "\r\n").encode()
    else:
        yield b"["
    first = True
    async for batch in queries.batches(ctx, flt):
        buffer = io.StringIO()
        for event in batch:
            row = event.as_dict()
            if fmt == "csv":
                csv.writer(buffer, lineterminator="\r\n").writerow(
                    [csv_cell(row[c]) for c in queries.COLUMNS]
                )
            else:
                buffer.write(
                    ("" if first else ",")
                    + "\n"
                    + canonical_json(
                        {
                            **row,
                            "old_values": None
                            if row["old_values"] is None
                            else json.loads(row["old_values"]),
                            "new_values": None
                            if row["new_values"] is None
                            else json.loads(row["new_values"]),
                        }
                    )
                )
                first = False
        yield buffer.getvalue().encode()
    if fmt == "json":
        yield b"\n]\n"


async def _export_response(ctx: TenantContext, flt: queries.AuditFilter, fmt: str) -> Stream:
    async with unit_of_work(ctx):
        await record(
            ctx,
            "audit.exported",
            "audit_trail",
            ctx.slug,
            new={
                "format": fmt,
                **flt.as_query(),
                "since": flt.since.isoformat() if flt.since else None,
                "until": flt.until.isoformat() if flt.until else None,
            },
        )
    media = "text/csv" if fmt == "csv" else "application/json"  # text/*: charset added
    filename = f"audit-{ctx.slug}.{fmt}"
    return Stream(
        _export(ctx, flt, fmt),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


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


@get(
    "/audit/export",
    opt=requires("audit", "export", writes=True),
    include_in_schema=False,
)
async def audit_export(
    ctx: NamedDependency[TenantContext],
    format_: Format = "csv",
    actor: Actor = None,
    entity: Entity = None,
    action: Action = None,
    since: Since = None,
    until: Until = None,
) -> Stream:
    flt = queries.parse_filter(ctx, actor, entity, action, since, until)
    return await _export_response(ctx, flt, format_)


@get(
    "/audit/export",
    opt=requires("audit", "export", writes=True),
    tags=["audit"],
    operation_class=ExportOperation,
)
async def api_audit_export(
    ctx: NamedDependency[TenantContext],
    format_: Format = "json",
    actor: Actor = None,
    entity: Entity = None,
    action: Action = None,
    since: Since = None,
    until: Until = None,
) -> Stream:
    """The whole (filtered) trail, oldest first, as CSV or JSON, with each event's hashes."""
    flt = queries.parse_filter(ctx, actor, entity, action, since, until)
    return await _export_response(ctx, flt, format_)


# Pages of a tenant, under /t/{slug} (the app mounts them in the context's router).
pages = [
    audit_page,
    audit_export,
]

# The JSON API of a tenant, under /api/v1/t/{slug} (the app mounts it likewise).
api = [
    api_audit,
    api_audit_export,
]
