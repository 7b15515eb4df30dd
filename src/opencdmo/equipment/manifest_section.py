"""The tenant manifest's ``equipment:`` list (a section the tenancy manifest finds by name):
each unit's form checked when the file is read, its class and signals when it is applied
(against the HUB content the tenant sees). Applying registers each unit when missing and
changes it when it differs (each change audited by the registry); units the manifest does
not list, statuses and logbooks are left alone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

from opencdmo.equipment import connection, service
from opencdmo.equipment.service import Registration
from opencdmo.errors import NotFound, ValidationFailed
from opencdmo.scope import TenantContext
from opencdmo.tenancy.manifest import ManifestError

SECTION = "equipment"
SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["code", "class", "site"],
        "properties": {
            "code": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"},
            "class": {"type": "string", "minLength": 1, "maxLength": 64},
            "site": {"type": "string", "minLength": 1},
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "qualification_due": {},  # a YAML date or an ISO date string: checked below
            "calibration_due": {},
            "opcua": {},  # checked by opencdmo.equipment.connection, naming its path
        },
    },
}


def _fail(path: Path, where: str, message: str) -> ManifestError:
    return ManifestError(f"{path}: {where}: {message}", details={"file": str(path), "field": where})


def _date(path: Path, where: str, value: object) -> date | None:
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise _fail(path, where, f"'{str(value)[:40]}' is not a date (YYYY-MM-DD)") from None


def check(path: Path, listed: list[Any], data: dict[str, Any]) -> tuple[Registration, ...]:
    sites = {s["code"] for s in data.get("sites") or []}
    found: list[Registration] = []
    for i, unit in enumerate(listed):
        if sites and unit["site"] not in sites:
            raise _fail(path, f"equipment.{i}.site", f"'{unit['site']}' is not a site listed above")
        if unit.get("opcua") is not None:
            try:
                connection.check(unit["opcua"], None, f"equipment.{i}.opcua")
            except ValidationFailed as exc:
                raise _named(path, i, exc) from None
        found.append(
            Registration(
                unit["code"],
                unit["class"],
                unit["site"],
                unit.get("name", ""),
                _date(path, f"equipment.{i}.qualification_due", unit.get("qualification_due")),
                _date(path, f"equipment.{i}.calibration_due", unit.get("calibration_due")),
                unit.get("opcua"),
            )
        )
    taken = [u.code.casefold() for u in found]
    if len(set(taken)) != len(taken):
        raise _fail(path, "equipment", "equipment codes must be unique")
    return tuple(found)


def _named(path: Path, i: int, exc: ValidationFailed) -> ManifestError:
    """The registry's refusal as a manifest error naming the file and the entry's path."""
    field = str((exc.details or {}).get("field", ""))
    if field and not field.startswith(f"equipment.{i}"):
        field = f"equipment.{i}.{field}"
    where = field or f"equipment.{i}"
    message = exc.message
    for prefix in (f"{where}: ", f"{where.split('.', 2)[-1]}: "):
        message = message.removeprefix(prefix)
    return _fail(path, where, message)


async def apply(
    ctx: TenantContext,
    path: Path,
    units: tuple[Registration, ...],
    report: Callable[[str], None],
) -> int:
    changes = 0
    for i, given in enumerate(units):
        try:
            try:
                found = await service.find(ctx, given.code)
            except NotFound:
                await service.register(ctx, given)
                report(f"{ctx.slug}: equipment {given.code} registered")
                changes += 1
                continue
            if await service.change(ctx, found.id, given):
                report(f"{ctx.slug}: equipment {given.code} updated")
                changes += 1
        except ValidationFailed as exc:
            raise _named(path, i, exc) from None
    return changes
