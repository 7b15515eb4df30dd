"""The demo's batches, made through the services as the people of a CDMO's manifest would
make them: the example master recipe given a formula, signed by its author and QA and made
effective; the materials its bill of materials lists received and released (each patient's
apheresis bag with the patient's chain of identity); then one batch complete and awaiting QA's
review, and one in progress (its first phases complete, one value outside its normal range),
each step using real lots as its bill of materials says.

Values are the content's own: a parameter's value in the batch, a number in the middle of
its field's limits (or of the parameter's normal range), yes for a check, the first choice.
Run twice, it changes nothing: a tenant with batches is left as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from opencdmo import quantities
from opencdmo.batches import (
    equipment_use,
    execution,
    material_views,
    materials,
    outputs,
    plan,
    queries,
    record,
    service,
    states,
)
from opencdmo.db.tx import tenant_transaction
from opencdmo.errors import AppError
from opencdmo.hub import library as hub_library
from opencdmo.hub.model import DataCaptureField, Parameter, Range
from opencdmo.identity import service as identity
from opencdmo.inventory import from_library, receipt
from opencdmo.inventory import service as inventory
from opencdmo.inventory.queries import Identity
from opencdmo.labels import label
from opencdmo.recipes import service as recipes
from opencdmo.scope import Actor, RequestMeta, TenantContext
from opencdmo.settings import Settings
from opencdmo.tenancy import service as tenancy

FORMULA = "Standard patient dose"
SPONSOR = "Quillon Therapeutics"
Report = Callable[[str], None]


@dataclass(frozen=True)
class Crew:
    engineer: TenantContext
    approvers: list[TenantContext]
    supervisor: TenantContext
    operator: TenantContext
    handler: TenantContext | None = None  # receives the lots the batches use
    qc: TenantContext | None = None  # releases them


async def _as(tenant_id: UUID, email: str, meta: RequestMeta) -> TenantContext | None:
    user = await identity.find_user(email)
    if user is None:
        return None
    return await tenancy.internal_context(
        tenant_id, Actor(user.id, user.email, user.full_name), meta
    )


async def _having(
    tenant_id: UUID, manifest: Any, role: str, meta: RequestMeta
) -> list[TenantContext]:
    """The manifest's people with ``role``, as members of the tenant."""
    found = [await _as(tenant_id, p.email, meta) for p in manifest.people if role in p.roles]
    return [c for c in found if c is not None]


async def _crew(manifest: Any, meta: RequestMeta) -> Crew | None:
    tenant = await tenancy.tenant_by_slug(manifest.slug)
    if tenant is None:
        return None

    async def having(role: str) -> list[TenantContext]:
        return await _having(tenant.id, manifest, role, meta)

    engineers, approvers = await having("process_engineer"), await having("qa_approver")
    supervisors, operators = (
        await having("production_supervisor"),
        await having("production_operator"),
    )
    if not (engineers and approvers and supervisors and operators):
        return None
    handlers, qc = await having("materials_handler"), await having("qc_analyst")
    return Crew(
        engineers[0],
        approvers,
        supervisors[0],
        operators[0],
        handlers[0] if handlers else None,
        qc[0] if qc else None,
    )


STOCKED_FOR = 3
PRODUCT = "car-t-drug-product"  # the lot the complete demo batch makes at its fill step
FILLED = (Decimal(70), "mL", 4)  # in four cryobags  # batches' worth of each material received


