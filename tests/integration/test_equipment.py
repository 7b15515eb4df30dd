"""Equipment against the real database: the registry's rules and the manifest's errors,
provisioning as code (idempotent, audited), the signed logbook, and equipment in a batch step
(each gating refusal, an exception instead by the manifest, two batches taking one unit at
once, freed when the step is done)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from opencdmo.audit.verify import verify_tenant
from opencdmo.batches import equipment_use
from opencdmo.batches import service as batches
from opencdmo.batches.execution import command_phase
from opencdmo.equipment import service as equipment
from opencdmo.equipment.service import Registration, Work
from opencdmo.errors import Conflict, Forbidden, NotAuthenticated, NotFound, ValidationFailed
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.tenancy import batch_rules
from opencdmo.tenancy.manifest import ManifestError
from opencdmo.tenancy.provision import apply_path
from tests.conftest import PASSWORD, World, member_as
from tests.integration.batch_world import Plant, batch_of, new_plant, start_phase, underway

SIGNALS = {
    "chamber_temperature": {"node": "ns=2;s=INC01.Temperature", "unit": "Cel"},
    "co2_concentration": {"node": "ns=2;s=INC01.CO2", "unit": "%"},
}
OPCUA = {
    "endpoint": "opc.tcp://127.0.0.1:4840/opencdmo/sim",
    "security": {"mode": "SignAndEncrypt", "policy": "Basic256Sha256"},
    "user": {"name": "capture", "password_env": "INC01_OPCUA_PASSWORD"},
    "signals": SIGNALS,
}


def incubator(code: str = "INC-01", site: str = "A1", **kw: Any) -> Registration:
    return Registration(
        code, "co2-incubator", site, kw.pop("name", ""), opcua=kw.pop("opcua", OPCUA), **kw
    )


async def _actions(owner: asyncpg.Connection, ctx: TenantContext, entity: object) -> list[str]:
    rows = await owner.fetch(
        "SELECT action FROM audit_events WHERE tenant_id = $1 AND entity_id = $2 ORDER BY seq",
        ctx.tenant_id,
        str(entity),
    )
    return [r["action"] for r in rows]


# --- registry ---------------------------------------------------------------------------------


async def test_register_and_read(
    own_tenant: TenantContext, world: World, synced: Any, owner: asyncpg.Connection
) -> None:
    boss = await member_as(own_tenant, world["supervisor"])
    unit = await equipment.register(boss, incubator(calibration_due=date(2030, 1, 1)))
    assert (unit.code, unit.status, unit.class_slug) == ("INC-01", "available", "co2-incubator")
    assert unit.name == "CO2 cell culture incubator INC-01"
    stored = unit.connection
    assert stored is not None
    assert stored["security"] == {"mode": "SignAndEncrypt", "policy": "Basic256Sha256"}
    assert stored["signals"]["co2_concentration"] == {"node": "ns=2;s=INC01.CO2", "unit": "%"}
    view = await equipment.get_unit(await member_as(own_tenant, world["viewer"]), "inc-01")
    assert view.unit.id == unit.id and view.site_code == "A1"
    assert await _actions(owner, own_tenant, unit.id) == ["equipment.registered"]
    with pytest.raises(Conflict, match="INC-01 already"):
        await equipment.register(boss, incubator("inc-01"))


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"class_slug": "no-such-class"}, "class", "not an equipment class"),
        ({"site": "ZZ"}, "site", "not one of the tenant's sites"),
        ({"code": "bad code!"}, "code", "letters, digits"),
        (
            {"opcua": {**OPCUA, "signals": {"weight": {"node": "ns=2;s=X", "unit": "g"}}}},
            "opcua.signals.weight",
            "not a signal of co2-incubator",
        ),
        (
            {
                "opcua": {
                    **OPCUA,
                    "signals": {"chamber_temperature": {"node": "BR01", "unit": "Cel"}},
                }
            },
            "opcua.signals.chamber_temperature.node",
            "not an OPC UA node id",
        ),
        (
            {"opcua": {**OPCUA, "user": {"name": "capture", "password": "secret"}}},
            "opcua.user.password",
            "never goes in",
        ),
        (
            {"opcua": {**OPCUA, "security": {"mode": "None"}}},
            "opcua.user",
            "only over a secured channel",
        ),
        (
            {"opcua": {**OPCUA, "signals": {"chamber_temperature": {"node": "i=5", "unit": "g"}}}},
            "opcua.signals.chamber_temperature.unit",
            "does not measure",
        ),
        (
            {"opcua": {**OPCUA, "security": {"mode": "Sign"}}},
            "opcua.security.policy",
            "must be one of",
        ),
        ({"opcua": {**OPCUA, "endpoint": "http://x"}}, "opcua.endpoint", "opc.tcp"),
    ],
)
async def test_registration_refusals(
    own_tenant: TenantContext,
    world: World,
    synced: Any,
    owner: asyncpg.Connection,
    change: dict[str, Any],
    field: str,
    says: str,
) -> None:
    boss = await member_as(own_tenant, world["supervisor"])
    given = incubator()
    given = Registration(**{**given.__dict__, **change})
    with pytest.raises(ValidationFailed, match=says) as caught:
        await equipment.register(boss, given)
    assert caught.value.details["field"] == field
    assert (
        await owner.fetchval(
            "SELECT count(*) FROM equipment WHERE tenant_id = $1", own_tenant.tenant_id
        )
        == 0
    )


async def test_only_managers_register(own_tenant: TenantContext, world: World, synced: Any) -> None:
    for who in ("operator", "viewer", "bare"):
        with pytest.raises(Forbidden):
            await equipment.register(await member_as(own_tenant, world[who]), incubator())


async def test_change_and_status_with_reason(
    own_tenant: TenantContext, world: World, synced: Any, owner: asyncpg.Connection
) -> None:
    boss = await member_as(own_tenant, world["supervisor"])
    unit = await equipment.register(boss, incubator())
    assert await equipment.change(boss, unit.id, incubator(name="Incubator one")) is True
    assert await equipment.change(boss, unit.id, incubator(name="Incubator one")) is False
    with pytest.raises(ValidationFailed, match="reason"):
        await equipment.set_status(boss, unit.id, "maintenance", " ")
    with pytest.raises(ValidationFailed, match="in use is set by a batch"):
        await equipment.set_status(boss, unit.id, "in_use", "x")
    changed = await equipment.set_status(boss, unit.id, "maintenance", "fan replaced")
    assert changed.status == "maintenance"
    with pytest.raises(Conflict, match="already"):
        await equipment.set_status(boss, unit.id, "maintenance", "again")
    view = await equipment.get_unit(boss, unit.code)
    assert [(e.kind, e.status_from, e.status_to, e.note) for e in view.logbook] == [
        ("status", "available", "maintenance", "fan replaced")
    ]
    assert await _actions(owner, own_tenant, unit.id) == [
        "equipment.registered",
        "equipment.changed",
        "equipment.status_changed",
    ]
    reason = await owner.fetchval(
        "SELECT reason FROM audit_events WHERE entity_id = $1 AND action = 'equipment.status_changed'",
        str(unit.id),
    )
    assert reason == "fan replaced"


async def test_other_tenants_unit_is_not_found(
    own_tenant: TenantContext, world: World, synced: Any
) -> None:
    boss = await member_as(own_tenant, world["supervisor"])
    unit = await equipment.register(boss, incubator())
    for key in (str(unit.id), unit.code):
        with pytest.raises(NotFound):
            await equipment.find(world.beta, key)
    with pytest.raises(NotFound):
        await equipment.set_status(world.beta, unit.id, "maintenance", "x")


# --- logbook ----------------------------------------------------------------------------------


async def test_signed_logbook(
    own_tenant: TenantContext,
    world: World,
    synced: Any,
    settings: Settings,
    owner: asyncpg.Connection,
) -> None:
    boss = await member_as(own_tenant, world["supervisor"])
    operator = await member_as(own_tenant, world["operator"])
    unit = await equipment.register(boss, incubator())
    until = datetime(2031, 1, 1, 12, tzinfo=UTC)
    entry = await equipment.log_work(
        settings,
        operator,
        unit.id,
        Work("cleaning", "wiped with 70% IPA", clean_until=until),
        PASSWORD,
    )
    assert entry.signature_id is not None and entry.performed_by == world["operator"].user_id
    await equipment.log_work(
        settings,
        operator,
        unit.id,
        Work("calibration", "probe checked", calibration_due=date(2031, 6, 1)),
        PASSWORD,
    )
    await equipment.log_work(
        settings, operator, unit.id, Work("maintenance", "filter changed"), PASSWORD
    )
    view = await equipment.get_unit(operator, unit.code)
    assert view.unit.clean_until == until and view.unit.calibration_due == date(2031, 6, 1)
    assert sorted(e.kind for e in view.logbook) == ["calibration", "cleaning", "maintenance"]
    signed = await owner.fetch(
        "SELECT meaning, signer_id, reason FROM signatures WHERE record_type = 'equipment' "
        "AND record_id = $1 ORDER BY signed_at",
        str(unit.id),
    )
    assert [(s["meaning"], s["signer_id"]) for s in signed] == [
        ("performed", world["operator"].user_id)
    ] * 3
    assert signed[0]["reason"] == "wiped with 70% IPA"
    actions = await _actions(owner, own_tenant, unit.id)
    assert actions.count("signature.applied") == 3
    assert "equipment.cleaning_recorded" in actions and "equipment.calibration_recorded" in actions
    # Wrong password, a missing date, a viewer: refused, nothing written.
    with pytest.raises(NotAuthenticated):
        await equipment.log_work(settings, operator, unit.id, Work("maintenance", "x"), "wrong")
    with pytest.raises(ValidationFailed, match="clean_until"):
        await equipment.log_work(settings, operator, unit.id, Work("cleaning", "x"), PASSWORD)
    viewer = await member_as(own_tenant, world["viewer"])
    with pytest.raises(Forbidden):
        await equipment.log_work(settings, viewer, unit.id, Work("maintenance", "x"), PASSWORD)
    assert len((await equipment.get_unit(operator, unit.code)).logbook) == 3
    # The logbook is append-only.
    with pytest.raises(asyncpg.PostgresError):
        await owner.execute(
            "UPDATE equipment_logbook SET note = 'x' WHERE equipment_id = $1", unit.id
        )


async def test_a_logbook_entry_changed_behind_the_back_is_found_by_audit_verify(
    own_tenant: TenantContext,
    world: World,
    synced: Any,
    settings: Settings,
    owner: asyncpg.Connection,
) -> None:
    boss = await member_as(own_tenant, world["supervisor"])
    operator = await member_as(own_tenant, world["operator"])
    unit = await equipment.register(boss, incubator())
    await equipment.log_work(
        settings, operator, unit.id, Work("maintenance", "filter changed"), PASSWORD
    )
    await equipment.set_status(boss, unit.id, "maintenance", "door seal replaced")
    assert (await verify_tenant(own_tenant.tenant_id, own_tenant.slug)).intact
    change = "UPDATE equipment_logbook SET note = $2 WHERE equipment_id = $1 AND kind = $3"
    for kind, note, was in (
        ("maintenance", "filter not changed", "filter changed"),
        ("status", "no reason", "door seal replaced"),
    ):
        await _behind_the_back(owner, change, unit.id, note, kind)
        try:
            report = await verify_tenant(own_tenant.tenant_id, own_tenant.slug)
            assert report.kinds == ["uncovered"]
            assert "equipment logbook entry" in (report.problem or "")
            assert f"{kind}: {note}" in (report.problem or "")
        finally:  # the other suites verify every tenant's chain
            await _behind_the_back(owner, change, unit.id, was, kind)
    assert (await verify_tenant(own_tenant.tenant_id, own_tenant.slug)).intact


async def _behind_the_back(owner: asyncpg.Connection, sql: str, *args: Any) -> None:
    async with owner.transaction():
        await owner.execute("ALTER TABLE equipment_logbook DISABLE TRIGGER USER")
        await owner.execute(sql, *args)
        await owner.execute("ALTER TABLE equipment_logbook ENABLE TRIGGER USER")


async def test_two_people_at_once_on_one_unit(
    own_tenant: TenantContext,
    world: World,
    synced: Any,
    settings: Settings,
    owner: asyncpg.Connection,
) -> None:
    """Real concurrent commands on one unit: two status changes to the same status (one
    wins, the other is told it is so already), a status change and signed work at once (both
    apply, in order, each with its audit event), and two registrations of one code (one)."""
    boss = await member_as(own_tenant, world["supervisor"])
    admin = await member_as(own_tenant, world["admin"])
    operator = await member_as(own_tenant, world["operator"])
    unit = await equipment.register(boss, incubator())
    outcomes = await asyncio.gather(
        equipment.set_status(boss, unit.id, "maintenance", "pump"),
        equipment.set_status(admin, unit.id, "maintenance", "pump too"),
        return_exceptions=True,
    )
    assert sorted(type(o).__name__ for o in outcomes) == ["Conflict", "UnitRow"]
    assert "maintenance already" in str(next(o for o in outcomes if isinstance(o, Conflict)))
    both = await asyncio.gather(
        equipment.set_status(boss, unit.id, "available", "pump fixed"),
        equipment.log_work(settings, operator, unit.id, Work("maintenance", "oiled"), PASSWORD),
    )
    assert both[0].status == "available" and both[1].kind == "maintenance"
    kinds = await owner.fetch(
        "SELECT kind FROM equipment_logbook WHERE equipment_id = $1 ORDER BY performed_at",
        unit.id,
    )
    assert sorted(k["kind"] for k in kinds) == ["maintenance", "status", "status"]
    actions = await _actions(owner, own_tenant, unit.id)
    assert actions.count("equipment.status_changed") == 2
    assert actions.count("equipment.maintenance_recorded") == 1
    registered = await asyncio.gather(
        equipment.register(boss, incubator("INC-77")),
        equipment.register(admin, incubator("INC-77")),
        return_exceptions=True,
    )
    assert sorted(type(o).__name__ for o in registered) == ["Conflict", "UnitRow"]
    count = await owner.fetchval(
        "SELECT count(*) FROM equipment WHERE tenant_id = $1 AND code = 'INC-77'",
        own_tenant.tenant_id,
    )
    assert count == 1
    assert (await verify_tenant(own_tenant.tenant_id, own_tenant.slug)).intact


# --- manifest ---------------------------------------------------------------------------------

MANIFEST = """
name: Delta Cells
kind: cdmo
sites:
  - {code: D1, name: Delta plant, time_zone: Europe/Paris}
