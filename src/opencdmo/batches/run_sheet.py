"""The operator's run sheet of a batch: its steps in recipe order, each phase with its
instructions, its parameters (this batch's value from the formula, the ranges) and its
data-capture fields, each field with the value it holds now (its current entry: who recorded
it, when, and its check), and the phase to work on.

Built from the frozen control recipe and the batch's entries; nothing here writes. Every
field of a phase can be recorded: a data-capture field, or a parameter's actual value (the
entries API takes both). The phase to work on is the first, in recipe order, with a required
data-capture field that holds no value yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from opencdmo import units
from opencdmo.access.service import can
from opencdmo.batches import entries, equipment_values, record, service, states
from opencdmo.batches.entry_queries import EntryRow
from opencdmo.batches.equipment_values import Preview
from opencdmo.batches.queries import ControlRecipeRow
from opencdmo.batches.record import BatchRecord, PhaseView
from opencdmo.batches.service import BatchView, EntryHistory
from opencdmo.db.tx import read_view
from opencdmo.errors import NotFound
from opencdmo.hub.model import EquipmentSignal, Parameter, Phase, Range, UnitOperation
from opencdmo.labels import label
from opencdmo.scope import TenantContext
from opencdmo.timefmt import localtime

# What a check is called (as the audit trail names it) and the badge tone it gets; the page
# says it in words, never by colour alone.
CHECK_TONES = {
    "in_limits": "success",
    "outside_normal": "warning",
    "outside_par": "danger",
    "invalid": "danger",
}
CHECK_NAMES = {key: label(key).capitalize() for key in CHECK_TONES}
# Where a parameter's value in the batch comes from (control.freeze's value_from).
SET_BY = {"formula": "formula", "recipe": "recipe", "unit operation default": "default"}


@dataclass(frozen=True)
class Recorded:
    """A field's current entry as the sheet shows it."""

    entry: EntryRow
    shown: str  # the value with its unit, as people read it
    by: str  # the printed name of who recorded it
    at: str  # when, in the tenant's zone


@dataclass(frozen=True)
class SheetField:
    """A field of a phase: a data-capture field, or a parameter (its actual value)."""

    step: str
    phase: str
    key: str
    name: str
    kind: str  # number, integer, duration, text, choice, boolean, datetime
    unit: str | None
    choices: tuple[str, ...]
    required: bool
    description: str | None
    limits: Range | None  # a data-capture field's limits
    parameter: Parameter | None  # set for a parameter: its ranges and criticality
    set_point: Any  # a parameter's value in this batch (from the formula)
    recorded: Recorded | None
    set_by: str | None = None  # where the value comes from: formula, recipe, unit operation
    signal: EquipmentSignal | None = None  # the equipment signal a data-capture field takes

    @property
    def dom_id(self) -> str:
        """An id for the page: step and phase keys allow letters, digits, ``_`` and ``-``."""
        return f"f-{self.step}--{self.phase}--{self.key}"


@dataclass(frozen=True)
class SheetPhase:
    step: str
    key: str
    name: str
    instructions: str
    parameters: tuple[SheetField, ...]
    captures: tuple[SheetField, ...]

    @property
    def open_required(self) -> int:
        """How many required data-capture fields hold no value yet."""
        return sum(1 for f in self.captures if f.required and f.recorded is None)

    @property
    def dom_id(self) -> str:
        return f"p-{self.step}--{self.key}"


@dataclass(frozen=True)
class SheetStep:
    key: str
    name: str
    slug: str
    version: str
    note: str | None
    phases: tuple[SheetPhase, ...]


@dataclass(frozen=True)
class SheetProcedure:
    key: str
    name: str
    steps: tuple[SheetStep, ...]


@dataclass(frozen=True)
class RunSheet:
    procedures: tuple[SheetProcedure, ...]
    current: str | None  # the dom id of the phase to work on (None: every phase has ended)

    def phases(self) -> list[SheetPhase]:
        return [ph for up in self.procedures for st in up.steps for ph in st.phases]

    def field(self, step: str, phase: str, key: str) -> SheetField:
        for ph in self.phases():
            if ph.step == step and ph.key == phase:
                for f in (*ph.parameters, *ph.captures):
                    if f.key == key:
                        return f
        raise NotFound("This batch's control recipe has no such field.")


