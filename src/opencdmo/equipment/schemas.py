"""API structs of the equipment registry, its logbook and equipment in batch steps."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from msgspec import Meta, Struct

from opencdmo.fields import Key

Code = Annotated[str, Meta(min_length=1, max_length=64)]
Slug = Annotated[str, Meta(min_length=1, max_length=64)]
Line = Annotated[str, Meta(max_length=200)]
Note = Annotated[str, Meta(max_length=2000)]
Password = Annotated[str, Meta(min_length=1, max_length=1000)]


class UnitIn(Struct, forbid_unknown_fields=True, kw_only=True, rename={"class_": "class"}):
    """A unit as registered: its class (a HUB equipment class slug), its site (the site's
    code), a name (default: the class name and the code), due dates, and the OPC UA
    connection description (the manifest's ``opcua`` block; never a password)."""

    code: Code
    class_: Slug
    site: Code
    name: Line = ""
    qualification_due: date | None = None
    calibration_due: date | None = None
    opcua: dict[str, Any] | None = None


class UnitChangeIn(Struct, forbid_unknown_fields=True, kw_only=True, rename={"class_": "class"}):
    """What a unit's registration sets (its code stays)."""

    class_: Slug
    site: Code
    name: Line = ""
    qualification_due: date | None = None
    calibration_due: date | None = None
    opcua: dict[str, Any] | None = None


class StatusIn(Struct, forbid_unknown_fields=True, kw_only=True):
    status: Literal["available", "cleaning", "maintenance", "out_of_service"]
    reason: Note


class WorkIn(Struct, forbid_unknown_fields=True, kw_only=True):
    """Work done on the unit, signed by its performer (the password again): a cleaning says
    until when the unit is clean, a calibration when the next one is due."""

    kind: Literal["cleaning", "maintenance", "calibration"]
    note: Note
    password: Password
    clean_until: datetime | None = None
    calibration_due: date | None = None


class UnitOut(Struct, kw_only=True):
    id: UUID
    code: str
    class_slug: str
    name: str
    site: str
    status: str
    qualification_due: date | None
    calibration_due: date | None
    clean_until: datetime | None
    opcua: dict[str, Any] | None
    updated_at: datetime


class LogEntryOut(Struct, kw_only=True):
    id: UUID
    kind: str
    note: str
    batch_id: UUID | None
    step: str | None
    used_from: datetime | None
    used_to: datetime | None
    clean_until: datetime | None
    calibration_due: date | None
    status_from: str | None
    status_to: str | None
    signature_id: UUID | None
    performed_by: UUID
    performed_at: datetime


class UnitDetail(Struct, kw_only=True):
    unit: UnitOut
    class_name: str
    held_by_batch: UUID | None
    logbook: list[LogEntryOut]


class BindIn(Struct, forbid_unknown_fields=True, kw_only=True):
    """The unit for a step: its code (scanned) or id (picked)."""

    step: Key
    equipment: Code


class BindingOut(Struct, kw_only=True):
    id: UUID
    step: str
    equipment_id: UUID
    code: str
    bound_by: UUID
    bound_at: datetime
    released_at: datetime | None


class Bound(Struct, kw_only=True):
    binding: BindingOut
    exceptions: list[str]


class SampleOut(Struct, kw_only=True):
    """One stored sample: its source and server times, its value (a number, or text) and
    its OPC UA status code (0 is Good)."""

    source_time: datetime
    server_time: datetime | None
    value: float | None
    text_value: str | None = None
    status_code: int


class SamplesOut(Struct, kw_only=True):
    """A unit's samples of one signal over a range, in source time order."""

    equipment: str
    signal: str
    start: datetime
    end: datetime
    downsampled: bool
    samples: list[SampleOut]


class TrustedOut(Struct, kw_only=True):
    """A server certificate the tenant trusts (or trusted, until ``removed_at``)."""

    id: UUID
    thumbprint: str  # SHA-256 of the DER certificate, colon-separated hex
    subject: str
    not_after: datetime
    added_by: UUID
    added_at: datetime
    removed_by: UUID | None
    removed_at: datetime | None
    removal_reason: str | None


class TrustRemoveIn(Struct, forbid_unknown_fields=True, kw_only=True):
    """Why the certificate is no longer trusted."""

    reason: Note
