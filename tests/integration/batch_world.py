"""A plant for the batch tests: a fresh CDMO tenant with two sites, an effective master
recipe (autologous: CAR-T) with a formula, and people in the batch roles."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg

from opencdmo.batches import execution
from opencdmo.batches import service as batches
from opencdmo.hub import library
from opencdmo.recipes import service as recipes
from opencdmo.scope import SYSTEM, RequestMeta, TenantContext
from opencdmo.settings import Settings
from opencdmo.tenancy import service as tenancy
from opencdmo.tenancy import site_roles
from tests.conftest import PASSWORD, World, member_as
from tests.integration.conftest import reviewable, viability

PLANNED = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
CHAIN = batches.ChainOfIdentity("D-0001", "COI-0001", "APH-0001")


@dataclass(frozen=True)
class Plant:
    ctx: TenantContext  # the provisioning system actor
    author: TenantContext
    approver: TenantContext
    supervisor: TenantContext  # production_supervisor in the whole tenant
    operator: TenantContext  # production_operator
    viewer: TenantContext
    remote: TenantContext  # production_supervisor at site S2 only
    uo: str  # library id of t-cell-activation
    method: str
    recipe: UUID


def content(uo: str, method: str, modality: str = "car-t", density: float = 1.0) -> Any:
    body = reviewable(
        {
            "unit_procedures": [
                {
                    "key": "cell-processing",
                    "name": "Cell processing",
                    "operations": [
                        {
                            "key": "activate",
                            "library_item_id": uo,
                            "parameters": {"seeding_density": density},
                        }
                    ],
                }
            ],
            "formulas": [
                {"name": "1 L scale", "overrides": {"activate.seeding_density": 1.1}},
                {"name": "pilot", "overrides": {}},
            ],
        },
        method,
    )
    body["specification"]["modality"] = modality
    return body


async def effective(settings: Settings, plant: Plant, recipe: UUID) -> None:
    await recipes.submit(settings, plant.author, recipe, PASSWORD, "ready")
    await recipes.approve(settings, plant.approver, recipe, PASSWORD, "ok", approvers_required=1)
    await recipes.make_effective(settings, plant.approver, recipe, PASSWORD, "in force")


async def effective_recipe(
    settings: Settings, plant: Plant, name: str, modality: str = "car-t"
) -> UUID:
    recipe = await recipes.create(plant.author, name)
    await recipes.save(plant.author, recipe, content(plant.uo, plant.method, modality), 1)
    await effective(settings, plant, recipe)
    return recipe


async def new_plant(
    world: World, owner: asyncpg.Connection, settings: Settings, activation: str = "1.1.0"
) -> Plant:
    ctx = await tenancy.create_tenant(
        f"bx-{uuid.uuid4().hex[:8]}", "Batch Plant", "cdmo", SYSTEM, RequestMeta()
    )
    await tenancy.upsert_site(ctx, "S1", "Suite one", "Europe/Berlin")
    await tenancy.upsert_site(ctx, "S2", "Suite two", "America/New_York")
    roles = {
        "author": "process_engineer",
        "approver": "qa_approver",
        "admin": "production_supervisor",
        "operator": "production_operator",
        "viewer": "viewer",
    }
    for key, role in roles.items():
        await tenancy.add_member(ctx, world[key].user_id, [role])
    bare = await tenancy.add_member(ctx, world["bare"].user_id, [])
    await site_roles.grant(ctx, bare, "S2", "production_supervisor", "covers suite two")
    item = await owner.fetchval(
        "SELECT i.id FROM hub_items i JOIN tenants t ON t.id = i.publisher_id "
        "WHERE i.slug = 't-cell-activation' AND t.slug = 'opencdmo-hub'"
    )
    await library.install(ctx, item, activation)
    uo = str(next(e.id for e in await library.list_library(ctx) if e.hub_item_id == item))
    people = {k: await member_as(ctx, world[k]) for k in (*roles, "bare")}
    plant = Plant(
        ctx,
        people["author"],
        people["approver"],
        people["admin"],
        people["operator"],
        people["viewer"],
        people["bare"],
        uo,
        await viability(owner, ctx),
        uuid.uuid4(),
    )
    recipe = await effective_recipe(settings, plant, "CAR-T autologous")
    return Plant(**{**plant.__dict__, "recipe": recipe})


async def batch_of(plant: Plant, site: str = "S1", **kw: Any) -> batches.CreatedBatch:
    return await batches.create_batch(
        plant.supervisor,
        kw.pop("recipe", plant.recipe),
        kw.pop("formula", "1 L scale"),
        site,
        kw.pop("planned_start", PLANNED),
        kw.pop("sponsor", "Quillon Therapeutics"),
        kw.pop("chain", CHAIN),
    )


async def underway(plant: Plant, batch_id: UUID, *phases: str, step: str = "activate") -> None:
    """Start the batch (the supervisor), check the COI label at the step (the operator) and
    start each phase named, in order (a phase started early says why: out of order)."""
    await batches.command_batch(plant.supervisor, batch_id, "start")
    await execution.check_identity(plant.operator, batch_id, step, CHAIN.coi_label or "")
    for phase in phases:
        await start_phase(plant, batch_id, phase, step=step)


async def start_phase(
    plant: Plant, batch_id: UUID, phase: str, step: str = "activate", who: str = "operator"
) -> None:
    from opencdmo.errors import Conflict

    person: TenantContext = getattr(plant, who)
    try:
        await execution.command_phase(person, batch_id, step, phase, "start")
    except Conflict as exc:
        if "out of order" not in exc.message:
            raise
        await execution.command_phase(person, batch_id, step, phase, "start", "test set-up")


async def phases_done(plant: Plant, batch_id: UUID) -> None:
    """Run every phase of a running batch to Complete (the COI label checked at each step
    that needs it; required fields left empty say why), so the batch may complete."""
    from opencdmo.batches import plan, record

    found = await record.read(plant.viewer, batch_id)
    checked: set[str] = set()
    for view in found.phases:
        planned: plan.PlannedPhase = view.planned
        if planned.identity_check and planned.step not in checked:
            await execution.check_identity(plant.operator, batch_id, planned.step, "COI-0001")
            checked.add(planned.step)
        if view.status == "idle":
            await start_phase(plant, batch_id, planned.phase, step=planned.step)
        if view.status in ("idle", "running"):
            await execution.command_phase(
                plant.operator, batch_id, planned.step, planned.phase, "complete", "test set-up"
            )


async def every_phase_running(plant: Plant, batch_id: UUID) -> None:
    """Start the batch and every one of its phases (the COI label checked at each step that
    needs it; phases after the first started out of order, with a reason), so every field
    of the batch takes entries."""
    from opencdmo.batches import record

    await batches.command_batch(plant.supervisor, batch_id, "start")
    checked: set[str] = set()
    for view in (await record.read(plant.viewer, batch_id)).phases:
        step = view.planned.step
        if view.planned.identity_check and step not in checked:
            await execution.check_identity(plant.operator, batch_id, step, CHAIN.coi_label or "")
            checked.add(step)
        await start_phase(plant, batch_id, view.planned.phase, step=step)


async def end_step(
    plant: Plant, settings: Settings, batch_id: UUID, step: str = "activate", *, sign: bool = True
) -> list[str]:
    """Record the IL-2 volume, complete every phase of the step (its phases running; fields
    left empty say why) and, with ``sign``, have the supervisor sign each phase that asks for
    a second person. The phases that ask for one."""
    from opencdmo.batches import record

    await batches.record_entry(
        plant.operator, batch_id, step, "medium_preparation", "il2_volume_added", 3.0, None, "k"
    )
    found = (await record.read(plant.viewer, batch_id)).step(step)
    assert found is not None
    owed = [v.planned.phase for v in found.phases if v.planned.second_person]
    for view in found.phases:
        await execution.command_phase(
            plant.operator, batch_id, step, view.planned.phase, "complete", "on paper"
        )
    for phase in owed if sign else ():
        await execution.verify_phase(
            settings, plant.supervisor, batch_id, step, phase, PASSWORD, "seen"
        )
    return owed
