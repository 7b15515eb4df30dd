"""API structs of setpoint writes: what each open phase would write, and the writes made."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from msgspec import Meta, Struct

from opencdmo.fields import Key

IdempotencyKey = Annotated[str, Meta(min_length=1, max_length=200)]
NodeId = Annotated[str, Meta(min_length=1, max_length=500)]


class ConfirmedIn(Struct, forbid_unknown_fields=True, kw_only=True):
    """One setpoint as it was shown: the parameter, the formula's value and unit, the node."""

    parameter: Key
    value: float
    unit: Annotated[str, Meta(max_length=64)] | None = None
    node: NodeId


class SetpointWriteIn(Struct, forbid_unknown_fields=True, kw_only=True):
    """Write a phase's setpoints to the unit bound to its step: the list confirmed (as the
    batch's setpoints GET gives it) and the client's key for the attempt (a retry with the
    same key is given the first attempt, never a second write)."""

    step: Key
    phase: Key
    idempotency_key: IdempotencyKey
    confirmed: Annotated[list[ConfirmedIn], Meta(min_length=1, max_length=200)]


class SetpointOut(Struct, kw_only=True):
    parameter: str
    name: str
    value: Any
    unit: str | None
    node: str
    node_unit: str
    node_value: float | None
    problem: str | None


class OfferOut(Struct, kw_only=True):
    step: str
    phase: str
    equipment: str
    writable: bool
    setpoints: list[SetpointOut]


class SetpointResultOut(Struct, kw_only=True):
    parameter: str
    node: str
    value: Any  # the formula's value, in its unit
    unit: str | None
    written: float | None  # in the node's unit
    node_unit: str | None
    read_back: float | None
    ok: bool
    problem: str | None


class WriteOut(Struct, kw_only=True):
    id: UUID
    step: str
    phase: str
    equipment: str
    idempotency_key: str
    outcome: str | None  # ok, failed, abandoned; null while under way
    started_at: datetime
    finished_at: datetime | None
    results: list[SetpointResultOut]
    exceptions: list[str] = []  # the kinds raised by this write (none when given again)
    replayed: bool = False  # an earlier attempt with this key, given again


class SetpointsOut(Struct, kw_only=True):
    offers: list[OfferOut]
    writes: list[WriteOut]
