"""The equipment registry: registering units of HUB equipment classes at the tenant's sites,
changing them, their status (with a reason), and the signed logbook entries of the work done
on them (cleaning, maintenance, calibration). Each command is one unit of work with its audit
events; the unit's row is locked.

A unit is ``in_use`` only while a batch step holds it (``opencdmo.batches.equipment_use``):
its status is not set by hand to or from ``in_use``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final
from uuid import UUID

import asyncpg

from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.db.tx import read_view, tenant_transaction, unit_of_work
from opencdmo.equipment import connection, samples
from opencdmo.equipment import queries as q
from opencdmo.equipment.queries import BindingRow, LogRow, NewEntry, Settable, UnitRow
from opencdmo.errors import Conflict, Forbidden, NotFound, ValidationFailed
from opencdmo.fields import check_name, check_reason, folded_text
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.signatures import service as signatures
from opencdmo.signatures.service import SignedRecord
from opencdmo.tenancy.queries import tenants

STATUSES: Final = ("available", "in_use", "cleaning", "maintenance", "out_of_service")
SETTABLE: Final = tuple(s for s in STATUSES if s != "in_use")
WORK: Final = ("cleaning", "maintenance", "calibration")
CODE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SLUG: Final = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
NAME_MAX: Final = 200
NOTE_MAX: Final = 2000
MEANING: Final = "performed"


@dataclass(frozen=True)
class Registration:
    """A unit as the registry (the manifest, the API, the form) gives it."""

    code: str
    class_slug: str
    site: str  # the site's code
    name: str = ""
    qualification_due: date | None = None
    calibration_due: date | None = None
    opcua: Any = None  # the connection description, checked against the class


@dataclass(frozen=True)
class UnitView:
    unit: UnitRow
    site_code: str
    class_name: str
    logbook: list[LogRow]
    holder: BindingRow | None


def _actor(ctx: TenantContext) -> UUID:
    if ctx.user_id is None:
        raise Forbidden("Only a signed-in person records work on equipment.")
    return ctx.user_id


def _code(value: str) -> str:
    code = value.strip()
    if not CODE.fullmatch(code):
        raise ValidationFailed(
            "code: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit.",
            details={"field": "code"},
        )
    return code


async def _settable(given: Registration) -> Settable:
    """The registration checked in the open transaction: a class the tenant sees, one of its
    sites, a name, and the connection description against the class's signals."""
    slug = given.class_slug.strip()
    of_class = await q.equipment_class(slug) if SLUG.fullmatch(slug) else None
    if of_class is None:
        raise ValidationFailed(
            f"class: '{given.class_slug[:64]}' is not an equipment class of the tenant's library "
            "or the HUB.",
            details={"field": "class"},
        )
    site = next((s for s in await tenants.sites() if s.code == given.site.strip()), None)
    if site is None:
        raise ValidationFailed(
            f"site: '{given.site[:64]}' is not one of the tenant's sites.",
            details={"field": "site"},
        )
    name = given.name.strip() or f"{of_class.name} {given.code.strip()}"
    name = check_name(name, "name", "The name")
    if len(name) > NAME_MAX:
        raise ValidationFailed(
            f"The name has at most {NAME_MAX} characters.", details={"field": "name"}
        )
    opcua = None if given.opcua is None else connection.check(given.opcua, of_class)
    return Settable(
        of_class.slug, name, site.id, given.qualification_due, given.calibration_due, opcua
    )


def _shown(new: Settable, site: str) -> dict[str, Any]:
    return {
        "class": new.class_slug,
        "name": new.name,
        "site": site,
        "qualification_due": new.qualification_due.isoformat() if new.qualification_due else None,
        "calibration_due": new.calibration_due.isoformat() if new.calibration_due else None,
        "opcua": new.opcua,
    }


def _settable_of(row: UnitRow) -> Settable:
    return Settable(
        row.class_slug,
        row.name,
        row.site_id,
        row.qualification_due,
        row.calibration_due,
        row.connection,
    )


