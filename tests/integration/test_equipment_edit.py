"""The unit page's edit form against the real database: a change saved and audited, bad
input shown in the form with nothing changed, and two edits at once: the unit's row is
locked and the form carries the version it was opened on, so the first edit wins and the
second is a 409 that says so (never a 500, never a lost update)."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Any

import asyncpg
import yaml

from opencdmo.equipment import service as equipment
from opencdmo.equipment.service import Registration
from opencdmo.scope import TenantContext
from tests.conftest import World, member_as

OPCUA = {
    "endpoint": "opc.tcp://127.0.0.1:4840/opencdmo/sim",
    "security": {"mode": "None"},
    "signals": {"chamber_temperature": {"node": "ns=2;s=INC01.Temperature", "unit": "Cel"}},
}


async def _unit(ctx: TenantContext, world: World) -> str:
    boss = await member_as(ctx, world["supervisor"])
    code = f"INC-{uuid.uuid4().hex[:4]}"
    await equipment.register(boss, Registration(code, "co2-incubator", "A1", opcua=OPCUA))
    return code


def _form(page: str) -> dict[str, str]:
    """The edit form's fields as the page fills them."""
    found = re.search(r'<form[^>]*id="edit-form".*?</form>', page, re.DOTALL)
    assert found is not None
    form = found.group(0)
    fields = dict(re.findall(r'<input[^>]*name="(\w+)"[^>]*value="([^"]*)"', form))
    fields.pop("_csrf_token", None)
    text = re.search(r'<textarea[^>]*name="opcua"[^>]*>(.*?)</textarea>', form, re.DOTALL)
    assert text is not None
    import html

    fields["opcua"] = html.unescape(text.group(1))
    fields["version"] = html.unescape(fields["version"])
    fields["site"] = "A1"
    return fields


async def _row(owner: asyncpg.Connection, code: str) -> Any:
    return await owner.fetchrow(
        "SELECT name, site_id, calibration_due, opcua, updated_at FROM equipment WHERE code = $1",
        code,
    )


async def test_an_edit_is_saved_and_audited(
    own_tenant: TenantContext, world: World, synced: Any, browser: Any, owner: asyncpg.Connection
) -> None:
    code = await _unit(own_tenant, world)
    boss = await browser("supervisor")
    url = f"/t/{own_tenant.slug}/equipment/{code}"
    page = await boss.get(url)
    assert page.status_code == 200 and 'id="edit-form"' in page.text
    fields = _form(page.text)
    stored = {**OPCUA, "security": {"mode": "None", "policy": "None"}}
    assert yaml.safe_load(fields["opcua"]) == stored
    described = {
        **OPCUA,
        "setpoints": {"incubation_temperature": {"node": "ns=2;s=INC01.Setpoint", "unit": "Cel"}},
    }
    sent = {
        **fields,
        "name": "Incubator by the window",
        "calibration_due": "2031-03-01",
        "opcua": json.dumps(described),
    }
    done = await boss.send("POST", f"{url}/edit", data=sent)
    assert done.status_code == 303, done.text
    row = await _row(owner, code)
    assert row["name"] == "Incubator by the window" and str(row["calibration_due"]) == "2031-03-01"
    assert json.loads(row["opcua"])["setpoints"] == described["setpoints"]
    event = await owner.fetchrow(
        "SELECT old_values, new_values FROM audit_events WHERE tenant_id = $1 "
        "AND action = 'equipment.changed' ORDER BY seq DESC LIMIT 1",
        own_tenant.tenant_id,
    )
    assert json.loads(event["old_values"])["name"] != json.loads(event["new_values"])["name"]
    shown = (await boss.get(url)).text
    assert "Incubator by the window" in shown and "ns=2;s=INC01.Setpoint" in shown
    viewer = await (await browser("viewer")).get(url)
    assert 'id="edit-form"' not in viewer.text


async def test_bad_input_is_shown_and_nothing_changes(
    own_tenant: TenantContext, world: World, synced: Any, browser: Any, owner: asyncpg.Connection
) -> None:
    code = await _unit(own_tenant, world)
    boss = await browser("supervisor")
    url = f"/t/{own_tenant.slug}/equipment/{code}"
    fields = _form((await boss.get(url)).text)
    before = await _row(owner, code)
    bad = {
        "opcua: [unclosed": "not YAML or JSON",
        "- just\n- a list": "must be a mapping",
        json.dumps(
            {**OPCUA, "setpoints": {"t": {"node": "BR01", "unit": "Cel"}}}
        ): "not an OPC UA node id",
        json.dumps(
            {**OPCUA, "setpoints": {"t": {"node": "ns=2;s=X", "unit": "furlong"}}}
        ): "furlong",
        json.dumps({**OPCUA, "setpoints": {"t": {"node": "ns=2;s=X"}}}): "unit is required",
        json.dumps({**OPCUA, "password": "hunter2"}): "never goes in the description",
    }
    for text, said in bad.items():
        answer = await boss.send("POST", f"{url}/edit", data={**fields, "opcua": text})
        assert answer.status_code == 422, (text, answer.text[:200])
        assert said in answer.text and 'id="edit-refusal"' in answer.text, said
    for changed, said in (
        ({"calibration_due": "soon"}, "give a date"),
        ({"site": "NOWHERE"}, "not one of the tenant"),
        ({"qualification_due": "2031-02-30"}, "give a date"),
        ({"version": "yesterday"}, "reload the page"),
        ({"opcua": "x" * 20_001}, "at most 20000 characters"),
    ):
        answer = await boss.send("POST", f"{url}/edit", data={**fields, **changed})
        assert answer.status_code == 422, (changed, answer.text[:200])
        assert said in answer.text, said
    assert await _row(owner, code) == before


async def test_two_edits_at_once_the_first_wins(
    own_tenant: TenantContext, world: World, synced: Any, browser: Any, owner: asyncpg.Connection
) -> None:
    code = await _unit(own_tenant, world)
    url = f"/t/{own_tenant.slug}/equipment/{code}"
    people = [await browser("supervisor"), await browser("admin")]
    forms = [_form((await p.get(url)).text) for p in people]
    answers = await asyncio.gather(
        *(
            p.send("POST", f"{url}/edit", data={**f, "name": f"Renamed by {i}"})
            for i, (p, f) in enumerate(zip(people, forms, strict=True))
        )
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [303, 409], [a.text[:200] for a in answers]
    lost = next(a for a in answers if a.status_code == 409)
    assert "changed by someone else since you opened the form" in lost.text
    won = answers.index(next(a for a in answers if a.status_code == 303))
    assert (await _row(owner, code))["name"] == f"Renamed by {won}"
    changes = await owner.fetchval(
        "SELECT count(*) FROM audit_events WHERE tenant_id = $1 AND action = 'equipment.changed'",
        own_tenant.tenant_id,
    )
    assert changes == 1
