"""The equipment pages and forms: the registry with a form to register a unit, and a unit's
page with its connection, its logbook, an edit form (name, site, due dates, the OPC UA
description as YAML or JSON), a status form (with a reason) and the signed logbook form
(cleaning, maintenance, calibration).

A refused form shows its page again with the message in the form and the values kept (a 404
stays a 404); a done one leads to the unit's page with a message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from litestar import MediaType, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Response, Template

from opencdmo.access.service import can
from opencdmo.equipment import service
from opencdmo.equipment.routes import BASE, ONE
from opencdmo.equipment.service import SETTABLE, Registration, Work
from opencdmo.equipment.trend_config import unit_groups
from opencdmo.errors import AppError, ValidationFailed
from opencdmo.labels import label
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.tenancy import service as tenancy
from opencdmo.web.flash import see_other
from opencdmo.web.guards import requires
from opencdmo.web.pages import form_data, page


def _form(path: str, action: str) -> post:
    return post(
        path,
        opt=requires("equipment", action),
        include_in_schema=False,
        status_code=303,
        media_type=MediaType.HTML,
    )


def _text(data: dict[str, Any], name: str, limit: int = 200) -> str:
    value = data.get(name, "")
    return (value if isinstance(value, str) else "").strip()[:limit]


def _date(value: str, field: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(f"{label(field)}: give a date.", details={"field": field}) from None


def _local_time(value: str, zone: str) -> datetime | None:
    """A form's date and time (no offset) in the tenant's time zone."""
    if not value:
        return None
    try:
        given = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(
            "Clean until: give a date and time.", details={"field": "clean_until"}
        ) from None
    return given if given.tzinfo else given.replace(tzinfo=ZoneInfo(zone))


# --- the registry -----------------------------------------------------------------------------


async def _list_page(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    *,
    status: int = 200,
    error: str | None = None,
    kept: dict[str, Any] | None = None,
) -> Template:
    sites = await tenancy.list_sites(ctx)
    return await page(
        request,
        "equipment/list.html",
        status_code=status,
        units=await service.list_units(ctx),
        sites={s.id: s.code for s in sites},
        site_options=[(s.code, f"{s.code} {s.name}") for s in sites],
        classes=[("", "Choose a class"), *await service.class_choices(ctx)],
        may_manage=await can(ctx, "equipment", "manage"),
        may_trust=await can(ctx, "equipment", "trust"),
        error=error,
        kept=kept or {},
    )


@get(BASE, opt=requires("equipment", "read"), include_in_schema=False)
async def equipment_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template:
    """The tenant's equipment units with their status, due dates and cleaning validity."""
    return await _list_page(request, ctx)


@_form(BASE, "manage")
async def register_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template | Response[Any]:
    data = await _kept(request)
    try:
        row = await service.register(
            ctx,
            Registration(
                _text(data, "code", 64),
                _text(data, "class", 64),
                _text(data, "site", 64),
                _text(data, "name"),
                _date(_text(data, "qualification_due"), "qualification_due"),
                _date(_text(data, "calibration_due"), "calibration_due"),
            ),
        )
    except AppError as exc:
        if exc.status_code == 404:
            raise
        return await _list_page(request, ctx, status=exc.status_code, error=exc.message, kept=data)
    return see_other(
        request, f"/t/{ctx.slug}/equipment/{row.code}", flash=f"{row.code} registered."
    )


async def _kept(request: Request[Any, Any, Any]) -> dict[str, Any]:
    try:
        return await form_data(request)
    except AppError:
        return {}


# --- a unit -----------------------------------------------------------------------------------


async def _unit_page(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    code: str,
    *,
    status: int = 200,
    error: str | None = None,
    form: str | None = None,
    kept: dict[str, Any] | None = None,
) -> Template:
    view = await service.get_unit(ctx, code)
    people = await tenancy.people_names(ctx, {e.performed_by for e in view.logbook})
    sites = await tenancy.list_sites(ctx)
    return await page(
        request,
        "equipment/unit.html",
        status_code=status,
        view=view,
        people=people,
        site_options=[(s.code, f"{s.code} {s.name}") for s in sites],
        described=_yaml(view.unit.connection),
        statuses=[(s, label(s)) for s in SETTABLE if s != view.unit.status],
        may_manage=await can(ctx, "equipment", "manage"),
        may_log=await can(ctx, "equipment", "log"),
        trends=unit_groups(ctx.slug, view.unit),
        error=error,
        form=form,
        kept=kept or {},
    )