equipment:
  - code: INC-01
    class: co2-incubator
    site: D1
    calibration_due: 2030-05-01
    opcua:
      endpoint: opc.tcp://127.0.0.1:4840/opencdmo/sim
      security: {mode: None}
      signals:
        chamber_temperature: {node: "ns=2;s=INC01.Temperature", unit: Cel}
"""


def _write(root: Path, slug: str, text: str) -> Path:
    (root / slug).mkdir(parents=True, exist_ok=True)
    path = root / slug / "tenant.yaml"
    path.write_text(text)
    return path


async def test_manifest_provisions_equipment_idempotently(
    world: World, synced: Any, tmp_path: Path, owner: asyncpg.Connection
) -> None:
    slug = f"delta-{uuid.uuid4().hex[:6]}"
    _write(tmp_path, slug, MANIFEST)
    lines: list[str] = []
    await apply_path(tmp_path, lines.append)
    assert any("equipment INC-01 registered" in line for line in lines)
    assert await apply_path(tmp_path, lines.append) == 0
    _write(tmp_path, slug, MANIFEST.replace("2030-05-01", "2030-06-01"))
    assert await apply_path(tmp_path, lines.append) == 1
    tenant_id = await owner.fetchval("SELECT id FROM tenants WHERE slug = $1", slug)
    row = await owner.fetchrow(
        "SELECT id, calibration_due, opcua FROM equipment WHERE tenant_id = $1", tenant_id
    )
    assert row["calibration_due"] == date(2030, 6, 1)
    assert json.loads(row["opcua"])["signals"]["chamber_temperature"]["unit"] == "Cel"
    actions = await owner.fetch(
        "SELECT action FROM audit_events WHERE tenant_id = $1 AND entity_type = 'equipment' ORDER BY seq",
        tenant_id,
    )
    assert [a["action"] for a in actions] == ["equipment.registered", "equipment.changed"]


@pytest.mark.parametrize(
    ("edit", "where", "says"),
    [
        (("co2-incubator", "no-such-class"), "equipment.0.class", "not an equipment class"),
        (("chamber_temperature", "weight"), "equipment.0.opcua.signals.weight", "not a signal"),
        (
            ('"ns=2;s=INC01.Temperature"', '"INC01"'),
            "equipment.0.opcua.signals.chamber_temperature.node",
            "node id",
        ),
        (
            (
                "security: {mode: None}",
                "security: {mode: None}\n      user: {name: c, password: s}",
            ),
            "equipment.0.opcua.user.password",
            "never",
        ),
        (("site: D1", "site: D9"), "equipment.0.site", "not a site"),
    ],
)
async def test_manifest_equipment_errors_name_the_path(
    world: World, synced: Any, tmp_path: Path, edit: tuple[str, str], where: str, says: str
) -> None:
    slug = f"delta-{uuid.uuid4().hex[:6]}"
    path = _write(tmp_path, slug, MANIFEST.replace(*edit))
    with pytest.raises(ManifestError, match=says) as caught:
        await apply_path(tmp_path, lambda _: None)
    assert caught.value.details == {"file": str(path), "field": where}
    assert str(path) in caught.value.message and where in caught.value.message


# --- in a batch -------------------------------------------------------------------------------

CLEAN = datetime(2099, 1, 1, tzinfo=UTC)


async def ready(plant: Plant, settings: Settings, given: Registration, clean: bool = True) -> Any:
    """A unit registered in the plant (by its supervisor) and cleaned (by its operator)."""
    unit = await equipment.register(plant.supervisor, given)
    if clean:
        work = Work("cleaning", "cleaned for use", clean_until=CLEAN)
        await equipment.log_work(settings, plant.operator, unit.id, work, PASSWORD)
    return await equipment.find(plant.supervisor, unit.code)


@pytest.fixture
async def plant(world: World, owner: asyncpg.Connection, settings: Settings, synced: Any) -> Plant:
    return await new_plant(world, owner, settings)


async def running_batch(plant: Plant) -> uuid.UUID:
    made = await batch_of(plant)
    await underway(plant, made.id)
    return made.id


async def _bindings(owner: asyncpg.Connection, batch_id: uuid.UUID) -> int:
    found: int = await owner.fetchval(
        "SELECT count(*) FROM batch_equipment WHERE batch_id = $1", batch_id
    )
    return found


async def test_bind_marks_in_use_and_step_completion_frees_it(
    plant: Plant, settings: Settings, owner: asyncpg.Connection
) -> None:
    unit = await ready(plant, settings, incubator(site="S1"))
    batch_id = await running_batch(plant)
    bound = await equipment_use.bind(plant.operator, batch_id, "activate", "inc-01")
    assert bound.raised == [] and bound.unit.status == "in_use"
    assert bound.binding.step == "activate" and bound.binding.released_at is None
    with pytest.raises(Conflict, match="in this step already"):
        await equipment_use.bind(plant.operator, batch_id, "activate", unit.code)
    with pytest.raises(Conflict, match="in use by a batch step"):
        await equipment.set_status(plant.supervisor, unit.id, "maintenance", "x")
    bench = await equipment_use.at_the_bench(plant.viewer, batch_id)
    assert [u.code for _, u in bench["activate"].held] == ["INC-01"]
    assert "co2-incubator" in bench["activate"].classes
    # The step's last phase done frees the unit and writes its logbook.
    phases = [p[1] for p in await _phases(plant, batch_id) if p[0] == "activate"]
    for phase in phases:
        await _finish(plant, batch_id, phase)
    view = await equipment.get_unit(plant.viewer, unit.code)
    assert view.unit.status == "available" and view.holder is None
    used = [e for e in view.logbook if e.kind == "use"]
    assert len(used) == 1 and used[0].batch_id == batch_id and used[0].step == "activate"
    assert used[0].used_from == bound.binding.bound_at and used[0].used_to is not None
    assert used[0].note.startswith("used by batch ")
    batch_actions = await _actions(owner, plant.ctx, batch_id)
    assert "batch.equipment_bound" in batch_actions
    assert "batch.equipment_released" in batch_actions
    assert "equipment.used" in await _actions(owner, plant.ctx, unit.id)


async def _phases(plant: Plant, batch_id: uuid.UUID) -> list[tuple[str, str, str]]:
    from opencdmo.batches import record

    found = await record.read(plant.viewer, batch_id)
    return [(v.planned.step, v.planned.phase, v.status) for v in found.phases]


async def _finish(plant: Plant, batch_id: uuid.UUID, phase: str) -> None:
    status = next(p[2] for p in await _phases(plant, batch_id) if p[1] == phase)
    if status == "idle":
        await start_phase(plant, batch_id, phase)
    await command_phase(plant.operator, batch_id, "activate", phase, "complete", "test set-up")


async def test_batch_end_frees_its_equipment(plant: Plant, settings: Settings) -> None:
    unit = await ready(plant, settings, incubator(site="S1"))
    batch_id = await running_batch(plant)
    await equipment_use.bind(plant.operator, batch_id, "activate", unit.code)
    await batches.command_batch(plant.supervisor, batch_id, "abort", "contaminated")
    view = await equipment.get_unit(plant.viewer, unit.code)
    assert view.unit.status == "available"
    assert [e.kind for e in view.logbook if e.kind == "use"] == ["use"]


async def _past(owner: asyncpg.Connection, unit_id: uuid.UUID, column: str, value: Any) -> None:
    await owner.execute(f"UPDATE equipment SET {column} = $2 WHERE id = $1", unit_id, value)


@pytest.mark.parametrize(
    ("setup", "says"),
    [
        ("wrong_class", "the step takes"),
        ("other_site", "another site"),
        ("maintenance", "maintenance, not available"),
        ("out_of_service", "out of service, not available"),
        ("cleaning", "cleaning, not available"),
        ("not_cleaned", "not clean"),
        ("clean_expired", "not clean"),
        ("calibration_overdue", "calibration was due"),
        ("qualification_overdue", "qualification was due"),
    ],
)
async def test_each_gating_refusal_writes_nothing(
    plant: Plant, settings: Settings, owner: asyncpg.Connection, setup: str, says: str
) -> None:
    given = incubator(site="S1")
    if setup == "wrong_class":
        given = Registration("BR-09", "rocking-motion-bioreactor", "S1")
    if setup == "other_site":
        given = incubator(site="S2")
    unit = await ready(plant, settings, given, clean=setup != "not_cleaned")
    yesterday = date.today() - timedelta(days=2)
    if setup in ("maintenance", "out_of_service", "cleaning"):
        await equipment.set_status(plant.supervisor, unit.id, setup, "planned")
    if setup == "clean_expired":
        await _past(owner, unit.id, "clean_until", datetime.now(UTC) - timedelta(hours=1))
    if setup == "calibration_overdue":
        await _past(owner, unit.id, "calibration_due", yesterday)
    if setup == "qualification_overdue":
        await _past(owner, unit.id, "qualification_due", yesterday)
    batch_id = await running_batch(plant)
    with pytest.raises(Conflict, match=says) as caught:
        await equipment_use.bind(plant.operator, batch_id, "activate", unit.code)
    assert caught.value.details["kind"] == "equipment_not_ready"
    assert await _bindings(owner, batch_id) == 0
    assert (await equipment.find(plant.viewer, unit.code)).status != "in_use"


async def test_refusals_by_role_state_and_tenant(
    plant: Plant, settings: Settings, world: World, owner: asyncpg.Connection
) -> None:
    unit = await ready(plant, settings, incubator(site="S1"))
    made = await batch_of(plant)
    with pytest.raises(Conflict, match="needs it Running"):
        await equipment_use.bind(plant.operator, made.id, "activate", unit.code)
    await underway(plant, made.id)
    with pytest.raises(Forbidden):
        await equipment_use.bind(plant.viewer, made.id, "activate", unit.code)
    with pytest.raises(ValidationFailed, match="no step"):
        await equipment_use.bind(plant.operator, made.id, "nope", unit.code)
    with pytest.raises(NotFound):
        await equipment_use.bind(plant.operator, made.id, "activate", "NO-SUCH")
    # Another tenant's unit, by code or id, is not found; so is this batch from there.
    other = await equipment.register(
        await member_as(world.alpha, world["supervisor"]),
        incubator(f"AX-{uuid.uuid4().hex[:6]}", site="A1"),
    )
    for key in (other.code, str(other.id)):
        with pytest.raises(NotFound):
            await equipment_use.bind(plant.operator, made.id, "activate", key)
    with pytest.raises(NotFound):
        await equipment_use.bind(world.beta, made.id, "activate", unit.code)
    assert await _bindings(owner, made.id) == 0


async def test_manifest_severity_raises_an_exception_instead(
    plant: Plant, settings: Settings, owner: asyncpg.Connection
) -> None:
    rules = batch_rules.ExceptionRules({"equipment_not_ready": "major"})
    assert await batch_rules.set_exception_rules(plant.ctx, rules)
    unit = await ready(plant, settings, incubator(site="S1"), clean=False)
    batch_id = await running_batch(plant)
    bound = await equipment_use.bind(plant.operator, batch_id, "activate", unit.code)
    assert bound.raised == ["equipment_not_ready"] and bound.unit.status == "in_use"
    row = await owner.fetchrow(
        "SELECT kind, severity, message, step FROM batch_exceptions WHERE batch_id = $1 "
        "AND kind = 'equipment_not_ready'",
        batch_id,
    )
    assert (row["severity"], row["step"]) == ("major", "activate")
    assert "not clean" in row["message"]
    # A unit another batch holds is refused whatever the severity.
    second = await running_batch(plant)
    with pytest.raises(Conflict, match="in use by another batch step"):
        await equipment_use.bind(plant.operator, second, "activate", unit.code)


async def test_two_batches_taking_one_unit_at_once(
    plant: Plant, settings: Settings, browser: Any, owner: asyncpg.Connection
) -> None:
    unit = await ready(plant, settings, incubator(site="S1"))
    first, second = await running_batch(plant), await running_batch(plant)
    clients = [await browser("operator"), await browser("operator")]
    url = f"/api/v1/t/{plant.ctx.slug}/batches/{{}}/equipment"
    answers = await asyncio.gather(
        *(
            c.send("POST", url.format(b), json={"step": "activate", "equipment": unit.code})
            for c, b in zip(clients, (first, second), strict=True)
        )
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [201, 409], [a.text for a in answers]
    lost = next(a for a in answers if a.status_code == 409)
    assert "in use by another batch step" in lost.json()["error"]["message"]
    assert await _bindings(owner, first) + await _bindings(owner, second) == 1


# --- pages ------------------------------------------------------------------------------------


async def test_equipment_pages_and_forms(
    plant: Plant, settings: Settings, browser: Any, owner: asyncpg.Connection
) -> None:
    base = f"/t/{plant.ctx.slug}/equipment"
    boss = await browser("admin")  # the plant's production supervisor
    listing = await boss.get(base)
    assert listing.status_code == 200 and 'id="unit-form"' in listing.text
    assert f'href="/t/{plant.ctx.slug}/equipment"' in listing.text  # the main menu entry
    refused = await boss.send("POST", base, data={"code": "INC-07", "class": "", "site": "S1"})
    assert refused.status_code == 422 and "not an equipment class" in refused.text
    made = await boss.send(
        "POST", base, data={"code": "INC-07", "class": "co2-incubator", "site": "S1"}
    )
    assert made.status_code == 303 and made.headers["location"] == f"{base}/INC-07"
    unit_page = await boss.get(f"{base}/inc-07")
    assert unit_page.status_code == 200 and 'id="status-form"' in unit_page.text
    no_reason = await boss.send(
        "POST", f"{base}/INC-07/status", data={"status": "maintenance", "reason": ""}
    )
    assert no_reason.status_code == 422 and "reason is required" in no_reason.text
    done = await boss.send(
        "POST", f"{base}/INC-07/status", data={"status": "maintenance", "reason": "door seal"}
    )
    assert done.status_code == 303
    await boss.send("POST", f"{base}/INC-07/status", data={"status": "available", "reason": "ok"})
    signed = await boss.send(
        "POST",
        f"{base}/INC-07/logbook",
        data={
            "kind": "cleaning",
            "note": "wiped down",
            "clean_until": "2099-01-01T08:00",
            "password": PASSWORD,
        },
    )
    assert signed.status_code == 303, signed.text
    page = (await boss.get(f"{base}/INC-07")).text
    assert "wiped down" in page and "door seal" in page
    viewer = await browser("viewer")
    seen = await viewer.get(f"{base}/INC-07")
    assert seen.status_code == 200 and 'id="logbook-form"' not in seen.text
    assert (await viewer.get(f"{base}/NO-SUCH")).status_code == 404
    # At the bench: the step lists the unit; the operator takes it with the step's form.
    batch_id = await running_batch(plant)
    operator = await browser("operator")
    run = await operator.get(f"/t/{plant.ctx.slug}/batches/{batch_id}/run")
    assert 'id="e-activate-form"' in run.text and "INC-07" in run.text
    taken = await operator.send(
        "POST",
        f"/t/{plant.ctx.slug}/batches/{batch_id}/run/equipment",
        data={"step": "activate", "scanned": "", "picked": "INC-07"},
    )
    assert taken.status_code == 303, taken.text
    again = await operator.send(
        "POST",
        f"/t/{plant.ctx.slug}/batches/{batch_id}/run/equipment",
        data={"step": "activate", "scanned": "INC-07"},
    )
    assert again.status_code == 409 and "in this step already" in again.text
    assert await _bindings(owner, batch_id) == 1


@pytest.mark.parametrize(
    "opcua",
    [
        {**OPCUA, "signals": {"chamber_temperature": {"node": "ns=2;s=A\x00B", "unit": "Cel"}}},
        {**OPCUA, "endpoint": "opc.tcp://127.0.0.1:4840/x\n"},
        {**OPCUA, "security": ["None"]},
        {**OPCUA, "signals": ["chamber_temperature"]},
        "opc.tcp://127.0.0.1:4840",
    ],
)
async def test_odd_descriptions_are_clear_errors(
    own_tenant: TenantContext, world: World, synced: Any, opcua: Any
) -> None:
    boss = await member_as(own_tenant, world["supervisor"])
    with pytest.raises(ValidationFailed) as caught:
        await equipment.register(boss, incubator(opcua=opcua))
    assert str(caught.value.details["field"]).startswith("opcua")
    for code in ("A\x00B", "A B\n"):
        with pytest.raises((ValidationFailed, NotFound)):
            await equipment.register(boss, incubator(code))
        with pytest.raises(NotFound):
            await equipment.find(boss, code)