async def _stock(
    settings: Settings, crew: Crew, password: str, batches: list[UUID], report: Report, slug: str
) -> bool:
    """The lots the batches need, received by the materials handler and released by QC: each
    material of the bill of materials, and each patient's apheresis bag with the patient's
    chain of identity. False: the tenant has no one to receive or release."""
    if crew.handler is None or crew.qc is None:
        return False
    async with tenant_transaction(crew.supervisor):
        frozen = await queries.control_recipe(batches[0])
        rows = [await queries.batch(b) for b in batches]
    library = {e.slug: e for e in await hub_library.list_library(crew.engineer)}
    needs: dict[str, tuple[Decimal, str]] = {}
    for line in materials.bill_of_materials(frozen):
        total, unit = needs.get(line.material, (Decimal(0), line.unit))
        if quantities.compatible(line.unit, unit):
            needs[line.material] = (
                total + quantities.convert(line.quantity, line.unit, unit),
                unit,
            )
    known = {m.code for m in await inventory.list_materials(crew.handler)}
    today = inventory.today(crew.handler)
    for slug_, (total, unit) in needs.items():
        item = library.get(slug_)
        content = (
            dict((await hub_library.get_library_item(crew.engineer, item.id)).content)
            if item is not None
            else {}
        )
        kind = from_library.master_type(content.get("material_type"))
        if slug_ not in known:
            await inventory.create_material(
                crew.handler,
                slug_,
                str(content.get("name") or label(slug_)),
                kind,
                unit,
                from_library.storage_condition(content),
                None,
                item.id if item is not None else None,
            )
        material = next(m for m in await inventory.list_materials(crew.handler) if m.code == slug_)
        lots = (
            [(f"{r.number}-APH", r) for r in rows]
            if kind == "starting_material"
            else [(f"DEMO-{slug_[:20].upper()}-01", None)]
        )
        for number, batch in lots:
            identity = (
                Identity(batch.donor_id, batch.coi_label, batch.apheresis_id) if batch else None
            )
            amount = total if batch else total * STOCKED_FOR
            lot = await receipt.receive(
                crew.handler,
                receipt.Receipt(
                    material.id,
                    number,
                    "Apheresis centre" if batch else "Demo supplier",
                    batch.apheresis_id or number if batch else f"SL-{number[-12:]}",
                    amount,
                    unit,
                    today + timedelta(days=5 if batch else 365),
                    None if batch else STOCKED_FOR,
                    identity=identity,
                ),
            )
            await inventory.decide(
                settings, crew.qc, lot.id, "release", password, "CoA checked against the spec"
            )
    if PRODUCT not in known:
        await inventory.create_material(
            crew.handler, PRODUCT, "CAR-T drug product", "product", "mL", "-150 °C or below", 365
        )
    report(f"  {slug}: {len(needs)} materials received and released for the demo batches")
    return True


async def _use_materials(crew: Crew, batch_id: UUID, step: str) -> None:
    """Use each material of the step's bill of materials, as it says, from the containers
    that fit (the patient's own bag for patient material)."""
    bench = (await material_views.at_the_bench(crew.operator, batch_id)).steps.get(step)
    if bench is None:
        return
    for use in bench.lines:
        wanted = use.line.quantity - use.used
        for pick in bench.pickable:
            if wanted <= 0:
                break
            if pick.material != use.line.material:
                continue
            if not quantities.compatible(use.line.unit, pick.container.unit):
                continue
            free = quantities.convert(pick.free, pick.container.unit, use.line.unit)
            take = min(free, wanted)
            if take <= 0:
                continue
            try:
                await materials.consume(
                    crew.operator, batch_id, step, pick.container.id, take, use.line.unit
                )
            except AppError:
                continue  # another patient's bag, or taken since: the next one
            wanted -= take
        bench = (await material_views.at_the_bench(crew.operator, batch_id)).steps.get(
            step
        ) or bench


async def _effective_recipe(settings: Settings, crew: Crew, password: str) -> UUID | None:
    return await effective_recipe(settings, crew.engineer, crew.approvers, password)


async def effective_recipe(
    settings: Settings, engineer: TenantContext, approvers: list[TenantContext], password: str
) -> UUID | None:
    """The tenant's effective recipe; the draft example recipe made effective if none is
    (its engineer submits it, its QA approvers approve it and make it effective)."""
    found = await recipes.list_recipes(engineer)
    effective = next((r for r in found if r.effective_revision is not None), None)
    if effective is not None:
        return effective.id
    draft = next((r for r in found if r.status == "draft"), None)
    if draft is None:
        return None
    detail = await recipes.get(engineer, draft.id)
    content = dict(detail.content)
    if not any(f.get("name") == FORMULA for f in content.get("formulas") or []):
        content["formulas"] = [*(content.get("formulas") or []), {"name": FORMULA, "overrides": {}}]
        await recipes.save(
            engineer, draft.id, content, detail.current_revision, "the demo's formula"
        )
    await recipes.submit(settings, engineer, draft.id, password, "Ready for QA review")
    for approver in approvers:
        if await recipes.approve(settings, approver, draft.id, password, "Reviewed"):
            break
    await recipes.make_effective(
        settings, approvers[0], draft.id, password, "Released for manufacturing"
    )
    return draft.id


