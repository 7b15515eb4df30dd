"""The batch record as one read: the batch, its control recipe, every phase with its state
(operations and unit procedures rolled up from theirs), every entry with its history, the
exceptions and their disposition, deviations, verifications and signatures, chain-of-identity
checks and the chain of custody, with the names of the people in it.

One read view (one transaction), so the page, the printable view, the review page and the
BatchML export show the same record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from uuid import UUID

from opencdmo.access.service import authorize
from opencdmo.batches import entry_queries, plan, queries, states
from opencdmo.batches import excursion_queries as exq
from opencdmo.batches import execution_queries as xq
from opencdmo.batches.entry_queries import EntryRow
from opencdmo.batches.excursion_queries import ExcursionRow
from opencdmo.batches.execution_queries import (
    CustodyRow,
    DeviationRow,
    ExceptionRow,
    IdentityCheckRow,
    PhaseRow,
    VerificationRow,
)
from opencdmo.batches.queries import BatchRow, ControlRecipeRow
from opencdmo.db.tx import tenant_transaction
from opencdmo.inventory import consumption_queries as cq
from opencdmo.inventory import queries as lots
from opencdmo.inventory.consumption_queries import ConsumptionRow
from opencdmo.inventory.queries import LotRow
from opencdmo.scope import TenantContext
from opencdmo.signatures import queries as signature_queries
from opencdmo.signatures.queries import SignatureRow
from opencdmo.tenancy import service as tenancy


def rollup(children: list[str]) -> str:
    """The state of an operation or unit procedure from its elements' (ISA-88: a procedural
    element is Running while any element runs; Held or Paused when one is and none runs;
    Complete when all are; Aborted or Stopped when one ended so and the rest are done;
    Idle before any starts)."""
    if not children:
        return states.IDLE
    present = set(children)
    if present == {states.COMPLETE}:
        return states.COMPLETE
    for state in (states.RUNNING, states.HELD, states.PAUSED):
        if state in present:
            return state
    if present <= {states.IDLE}:
        return states.IDLE
    for state in (states.ABORTED, states.STOPPED):
        if state in present and present <= {state, states.COMPLETE, states.STOPPED}:
            return state
    return states.RUNNING  # some done, some still to start: the element is under way


@dataclass(frozen=True)
class PhaseView:
    planned: plan.PlannedPhase
    row: PhaseRow
    entries: list[EntryRow]  # every entry of the phase, oldest first
    current: dict[str, EntryRow]  # each field's current entry
    verifications: list[VerificationRow]

    @property
    def status(self) -> str:
        return self.row.status

    @property
    def commands(self) -> list[str]:
        return states.allowed(self.row.status)

    @property
    def performers(self) -> set[UUID]:
        """Who started, ended or recorded in the phase (none of them may sign it)."""
        found = {u for u in (self.row.started_by, self.row.ended_by) if u is not None}
        return found | {e.entered_by for e in self.entries}

    @property
    def needs_second_person(self) -> bool:
        signed = {v.kind for v in self.verifications}
        return self.planned.second_person is not None and self.planned.second_person not in signed


@dataclass(frozen=True)
class StepView:
    key: str
    name: str
    phases: list[PhaseView]

    @property
    def status(self) -> str:
        return rollup([p.status for p in self.phases])


@dataclass(frozen=True)
class ProcedureView:
    key: str
    name: str
    steps: list[StepView]

    @property
    def status(self) -> str:
        return rollup([p.status for s in self.steps for p in s.phases])


@dataclass(frozen=True)
class UsedMaterial:
    """A container used in a step, with its lot and material."""

    row: ConsumptionRow
    lot_number: str
    material: str
    container: int


@dataclass(frozen=True)
class MadeLot:
    lot: LotRow
    material: str


@dataclass(frozen=True)
class BatchRecord:
    batch: BatchRow
    recipe_name: str
    site_code: str
    control_recipe: ControlRecipeRow
    procedures: list[ProcedureView]
    entries: list[EntryRow]
    exceptions: list[ExceptionRow]
    deviations: list[DeviationRow]
    verifications: list[VerificationRow]
    identity_checks: list[IdentityCheckRow]
    custody: list[CustodyRow]
    signatures: list[SignatureRow]
    people: dict[UUID, str] = field(default_factory=dict)
    used: list[UsedMaterial] = field(default_factory=list)  # containers used, in order
    made: list[MadeLot] = field(default_factory=list)  # lots the batch made
    excursions: dict[UUID, ExcursionRow] = field(default_factory=dict)  # by exception id

    @cached_property
    def phases(self) -> list[PhaseView]:
        return [p for up in self.procedures for s in up.steps for p in s.phases]

    @cached_property
    def _phases_by_key(self) -> dict[tuple[str, str], PhaseView]:
        return {(p.planned.step, p.planned.phase): p for p in self.phases}

    @cached_property
    def _steps_by_key(self) -> dict[str, StepView]:
        return {s.key: s for up in self.procedures for s in up.steps}

    @cached_property
    def _latest_checks(self) -> dict[str, IdentityCheckRow]:
        return {c.step: c for c in self.identity_checks}  # oldest first: the latest stays

    def phase(self, step: str, phase: str) -> PhaseView | None:
        return self._phases_by_key.get((step, phase))

    def step(self, key: str) -> StepView | None:
        return self._steps_by_key.get(key)

    @cached_property
    def _field_names(self) -> dict[tuple[str, str, str], str]:
        found: dict[tuple[str, str, str], str] = {}
        for view in self.phases:
            content, where = view.planned.content, (view.planned.step, view.planned.phase)
            for key, name in [(p.key, p.name) for p in content.parameters] + [
                (f.key, f.name) for f in content.data_capture
            ]:
                found[(*where, key)] = name
        return found

    def field_name(self, step: str, phase: str, key: str) -> str:
        """A field's name as the content gives it (its key if the recipe has none)."""
        return self._field_names.get((step, phase, key), key)

    def where(self, step: str | None, phase: str | None) -> str:
        """A step or phase as people read it: "T-cell activation: Seeding"."""
        if step is None:
            return ""
        found = self.phase(step, phase) if phase else None
        if found is not None:
            return found.planned.label
        named = self.step(step)
        return named.name if named is not None else step

    def latest_check(self, step: str) -> IdentityCheckRow | None:
        """The step's latest COI label check (None: none yet)."""
        return self._latest_checks.get(step)

    @property
    def current_phase(self) -> PhaseView | None:
        """The phase to work on: the running one, else the first not done."""
        return states.current(self.phases)

    def exceptions_of(self, step: str, phase: str) -> list[ExceptionRow]:
        """The exceptions raised in a phase, oldest first."""
        return [e for e in self.exceptions if e.step == step and e.phase == phase]

    @property
    def open_exceptions(self) -> list[ExceptionRow]:
        return [e for e in self.exceptions if e.disposition is None]

    @property
    def open_deviations(self) -> list[DeviationRow]:
        return [d for d in self.deviations if d.status == "open"]

    def name(self, user_id: UUID | None) -> str:
        if user_id is None:
            return "the system"
        return self.people.get(user_id, "a former member")

    def custody_until(self, index: int) -> datetime | None:
        """When the custody at ``index`` ended (the next holder's start; None: it holds)."""
        nxt = index + 1
        return self.custody[nxt].received_at if nxt < len(self.custody) else None

    def superseded_by(self) -> dict[UUID, UUID]:
        return {e.supersedes: e.id for e in self.entries if e.supersedes is not None}

    def in_limits_count(self) -> int:
        """Entries with no exception of their own: what review by exception summarises."""
        flagged = {e.entry_id for e in self.exceptions if e.entry_id is not None}
        return sum(1 for e in self.entries if e.id not in flagged)


