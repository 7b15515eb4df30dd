"""A batch record verifies on its own: every entry and signature as stored is vouched for by
its audit event, and the events by the chain; a row changed or added behind the
application's back is a finding of ``audit verify``."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from opencdmo.audit.verify import verify_tenant
from opencdmo.batches import execution
from opencdmo.batches import service as batches
from opencdmo.settings import Settings
from tests.conftest import PASSWORD, World
from tests.integration.batch_world import Plant, batch_of, new_plant, underway


@pytest.fixture
async def plant(synced: Any, world: World, owner: asyncpg.Connection, settings: Settings) -> Plant:
    return await new_plant(world, owner, settings)


async def _recorded(plant: Plant, settings: Settings) -> Any:
    made = await batch_of(plant)
    await underway(plant, made.id, "medium_preparation")
    await batches.record_entry(
        plant.operator,
        made.id,
        "activate",
        "medium_preparation",
        "il2_volume_added",
        1.5,
        "mL",
        "k1",
    )
    await execution.command_phase(
        plant.operator, made.id, "activate", "medium_preparation", "complete"
    )
    await execution.verify_phase(
        settings, plant.supervisor, made.id, "activate", "medium_preparation", PASSWORD, "seen"
    )
    return made


async def test_an_untouched_record_verifies(plant: Plant, settings: Settings) -> None:
    await _recorded(plant, settings)
    report = await verify_tenant(plant.ctx.tenant_id, plant.ctx.slug)
    assert report.intact, report.problem


async def test_an_entry_changed_in_the_database_is_found(
    plant: Plant, settings: Settings, owner: asyncpg.Connection
) -> None:
    made = await _recorded(plant, settings)
    change = "UPDATE batch_entries SET value = $3 WHERE tenant_id = $1 AND batch_id = $2"
    await _behind_the_back(owner, "batch_entries", change, plant.ctx.tenant_id, made.id, "9.5")
    try:
        report = await verify_tenant(plant.ctx.tenant_id, plant.ctx.slug)
        assert report.kinds == ["uncovered"]
        assert "batch record entry" in (report.problem or "")
        assert "activate/medium_preparation/il2_volume_added" in (report.problem or "")
    finally:  # the other suites verify every tenant's chain
        await _behind_the_back(owner, "batch_entries", change, plant.ctx.tenant_id, made.id, "1.5")
    assert (await verify_tenant(plant.ctx.tenant_id, plant.ctx.slug)).intact


async def _behind_the_back(owner: asyncpg.Connection, table: str, sql: str, *args: Any) -> None:
    """A change as the owner with the table's append-only triggers off, in one transaction."""
    async with owner.transaction():
        await owner.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        await owner.execute(sql, *args)
        await owner.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


async def test_a_signature_added_in_the_database_is_found(
    plant: Plant, settings: Settings, owner: asyncpg.Connection
) -> None:
    await _recorded(plant, settings)
    await owner.execute(
        "INSERT INTO signatures (tenant_id, record_type, record_id, record_version, record_hash,"
        " signer_id, signer_name, meaning, reason)"
        " SELECT tenant_id, record_type, record_id, record_version, record_hash, signer_id,"
        " signer_name, 'released', 'forged' FROM signatures WHERE tenant_id = $1 LIMIT 1",
        plant.ctx.tenant_id,
    )
    try:
        report = await verify_tenant(plant.ctx.tenant_id, plant.ctx.slug)
        assert report.kinds == ["uncovered"]
        assert "signature" in (report.problem or "") and "released by" in (report.problem or "")
    finally:  # the other suites verify every tenant's chain
        await _behind_the_back(
            owner,
            "signatures",
            "DELETE FROM signatures WHERE tenant_id = $1 AND reason = 'forged'",
            plant.ctx.tenant_id,
        )
    assert (await verify_tenant(plant.ctx.tenant_id, plant.ctx.slug)).intact
