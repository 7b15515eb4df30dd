"""The operator's run page of a batch: every kind of field with its touch input, the values
recorded so far (who, when, the check) with their correction, the phase to work on, who sees
inputs (a member who may give the batch commands, while it runs), and tenant isolation."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import pytest

from opencdmo.batches import execution, record, review
from opencdmo.batches import service as batches
from opencdmo.recipes import service as recipes
from opencdmo.settings import Settings
from tests.conftest import PASSWORD, World
from tests.integration.batch_world import (
    Plant,
    batch_of,
    content,
    effective,
    end_step,
    every_phase_running,
    new_plant,
)
from tests.integration.conftest import installed


@pytest.fixture
async def plant(synced: Any, world: World, owner: asyncpg.Connection, settings: Settings) -> Plant:
    return await new_plant(world, owner, settings)


async def every_kind(plant: Plant, owner: asyncpg.Connection, settings: Settings) -> UUID:
    """An effective CAR-T recipe whose steps have a field of every kind: activation (numbers,
    date-times, yes/no), filling cryobags (whole numbers, text) and in-process sampling (a
    parameter with choices)."""
    body = content(plant.uo, plant.method)
    extra = [
        ("fill", "cryobag-fill", "1.0.0"),
        ("sample", "cell-therapy-in-process-sampling", "1.0.0"),
    ]
    for key, slug, version in extra:
        item = await installed(owner, plant.ctx, slug, version)
        body["unit_procedures"][0]["operations"].append(
            {"key": key, "library_item_id": item, "parameters": {}}
        )
    recipe = await recipes.create(plant.author, "CAR-T every field")
    await recipes.save(plant.author, recipe, body, 1)
    await effective(settings, plant, recipe)
    return recipe


async def running(plant: Plant, **kw: Any) -> UUID:
    """A running batch with every phase started (so every field has its input)."""
    made = await batch_of(plant, **kw)
    await every_phase_running(plant, made.id)
    return made.id


def run_url(plant: Plant, batch: UUID, slug: str | None = None) -> str:
    return f"/t/{slug or plant.ctx.slug}/batches/{batch}/run"


def field_html(page: str, step: str, phase: str, key: str) -> str:
    """The markup of one field of the page (from its element to its result line)."""
    dom = f"f-{step}--{phase}--{key}"
    start = page.index(f'id="{dom}"')
    return page[start : page.index(f'data-result-for="{dom}"', start)]


def phase_html(page: str, step: str, phase: str) -> str:
    start = page.index(f'id="p-{step}--{phase}"')
    end = page.find('<section class="run-phase', start + 1)
    return page[start : end if end > 0 else len(page)]


async def test_every_kind_of_field_has_its_touch_input(
    plant: Plant, browser: Any, owner: asyncpg.Connection, settings: Settings
) -> None:
    batch = await running(plant, recipe=await every_kind(plant, owner, settings))
    number = (await batches.get_batch_row(plant.ctx, batch)).number
    page = await (await browser("operator")).get(run_url(plant, batch))
    assert page.status_code == 200, page.text
    text = page.text
    # The header: the batch, its state, its recipe and the patient's COI label.
    assert f"Batch {number}" in text and ">Running</span>" in text
    assert "CAR-T every field, revision 2" in text and "COI-0001" in text
    assert '<script src="/static/js/run-page.js" type="module"></script>' in text
    assert f'data-endpoint="/api/v1/t/{plant.ctx.slug}/batches/{batch}/entries"' in text
    # A number: decimal keypad, its unit beside it, its limits shown.
    viability = field_html(text, "activate", "seeding", "pre_activation_viability")
    assert 'inputmode="decimal"' in viability and 'data-unit="%"' in viability
    assert '<span class="input-group-text">%</span>' in viability
    assert "Limits 80–100 %" in viability
    assert (
        '<label class="form-label" for="f-activate--seeding--pre_activation_viability-value">'
        'Viability before activation <span class="badge badge-tone badge-neutral required-mark">'
        "Required</span></label>"
    ) in viability
    assert viability.index("</label>") < viability.index("Limits 80–100 %")
    # A parameter: this batch's value (the formula's), its ranges, an input for the actual.
    density = field_html(text, "activate", "seeding", "seeding_density")
    assert "Set point 1.1 × 10⁶ cells/mL (formula)" in density
    ratio = field_html(text, "activate", "seeding", "bead_to_cell_ratio")
    assert "Set point 3 beads per cell (default)" in ratio
    assert "normal 0.8–1.2 × 10⁶ cells/mL · proven acceptable 0.5–2 × 10⁶ cells/mL" in density
    assert "Critical process parameter" in density and "Actual value" in density
    # A whole number, text, a date and time with its "Now", yes or no as two big buttons.
    bags = field_html(text, "fill", "fill", "bags_filled")
    assert 'inputmode="numeric"' in bags and "bags</span>" in bags
    other = field_html(text, "fill", "fill", "net_fill_weight_other_bags")
    assert 'type="text"' in other and 'maxlength="2000"' in other
    start = field_html(text, "activate", "incubation", "incubation_start")
    assert 'type="datetime-local"' in start and "data-now=" in start
    clusters = field_html(text, "activate", "incubation", "activation_clusters_observed")
    assert clusters.count('name="value"') == 2
    assert 'value="true"' in clusters and 'value="false"' in clusters
    assert "<legend" in clusters
    # Choices as a row of buttons (radios), each labelled.
    condition = field_html(text, "sample", "handover", "sample_condition")
    assert condition.count('type="radio"') == 3
    assert ">2-8 °C</label>" in condition and "<legend" in condition
    # The phase to work on: the running one (the first of those running).
    assert 'data-current="p-activate--medium_preparation"' in text
    assert 'aria-current="step"' in phase_html(text, "activate", "medium_preparation")
    assert 'aria-current="step"' not in phase_html(text, "activate", "seeding")
    # Every phase has the slot for its state and commands.
    assert text.count("data-phase-state") == text.count("data-phase ")


async def test_recorded_values_show_who_when_and_the_check(
    plant: Plant, browser: Any, world: World
) -> None:
    batch = await running(plant)
    for key, field, value in (
        ("k-1", "il2_volume_added", 3.0),
        ("k-2", "pre_activation_viability", 75),
    ):
        phase = "medium_preparation" if field == "il2_volume_added" else "seeding"
        await batches.record_entry(
            plant.operator, batch, "activate", phase, field, value, None, key
        )
    page = (await (await browser("operator")).get(run_url(plant, batch))).text
    volume = field_html(page, "activate", "medium_preparation", "il2_volume_added")
    assert "<strong>3 mL</strong>" in volume and "In limits" in volume
    assert f"Recorded by {world['operator'].full_name}" in volume
    assert "Correct" in volume and 'data-entry-form="correction"' in volume
    assert 'name="reason"' in volume and "Reason for the correction" in volume
    viability = field_html(page, "activate", "seeding", "pre_activation_viability")
    assert "<strong>75 %</strong>" in viability and "Outside the field&#39;s limits" in viability
    # The medium is prepared: the seeding is the phase to work on once it is complete.
    assert 'data-current="p-activate--medium_preparation"' in page
    await execution.command_phase(
        plant.operator, batch, "activate", "medium_preparation", "complete"
    )
    page = (await (await browser("operator")).get(run_url(plant, batch))).text
    assert 'data-current="p-activate--seeding"' in page


async def test_the_field_fragment_is_the_fields_markup(plant: Plant, browser: Any) -> None:
    batch = await running(plant)
    client = await browser("operator")
    await batches.record_entry(
        plant.supervisor, batch, "activate", "seeding", "pre_activation_viability", 91, "%", "k"
    )
    fragment = await client.get(
        run_url(plant, batch) + "/field",
        params={"step": "activate", "phase": "seeding", "field": "pre_activation_viability"},
    )
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith('<div class="run-field is-recorded"')
    assert "<strong>91 %</strong>" in fragment.text and "Recorded by Admin Person" in fragment.text
    assert "<html" not in fragment.text
    missing = await client.get(
        run_url(plant, batch) + "/field",
        params={"step": "activate", "phase": "seeding", "field": "colour"},
    )
    assert missing.status_code == 404


async def test_a_viewer_reads_the_record_without_inputs(plant: Plant, browser: Any) -> None:
    batch = await running(plant)
    await batches.record_entry(
        plant.operator, batch, "activate", "seeding", "pre_activation_viability", 92, None, "k"
    )
    page = await (await browser("viewer")).get(run_url(plant, batch))
    assert page.status_code == 200
    assert "your roles do not allow recording entries" in page.text
    assert "<form" not in page.text.split('id="run-sheet"')[1]
    assert 'data-can-record="false"' in page.text and "data-queue-banner" not in page.text
    assert "<strong>92 %</strong>" in page.text and "Not recorded yet." in page.text


async def test_a_batch_that_is_not_running_shows_no_inputs(plant: Plant, browser: Any) -> None:
    made = await batch_of(plant)
    page = await (await browser("operator")).get(run_url(plant, made.id))
    assert page.status_code == 200
    assert "This batch is Idle: entries need it Running." in page.text
    assert 'data-entry-form="entry"' not in page.text


async def test_another_tenants_batch_is_404(plant: Plant, browser: Any) -> None:
    batch = await running(plant)
    client = await browser("operator")  # an operator in alpha too
    assert (await client.get(run_url(plant, batch, slug="alpha"))).status_code == 404
    fragment = await client.get(
        run_url(plant, batch, slug="alpha") + "/field",
        params={"step": "activate", "phase": "seeding", "field": "pre_activation_viability"},
    )
    assert fragment.status_code == 404
    step = await client.get(run_url(plant, batch, slug="alpha") + "/step?step=activate")
    assert step.status_code == 404
    outsider = await browser("outsider")
    assert (await outsider.get(run_url(plant, batch))).status_code == 404


async def test_the_batch_page_leads_to_the_run_page(plant: Plant, browser: Any) -> None:
    batch = await running(plant)
    page = await (await browser("operator")).get(f"/t/{plant.ctx.slug}/batches/{batch}")
    assert f'href="{run_url(plant, batch)}"' in page.text


async def test_phase_commands_and_signatures_from_the_run_page(plant: Plant, browser: Any) -> None:
    made = await batch_of(plant)
    await batches.command_batch(plant.supervisor, made.id, "start")
    operator, second = await browser("operator"), await browser("admin")
    run = run_url(plant, made.id)
    form = {"_csrf_token": operator.csrf}
    early = await operator.send(
        "POST", f"{run}/phases/activate/medium_preparation/start", data=form
    )
    assert early.status_code == 409 and "scan or type the COI label" in early.text
    wrong = await operator.send(
        "POST", f"{run}/identity", data={**form, "step": "activate", "scanned": "COI-9"}
    )
    assert wrong.status_code == 409 and "not this batch&#39;s COI label" in wrong.text
    page = (await operator.get(run)).text
    assert "QA has not dispositioned" not in page  # shown when they try to start
    blocked = await operator.send(
        "POST", f"{run}/phases/activate/medium_preparation/start", data=form
    )
    assert blocked.status_code == 409 and "QA has not dispositioned" in blocked.text
    found = (await record.read(plant.viewer, made.id)).exceptions
    await review.accept_exception(plant.approver, made.id, found[0].id, "neighbouring bag")
    right = await operator.send(
        "POST", f"{run}/identity", data={**form, "step": "activate", "scanned": "COI-0001"}
    )
    assert right.status_code == 303
    started = await operator.send(
        "POST", f"{run}/phases/activate/medium_preparation/start", data=form
    )
    assert started.status_code == 303
    assert started.headers["location"].endswith("/run#p-activate--medium_preparation")
    page = (await operator.get(run)).text
    assert 'data-status="running"' in phase_html(page, "activate", "medium_preparation")
    done = await operator.send(
        "POST", f"{run}/phases/activate/medium_preparation/complete", data=form
    )
    assert done.status_code == 409 and "IL-2 volume added" in done.text
    done = await operator.send(
        "POST",
        f"{run}/phases/activate/medium_preparation/complete",
        data={**form, "reason": "volume on the paper form"},
    )
    assert done.status_code == 303
    # The performer is offered no signature; the second person is.
    assert "Verified…" not in phase_html(
        (await operator.get(run)).text, "activate", "medium_preparation"
    )
    assert "Verified…" in phase_html((await second.get(run)).text, "activate", "medium_preparation")
    bad = await second.send(
        "POST",
        f"{run}/phases/activate/medium_preparation/verify",
        data={"reason": "seen", "password": "wrong", "_csrf_token": second.csrf},
    )
    assert bad.status_code == 401
    signed = await second.send(
        "POST",
        f"{run}/phases/activate/medium_preparation/verify",
        data={"reason": "seen", "password": PASSWORD, "_csrf_token": second.csrf},
    )
    assert signed.status_code == 303
    assert "Verified by" in phase_html(
        (await second.get(run)).text, "activate", "medium_preparation"
    )


async def test_custody_is_taken_from_the_run_page(plant: Plant, browser: Any) -> None:
    made = await batch_of(plant)
    operator = await browser("operator")
    run = run_url(plant, made.id)
    assert "No one has taken custody" in (await operator.get(run)).text
    bad = await operator.send(
        "POST", f"{run}/custody", data={"location": " ", "_csrf_token": operator.csrf}
    )
    assert bad.status_code == 422 and "Say where the material is." in bad.text
    taken = await operator.send(
        "POST", f"{run}/custody", data={"location": "Suite 1 BSC", "_csrf_token": operator.csrf}
    )
    assert taken.status_code == 303
    page = (await operator.get(run)).text
    assert "Held by <strong>Operator Person</strong> at Suite 1 BSC" in page


async def test_each_phase_of_several_steps_shows_its_own_state_and_label_check(
    plant: Plant, browser: Any, owner: asyncpg.Connection, settings: Settings
) -> None:
    """The page and the record find each phase, step and label check by its keys: the
    signature and state of a phase stay with it, and the label check is asked only at the
    steps whose label has not been checked yet."""
    made = await batch_of(plant, recipe=await every_kind(plant, owner, settings))
    await batches.command_batch(plant.supervisor, made.id, "start")
    await execution.check_identity(plant.operator, made.id, "activate", "COI-0001")
    await execution.check_identity(plant.operator, made.id, "sample", "COI-9")  # a mismatch
    for command in ("start", "complete"):
        await execution.command_phase(
            plant.operator, made.id, "activate", "medium_preparation", command, "on paper"
        )
    await execution.verify_phase(
        settings, plant.supervisor, made.id, "activate", "medium_preparation", PASSWORD, "seen"
    )
    found = await record.read(plant.viewer, made.id)
    signed = found.phase("activate", "medium_preparation")
    assert signed is found.phases[0] and signed.status == "complete"
    assert [(v.step, v.phase) for v in signed.verifications] == [("activate", "medium_preparation")]
    assert all(not p.verifications for p in found.phases[1:])
    assert found.phase("activate", "no-such-phase") is None and found.step("no-such") is None
    fill = found.step("fill")
    assert fill is not None and [p.planned.phase for p in fill.phases] == [
        "fill",
        "seal_label_overwrap",
    ]
    checked, mismatched = found.latest_check("activate"), found.latest_check("sample")
    assert checked is not None and checked.matched
    assert mismatched is not None and not mismatched.matched
    assert found.latest_check("fill") is None

    page = (await (await browser("operator")).get(run_url(plant, made.id))).text
    first = phase_html(page, "activate", "medium_preparation")
    assert 'data-status="complete"' in first and "Verified by" in first
    later = phase_html(page, "activate", "seeding")
    assert 'data-status="idle"' in later and "Verified by" not in later
    assert "identity-form" not in later  # the step's label is checked
    for step, phase in (("fill", "fill"), ("fill", "seal_label_overwrap"), ("sample", "sampling")):
        assert "identity-form" in phase_html(page, step, phase), (step, phase)


def step_html(page: str, step: str) -> str:
    """The markup of one step of the page (to the next step, or the end of the page)."""
    start = page.index(f'id="s-{step}"')
    end = page.find('class="card mb-3 run-step', start)
    return page[start : end if end > 0 else len(page)]


async def test_a_step_whose_phases_have_ended_is_folded_and_opens_whole(
    plant: Plant, browser: Any, owner: asyncpg.Connection, settings: Settings
) -> None:
    """A long batch's page stays light: a step whose phases have all ended, with no second
    person's signature owed, shows as its summary (what was recorded and raised, each
    phase's state); Open loads it whole, with its corrections, in its place."""
    made = await batch_of(plant, recipe=await every_kind(plant, owner, settings))
    await every_phase_running(plant, made.id)
    owed = await end_step(plant, settings, made.id, sign=False)
    assert owed, "the content asks for a second person in the activation"
    operator = await browser("operator")
    run = run_url(plant, made.id)
    page = (await operator.get(run)).text
    assert 'data-folded-step="activate"' not in page  # a signature is still owed there

    for phase in owed:
        await execution.verify_phase(
            settings, plant.supervisor, made.id, "activate", phase, PASSWORD, "seen"
        )
    activate = (await record.read(plant.viewer, made.id)).step("activate")
    assert activate is not None
    page = (await operator.get(run)).text
    folded = step_html(page, "activate")
    assert 'data-folded-step="activate"' in folded
    assert "data-phase " not in folded and "data-field " not in folded
    content = [v.planned.content for v in activate.phases]
    fields = sum(len(c.parameters) + len(c.data_capture) for c in content)
    assert f"1 of {fields} fields recorded" in folded
    assert "exception" in folded  # the required fields left empty at completion
    for view in activate.phases:  # a link to a phase still lands on its step
        assert f'id="p-activate--{view.planned.phase}"' in folded
    assert f'hx-get="{run}/step?step=activate"' in folded
    assert f'href="{run}?open=activate#s-activate"' in folded
    assert 'data-folded-step="fill"' not in page and 'id="f-fill--fill--' in page

    # Opened: the step whole, the recorded value with its correction, as the page has it.
    whole = await operator.get(f"{run}/step?step=activate", headers={"HX-Request": "true"})
    assert whole.status_code == 200, whole.text
    assert "data-folded-step" not in whole.text and 'id="s-activate"' in whole.text
    volume = field_html(whole.text, "activate", "medium_preparation", "il2_volume_added")
    assert "<strong>3 mL</strong>" in volume and 'data-entry-form="correction"' in volume
    assert "<html" not in whole.text  # a fragment, not a page
    # Without scripts, the page with the step open.
    opened = (await operator.get(f"{run}?open=activate")).text
    assert "data-folded-step" not in step_html(opened, "activate")
    assert 'data-entry-form="correction"' in step_html(opened, "activate")
    assert (await operator.get(f"{run}/step?step=no-such-step")).status_code == 404