async def register(ctx: TenantContext, given: Registration) -> UnitRow:
    """A new unit, its code unique in the tenant (case aside); audited."""
    code = _code(given.code)
    async with unit_of_work(ctx):
        await authorize(ctx, "equipment", "manage")
        new = await _settable(replace(given, code=code))
        existing = await q.unit_by_code(code)
        if existing is not None:
            raise Conflict(
                f"The tenant has equipment {existing.code} already.", details={"field": "code"}
            )
        try:
            unit_id = await q.insert_unit(ctx.tenant_id, code, new, ctx.user_id)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"Equipment {code} was registered a moment ago.") from None
        await audit.record(
            ctx,
            "equipment.registered",
            "equipment",
            unit_id,
            new={"code": code, **_shown(new, given.site.strip())},
        )
        return await q.unit(unit_id)


async def change(
    ctx: TenantContext, unit_id: UUID, given: Registration, *, seen: datetime | None = None
) -> bool:
    """Change a unit's class, name, site, due dates or connection (its code stays); audited.
    False: nothing differs. ``seen``: the unit's ``updated_at`` the change was made from (a
    form's); when the unit changed since, a 409 and nothing changes (edits of one unit are
    made one at a time, on its locked row: the first wins, the second is told)."""
    async with unit_of_work(ctx):
        await authorize(ctx, "equipment", "manage")
        row = await q.unit(unit_id, lock=True)
        if seen is not None and row.updated_at != seen:
            raise Conflict(
                f"{row.code} was changed by someone else since you opened the form: look at it "
                "again and make your change there.",
                details={"field": "version"},
            )
        new = await _settable(replace(given, code=row.code))
        old = _settable_of(row)
        if new == old:
            return False
        sites = {s.id: s.code for s in await tenants.sites()}
        await q.update_unit(row.id, new)
        await audit.record(
            ctx,
            "equipment.changed",
            "equipment",
            row.id,
            old={"code": row.code, **_shown(old, sites.get(old.site_id, ""))},
            new={"code": row.code, **_shown(new, sites[new.site_id])},
        )
        return True


def _reason(value: str) -> str:
    return check_reason(value, limit=NOTE_MAX)


async def set_status(ctx: TenantContext, unit_id: UUID, status: str, reason: str) -> UnitRow:
    """Set a unit's status, saying why (a logbook entry and an audit event). ``in_use`` is
    the batches' to set and clear."""
    if status not in SETTABLE:
        raise ValidationFailed(
            f"status: must be one of {', '.join(SETTABLE)} (in use is set by a batch step).",
            details={"field": "status"},
        )
    why = _reason(reason)
    async with unit_of_work(ctx):
        await authorize(ctx, "equipment", "manage")
        row = await q.unit(unit_id, lock=True)
        if row.status == "in_use":
            held = await q.holder(row.id)
            raise Conflict(
                f"{row.code} is in use by a batch step: it is freed when the step ends.",
                details={"batch_id": str(held.batch_id) if held else None},
            )
        if row.status == status:
            raise Conflict(f"{row.code} is {status.replace('_', ' ')} already.")
        await q.set_status(row.id, status)
        entry = await q.insert_entry(
            ctx.tenant_id,
            row.id,
            NewEntry("status", why, status_from=row.status, status_to=status),
            _actor(ctx),
        )
        await audit.record(
            ctx,
            "equipment.status_changed",
            "equipment",
            row.id,
            old={"status": row.status},
            new={"status": status, "code": row.code, "entry_id": str(entry), "note": why},
            reason=why,
        )
        return await q.unit(row.id)


# --- signed work ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Work:
    """Work done on a unit: cleaning (valid until ``clean_until``), maintenance, or
    calibration (next due ``calibration_due``); the note is the signature's reason."""

    kind: str
    note: str
    clean_until: datetime | None = None
    calibration_due: date | None = None


