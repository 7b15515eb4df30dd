"""The tenant's OPC UA trust list against the real database and a real secured simulator:
added through the page (a file that is not one certificate refused, saying why), listed,
removed with a reason, each audited; another tenant neither sees nor removes it; and a
server is trusted by the capture worker and the setpoint writer only once it is listed."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from opencdmo.batches.setpoints import write_setpoints
from opencdmo.equipment import capture, opcua_pki, trust
from opencdmo.equipment import service as equipment
from opencdmo.equipment.service import Registration
from opencdmo.equipment.simulator import Simulator, SimulatorConfig
from opencdmo.errors import Conflict, NotFound, ValidationFailed
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from tests.conftest import World, member_as
from tests.integration.batch_world import Plant, new_plant
from tests.integration.test_capture import FAST
from tests.integration.test_equipment import ready, running_batch
from tests.integration.test_opcua import free_port

TRUST = "/settings/opcua-trust"


def certificate(folder: Path, uri: str = "urn:test:server") -> bytes:
    return opcua_pki.ensure_certificate(folder, uri, server=True).certificate.read_bytes()


def pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


async def _actions(owner: asyncpg.Connection, tenant: uuid.UUID, action: str) -> list[Any]:
    rows = await owner.fetch(
        "SELECT entity_id, new_values, reason FROM audit_events "
        "WHERE tenant_id = $1 AND action = $2 ORDER BY seq",
        tenant,
        action,
    )
    return [(r["entity_id"], json.loads(r["new_values"]), r["reason"]) for r in rows]


async def test_add_list_and_remove_through_the_page(
    own_tenant: TenantContext, browser: Any, owner: asyncpg.Connection, tmp_path: Path
) -> None:
    der = certificate(tmp_path / "server")
    admin = await browser("admin")
    base = f"/t/{own_tenant.slug}{TRUST}"
    empty = await admin.get(base)
    assert empty.status_code == 200 and "No certificate trusted yet" in empty.text
    key = opcua_pki.ensure_certificate(tmp_path / "other", "urn:x", server=True).private_key
    refusals = {
        b"": "choose the server",  # no file chosen
        b"not a certificate at all": "not an X.509 certificate",
        pem(der) + key.read_bytes(): "exactly one certificate",
        der + der: "more than one certificate",
    }
    for body, said in refusals.items():
        files = {"certificate": ("server.der", body, "application/octet-stream")} if body else None
        refused = await admin.send("POST", base, files=files or {"x": ("", b"", "text/plain")})
        assert refused.status_code == 422, (said, refused.text)
        assert said in refused.text, said
    assert (
        await owner.fetchval(
            "SELECT count(*) FROM opcua_trusted_certificates WHERE tenant_id = $1",
            own_tenant.tenant_id,
        )
        == 0
    )
    added = await admin.send(
        "POST", base, files={"certificate": ("server.pem", pem(der), "application/x-pem-file")}
    )
    assert added.status_code == 303, added.text
    thumbprint = opcua_pki.fingerprint(der)
    listed = await admin.get(base)
    assert thumbprint in listed.text and "urn:test:server" in listed.text
    again = await admin.send("POST", base, files={"certificate": ("server.der", der, "x")})
    assert again.status_code == 409 and "trusted already" in again.text
    api = await admin.get(f"/api/v1/t/{own_tenant.slug}{TRUST}")
    [row] = api.json()
    assert row["thumbprint"] == thumbprint and row["removed_at"] is None
    no_reason = await admin.send("POST", f"{base}/{row['id']}/remove", data={"reason": " "})
    assert no_reason.status_code == 422 and "reason is required" in no_reason.text
    removed = await admin.send(
        "POST", f"{base}/{row['id']}/remove", data={"reason": "server re-keyed"}
    )
    assert removed.status_code == 303, removed.text
    [after] = (await admin.get(f"/api/v1/t/{own_tenant.slug}{TRUST}")).json()
    assert after["removed_at"] is not None and after["removal_reason"] == "server re-keyed"
    twice = await admin.send(
        "POST", f"{base}/{row['id']}/remove", data={"reason": "server re-keyed"}
    )
    assert twice.status_code == 409
    [(entity, new, _)] = await _actions(
        owner, own_tenant.tenant_id, "equipment.certificate_trusted"
    )
    assert entity == row["id"] and new["thumbprint"] == thumbprint and new["file"] == "server.pem"
    [(_, _, why)] = await _actions(owner, own_tenant.tenant_id, "equipment.certificate_removed")
    assert why == "server re-keyed"
    # Others: a viewer may not open it; the API takes the same upload.
    assert (await (await browser("viewer")).get(base)).status_code == 403
    made = await admin.send(
        "POST",
        f"/api/v1/t/{own_tenant.slug}{TRUST}",
        files={"certificate": ("s.der", der, "application/pkix-cert")},
    )
    assert made.status_code == 201 and made.json()["thumbprint"] == thumbprint


async def test_another_tenant_neither_sees_nor_removes_it(
    own_tenant: TenantContext, world: World, tmp_path: Path
) -> None:
    admin = await member_as(own_tenant, world["admin"])
    row = await trust.add(admin, certificate(tmp_path), "server.der")
    outsider = await member_as(world.beta, world["outsider"])
    assert all(r.id != row.id for r in await trust.listing(outsider))
    with pytest.raises(NotFound):
        await trust.remove(outsider, row.id, "not mine")
    assert (await trust.listing(admin))[0].current
    with pytest.raises(ValidationFailed, match="not an X"):
        trust.parse(b"\x30\x82\x00\x01junk")
    with pytest.raises(Conflict):
        await trust.add(admin, certificate(tmp_path), "again.der")


async def test_trust_dir_follows_the_list(
    own_tenant: TenantContext, world: World, tmp_path: Path
) -> None:
    admin = await member_as(own_tenant, world["admin"])
    one, two = certificate(tmp_path / "a", "urn:a"), certificate(tmp_path / "b", "urn:b")
    first = await trust.add(admin, one)
    await trust.add(admin, two)
    directory = await trust.trust_dir(own_tenant.tenant_id, tmp_path / "pki")
    assert opcua_pki.trusted_fingerprints(directory) == {
        first.thumbprint,
        opcua_pki.fingerprint(two),
    }
    await trust.remove(admin, first.id, "retired")
    directory = await trust.trust_dir(own_tenant.tenant_id, tmp_path / "pki")
    assert opcua_pki.trusted_fingerprints(directory) == {opcua_pki.fingerprint(two)}


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[Simulator]:
    found = Simulator(
        SimulatorConfig(port=free_port(), rate=20, pki=tmp_path / "server", history=0)
    )
    await found.start()
    yield found
    await found.stop(drain=0)


async def test_a_server_is_trusted_only_once_it_is_listed(
    own_tenant: TenantContext, world: World, synced: Any, secured: Simulator, tmp_path: Path
) -> None:
    boss = await member_as(own_tenant, world["supervisor"])
    opcua = {
        "endpoint": secured.endpoint,
        "security": {"mode": "Sign", "policy": "Basic256Sha256"},
        "signals": {"culture_temperature": {"node": "ns=2;s=BR01.Temperature", "unit": "Cel"}},
    }
    await equipment.register(
        boss, Registration("BR-S", "rocking-motion-bioreactor", "A1", opcua=opcua)
    )
    pki = tmp_path / "pki"

    async def run_once() -> capture.Report:
        units = await capture.units_to_capture(own_tenant.tenant_id)
        worker = capture.Worker(
            own_tenant.tenant_id, units, pki=pki, backoff=FAST, interval=0.05, leases=False
        )
        return await worker.run(seconds=1.5)

    before = await run_once()
    assert "not in the trust list" in before.failed["BR-S"] and before.stored == 0
    assert secured.server_certificate is not None
    await trust.add(await member_as(own_tenant, world["admin"]), secured.server_certificate)
    after = await run_once()
    assert not after.failed and after.stored > 0


async def test_the_setpoint_writer_uses_the_trust_list(
    world: World,
    owner: asyncpg.Connection,
    settings: Settings,
    synced: Any,
    secured: Simulator,
    tmp_path: Path,
) -> None:
    plant: Plant = await new_plant(world, owner, settings)
    from opencdmo.batches import equipment_use

    node = "ns=2;s=BR01.TemperatureSetpoint"
    opcua = {
        "endpoint": secured.endpoint,
        "security": {"mode": "SignAndEncrypt", "policy": "Basic256Sha256"},
        "setpoints": {"incubation_temperature": {"node": node, "unit": "Cel"}},
    }
    await ready(plant, settings, Registration("INC-S", "co2-incubator", "S1", opcua=opcua))
    batch_id = await running_batch(plant)
    await equipment_use.bind(plant.operator, batch_id, "activate", "INC-S")
    shown = [{"parameter": "incubation_temperature", "value": 37, "unit": "Cel", "node": node}]
    pki = tmp_path / "pki"
    refused = await write_setpoints(
        plant.operator, batch_id, "activate", "incubation", shown, "k1", pki=pki
    )
    assert refused.write.outcome == "failed"
    assert "not in the trust list" in refused.write.outcomes[0]["problem"]
    assert secured.server_certificate is not None
    from opencdmo.tenancy import service as tenancy

    await tenancy.add_member(plant.ctx, world["outsider"].user_id, ["tenant_admin"])
    await trust.add(await member_as(plant.ctx, world["outsider"]), secured.server_certificate)
    done = await write_setpoints(
        plant.operator, batch_id, "activate", "incubation", shown, "k2", pki=pki
    )
    assert done.ok, done.write.outcomes


async def test_two_admins_at_once(
    own_tenant: TenantContext, browser: Any, owner: asyncpg.Connection, tmp_path: Path
) -> None:
    """The same certificate added twice at once: one added, one 409; removed twice at once:
    one removed, one 409; one audit event each."""
    import asyncio

    der = certificate(tmp_path)
    api = f"/api/v1/t/{own_tenant.slug}{TRUST}"
    admins = [await browser("admin"), await browser("admin")]
    added = await asyncio.gather(
        *(a.send("POST", api, files={"certificate": ("s.der", der, "x")}) for a in admins)
    )
    assert sorted(a.status_code for a in added) == [201, 409], [a.text for a in added]
    [row] = (await admins[0].get(api)).json()
    removed = await asyncio.gather(
        *(a.send("POST", f"{api}/{row['id']}/remove", json={"reason": "re-keyed"}) for a in admins)
    )
    assert sorted(r.status_code for r in removed) == [200, 409], [r.text for r in removed]
    for action in ("equipment.certificate_trusted", "equipment.certificate_removed"):
        assert len(await _actions(owner, own_tenant.tenant_id, action)) == 1, action