@get(ONE, opt=requires("equipment", "read"), include_in_schema=False)
async def unit_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], code: FromPath[str]
) -> Template:
    """The unit: its class, site, status, due dates, cleaning, connection and logbook."""
    return await _unit_page(request, ctx, code)


async def _command(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    code: str,
    form: str,
    run: Callable[[dict[str, Any]], Awaitable[str]],
) -> Template | Response[Any]:
    data = await _kept(request)
    try:
        said = await run(data)
    except AppError as exc:
        if exc.status_code == 404:
            raise
        return await _unit_page(
            request, ctx, code, status=exc.status_code, error=exc.message, form=form, kept=data
        )
    row = await service.find(ctx, code)
    return see_other(request, f"/t/{ctx.slug}/equipment/{row.code}", flash=said)


@_form(ONE + "/status", "manage")
async def status_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], code: FromPath[str]
) -> Template | Response[Any]:
    async def run(data: dict[str, Any]) -> str:
        row = await service.find(ctx, code)
        done = await service.set_status(
            ctx, row.id, _text(data, "status", 40), _text(data, "reason", 2000)
        )
        return f"{done.code} is {label(done.status).lower()}."

    return await _command(request, ctx, code, "status", run)


@_form(ONE + "/logbook", "log")
async def logbook_form(
    request: Request[Any, Any, Any],
    settings: NamedDependency[Settings],
    ctx: NamedDependency[TenantContext],
    code: FromPath[str],
) -> Template | Response[Any]:
    async def run(data: dict[str, Any]) -> str:
        row = await service.find(ctx, code)
        work = Work(
            _text(data, "kind", 40),
            _text(data, "note", 2000),
            _local_time(_text(data, "clean_until", 40), ctx.time_zone),
            _date(_text(data, "calibration_due", 40), "calibration_due"),
        )
        password = data.get("password", "")
        await service.log_work(
            settings, ctx, row.id, work, password if isinstance(password, str) else ""
        )
        return f"{label(work.kind)} of {row.code} signed."

    return await _command(request, ctx, code, "logbook", run)


DESCRIPTION_MAX = 20_000


def _yaml(described: dict[str, Any] | None) -> str:
    return "" if described is None else yaml.safe_dump(described, sort_keys=False)


def _description(raw: object) -> Any:
    """The OPC UA description typed in the form, YAML or JSON (empty: none)."""
    text = raw if isinstance(raw, str) else ""
    if len(text) > DESCRIPTION_MAX:
        raise ValidationFailed(
            f"OPC UA description: at most {DESCRIPTION_MAX} characters.",
            details={"field": "opcua"},
        )
    if not text.strip():
        return None
    try:
        found = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ValidationFailed(
            f"OPC UA description: not YAML or JSON{line}.", details={"field": "opcua"}
        ) from None
    return found


def _version(value: str) -> datetime:
    try:
        found = datetime.fromisoformat(value)
    except ValueError:
        found = None
    if found is None or found.tzinfo is None:
        raise ValidationFailed(
            "The form lost which version of the unit it was opened on: reload the page.",
            details={"field": "version"},
        )
    return found


@_form(ONE + "/edit", "manage")
async def edit_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], code: FromPath[str]
) -> Template | Response[Any]:
    """The unit's name, site, due dates and OPC UA description changed (its code and class
    stay), from the version the form was opened on."""

    async def run(data: dict[str, Any]) -> str:
        row = await service.find(ctx, code)
        given = Registration(
            row.code,
            row.class_slug,
            _text(data, "site", 64),
            _text(data, "name"),
            _date(_text(data, "qualification_due", 40), "qualification_due"),
            _date(_text(data, "calibration_due", 40), "calibration_due"),
            _description(data.get("opcua", "")),
        )
        seen = _version(_text(data, "version", 64))
        changed = await service.change(ctx, row.id, given, seen=seen)
        return f"{row.code} changed." if changed else f"{row.code}: nothing to change."

    return await _command(request, ctx, code, "edit", run)


pages = [equipment_page, register_form, unit_page, status_form, logbook_form, edit_form]
