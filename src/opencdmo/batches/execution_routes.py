"""Running, reviewing and releasing a batch through the JSON API: phase states and commands,
chain-of-identity checks, custody, verifications, exceptions and their disposition,
deviations, release or rejection."""

from __future__ import annotations

from dataclasses import asdict, fields
from uuid import UUID

from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from opencdmo.batches import execution, record, review
from opencdmo.batches.excursion_queries import ExcursionRow
from opencdmo.batches.execution_queries import DeviationRow, ExceptionRow
from opencdmo.batches.record import PhaseView
from opencdmo.batches.routes import ONE, batch_out
from opencdmo.batches.schemas import (
    AcceptIn,
    BatchCommand,
    BatchOut,
    CustodyIn,
    DeviationClose,
    DeviationIn,
    DeviationList,
    DeviationOut,
    DispositionIn,
    ExceptionList,
    ExceptionOut,
    ExcursionOut,
    IdentityCheckIn,
    IdentityCheckOut,
    PhaseOut,
    ProcedureOut,
    ProcedureTree,
    SignIn,
    StepOut,
    VerificationOut,
)
from opencdmo.batches.service import BatchSummary, get_batch
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.web.guards import requires

PHASE = ONE + "/phases/{step:str}/{phase:str}"


def _phase(view: PhaseView) -> PhaseOut:
    row = view.row
    return PhaseOut(
        position=row.position,
        procedure=row.procedure,
        step=row.step,
        phase=row.phase,
        name=view.planned.phase_name,
        status=row.status,
        started_at=row.started_at,
        started_by=row.started_by,
        ended_at=row.ended_at,
        ended_by=row.ended_by,
        second_person=view.planned.second_person,
        identity_check=view.planned.identity_check,
        commands=view.commands,
    )


def _exception(row: ExceptionRow, excursion: ExcursionRow | None = None) -> ExceptionOut:
    return ExceptionOut(
        **{f.name: getattr(row, f.name) for f in fields(row) if f.name != "batch_id"},
        excursion=None if excursion is None else _excursion(excursion),
    )


def _excursion(row: ExcursionRow) -> ExcursionOut:
    return ExcursionOut(
        equipment_id=row.equipment_id,
        signal=row.signal,
        unit=row.unit,
        low=row.low,
        high=row.high,
        started_at=row.started_at,
        ended_at=row.ended_at,
        extreme=row.extreme,
        seconds=row.seconds,
    )


def _deviation(row: DeviationRow) -> DeviationOut:
    return DeviationOut(**asdict(row))


@get(ONE + "/phases", opt=requires("batches", "read", site_scoped=True), tags=["batches"])
async def api_phases(
    ctx: NamedDependency[TenantContext], batch_id: FromPath[UUID]
) -> ProcedureTree:
    """The batch's unit procedures, their operations (steps) and phases in recipe order, each
    with its ISA-88 state (an operation's and a procedure's rolled up from its phases), and
    the commands each phase's state allows."""
    found = await record.read(ctx, batch_id)
    return ProcedureTree(
        [
            ProcedureOut(
                key=up.key,
                name=up.name,
                status=up.status,
                operations=[
                    StepOut(
                        key=s.key,
                        name=s.name,
                        status=s.status,
                        phases=[_phase(p) for p in s.phases],
                    )
                    for s in up.steps
                ],
            )
            for up in found.procedures
        ]
    )


@post(
    PHASE + "/commands/{command:str}",
    opt=requires("batches", "execute", site_scoped=True),
    tags=["batches"],
    status_code=200,
)
async def api_phase_command(
    ctx: NamedDependency[TenantContext],
    batch_id: FromPath[UUID],
    step: FromPath[str],
    phase: FromPath[str],
    command: FromPath[str],
    data: JSONBody[BatchCommand],
) -> PhaseOut:
    """Give a phase an ISA-88 command. Phases run in recipe order: starting one early needs a
    reason and raises an out-of-order exception. A step that handles patient material needs a
    matching COI label check first. Completing needs every required field recorded (or a
    reason: each missing field is an exception) and QA's disposition of any outside-PAR or
    identity exception of the phase."""
    await execution.command_phase(ctx, batch_id, step, phase, command, data.reason)
    found = await record.read(ctx, batch_id)
    return _phase(next(p for p in found.phases if (p.row.step, p.row.phase) == (step, phase)))


@post(
    ONE + "/identity-checks",
    opt=requires("batches", "execute", site_scoped=True),
    tags=["batches"],
    status_code=201,
)
async def api_identity_check(
    ctx: NamedDependency[TenantContext], batch_id: FromPath[UUID], data: JSONBody[IdentityCheckIn]
) -> IdentityCheckOut:
    """Record the COI label scanned or typed on the container at a step. A mismatch is kept
    (matched: false), raises a critical exception and blocks the step until QA dispositions
    it."""
    check = await execution.check_identity(ctx, batch_id, data.step, data.scanned)
    return IdentityCheckOut(**asdict(check))


