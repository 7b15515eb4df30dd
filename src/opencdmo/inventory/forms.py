"""What the inventory's page forms send, read into the service's types: ids, quantities,
dates, containers, and the choices the forms offer (locations to store in). A value that
does not read is a 422 naming the field, as the API's would be."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from litestar import Request

from opencdmo.errors import AppError, ValidationFailed
from opencdmo.inventory import locations
from opencdmo.inventory.receipt import ContainerIn
from opencdmo.scope import TenantContext
from opencdmo.web.pages import form_data


def an_id(value: str, field: str, label: str) -> UUID:
    try:
        return UUID(value.strip())
    except ValueError:
        raise ValidationFailed(f"Choose {label}.", details={"field": field}) from None


def maybe_id(value: str, field: str, label: str) -> UUID | None:
    return an_id(value, field, label) if value.strip() else None


def ids(values: list[str], field: str = "container_ids") -> list[UUID]:
    return [an_id(v, field, "the containers") for v in values if v.strip()]


def a_number(value: str, field: str, label: str) -> Decimal:
    try:
        found = Decimal(value.strip().replace(" ", ""))
    except InvalidOperation:
        raise ValidationFailed(f"{label}: give a number.", details={"field": field}) from None
    if not found.is_finite():
        raise ValidationFailed(f"{label}: give a number.", details={"field": field})
    return found


def maybe_number(value: str, field: str, label: str) -> Decimal | None:
    return a_number(value, field, label) if value.strip() else None


def maybe_date(value: str, field: str, label: str) -> date | None:
    if not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValidationFailed(f"{label}: give a date.", details={"field": field}) from None


def containers(value: str) -> int | list[ContainerIn] | None:
    """Nothing (one container), a count ("4"), or each container's quantity in the lot's
    unit ("500, 500, 1000")."""
    parts = value.replace(",", " ").replace(";", " ").split()
    if not parts:
        return None
    if len(parts) == 1 and parts[0].isdigit():
        return int(parts[0])
    return [ContainerIn(a_number(p, "containers", "Containers")) for p in parts]


def lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


async def store_options(ctx: TenantContext) -> list[tuple[str, str]]:
    """The locations a container may be put in, by path: every one in use below a site."""
    return [
        (str(e.node.location.id), e.node.place.path)
        for e in await locations.location_tree(ctx)
        if e.node.location.kind != "site"
    ]


async def kept(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The form as sent, to show it again after a refusal (an unreadable form: nothing)."""
    try:
        return await form_data(request)
    except AppError:
        return {}
