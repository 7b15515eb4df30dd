"""Materials in a batch: its bill of materials from the control recipe, and the containers its
steps use (reservations: ``reservations``; lots made: ``outputs``; reads: ``material_views``).

Consuming a container in a step checks, on the locked batch and container, in this order:

- the lot is usable at the time of use: released and not past its expiry date (a lot in
  quarantine, on hold, rejected, consumed or expired is always refused: "use before QC
  release" is never allowed);
- a patient's starting material belongs to this batch's patient (its COI identifiers);
- the lot's material is one of the step's bill of materials (``wrong_material``);
- the quantity converts to the container's unit and is on hand, less what other batches
  reserved of it;
- the step's total of that material stays within its bill of materials (``over_consumption``).

``wrong_material`` and ``over_consumption`` are refused or raise an exception of that kind,
as the tenant's manifest says (``batch_exceptions.severities``: ``refuse`` or a severity).
Each command is one unit of work: the consumption, the container's quantity, the genealogy
link, the lot's status (consumed once every container is empty), the exceptions and the
audit events commit together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from uuid import UUID

from opencdmo import quantities, units
from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.batches import exceptions, queries, states
from opencdmo.batches import execution_queries as xq
from opencdmo.batches.execution import actor, running
from opencdmo.batches.execution_queries import NewException
from opencdmo.batches.queries import BatchRow, ControlRecipeRow
from opencdmo.db.tx import unit_of_work
from opencdmo.errors import Conflict, ValidationFailed
from opencdmo.inventory import consumption_queries as cq
from opencdmo.inventory import queries as lots
from opencdmo.inventory import service as inventory
from opencdmo.inventory.consumption_queries import ConsumptionRow, NewConsumption
from opencdmo.inventory.queries import LotRow, MaterialRow
from opencdmo.scope import TenantContext
from opencdmo.tenancy.batch_rules import exception_rules

MADE_TYPES = ("intermediate", "product", "starting_material")
DONE_PHASES = frozenset({states.COMPLETE, states.STOPPED, states.ABORTED})


@dataclass(frozen=True)
class BomLine:
    """One line of a step's bill of materials (at the recipe's scale)."""

    step: str
    step_name: str
    material: str  # the HUB material's slug
    quantity: Decimal
    unit: str
    note: str | None


def bill_of_materials(frozen: ControlRecipeRow) -> list[BomLine]:
    """Every step's materials, in recipe order."""
    found = []
    for step, operation in frozen.operations.items():
        for line in operation.materials:
            found.append(
                BomLine(
                    step,
                    operation.name,
                    line.material,
                    Decimal(str(line.quantity)),
                    line.unit,
                    line.note,
                )
            )
    return found


def step_lines(frozen: ControlRecipeRow, step: str) -> list[BomLine]:
    if step not in frozen.operations:
        raise ValidationFailed(f"This batch has no step '{step[:64]}'.", details={"field": "step"})
    return [line for line in bill_of_materials(frozen) if line.step == step]


def quantity_given(value: Decimal, unit: str) -> tuple[Decimal, str]:
    """A quantity as given: a positive amount in a known unit (422 naming the field)."""
    try:
        quantities.unit(unit)
        amount = Decimal(quantities.on_hand(value, unit).magnitude)
    except ValidationFailed as exc:
        field = "unit" if "unit" in exc.message.lower() else "quantity"
        raise ValidationFailed(exc.message, details={"field": field}) from exc
    if not amount > 0 or amount.as_tuple().exponent < -9 or amount > Decimal("1e15"):  # type: ignore[operator]
        raise ValidationFailed(
            "The quantity must be more than 0 (at most 15 digits, 9 after the point).",
            details={"field": "quantity"},
        )
    return amount.normalize(), unit