async def sponsor_recipe(
    settings: Settings, manifest: Any, meta: RequestMeta, password: str
) -> UUID | None:
    """A sponsor's example recipe made effective, ready to send to its CDMO for tech
    transfer (its process engineer and QA approvers as the manifest names them); None when
    one is effective already or the manifest has nobody to do it."""
    tenant = await tenancy.tenant_by_slug(manifest.slug)
    if tenant is None:
        return None

    engineers = await _having(tenant.id, manifest, "process_engineer", meta)
    approvers = await _having(tenant.id, manifest, "qa_approver", meta)
    if not (engineers and approvers):
        return None
    if any(r.effective_revision is not None for r in await recipes.list_recipes(engineers[0])):
        return None  # made effective already
    return await effective_recipe(settings, engineers[0], approvers, password)


def _middle(span: Range | None) -> float | None:
    if span is None or (span.low is None and span.high is None):
        return None
    if span.low is not None and span.high is not None:
        return round((float(span.low) + float(span.high)) / 2, 3)
    return float(span.low if span.low is not None else span.high)  # type: ignore[arg-type]


def _value(part: DataCaptureField | Parameter, in_batch: Any, now: datetime) -> Any:
    """A plausible value for a field, from its own content."""
    if isinstance(part, Parameter):
        return in_batch if in_batch is not None else part.default
    if part.type == "boolean":
        return True
    if part.type == "choice":
        return (part.choices or ("",))[0]
    if part.type == "datetime":
        return now.isoformat()
    if part.type in ("number", "integer"):
        middle = _middle(part.limits)
        number = middle if middle is not None else 1.0
        return int(number) if part.type == "integer" else number
    return "As instructed"


def _off_normal(part: Parameter) -> float | None:
    """A value above the normal range and inside the proven acceptable range, if there is
    room between them."""
    normal, par = part.normal_range, part.proven_acceptable_range
    if normal is None or par is None or normal.high is None or par.high is None:
        return None
    if par.high <= normal.high:
        return None
    return round((float(normal.high) + float(par.high)) / 2, 3)


async def _run_phase(
    crew: Crew,
    batch_id: UUID,
    view: record.PhaseView,
    values: dict[str, Any],
    now: datetime,
    *,
    off_normal: str | None = None,
) -> None:
    """Start the phase, record each of its fields, complete it; ``off_normal``: the key of a
    parameter recorded just outside its normal range (an exception for QA)."""
    step, phase = view.planned.step, view.planned.phase
    await execution.command_phase(crew.operator, batch_id, step, phase, "start")
    content = view.planned.content
    parts: list[DataCaptureField | Parameter] = [*content.parameters, *content.data_capture]
    for part in parts:
        value = _value(part, values.get(part.key), now)
        if isinstance(part, Parameter) and part.key == off_normal:
            value = _off_normal(part) or value
        await service.record_entry(
            crew.operator,
            batch_id,
            step,
            phase,
            part.key,
            value,
            part.unit,
            f"demo-{step}-{phase}-{part.key}",
            source="equipment" if getattr(part, "equipment_signal", None) else "manual",
        )
    await execution.command_phase(crew.operator, batch_id, step, phase, "complete")


async def _run(
    settings: Settings,
    crew: Crew,
    password: str,
    batch_id: UUID,
    phases: int | None,
    off_normal_at: int | None = None,
    stocked: bool = False,
) -> None:
    """Run the batch's first ``phases`` phases (None: all, then complete the batch); from
    phase ``off_normal_at`` on, the first parameter that can be is recorded outside its
    normal range."""
    await service.command_batch(crew.supervisor, batch_id, "start")
    found = await record.read(crew.supervisor, batch_id)
    coi = found.batch.coi_label
    await execution.take_custody(crew.operator, batch_id, "Receipt, cleanroom suite 1")
    document = found.control_recipe.document
    values = {
        (op["key"], key): v["value"]
        for up in document["unit_procedures"]
        for op in up["operations"]
        for key, v in op["values"].items()
    }
    checked: set[str] = set()
    used: set[str] = set()
    raised = False  # the one value outside its normal range, made once
    now = datetime.now(UTC)
    chosen = found.phases if phases is None else found.phases[:phases]
    for index, view in enumerate(chosen):
        planned: plan.PlannedPhase = view.planned
        if planned.identity_check and coi and planned.step not in checked:
            await execution.check_identity(crew.operator, batch_id, planned.step, coi)
            checked.add(planned.step)
        if stocked and planned.step not in used:
            await _use_materials(crew, batch_id, planned.step)
            used.add(planned.step)
        mine = {k: v for (s, k), v in values.items() if s == planned.step}
        off = None
        if off_normal_at is not None and index >= off_normal_at and not raised:
            off = next((p.key for p in planned.content.parameters if _off_normal(p)), None)
            raised = off is not None
        await _run_phase(crew, batch_id, view, mine, now, off_normal=off)
        if planned.second_person:
            await execution.verify_phase(
                settings,
                crew.supervisor,
                batch_id,
                planned.step,
                planned.phase,
                password,
                "Checked the entries against the instructions",
            )
    if phases is None:
        if stocked:
            await _fill(crew, batch_id, document)
        await service.command_batch(crew.supervisor, batch_id, "complete")


