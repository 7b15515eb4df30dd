"""The batch record of a 200-step batch with 5,000 entries against a 20-step one with 500:
the record page, the review page and the run page (its ended steps folded, and with one of
them open) through a real server, and the record's BatchML export as the job worker builds
it. Cost should grow at most linearly: 10x the steps and entries within 12x the time.

Both batches are made through the services, as the demo CDMO's people would make them
(about a minute; nothing is inserted behind the services' backs, so the audit trail of the
bench database verifies): a master recipe whose steps alternate the demo library's
t-cell-activation and rocking-motion-bioreactor-expansion (3 phases each, 16 and 26
fields), ten steps to a unit procedure, signed and made effective; a batch of it created
and started; at each step the COI label checked, then each phase started, every field
recorded, as many corrected as it takes to make 25 entries a step on average (each
correction raises its exception), one value outside its normal range every tenth step (an
exception too), the phase completed and signed by a second person. The batches stay
Running, so the run page offers a correction on every field.

The audit events are sealed before the server starts (its sealer would otherwise compete
with the requests). Every request is the supervisor's, with an API token; the two sizes
take turns, and each time is the median of ``BENCH_ROUNDS`` requests (default 7) after
two untimed ones. The BatchML export is built by the job worker, not in a request: it is
timed as the worker runs it (``exports.build``: read the record, write the XML, store it,
mark the export done), in this process, each round on a new export the supervisor asked
for, so that the queue's pick-up and the API's polling are not counted.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

from bench.api_list import _cli
from bench.harness import ROOT, drop_database, free_port, fresh_database, server_env, start_server
from opencdmo.audit import keys, sealer
from opencdmo.batches import execution, plan, record
from opencdmo.batches import service as batches
from opencdmo.batches.demo import FORMULA, SPONSOR
from opencdmo.cli import DEMO_PASSWORD
from opencdmo.db import engine as db
from opencdmo.db.urls import resolve_urls
from opencdmo.exports import service as exports
from opencdmo.hub import library
from opencdmo.hub.model import DataCaptureField, Parameter, Range
from opencdmo.identity import passwords
from opencdmo.identity import service as identity
from opencdmo.recipes import service as recipes
from opencdmo.scope import Actor, RequestMeta, TenantContext
from opencdmo.settings import Settings
from opencdmo.storage import blobs
from opencdmo.tenancy import service as tenancy

SLUG = "larkspur-cdmo"
SITE = "LCG-BOS"
SIZES = (20, 200)  # steps
ENTRIES_PER_STEP = 25
OPERATIONS = ("t-cell-activation", "rocking-motion-bioreactor-expansion")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
WARMUP = 2
TARGET = 12.0
PAGES = {
    "record page": "/record",
    "review page": "/review",
    "run page": "/run",  # every step ended and signed: each folded to its summary
    "run page, a step opened": "/run?open=step-005",  # and one of them whole
}
ENV = {
    "OPENCDMO_ARGON2_TIME_COST": "1",
    "OPENCDMO_ARGON2_MEMORY_KIB": "1024",
    "OPENCDMO_AUDIT_CHECKPOINT_SECONDS": "0",  # nothing else runs in the server meanwhile
}
META = RequestMeta(request_id="bench:batch-record")
Timed = tuple[float, int]  # a median time in ms, a size in bytes


@dataclass(frozen=True)
class Crew:
    engineer: TenantContext
    approvers: list[TenantContext]
    supervisor: TenantContext
    operator: TenantContext


@dataclass(frozen=True)
class Made:
    batch_id: UUID
    entries: int
    exceptions: int
    seconds: float  # to make it through the services


@dataclass
class Step:
    """What is still to be made in a step: its corrections, its value outside normal."""

    key: str
    corrections: int
    off_normal: bool
    made: int = 0

    def idempotency_key(self) -> str:
        self.made += 1
        return f"bench-{self.key}-{self.made}"


# --- the batches, through the services -------------------------------------------------------


async def _crew() -> Crew:
    tenant = await tenancy.tenant_by_slug(SLUG)
    assert tenant is not None

    async def person(email: str) -> TenantContext:
        user = await identity.find_user(email)
        assert user is not None, email
        actor = Actor(user.id, user.email, user.full_name)
        ctx = await tenancy.internal_context(tenant.id, actor, META)
        assert ctx is not None
        return ctx

    return Crew(
        await person("engineer@larkspur.example"),
        [await person("qa@larkspur.example"), await person("qa2@larkspur.example")],
        await person("supervisor@larkspur.example"),
        await person("operator@larkspur.example"),
    )


async def _demo_content(crew: Crew) -> dict[str, Any]:
    """The content of the demo's effective recipe (the only one before the bench's)."""
    (demo,) = [r for r in await recipes.list_recipes(crew.engineer) if r.effective_revision]
    return dict((await recipes.get(crew.engineer, demo.id)).content)


async def _recipe(settings: Settings, crew: Crew, demo: dict[str, Any], steps: int) -> UUID:
    """An effective master recipe of ``steps`` steps, ten to a unit procedure, made of the
    demo recipe's own operations (its specification and release specifications kept)."""
    slugs = {str(e.id): e.slug for e in await library.list_library(crew.engineer)}
    ops = {
        slugs.get(str(op["library_item_id"])): op
        for up in demo["unit_procedures"]
        for op in up["operations"]
    }
    chosen = [ops[slug] for slug in OPERATIONS]
    procedures = [
        {
            "key": f"up-{p}",
            "name": f"Unit procedure {p + 1}",
            "operations": [
                {**chosen[n % len(chosen)], "key": f"step-{n:03}"}
                for n in range(p * 10, min(steps, p * 10 + 10))
            ],
        }
        for p in range((steps + 9) // 10)
    ]
    content = {
        **demo,
        "unit_procedures": procedures,
        "formulas": [{"name": FORMULA, "overrides": {}}],
        "sampling_points": [],  # the demo's are after the demo's steps
    }
    recipe = await recipes.create(crew.engineer, f"Bench record, {steps} steps")
    await recipes.save(crew.engineer, recipe, content, 1)
    await recipes.submit(settings, crew.engineer, recipe, DEMO_PASSWORD, "ready")
    for approver in crew.approvers:
        if await recipes.approve(settings, approver, recipe, DEMO_PASSWORD, "reviewed"):
            break
    await recipes.make_effective(settings, crew.approvers[0], recipe, DEMO_PASSWORD, "bench")
    return recipe


def _middle(span: Range | None) -> float | None:
    bounds = [float(b) for b in (span.low, span.high) if b is not None] if span else []
    return round(sum(bounds) / len(bounds), 3) if bounds else None


def _value(part: DataCaptureField | Parameter, in_batch: Any) -> Any:
    """A plausible value for a field, from its own content."""
    if isinstance(part, Parameter):
        return in_batch if in_batch is not None else part.default
    if part.type == "boolean":
        return True
    if part.type == "choice":
        return (part.choices or ("",))[0]
    if part.type == "datetime":
        return "2026-05-04T08:00:00+00:00"
    if part.type in ("number", "integer", "duration"):
        number = _middle(part.limits) or 1.0
        return int(number) if part.type == "integer" else number
    return "As instructed"


def _off_normal(part: Parameter) -> float | None:
    """A value above the normal range and inside the proven acceptable range, if any."""
    normal, par = part.normal_range, part.proven_acceptable_range
    if normal is None or par is None or normal.high is None or par.high is None:
        return None
    return round((float(normal.high) + float(par.high)) / 2, 3) if par.high > normal.high else None


async def _phase(
    crew: Crew, batch_id: UUID, planned: plan.PlannedPhase, values: dict[str, Any], step: Step
) -> None:
    """Start the phase, record each of its fields (correcting while the step has
    corrections to make, one value outside its normal range if the step is to have it),
    complete it."""
    where = (batch_id, planned.step, planned.phase)
    await execution.command_phase(crew.operator, *where, "start")
    content = planned.content
    parts: list[DataCaptureField | Parameter] = [*content.parameters, *content.data_capture]
    for part in parts:
        value = _value(part, values.get(part.key))
        off = _off_normal(part) if isinstance(part, Parameter) else None
        if step.off_normal and off is not None:
            value, step.off_normal = off, False
        source = "equipment" if getattr(part, "equipment_signal", None) else "manual"
        first = await batches.record_entry(
            crew.operator, *where, part.key, value, part.unit, step.idempotency_key(), source=source
        )
        if step.corrections > 0:
            step.corrections -= 1
            await batches.record_entry(
                crew.operator,
                *where,
                part.key,
                value,
                part.unit,
                step.idempotency_key(),
                supersedes=first.entry.id,
                reason="re-read from the instrument",
                source=source,
            )
    await execution.command_phase(crew.operator, *where, "complete")


async def _batch(settings: Settings, crew: Crew, recipe: UUID, steps: int) -> Made:
    """A running batch of the recipe, every phase run, recorded and signed (see the module)."""
    began = time.perf_counter()
    chain = batches.ChainOfIdentity(f"D-{steps:04}", f"COI-{steps:04}", f"APH-{steps:04}")
    made = await batches.create_batch(
        crew.supervisor, recipe, FORMULA, SITE, datetime.now(UTC), SPONSOR, chain
    )
    await batches.command_batch(crew.supervisor, made.id, "start")
    found = await record.read(crew.supervisor, made.id)
    values = {  # each step's parameter values in the batch
        op["key"]: {key: v["value"] for key, v in (op.get("values") or {}).items()}
        for up in found.control_recipe.document["unit_procedures"]
        for op in up["operations"]
    }
    entries = 0
    for number, view in enumerate(s for up in found.procedures for s in up.steps):
        phases = [p.planned for p in view.phases]
        fields = sum(len(p.content.parameters) + len(p.content.data_capture) for p in phases)
        corrections = max(0, ENTRIES_PER_STEP * (number + 1) - entries - fields)
        step = Step(view.key, corrections, off_normal=number % 10 == 0)
        if phases[0].identity_check:
            await execution.check_identity(crew.operator, made.id, view.key, chain.coi_label or "")
        for phase in phases:
            await _phase(crew, made.id, phase, values[view.key], step)
            if phase.second_person:
                await execution.verify_phase(
                    settings,
                    crew.supervisor,
                    made.id,
                    phase.step,
                    phase.phase,
                    DEMO_PASSWORD,
                    "checked",
                )
        entries += step.made
    done = await record.read(crew.supervisor, made.id)
    return Made(made.id, len(done.entries), len(done.exceptions), time.perf_counter() - began)


async def _plant(settings: Settings, owner: str) -> tuple[dict[int, Made], dict[int, Timed]]:
    """The batches of both sizes, their audit events sealed; then their BatchML export
    timed as the job worker builds it."""
    keys.configure(settings)  # the data dir's audit key, which the server uses too
    passwords.configure(settings)
    blobs.configure(settings)
    engine = db.bind_engine(resolve_urls(settings, owner))
    await db.start_pool(engine, 4)
    try:
        crew = await _crew()
        demo = await _demo_content(crew)
        made = {}
        for steps in SIZES:
            made[steps] = await _batch(
                settings, crew, await _recipe(settings, crew, demo, steps), steps
            )
        while await sealer.seal_round(crew.supervisor.tenant_id):
            pass
        exported = await _exports(crew.supervisor, made)
        while await sealer.seal_round(crew.supervisor.tenant_id):
            pass
        return made, exported
    finally:
        await db.close_pool(engine)


async def _exports(ctx: TenantContext, made: dict[int, Made]) -> dict[int, Timed]:
    """Each batch's BatchML export built as the job worker builds it: the median of
    ``ROUNDS`` builds of new exports, after two untimed ones; the sizes take turns."""
    samples: dict[int, list[float]] = {steps: [] for steps in made}
    sizes: dict[int, int] = {}
    for n in range(WARMUP + ROUNDS):
        for steps, batch in made.items():
            subject = {"batch_id": str(batch.batch_id)}
            row = await exports.request(ctx, exports.BATCH_RECORD, subject)
            started = time.perf_counter()
            await exports.build(ctx, row.id)
            elapsed = time.perf_counter() - started
            done = await exports.get(ctx, row.id)
            if done.state != "done" or done.size_bytes is None:
                raise RuntimeError(f"the export was not built: {done.error}")
            sizes[steps] = done.size_bytes
            if n >= WARMUP:
                samples[steps].append(elapsed)
    return {steps: (statistics.median(samples[steps]) * 1000, sizes[steps]) for steps in made}


# --- the pages, through the server -----------------------------------------------------------


async def _timed(client: httpx.AsyncClient, urls: dict[int, str]) -> dict[int, Timed]:
    """Each page's median time in ms and its size; the pages take turns, so that both
    sizes are measured under the same conditions."""
    samples: dict[int, list[float]] = {steps: [] for steps in urls}
    sizes: dict[int, int] = {}
    for n in range(WARMUP + ROUNDS):
        for steps, url in urls.items():
            started = time.perf_counter()
            response = await client.get(url)
            elapsed = time.perf_counter() - started
            response.raise_for_status()
            sizes[steps] = len(response.content)
            if n >= WARMUP:
                samples[steps].append(elapsed)
    return {steps: (statistics.median(samples[steps]) * 1000, sizes[steps]) for steps in urls}


async def main() -> dict[str, Any]:
    owner, data_dir = await fresh_database("bench_record")
    env = {**server_env(owner, data_dir), **ENV}
    settings = Settings(
        database_url=owner,
        data_dir=Path(data_dir),
        secret_key="bench",
        argon2_time_cost=1,
        argon2_memory_kib=1024,
    )
    try:
        await _cli(env, "demo", str(ROOT / "tenants"))
        made, exported = await _plant(settings, owner)
        email = "supervisor@larkspur.example"
        token = (await _cli(env, "tokens", "create", "--tenant", SLUG, "--email", email)).strip()
        port = free_port()
        server = await start_server(env, port)
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}",
                timeout=300,
                headers={"Authorization": f"Bearer {token}"},
            ) as client:
                times = {
                    name: await _timed(
                        client,
                        {s: f"/t/{SLUG}/batches/{made[s].batch_id}{path}" for s in SIZES},
                    )
                    for name, path in PAGES.items()
                }
                times["BatchML export"] = exported
        finally:
            server.terminate()
            await server.wait()
    finally:
        await drop_database(owner)
    return {"made": made, "times": times}


def report(results: dict[str, Any]) -> bool:
    print(__doc__.strip().splitlines()[0])
    small, large = SIZES
    for steps, made in results["made"].items():
        print(
            f"  {steps} steps: {made.entries} entries, {made.exceptions} exceptions "
            f"(made through the services in {made.seconds:.0f} s)"
        )
    ok = True
    for name, by_size in results["times"].items():
        (a, a_size), (b, b_size) = by_size[small], by_size[large]
        ratio = b / a
        ok = ok and ratio <= TARGET
        print(
            f"{name:<24} {small} steps {a:7.1f} ms ({a_size / 1024:5.0f} KiB)   "
            f"{large} steps {b:7.1f} ms ({b_size / 1024:6.0f} KiB)   {ratio:4.1f}x "
            f"(target <= {TARGET:.0f}x: {'met' if ratio <= TARGET else 'NOT met'})"
        )
    return ok


if __name__ == "__main__":
    sys.exit(0 if report(asyncio.run(main())) else 1)