def _tree(
    phases: list[plan.PlannedPhase],
    rows: list[PhaseRow],
    entries: list[EntryRow],
    verifications: list[VerificationRow],
) -> list[ProcedureView]:
    by_phase = {(r.step, r.phase): r for r in rows}
    entries_of: dict[tuple[str, str], list[EntryRow]] = {}
    for entry in entries:
        entries_of.setdefault((entry.step, entry.phase), []).append(entry)
    signed: dict[tuple[str, str], list[VerificationRow]] = {}
    for verification in verifications:
        signed.setdefault((verification.step, verification.phase), []).append(verification)
    procedures: list[ProcedureView] = []
    for planned in phases:
        if not procedures or procedures[-1].key != planned.procedure:
            procedures.append(ProcedureView(planned.procedure, planned.procedure_name, []))
        steps = procedures[-1].steps
        if not steps or steps[-1].key != planned.step:
            steps.append(StepView(planned.step, planned.step_name, []))
        key = (planned.step, planned.phase)
        found = entries_of.get(key, [])
        steps[-1].phases.append(
            PhaseView(
                planned,
                by_phase[key],
                found,
                entry_queries.current_values(found),
                signed.get(key, []),
            )
        )
    return procedures


async def read(ctx: TenantContext, batch_id: UUID) -> BatchRecord:
    """The whole record of the batch (read in the whole tenant or at the batch's site);
    another tenant's batch is the same 404 as none."""
    async with tenant_transaction(ctx):
        row = await queries.batch(batch_id)
        await authorize(ctx, "batches", "read", site_id=row.site_id)
        frozen = await queries.control_recipe(batch_id)
        rows = await xq.phases(batch_id)
        entries = await entry_queries.of_batch(batch_id)
        verifications = await xq.verifications(batch_id)
        found_exceptions = await xq.exceptions(batch_id)
        excursions = {x.exception_id: x for x in await exq.excursions(batch_id)}
        deviations = await xq.deviations(batch_id)
        checks = await xq.identity_checks(batch_id)
        custody = await xq.custody(batch_id)
        used, made = await _materials(batch_id)
        signed = await signature_queries.by_ids(
            [
                *([row.disposition_signature_id] if row.disposition_signature_id else []),
                *[d.close_signature_id for d in deviations if d.close_signature_id],
                *[v.signature_id for v in verifications],
            ]
        )
        sites = {s.id: s.code for s in await tenancy.list_sites(ctx)}
    people_ids = {
        *(u for r in rows for u in (r.started_by, r.ended_by) if u),
        *(e.entered_by for e in entries),
        *(v.verified_by for v in verifications),
        *(u for e in found_exceptions for u in (e.raised_by, e.dispositioned_by) if u),
        *(u for d in deviations for u in (d.opened_by, d.closed_by) if u),
        *(c.checked_by for c in checks),
        *(c.holder_id for c in custody),
        *(u.row.consumed_by for u in used),
        *(s.signer_id for s in signed),
        *([row.created_by] if row.created_by else []),
    }
    return BatchRecord(
        row,
        str(frozen.document["recipe"]["name"]),
        sites.get(row.site_id, ""),
        frozen,
        _tree(frozen.phases, rows, entries, verifications),
        entries,
        found_exceptions,
        deviations,
        verifications,
        checks,
        custody,
        signed,
        await tenancy.people_names(ctx, people_ids),
        used,
        made,
        excursions,
    )


async def _materials(batch_id: UUID) -> tuple[list[UsedMaterial], list[MadeLot]]:
    """The containers the batch used and the lots it made, with their lots' numbers and
    materials' codes (read in the open transaction)."""
    used = await cq.consumptions(batch_id)
    made_ids = await cq.outputs(batch_id)
    made_rows = await lots.lots_by_id(made_ids)
    made = [made_rows[i] for i in made_ids]
    boxes = await cq.containers_by_id(list({c.container_id for c in used}))
    found = await lots.lots_by_id(list({c.lot_id for c in used}))
    codes = await lots.material_codes(
        list({c.material_id for c in used} | {m.material_id for m in made})
    )
    return (
        [
            UsedMaterial(
                c, found[c.lot_id].lot_number, codes[c.material_id], boxes[c.container_id].number
            )
            for c in used
        ],
        [MadeLot(m, codes[m.material_id]) for m in made],
    )