@dataclass(frozen=True)
class StepSummary:
    recorded: int  # fields (parameters and data-capture fields) that hold a value
    fields: int
    exceptions: int
    undispositioned: int  # of those, not yet dispositioned by QA


@dataclass(frozen=True)
class RunView:
    """What the run page shows: the batch, its sheet, and whether this member may record
    entries now (the permission at the batch's site, and the batch Running)."""

    batch: BatchView
    sheet: RunSheet
    may_record: bool  # the member's roles allow entries at this site
    running: bool
    record: BatchRecord
    may_verify: bool = False
    # fields taken from equipment in running phases, by the field's dom id: the value now
    from_equipment: dict[str, Preview] = field(default_factory=dict)

    @property
    def can_record(self) -> bool:
        return self.may_record and self.running

    def phase(self, step: str, phase: str) -> PhaseView:
        found = self.record.phase(step, phase)
        if found is None:
            raise NotFound("This batch's control recipe has no such phase.")
        return found

    def status(self, step: str, phase: str) -> str:
        return self.phase(step, phase).status

    def records(self, step: str, phase: str) -> bool:
        """Whether a first entry can be made in the phase now (it is Running)."""
        return self.can_record and self.status(step, phase) == states.RUNNING

    def corrects(self, step: str, phase: str) -> bool:
        """Whether an entry of the phase can be corrected now (Running or Complete)."""
        return self.can_record and self.status(step, phase) in (states.RUNNING, states.COMPLETE)

    def folded(self, step: str) -> bool:
        """Whether the page shows the step folded: every phase of it has ended and no second
        person's signature is owed, so nothing is left to do there but read or correct; the
        step's content is loaded when it is opened (a long batch's page stays light)."""
        found = self.record.step(step)
        if found is None or not found.phases:
            return False
        return all(p.status in states.FINAL and not p.needs_second_person for p in found.phases)

    def summary(self, step: SheetStep) -> StepSummary:
        """What a folded step shows of itself."""
        fields = [f for ph in step.phases for f in (*ph.parameters, *ph.captures)]
        raised = [e for e in self.record.exceptions if e.step == step.key]
        return StepSummary(
            sum(1 for f in fields if f.recorded is not None),
            len(fields),
            len(raised),
            sum(1 for e in raised if e.disposition is None),
        )

    def needs_label(self, step: str) -> bool:
        """Whether the step still needs its COI label checked before its phases start."""
        found = self.record.step(step)
        if found is None or not found.phases or not found.phases[0].planned.identity_check:
            return False
        latest = self.record.latest_check(step)
        return latest is None or not latest.matched

    @property
    def state_name(self) -> str:
        status = self.batch.batch.status
        return states.STATE_NAMES.get(status, status)


def shown_value(value: Any, kind: str, unit: str | None, zone: str) -> str:
    """A recorded value as people read it: a quantity with its unit, yes or no, a time in
    the tenant's zone."""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if kind == "datetime" and isinstance(value, str):
        try:
            return localtime(datetime.fromisoformat(value), zone, "%Y-%m-%d %H:%M %Z")
        except ValueError:
            return value
    if isinstance(value, int | float):
        return units.quantity(value, unit) if unit else units.number(value)
    return str(value)


def _current(history: list[EntryHistory]) -> dict[tuple[str, str, str], EntryRow]:
    """Each field's current entry: the newest that no other entry supersedes."""
    found: dict[tuple[str, str, str], EntryRow] = {}
    for h in history:
        if h.superseded_by is None:
            found[(h.entry.step, h.entry.phase, h.entry.field)] = h.entry
    return found


@dataclass(frozen=True)
class _Reading:
    entries: dict[tuple[str, str, str], EntryRow]
    names: dict[UUID, str]
    zone: str

    def recorded(self, step: str, phase: str, key: str, kind: str) -> Recorded | None:
        entry = self.entries.get((step, phase, key))
        if entry is None:
            return None
        return Recorded(
            entry,
            shown_value(entry.value, kind, entry.unit, self.zone),
            self.names.get(entry.entered_by, "a former member"),
            localtime(entry.entered_at, self.zone),
        )