def _check_work(work: Work) -> Work:
    if work.kind not in WORK:
        raise ValidationFailed(
            f"kind: must be one of {', '.join(WORK)}.", details={"field": "kind"}
        )
    note = folded_text(work.note, "note", "The note", limit=NOTE_MAX)
    if not note:
        raise ValidationFailed("Say what was done (the note).", details={"field": "note"})
    if work.kind == "cleaning" and work.clean_until is None:
        raise ValidationFailed(
            "A cleaning says until when the unit is clean (clean_until).",
            details={"field": "clean_until"},
        )
    if work.clean_until is not None and work.clean_until.tzinfo is None:
        raise ValidationFailed(
            "clean_until: give a time with its offset (UTC or local).",
            details={"field": "clean_until"},
        )
    if work.kind == "calibration" and work.calibration_due is None:
        raise ValidationFailed(
            "A calibration says when the next one is due (calibration_due).",
            details={"field": "calibration_due"},
        )
    return Work(
        work.kind,
        note,
        work.clean_until if work.kind == "cleaning" else None,
        work.calibration_due if work.kind == "calibration" else None,
    )


def _work_record(row: UnitRow, work: Work, performer: UUID) -> SignedRecord:
    content = {
        "equipment": str(row.id),
        "code": row.code,
        "kind": work.kind,
        "note": work.note,
        "clean_until": work.clean_until.isoformat() if work.clean_until else None,
        "calibration_due": work.calibration_due.isoformat() if work.calibration_due else None,
        "performed_by": str(performer),
    }
    return SignedRecord("equipment", str(row.id), f"{work.kind}", None, content)


async def log_work(
    settings: Settings, ctx: TenantContext, unit_id: UUID, work: Work, password: str
) -> LogRow:
    """The performer records and signs ('performed') work done on a unit: a cleaning sets
    its clean-until, a calibration its next calibration due date."""
    work = _check_work(work)
    by = _actor(ctx)
    async with tenant_transaction(ctx):
        await authorize(ctx, "equipment", "log")
        await q.unit(unit_id)
    signing = await signatures.prepare(settings, ctx, MEANING, work.note, password)
    async with unit_of_work(ctx):
        row = await q.unit(unit_id, lock=True)
        if row.status == "in_use":
            raise Conflict(f"{row.code} is in use by a batch step: record the work after it.")
        signature = await signatures.apply(ctx, signing, _work_record(row, work, by))
        entry = await q.insert_entry(
            ctx.tenant_id,
            row.id,
            NewEntry(
                work.kind,
                work.note,
                clean_until=work.clean_until,
                calibration_due=work.calibration_due,
                signature_id=signature.id,
            ),
            by,
        )
        if work.clean_until is not None:
            await q.set_clean_until(row.id, work.clean_until)
        if work.calibration_due is not None:
            await q.set_calibration_due(row.id, work.calibration_due)
        await audit.record(
            ctx,
            f"equipment.{work.kind}_recorded",
            "equipment",
            row.id,
            old={
                "clean_until": row.clean_until.isoformat() if row.clean_until else None,
                "calibration_due": row.calibration_due.isoformat() if row.calibration_due else None,
            },
            new={
                "code": row.code,
                "entry_id": str(entry),
                "note": work.note,
                "signature_id": str(signature.id),
                "clean_until": work.clean_until.isoformat() if work.clean_until else None,
                "calibration_due": work.calibration_due.isoformat()
                if work.calibration_due
                else None,
            },
            reason=work.note,
        )
        return next(e for e in await q.logbook(row.id) if e.id == entry)


# --- reads ------------------------------------------------------------------------------------


async def list_units(ctx: TenantContext) -> list[UnitRow]:
    async with read_view(ctx):
        await authorize(ctx, "equipment", "read")
        return await q.units()


async def find(ctx: TenantContext, code_or_id: str) -> UnitRow:
    """The unit of that code (case aside) or id; one 404 for a missing one and another
    tenant's."""
    async with read_view(ctx):
        await authorize(ctx, "equipment", "read")
        return await lookup(code_or_id)


async def lookup(code_or_id: str, *, lock: bool = False) -> UnitRow:
    try:
        return await q.unit(UUID(code_or_id), lock=lock)
    except ValueError:
        pass
    code = code_or_id.strip()
    found = await q.unit_by_code(code, lock=lock) if CODE.fullmatch(code) else None
    if found is None:
        raise NotFound("No such equipment.")
    return found


