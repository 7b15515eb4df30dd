"""Running a batch: phases in recipe order, the chain of identity, every kind of exception,
second-person verification, review by exception, deviations and release, through the JSON
API against the real database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from opencdmo.batches import execution, record
from opencdmo.batches import service as batches
from opencdmo.settings import Settings
from opencdmo.tenancy import service as tenancy
from opencdmo.tenancy.batch_rules import ExceptionRules, set_exception_rules
from tests.conftest import PASSWORD, World
from tests.integration.batch_world import (
    Plant,
    batch_of,
    new_plant,
    phases_done,
    underway,
)

SIGN = {"password": PASSWORD, "reason": "checked against the record"}


@pytest.fixture
async def plant(synced: Any, world: World, owner: asyncpg.Connection, settings: Settings) -> Plant:
    return await new_plant(world, owner, settings)


def api(plant: Plant, batch: Any, rest: str = "") -> str:
    return f"/api/v1/t/{plant.ctx.slug}/batches/{batch}{rest}"


def phase_url(plant: Plant, batch: Any, phase: str, rest: str) -> str:
    return api(plant, batch, f"/phases/activate/{phase}{rest}")


def entry(key: str, field: str, value: Any, phase: str = "seeding", **more: Any) -> dict[str, Any]:
    return {
        "step": "activate",
        "phase": phase,
        "field": field,
        "value": value,
        "idempotency_key": key,
        **more,
    }


async def exceptions_of(client: Any, plant: Plant, batch: Any) -> list[dict[str, Any]]:
    listed = await client.get(api(plant, batch, "/exceptions"))
    assert listed.status_code == 200, listed.text
    items: list[dict[str, Any]] = listed.json()["items"]
    return items


async def test_phases_run_in_recipe_order_and_an_early_start_is_an_exception(
    plant: Plant, browser: Any
) -> None:
    made = await batch_of(plant)
    await underway(plant, made.id)
    operator = await browser("operator")
    early = await operator.send(
        "POST", phase_url(plant, made.id, "seeding", "/commands/start"), json={}
    )
    assert early.status_code == 409
    assert "comes after" in early.json()["error"]["message"]
    assert "give a reason" in early.json()["error"]["message"]
    assert await exceptions_of(operator, plant, made.id) == []
    reason = {"reason": "medium prepared in the previous shift"}
    started = await operator.send(
        "POST", phase_url(plant, made.id, "seeding", "/commands/start"), json=reason
    )
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "running"
    raised = await exceptions_of(operator, plant, made.id)
    assert [(e["kind"], e["severity"], e["phase"]) for e in raised] == [
        ("out_of_order", "major", "seeding")
    ]
    assert raised[0]["message"].endswith("medium prepared in the previous shift")
    tree = (await operator.get(api(plant, made.id, "/phases"))).json()["items"]
    step = tree[0]["operations"][0]
    assert (tree[0]["status"], step["status"]) == ("running", "running")
    assert [(p["phase"], p["status"]) for p in step["phases"]] == [
        ("medium_preparation", "idle"),
        ("seeding", "running"),
        ("incubation", "idle"),
    ]
    assert step["phases"][1]["second_person"] == "verified"
    assert step["phases"][1]["identity_check"] is True


async def test_an_entry_needs_its_phase_running(plant: Plant, browser: Any) -> None:
    made = await batch_of(plant)
    await underway(plant, made.id, "medium_preparation")
    operator = await browser("operator")
    sent = await operator.send(
        "POST", api(plant, made.id, "/entries"), json=entry("k-1", "pre_activation_viability", 92)
    )
    assert sent.status_code == 409
    assert sent.json()["error"]["message"] == (
        "Phase seeding of step activate is Idle: an entry needs it Running."
    )


async def test_the_coi_label_is_checked_before_a_step_and_a_mismatch_blocks_it(
    plant: Plant, browser: Any
) -> None:
    made = await batch_of(plant)
    await batches.command_batch(plant.supervisor, made.id, "start")
    operator, qa = await browser("operator"), await browser("approver")
    start = phase_url(plant, made.id, "medium_preparation", "/commands/start")
    unchecked = await operator.send("POST", start, json={})
    assert unchecked.status_code == 409
    assert "scan or type the COI label" in unchecked.json()["error"]["message"]
    scan = api(plant, made.id, "/identity-checks")
    wrong = await operator.send("POST", scan, json={"step": "activate", "scanned": "COI-0002"})
    assert wrong.status_code == 201 and wrong.json()["matched"] is False
    raised = await exceptions_of(operator, plant, made.id)
    assert [(e["kind"], e["severity"]) for e in raised] == [("identity_mismatch", "critical")]
    assert "COI-0002" in raised[0]["message"] and "COI-0001" in raised[0]["message"]
    right = await operator.send("POST", scan, json={"step": "activate", "scanned": "COI-0001"})
    assert right.json()["matched"] is True
    blocked = await operator.send("POST", start, json={})
    assert blocked.status_code == 409
    assert "QA has not dispositioned" in blocked.json()["error"]["message"]
    accepted = await qa.send(
        "POST",
        api(plant, made.id, f"/exceptions/{raised[0]['id']}/accept"),
        json={"comment": "label of the neighbouring bag scanned; bag confirmed by two people"},
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["disposition"] == "accepted"
    assert (await operator.send("POST", start, json={})).status_code == 200
    found = await record.read(plant.viewer, made.id)
    assert [(c.scanned, c.matched) for c in found.identity_checks] == [
        ("COI-0002", False),
        ("COI-0001", True),
    ]


@pytest.mark.parametrize(
    ("field", "value", "kind", "severity"),
    [
        ("pre_activation_viability", 75, "outside_limits", "major"),
        ("seeding_density", 1.5, "outside_normal", "minor"),
        ("seeding_density", 2.5, "outside_par", "critical"),
    ],
)
async def test_an_entry_out_of_limits_or_ranges_raises_its_exception(
    plant: Plant, browser: Any, field: str, value: float, kind: str, severity: str
) -> None:
    made = await batch_of(plant)
    await underway(plant, made.id, "seeding")
    operator = await browser("operator")
    sent = await operator.send(
        "POST", api(plant, made.id, "/entries"), json=entry("k", field, value)
    )
    assert sent.status_code == 201
    raised = [
        e for e in await exceptions_of(operator, plant, made.id) if e["kind"] != "out_of_order"
    ]
    assert [(e["kind"], e["severity"], e["field"], e["entry_id"]) for e in raised] == [
        (kind, severity, field, sent.json()["id"])
    ]
    assert raised[0]["message"] == sent.json()["message"]


async def test_outside_par_keeps_the_phase_open_until_qa_dispositions_it(
    plant: Plant, browser: Any
) -> None:
    made = await batch_of(plant)
    await underway(plant, made.id, "seeding")
    operator, qa = await browser("operator"), await browser("approver")
    await operator.send(
        "POST", api(plant, made.id, "/entries"), json=entry("k", "seeding_density", 2.5)
    )
    for key, field, value in (
        ("a", "pre_activation_viability", 92),
        ("b", "viable_cells_seeded_actual", 200),
        ("c", "culture_volume", 200),
    ):
        await operator.send("POST", api(plant, made.id, "/entries"), json=entry(key, field, value))
    complete = phase_url(plant, made.id, "seeding", "/commands/complete")
    refused = await operator.send("POST", complete, json={})
    assert refused.status_code == 409
    assert "cannot be completed before QA dispositions" in refused.json()["error"]["message"]
    par = next(e for e in await exceptions_of(qa, plant, made.id) if e["kind"] == "outside_par")
    await qa.send(
        "POST", api(plant, made.id, f"/exceptions/{par['id']}/accept"), json={"comment": "ok"}
    )
    done = await operator.send("POST", complete, json={})
    assert done.status_code == 200 and done.json()["status"] == "complete"


async def test_required_fields_left_empty_need_a_reason_and_are_exceptions(
    plant: Plant, browser: Any
) -> None:
    made = await batch_of(plant)
    await underway(plant, made.id, "medium_preparation")
    operator = await browser("operator")
    complete = phase_url(plant, made.id, "medium_preparation", "/commands/complete")
    refused = await operator.send("POST", complete, json={})
    assert refused.status_code == 409
    assert "IL-2" in refused.json()["error"]["message"] or "il2" in refused.text.lower()
    assert refused.json()["error"]["details"]["missing"] == ["il2_volume_added"]
    done = await operator.send("POST", complete, json={"reason": "volume on the paper form"})
    assert done.status_code == 200
    raised = await exceptions_of(operator, plant, made.id)
    assert [(e["kind"], e["field"]) for e in raised] == [("required_missing", "il2_volume_added")]


async def test_corrections_late_and_manual_entries_are_exceptions(
    plant: Plant, browser: Any
) -> None:
    made = await batch_of(plant)
    await underway(plant, made.id, "incubation")
    operator = await browser("operator")
    first = await operator.send(
        "POST",
        api(plant, made.id, "/entries"),
        json=entry("t1", "incubator_temperature", 37.0, phase="incubation"),
    )
    await operator.send(
        "POST",
        api(plant, made.id, "/entries"),
        json=entry(
            "t2",
            "incubator_temperature",
            37.1,
            phase="incubation",
            supersedes=first.json()["id"],
            reason="read the display again",
        ),
    )
    offline = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    await operator.send(
        "POST",
        api(plant, made.id, "/entries"),
        json=entry(
            "t3", "activation_clusters_observed", True, phase="incubation", device_time=offline
        ),
    )
    await operator.send(
        "POST",
        api(plant, made.id, "/entries"),
        json=entry("t4", "incubator_co2", 5.0, phase="incubation", source="equipment"),
    )
    kinds = [
        (e["kind"], e["field"])
        for e in await exceptions_of(operator, plant, made.id)
        if e["kind"] != "out_of_order"
    ]
    assert sorted(kinds) == [
        ("correction", "incubator_temperature"),
        ("late_entry", "activation_clusters_observed"),
        ("manual_entry", "incubator_temperature"),
        ("manual_entry", "incubator_temperature"),
    ]


async def test_the_tenants_table_sets_the_severity(plant: Plant, browser: Any) -> None:
    await set_exception_rules(plant.ctx, ExceptionRules({"outside_normal": "major"}, 30))
    made = await batch_of(plant)
    await underway(plant, made.id, "seeding")
    operator = await browser("operator")
    await operator.send(
        "POST", api(plant, made.id, "/entries"), json=entry("k", "seeding_density", 1.5)
    )
    raised = [
        e for e in await exceptions_of(operator, plant, made.id) if e["kind"] == "outside_normal"
    ]
    assert raised[0]["severity"] == "major"


async def _seeding_complete(plant: Plant, browser: Any) -> Any:
    made = await batch_of(plant)
    await underway(plant, made.id, "seeding")
    operator = await browser("operator")
    for key, field, value in (
        ("a", "pre_activation_viability", 92),
        ("b", "viable_cells_seeded_actual", 200),
        ("c", "culture_volume", 200),
    ):
        await operator.send("POST", api(plant, made.id, "/entries"), json=entry(key, field, value))
    done = await operator.send(
        "POST", phase_url(plant, made.id, "seeding", "/commands/complete"), json={}
    )
    assert done.status_code == 200, done.text
    return made


async def test_verification_is_by_a_second_person_with_a_signature(
    plant: Plant, browser: Any
) -> None:
    made = await _seeding_complete(plant, browser)
    operator, supervisor = await browser("operator"), await browser("admin")
    verify = phase_url(plant, made.id, "seeding", "/verification")
    own = await operator.send("POST", verify, json=SIGN)
    assert own.status_code == 403
    assert "Separation of duties" in own.json()["error"]["message"]
    early = await supervisor.send(
        "POST", phase_url(plant, made.id, "incubation", "/verification"), json=SIGN
    )
    assert early.status_code == 409 and "is Idle" in early.json()["error"]["message"]
    wrong = await supervisor.send("POST", verify, json={**SIGN, "password": "wrong"})
    assert wrong.status_code == 401
    signed = await supervisor.send("POST", verify, json=SIGN)
    assert signed.status_code == 201, signed.text
    assert (signed.json()["kind"], signed.json()["meaning"]) == ("verified", "verified")
    again = await supervisor.send("POST", verify, json=SIGN)
    assert again.status_code == 409 and "verified already" in again.json()["error"]["message"]
    found = await record.read(plant.viewer, made.id)
    seeding = next(p for p in found.phases if p.planned.phase == "seeding")
    assert [v.kind for v in seeding.verifications] == ["verified"]
    assert not seeding.needs_second_person
    assert [s.meaning for s in found.signatures] == ["verified"]


async def test_two_verifiers_at_once_one_signs(plant: Plant, browser: Any) -> None:
    made = await _seeding_complete(plant, browser)
    first, second = await browser("admin"), await browser("admin")
    verify = phase_url(plant, made.id, "seeding", "/verification")
    responses = await asyncio.gather(
        first.send("POST", verify, json=SIGN), second.send("POST", verify, json=SIGN)
    )
    assert sorted(r.status_code for r in responses) == [201, 409]
    found = await record.read(plant.viewer, made.id)
    assert len(found.verifications) == 1 and len(found.signatures) == 1


async def test_completing_a_batch_raises_verification_missing(plant: Plant) -> None:
    made = await batch_of(plant)
    await batches.command_batch(plant.supervisor, made.id, "start")
    with pytest.raises(Exception, match="cannot complete"):
        await batches.command_batch(plant.supervisor, made.id, "complete")
    await phases_done(plant, made.id)
    await batches.command_batch(plant.supervisor, made.id, "complete")
    found = await record.read(plant.viewer, made.id)
    missing = [e for e in found.exceptions if e.kind == "verification_missing"]
    assert sorted(e.phase or "" for e in missing) == ["incubation", "medium_preparation", "seeding"]
    assert found.batch.ended_at is not None and found.batch.started_at is not None


async def _complete_with_exceptions(plant: Plant) -> Any:
    made = await batch_of(plant)
    await batches.command_batch(plant.supervisor, made.id, "start")
    await phases_done(plant, made.id)
    await batches.command_batch(plant.supervisor, made.id, "complete")
    return made


async def test_review_by_exception_and_release(
    plant: Plant, browser: Any, owner: asyncpg.Connection
) -> None:
    made = await _complete_with_exceptions(plant)
    qa, supervisor = await browser("approver"), await browser("admin")
    release = api(plant, made.id, "/disposition")
    decide = {**SIGN, "decision": "release"}
    refused = await qa.send("POST", release, json=decide)
    assert refused.status_code == 409
    assert "without a disposition" in refused.json()["error"]["message"]
    raised = await exceptions_of(qa, plant, made.id)
    to_deviation = [e["id"] for e in raised if e["kind"] == "verification_missing"]
    others = [e for e in raised if e["kind"] != "verification_missing"]
    opened = await supervisor.send(
        "POST",
        api(plant, made.id, "/deviations"),
        json={
            "exception_ids": to_deviation,
            "classification": "major",
            "description": "No second-person verification of three CPP phases.",
        },
    )
    assert opened.status_code == 201, opened.text
    deviation = opened.json()
    assert deviation["number"].startswith("DEV-") and deviation["status"] == "open"
    for e in others:
        ok = await qa.send(
            "POST", api(plant, made.id, f"/exceptions/{e['id']}/accept"), json={"comment": "ok"}
        )
        assert ok.status_code == 200
    twice = await qa.send(
        "POST", api(plant, made.id, f"/exceptions/{others[0]['id']}/accept"), json={"comment": "x"}
    )
    assert twice.status_code == 409
    still = await qa.send("POST", release, json=decide)
    assert still.status_code == 409 and deviation["number"] in still.json()["error"]["message"]
    close = api(plant, made.id, f"/deviations/{deviation['id']}/close")
    closed = await qa.send(
        "POST",
        close,
        json={
            **SIGN,
            "impact": "None: values in range, recorded by trained staff.",
            "root_cause": "Second operator not rostered.",
            "capa_reference": "CAPA-2026-014",
        },
    )
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed" and closed.json()["close_signature_id"]
    released = await qa.send("POST", release, json=decide)
    assert released.status_code == 200, released.text
    assert released.json()["disposition"] == "released"
    again = await qa.send("POST", release, json=decide)
    assert again.status_code == 409
    actions = await owner.fetch(
        "SELECT action FROM audit_events WHERE tenant_id = $1 AND entity_id = $2 ORDER BY seq",
        plant.ctx.tenant_id,
        str(made.id),
    )
    names = [r["action"] for r in actions]
    for action in (
        "batch.exception_raised",
        "batch.exception_accepted",
        "batch.deviation_opened",
        "batch.deviation_closed",
        "batch.released",
        "signature.applied",
    ):
        assert action in names, action
    found = await record.read(plant.viewer, made.id)
    assert {s.meaning for s in found.signatures} == {"approved", "released"}
    assert all(e.disposition for e in found.exceptions)
    escalated = [e for e in found.exceptions if e.disposition == "escalated"]
    assert {str(e.deviation_id) for e in escalated} == {deviation["id"]}


async def test_release_is_refused_to_someone_who_performed_a_step(
    plant: Plant, browser: Any, world: World
) -> None:
    operator_membership = await tenancy.membership_of(plant.ctx, world["operator"].user_id)
    assert operator_membership is not None
    await tenancy.set_roles(
        plant.ctx, operator_membership, ["production_operator", "qa_approver"], "cover"
    )
    made = await _complete_with_exceptions(plant)
    qa = await browser("approver")
    for e in await exceptions_of(qa, plant, made.id):
        await qa.send(
            "POST", api(plant, made.id, f"/exceptions/{e['id']}/accept"), json={"comment": "ok"}
        )
    performer = await browser("operator")
    refused = await performer.send(
        "POST", api(plant, made.id, "/disposition"), json={**SIGN, "decision": "release"}
    )
    assert refused.status_code == 403
    assert "performed or verified a step" in refused.json()["error"]["message"]
    rejected = await qa.send(
        "POST", api(plant, made.id, "/disposition"), json={**SIGN, "decision": "reject"}
    )
    assert rejected.status_code == 200 and rejected.json()["disposition"] == "rejected"


async def test_two_releases_at_once_one_signs(plant: Plant, browser: Any) -> None:
    made = await _complete_with_exceptions(plant)
    qa = await browser("approver")
    for e in await exceptions_of(qa, plant, made.id):
        await qa.send(
            "POST", api(plant, made.id, f"/exceptions/{e['id']}/accept"), json={"comment": "ok"}
        )
    first, second = await browser("approver"), await browser("approver")
    body = {**SIGN, "decision": "release"}
    responses = await asyncio.gather(
        first.send("POST", api(plant, made.id, "/disposition"), json=body),
        second.send("POST", api(plant, made.id, "/disposition"), json=body),
    )
    assert sorted(r.status_code for r in responses) == [200, 409]
    found = await record.read(plant.viewer, made.id)
    assert [s.meaning for s in found.signatures] == ["released"]


async def test_custody_is_a_chain_of_holders(plant: Plant, browser: Any) -> None:
    made = await batch_of(plant)
    operator, supervisor = await browser("operator"), await browser("admin")
    assert (
        await operator.send("POST", api(plant, made.id, "/custody"), json={"location": "Receipt"})
    ).status_code == 204
    await supervisor.send("POST", api(plant, made.id, "/custody"), json={"location": "Suite 1 BSC"})
    bad = await supervisor.send("POST", api(plant, made.id, "/custody"), json={"location": " "})
    assert bad.status_code == 422
    found = await record.read(plant.viewer, made.id)
    assert [(found.name(c.holder_id), c.location) for c in found.custody] == [
        ("Operator Person", "Receipt"),
        (found.name(plant.supervisor.user_id), "Suite 1 BSC"),
    ]
    assert found.custody_until(0) == found.custody[1].received_at
    assert found.custody_until(1) is None


async def test_bad_input_to_the_new_commands_changes_nothing(plant: Plant, browser: Any) -> None:
    made = await batch_of(plant)
    await underway(plant, made.id)
    operator, qa = await browser("operator"), await browser("approver")
    cases = [
        (operator, phase_url(plant, made.id, "nope", "/commands/start"), {}, 422),
        (operator, phase_url(plant, made.id, "seeding", "/commands/reset"), {}, 422),
        (operator, api(plant, made.id, "/identity-checks"), {"step": "x", "scanned": "A"}, 422),
        (operator, api(plant, made.id, "/identity-checks"), {"step": "activate"}, 422),
        (
            qa,
            api(plant, made.id, "/deviations"),
            {"exception_ids": [], "classification": "minor", "description": "x"},
            422,
        ),
        (
            qa,
            api(plant, made.id, "/deviations"),
            {"exception_ids": [str(made.id)], "classification": "minor", "description": "x"},
            422,
        ),
        (qa, api(plant, made.id, f"/exceptions/{made.id}/accept"), {"comment": "x"}, 404),
        (qa, api(plant, made.id, "/disposition"), {**SIGN, "decision": "burn"}, 422),
    ]
    for client, where, body, status in cases:
        sent = await client.send("POST", where, json=body)
        assert sent.status_code == status, (where, body, sent.text)
        assert sent.json()["error"]["message"]
    found = await record.read(plant.viewer, made.id)
    assert found.exceptions == [] and found.deviations == []


async def test_another_tenants_batch_is_not_found_for_every_new_command(
    plant: Plant, world: World
) -> None:
    from opencdmo.errors import NotFound
    from tests.conftest import member_as

    made = await batch_of(plant)
    elsewhere = await member_as(world.alpha, world["operator"])
    for call in (
        execution.command_phase(elsewhere, made.id, "activate", "seeding", "start"),
        execution.check_identity(elsewhere, made.id, "activate", "COI-0001"),
        execution.take_custody(elsewhere, made.id, "Suite"),
        record.read(elsewhere, made.id),
    ):
        with pytest.raises(NotFound):
            await call


async def test_a_release_reads_as_a_sentence_naming_the_batch_once(
    plant: Plant, browser: Any
) -> None:
    from opencdmo.audit import queries as audit_queries
    from opencdmo.audit import sentences
    from opencdmo.audit.queries import AuditFilter
    from opencdmo.db.tx import read_view

    made = await _complete_with_exceptions(plant)
    qa = await browser("approver")
    for e in await exceptions_of(qa, plant, made.id):
        await qa.send(
            "POST", api(plant, made.id, f"/exceptions/{e['id']}/accept"), json={"comment": "ok"}
        )
    await qa.send("POST", api(plant, made.id, "/disposition"), json={**SIGN, "decision": "release"})
    async with read_view(plant.ctx):
        rows, _ = await audit_queries.page(plant.ctx, AuditFilter(), limit=50, before=None)
        said = [s.text for s in await sentences.describe(plant.ctx, rows)]
    number = made.number
    assert f"Approver Person signed batch {number}, meaning: released" in said
    assert f"Approver Person released batch {number}" in said


async def test_a_complete_batch_waits_in_qas_queue_until_it_is_released(
    plant: Plant, browser: Any
) -> None:
    from opencdmo.work import registry

    made = await _complete_with_exceptions(plant)

    async def waiting() -> list[str]:
        queues = {q.key: q for q in await registry.queues_for(plant.approver)}
        return [i.link for i in queues["batches_awaiting_release"].items]

    assert await waiting() == [f"/t/{plant.ctx.slug}/batches/{made.id}/review"]
    assert "batches_awaiting_release" not in {
        q.key for q in await registry.queues_for(plant.operator)
    }
    qa = await browser("approver")
    for e in await exceptions_of(qa, plant, made.id):
        await qa.send(
            "POST", api(plant, made.id, f"/exceptions/{e['id']}/accept"), json={"comment": "ok"}
        )
    await qa.send("POST", api(plant, made.id, "/disposition"), json={**SIGN, "decision": "release"})
    assert await waiting() == []