def _usable(lot: LotRow, material: MaterialRow, on: date) -> None:
    """A 409 unless the lot may be used now: released, and not past its expiry date."""
    shown = inventory.shown_status(lot, on)
    name = f"Lot {lot.lot_number} of {material.code}"
    if shown == "quarantine":
        raise Conflict(
            f"{name} is in quarantine: it may not be used before QC releases it.",
            details={"status": shown},
        )
    if shown == "expired":
        raise Conflict(
            f"{name} expired on {lot.expiry_date}: it may not be used.", details={"status": shown}
        )
    if shown != "released":
        raise Conflict(
            f"{name} is {inventory.STATUS_NAMES[shown]}: only a released lot may be used.",
            details={"status": shown},
        )


def _same_patient(lot: LotRow, batch: BatchRow) -> None:
    """A patient's material goes into that patient's batch only."""
    if not any((lot.donor_id, lot.coi_label, lot.apheresis_id)):
        return
    pairs = (
        ("donor id", lot.donor_id, batch.donor_id),
        ("COI label", lot.coi_label, batch.coi_label),
        ("apheresis id", lot.apheresis_id, batch.apheresis_id),
    )
    for name, of_lot, of_batch in pairs:
        if of_lot and of_lot != of_batch:
            raise Conflict(
                f"Lot {lot.lot_number} is another patient's material: its {name} is "
                f"{of_lot}, this batch's is {of_batch or 'not set'}.",
                details={"field": "container_id", "identity": name},
            )


@dataclass(frozen=True)
class Consumed:
    consumption: ConsumptionRow
    raised: list[str]  # the kinds of exception it raised


async def consume(
    ctx: TenantContext,
    batch_id: UUID,
    step: str,
    container_id: UUID,
    quantity: Decimal,
    unit: str,
    idempotency_key: str | None = None,
) -> Consumed:
    """Record the use of ``quantity`` of a container in a step (see the module). A retry with
    the same ``idempotency_key`` (made by the client) is given the first use, once."""
    amount, unit = quantity_given(quantity, unit)
    async with unit_of_work(ctx):
        batch = await queries.batch(batch_id, lock=True)
        await authorize(ctx, "batches", "execute", site_id=batch.site_id)
        if idempotency_key is not None:
            first = await cq.consumption_by_key(batch_id, idempotency_key)
            if first is not None:  # the batch's lock makes this check-then-insert safe
                return _replayed(first, step, container_id, amount, unit)
        running(batch, "using a material")
        frozen = await queries.control_recipe(batch_id)
        lines = step_lines(frozen, step)
        phases = [p for p in await xq.phases(batch_id) if p.step == step]
        if phases and all(p.status in DONE_PHASES for p in phases):
            raise Conflict(
                f"Step {frozen.operations[step].name} is done: it takes no more materials.",
                details={"field": "step"},
            )
        container = await cq.container(container_id, lock=True)
        lot = await lots.lot(container.lot_id, lock=True)
        material = await lots.material(lot.material_id)
        _usable(lot, material, inventory.today(ctx))
        _same_patient(lot, batch)
        rules = await exception_rules(ctx)
        raised: list[NewException] = []
        step_name = frozen.operations[step].name

        def problem(kind: str, message: str, field: str) -> None:
            if rules.refuses(kind):
                raise Conflict(message, details={"field": field, "kind": kind})
            raised.append(NewException(kind, rules.severity(kind), message, step))

        allowed = await cq.material_ids_for(sorted({line.material for line in lines}))
        line = next((ln for ln in lines if material.id in allowed.get(ln.material, ())), None)
        if line is None:
            wanted = ", ".join(sorted({ln.material for ln in lines})) or "no materials"
            problem(
                "wrong_material",
                f"{material.code} is not in the bill of materials of step {step_name} "
                f"(it takes {wanted}).",
                "container_id",
            )
        try:
            taken = quantities.convert(amount, unit, container.unit)
        except ValidationFailed as exc:
            raise ValidationFailed(
                f"{exc.message} (the container's unit)", details={"field": "unit"}
            ) from exc
        own = [r for r in await cq.reservations(batch_id) if r.container_id == container.id]
        others = (await cq.reserved_by_others([container.id], batch_id)).get(
            container.id, Decimal(0)
        )
        if taken > container.remaining:
            raise Conflict(
                f"Container {container.number} of lot {lot.lot_number} has "
                f"{units.quantity(container.remaining, container.unit)} left, not "
                f"{units.quantity(taken, container.unit)}.",
                details={"field": "quantity"},
            )
        if taken > container.remaining - others:
            raise Conflict(
                f"{units.quantity(others, container.unit)} of container {container.number} of "
                f"lot {lot.lot_number} is reserved for other batches: "
                f"{units.quantity(container.remaining - others, container.unit)} is free.",
                details={"field": "quantity"},
            )
        if line is not None:
            await _within_bom(batch_id, line, amount, unit, problem)
        by = actor(ctx)
        consumption_id = await cq.insert_consumption(
            ctx.tenant_id,
            NewConsumption(
                batch_id,
                step,
                line.material if line else None,
                container,
                material.id,
                amount,
                unit,
                taken,
                idempotency_key,
            ),
            by,
        )
        for reservation in own:
            await cq.use_reservation(reservation, taken)
        await audit.record(
            ctx,
            "batch.material_consumed",
            "batch",
            batch_id,
            new={
                "number": batch.number,
                "step": step,
                "step_name": step_name,
                "consumption_id": str(consumption_id),
                "lot_id": str(lot.id),
                "lot_number": lot.lot_number,
                "material": material.code,
                "container": container.number,
                "quantity": str(amount),
                "unit": unit,
                "container_quantity": str(taken),
                "container_unit": container.unit,
                "left": str(container.remaining - taken),
            },
        )
        if await cq.lots_left(lot.id) == 0:
            await lots.set_status(lot.id, "consumed")
            reason = f"used up in batch {batch.number}"
            await lots.insert_change(
                ctx.tenant_id, lot.id, lot.status, "consumed", reason, by, None
            )
            await audit.record(
                ctx,
                "lot.consumed",
                "lot",
                lot.id,
                old={"status": lot.status},
                new={"status": "consumed", "lot_number": lot.lot_number, "batch": batch.number},
                reason=reason,
            )
        found = await exceptions.raise_all(ctx, batch_id, batch.number, raised)
        row = next(c for c in await cq.consumptions(batch_id) if c.id == consumption_id)
        return Consumed(row, [e.kind for e in found])