async def get_unit(ctx: TenantContext, code_or_id: str) -> UnitView:
    async with read_view(ctx):
        await authorize(ctx, "equipment", "read")
        row = await lookup(code_or_id)
        sites = {s.id: s.code for s in await tenants.sites()}
        of_class = await q.equipment_class(row.class_slug)
        return UnitView(
            row,
            sites.get(row.site_id, ""),
            of_class.name if of_class else row.class_slug,
            await q.logbook(row.id),
            await q.holder(row.id),
        )


async def class_choices(ctx: TenantContext) -> list[tuple[str, str]]:
    async with read_view(ctx):
        await authorize(ctx, "equipment", "read")
        return await q.class_slugs()


# --- samples ----------------------------------------------------------------------------------

SAMPLES_SPAN: Final = timedelta(days=31)  # the longest range one request reads
SAMPLES_MAX: Final = 100_000  # samples returned without downsampling
SAMPLES_READ: Final = 1_000_000  # samples read to downsample
POINTS_MAX: Final = 10_000


@dataclass(frozen=True)
class SampleQuery:
    """What a samples request asks for, as given (checked by ``read_samples``)."""

    signal: str | None
    start: str | None
    end: str | None
    max_points: int | None = None


@dataclass(frozen=True)
class SampleRange:
    """The samples read: of which unit and signal, from when to when."""

    unit: UnitRow
    signal: str
    start: datetime
    end: datetime
    points: list[samples.Point]


def _required(value: str | None, name: str) -> str:
    if value is None or not value.strip():
        raise ValidationFailed(f"{name} is required", details={"field": name})
    return value


def parse_instant(value: str | None, name: str) -> datetime:
    value = _required(value, name)
    try:
        found: datetime | None = datetime.fromisoformat(value.strip())
        if found is not None and found.tzinfo is not None:
            found = found.astimezone(UTC)  # an instant at the ends of the calendar overflows
    except (ValueError, OverflowError):
        found = None
    if found is None or found.tzinfo is None:
        raise ValidationFailed(
            f"{name} must be an ISO 8601 time with its offset (like 2026-12-01T08:00:00Z), "
            f"not '{value[:40]}'",
            details={"field": name},
        )
    return found


async def read_samples(ctx: TenantContext, code_or_id: str, given: SampleQuery) -> SampleRange:
    """A unit's samples of one of its signals from ``start`` to ``end`` (both included), in
    source time order; with ``max_points``, downsampled (LTTB) to at most that many. The
    unit is found first: an unknown one is a 404 whatever the rest of the request says."""
    async with read_view(ctx) as conn:
        await authorize(ctx, "equipment", "read")
        row = await lookup(code_or_id)
        signal, start, end, points = _checked(row, given)
        most = SAMPLES_MAX if points is None else SAMPLES_READ
        found = await samples.read_range(conn, row.id, signal, start, end, most + 1)
    if len(found) > most:
        raise ValidationFailed(
            f"more than {most} samples from start to end: ask for max_points or a shorter range",
            details={"field": "end"},
        )
    chosen = found if points is None else samples.lttb(found, points)
    return SampleRange(row, signal, start, end, chosen)


def _checked(row: UnitRow, given: SampleQuery) -> tuple[str, datetime, datetime, int | None]:
    signal = _required(given.signal, "signal")
    signals = (row.connection or {}).get("signals", {})
    if signal not in signals:
        listed = ", ".join(sorted(signals)) or "none"
        raise ValidationFailed(
            f"'{signal[:64]}' is not a signal of {row.code} (its signals: {listed})",
            details={"field": "signal"},
        )
    start, end = parse_instant(given.start, "start"), parse_instant(given.end, "end")
    if end < start:
        raise ValidationFailed("end must not be before start", details={"field": "end"})
    if end - start > SAMPLES_SPAN:
        raise ValidationFailed(
            f"start to end is at most {SAMPLES_SPAN.days} days", details={"field": "end"}
        )
    points = given.max_points
    if points is not None and not 3 <= points <= POINTS_MAX:
        raise ValidationFailed(
            f"max_points is from 3 to {POINTS_MAX}", details={"field": "max_points"}
        )
    return signal, start, end, points
