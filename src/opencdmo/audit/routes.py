"""Audit trail page and API (its CSV/JSON export: ``opencdmo.exports``)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Template

from opencdmo.audit import queries, sentences
from opencdmo.audit.schemas import AuditEventOut, AuditPage
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


# Pages of a tenant, under /t/{slug} (the app mounts them in the context's router).
pages = [
    audit_page,
]

# The JSON API of a tenant, under /api/v1/t/{slug} (the app mounts it likewise).
api = [
    api_audit,
]