@post(
    ONE + "/custody",
    opt=requires("batches", "execute", site_scoped=True),
    tags=["batches"],
    status_code=204,
)
async def api_custody(
    ctx: NamedDependency[TenantContext], batch_id: FromPath[UUID], data: JSONBody[CustodyIn]
) -> None:
    """The signed-in person takes custody of the batch's material at a location."""
    await execution.take_custody(ctx, batch_id, data.location)


@post(
    PHASE + "/verification",
    opt=requires("batches", "verify", site_scoped=True),
    tags=["batches"],
    status_code=201,
)
async def api_verify(
    settings: NamedDependency[Settings],
    ctx: NamedDependency[TenantContext],
    batch_id: FromPath[UUID],
    step: FromPath[str],
    phase: FromPath[str],
    data: JSONBody[SignIn],
) -> VerificationOut:
    """A second person signs the phase as its content asks: 'verified' (once it is complete)
    or 'witnessed'. Nobody who performed the phase may sign it."""
    done = await execution.verify_phase(
        settings, ctx, batch_id, step, phase, data.password, data.reason
    )
    sig = done.signature
    return VerificationOut(
        kind=done.kind,
        signature_id=sig.id,
        signer_name=sig.signer_name,
        signed_at=sig.signed_at,
        meaning=sig.meaning,
    )


@get(ONE + "/exceptions", opt=requires("batches", "read", site_scoped=True), tags=["batches"])
async def api_exceptions(
    ctx: NamedDependency[TenantContext], batch_id: FromPath[UUID]
) -> ExceptionList:
    """The batch's exceptions, oldest first, with their disposition (an equipment
    excursion's with its start, end, extreme value and duration)."""
    found = await record.read(ctx, batch_id)
    return ExceptionList([_exception(e, found.excursions.get(e.id)) for e in found.exceptions])


@post(
    ONE + "/exceptions/{exception_id:uuid}/accept",
    opt=requires("batches", "review", site_scoped=True),
    tags=["batches"],
    status_code=200,
)
async def api_accept(
    ctx: NamedDependency[TenantContext],
    batch_id: FromPath[UUID],
    exception_id: FromPath[UUID],
    data: JSONBody[AcceptIn],
) -> ExceptionOut:
    """QA accepts the exception with a comment."""
    return _exception(await review.accept_exception(ctx, batch_id, exception_id, data.comment))


@get(ONE + "/deviations", opt=requires("batches", "read", site_scoped=True), tags=["batches"])
async def api_deviations(
    ctx: NamedDependency[TenantContext], batch_id: FromPath[UUID]
) -> DeviationList:
    found = await record.read(ctx, batch_id)
    return DeviationList([_deviation(d) for d in found.deviations])


@post(
    ONE + "/deviations",
    opt=requires("batches", "deviate", site_scoped=True),
    tags=["batches"],
    status_code=201,
)
async def api_open_deviation(
    ctx: NamedDependency[TenantContext], batch_id: FromPath[UUID], data: JSONBody[DeviationIn]
) -> DeviationOut:
    """Open a deviation from one or more of the batch's undispositioned exceptions (they are
    escalated to it)."""
    return _deviation(
        await review.open_deviation(
            ctx, batch_id, data.exception_ids, data.classification, data.description
        )
    )


@post(
    ONE + "/deviations/{deviation_id:uuid}/close",
    opt=requires("batches", "review", site_scoped=True),
    tags=["batches"],
    status_code=200,
)
async def api_close_deviation(
    settings: NamedDependency[Settings],
    ctx: NamedDependency[TenantContext],
    batch_id: FromPath[UUID],
    deviation_id: FromPath[UUID],
    data: JSONBody[DeviationClose],
) -> DeviationOut:
    """QA closes the deviation with its impact assessment, root cause and CAPA reference,
    signing it."""
    return _deviation(
        await review.close_deviation(
            settings,
            ctx,
            batch_id,
            deviation_id,
            data.impact,
            data.root_cause,
            data.capa_reference,
            data.password,
            data.reason,
        )
    )


@post(
    ONE + "/disposition",
    opt=requires("batches", "release", site_scoped=True),
    tags=["batches"],
    status_code=200,
)
async def api_disposition(
    settings: NamedDependency[Settings],
    ctx: NamedDependency[TenantContext],
    batch_id: FromPath[UUID],
    data: JSONBody[DispositionIn],
) -> BatchOut:
    """QA releases or rejects the batch with a signature ('released' or 'rejected'): refused
    while an exception is undispositioned or a deviation open, and to anyone who performed or
    verified a step of the batch."""
    await review.decide(settings, ctx, batch_id, data.decision, data.password, data.reason)
    view = await get_batch(ctx, batch_id)
    return BatchOut(**batch_out(BatchSummary(view.batch, view.recipe_name, view.site_code)))


api = [
    api_phases,
    api_phase_command,
    api_identity_check,
    api_custody,
    api_verify,
    api_exceptions,
    api_accept,
    api_deviations,
    api_open_deviation,
    api_close_deviation,
    api_disposition,
]