Problem = Callable[[str, str, str], None]  # (kind, message, field): refuse or raise it


def _replayed(
    first: ConsumptionRow, step: str, container_id: UUID, amount: Decimal, unit: str
) -> Consumed:
    """The first use of a key, when the retry asks for the same; a 409 when it does not."""
    same = (first.step, first.container_id, first.quantity, first.unit) == (
        step,
        container_id,
        amount,
        unit,
    )
    if not same:
        raise Conflict(
            "This idempotency key was used for another use of a material in this batch.",
            details={"field": "idempotency_key", "consumption_id": str(first.id)},
        )
    return Consumed(first, [])


async def _within_bom(
    batch_id: UUID, line: BomLine, amount: Decimal, unit: str, problem: Problem
) -> None:
    """Raise (or refuse) over-consumption when the step's total of the material would pass
    its bill of materials."""
    used = Decimal(0)
    for c in await cq.consumptions(batch_id):
        if c.step == line.step and c.material == line.material:
            used += _in(c.quantity, c.unit, line.unit)
    total = used + _in(amount, unit, line.unit)
    if total > line.quantity:
        problem(
            "over_consumption",
            f"Step {line.step_name} would use {units.quantity(total, line.unit)} of "
            f"{line.material}; its bill of materials says "
            f"{units.quantity(line.quantity, line.unit)}.",
            "quantity",
        )


def _in(amount: Decimal, unit: str, to: str) -> Decimal:
    """``amount`` in the line's unit; a unit that does not convert (a material whose unit
    measures something else than the recipe's) is a clear 422."""
    try:
        return quantities.convert(amount, unit, to)
    except ValidationFailed as exc:
        raise ValidationFailed(
            f"{exc.message} (the bill of materials' unit)", details={"field": "unit"}
        ) from exc


def convertible(amount: Decimal, unit: str, to: str) -> Decimal:
    return quantities.convert(amount, unit, to) if quantities.compatible(unit, to) else Decimal(0)