def _phase(step: str, phase: Phase, values: dict[str, Any], reading: _Reading) -> SheetPhase:
    parameters = tuple(
        SheetField(
            step,
            phase.key,
            p.key,
            p.name,
            p.type,
            p.unit,
            tuple(p.choices or ()),
            False,
            p.description,
            None,
            p,
            (values.get(p.key) or {}).get("value", p.default),
            reading.recorded(step, phase.key, p.key, p.type),
            SET_BY.get((values.get(p.key) or {}).get("value_from", "")),
        )
        for p in phase.parameters
    )
    captures = tuple(
        SheetField(
            step,
            phase.key,
            f.key,
            f.name,
            f.type,
            f.unit,
            tuple(f.choices or ()),
            f.required,
            f.description,
            f.limits,
            None,
            None,
            reading.recorded(step, phase.key, f.key, f.type),
            signal=f.equipment_signal,
        )
        for f in phase.data_capture
    )
    return SheetPhase(step, phase.key, phase.name, phase.instructions, parameters, captures)


def _step(op: dict[str, Any], content: UnitOperation, reading: _Reading) -> SheetStep:
    values = op.get("values") or {}
    return SheetStep(
        op["key"],
        content.name,
        content.slug,
        content.version,
        op.get("notes") or None,
        tuple(_phase(op["key"], ph, values, reading) for ph in content.phases),
    )


def build(
    frozen: ControlRecipeRow, history: list[EntryHistory], names: dict[UUID, str], zone: str
) -> RunSheet:
    """The sheet of a control recipe with the batch's entries (its steps' unit operations
    as read once from the frozen document)."""
    reading = _Reading(_current(history), names, zone)
    operations = frozen.operations
    procedures = tuple(
        SheetProcedure(
            up.get("key", ""),
            up.get("name") or label(up.get("key", "")),
            tuple(_step(op, operations[op["key"]], reading) for op in up.get("operations") or []),
        )
        for up in frozen.document.get("unit_procedures") or []
    )
    return RunSheet(procedures, None)


async def read(ctx: TenantContext, batch_id: UUID) -> RunView:
    """The run page of a batch the member may read (another tenant's is the same 404 as
    none); whether they may record entries is their permission at the batch's site."""
    view = await service.get_batch(ctx, batch_id)
    found = await record.read(ctx, batch_id)  # its entries and the names of who made them
    later = found.superseded_by()
    history = [EntryHistory(e, later.get(e.id)) for e in found.entries]
    sheet = build(view.control_recipe, history, found.people, ctx.time_zone)
    current = found.current_phase
    if current is not None:
        sheet = RunSheet(sheet.procedures, f"p-{current.planned.step}--{current.planned.phase}")
    may_record = await can(ctx, "batches", "execute", site_id=view.batch.site_id)
    may_verify = await can(ctx, "batches", "verify", site_id=view.batch.site_id)
    running = view.batch.status == states.RUNNING
    taken = await _from_equipment(ctx, view, sheet, found) if running and may_record else {}
    return RunView(view, sheet, may_record, running, found, may_verify, taken)


async def _from_equipment(
    ctx: TenantContext, view: BatchView, sheet: RunSheet, found: BatchRecord
) -> dict[str, Preview]:
    """The value each empty field of a running phase would take from its equipment now."""
    steps = view.control_recipe.operations

    def running(ph: SheetPhase) -> bool:
        phase = found.phase(ph.step, ph.key)
        return phase is not None and phase.status == states.RUNNING

    open_fields = [
        f
        for ph in sheet.phases()
        if running(ph)
        for f in ph.captures
        if f.recorded is None and f.signal is not None
    ]
    if not open_fields:
        return {}
    shown: dict[str, Preview] = {}
    async with read_view(ctx):
        for f in open_fields:
            target = entries.target(steps, f.step, f.phase, f.key)
            shown[f.dom_id] = await equipment_values.preview(view.batch.id, target)
    return shown


async def first_phase_of(ctx: TenantContext, batch_id: UUID, step: str) -> str:
    """The dom id of the step's first phase (where a label check is shown)."""
    frozen = (await service.get_batch(ctx, batch_id)).control_recipe
    first = next((p for p in frozen.phases if p.step == step), None)
    return f"p-{first.step}--{first.phase}" if first else ""