async def _fill(crew: Crew, batch_id: UUID, document: dict[str, Any]) -> None:
    """The drug product the batch made at its fill step (its last step if it has none), so
    that its genealogy reaches from the patient's bag to the product."""
    steps = [op["key"] for up in document["unit_procedures"] for op in up["operations"]]
    step = "fill" if "fill" in steps else steps[-1]
    assert crew.handler is not None  # stocked
    found = await inventory.list_materials(crew.handler)
    product = next(m for m in found if m.code == PRODUCT)
    amount, unit, bags = FILLED
    await outputs.produce(
        crew.operator, batch_id, outputs.Output(step, product.id, amount, unit, containers=bags)
    )


async def demo_batches(
    settings: Settings, manifest: Any, meta: RequestMeta, password: str, report: Report
) -> None:
    """The demo's two batches in a CDMO tenant without batches (see the module)."""
    crew = await _crew(manifest, meta)
    if crew is None:
        return
    async with tenant_transaction(crew.supervisor):
        if (await queries.batches(queries.BatchFilter(limit=1)))[1]:
            return
    recipe = await _effective_recipe(settings, crew, password)
    if recipe is None:
        return
    sites = await tenancy.list_sites(crew.supervisor)
    if not sites:
        return
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    made = []
    for donor, days in (("D-24017", 2), ("D-24031", 0)):
        chain = service.ChainOfIdentity(donor, f"COI-{donor[2:]}-01", f"APH-{donor[2:]}")
        created = await service.create_batch(
            crew.supervisor,
            recipe,
            FORMULA,
            sites[0].code,
            start - timedelta(days=days),
            SPONSOR,
            chain,
        )
        made.append(created)
        report(f"  {manifest.slug}: batch {created.number} created for {SPONSOR}")
    stocked = await _stock(settings, crew, password, [m.id for m in made], report, manifest.slug)
    await _run(settings, crew, password, made[0].id, None, stocked=stocked)
    report(f"  {manifest.slug}: batch {made[0].number} complete, awaiting QA review")
    await _run(settings, crew, password, made[1].id, 3, off_normal_at=1, stocked=stocked)
    report(f"  {manifest.slug}: batch {made[1].number} in progress (one exception open)")


async def equipment_in_use(manifest: Any, meta: RequestMeta, report: Report) -> str | None:
    """The demo's batch in progress takes a unit the capture worker captures (one with an
    OPC UA description) for its first step not done that can use one, so that its run page
    shows live trends; nothing when it holds one already. The code of the unit taken."""
    crew = await _crew(manifest, meta)
    if crew is None:
        return None
    async with tenant_transaction(crew.supervisor):
        running, _ = await queries.batches(queries.BatchFilter(status="running", limit=10))
    for batch in running:
        bench = await equipment_use.at_the_bench(crew.operator, batch.id)
        if any(b.released_at is None for s in bench.values() for b, _ in s.held):
            continue
        found = await record.read(crew.operator, batch.id)
        open_steps = [p.planned.step for p in found.phases if p.status not in states.FINAL]
        for step in dict.fromkeys(open_steps):
            unit = next((u for u in bench[step].pickable if u.connection), None)
            if unit is None:
                continue
            await equipment_use.bind(crew.operator, batch.id, step, unit.code)
            report(f"  {manifest.slug}: {unit.code} taken for batch {batch.number}, {label(step)}")
            return unit.code
    return None
