"""Batch record entries by many operators at once: the API against asyncpg directly.

Each operator writes to a running batch of its own. The API side is POST
/api/v1/t/<tenant>/batches/<id>/entries on the real server as deployed (one worker process per
core): the bearer token, tenant resolution, RBAC at the batch's site, the batch row locked, the
idempotency key looked up, the value checked against the batch's control recipe (the demo's
autologous CAR-T recipe, 15 steps), the entry and its audit event written in one transaction,
and the event sealed into the tenant's chain before the answer. The baseline is what a
hand-written implementation would do, one transaction per entry through asyncpg from this
process as the application role (under row-level security): BEGIN with the tenant setting,
lock the batch row, insert the entry (the same columns, its check computed here), insert its
audit event as the audit service writes it (unchained, with its MAC), COMMIT. Its events are
sealed afterwards (untimed; sealing them also proves their MACs hold).

Every operator writes the recipe's fields in the same order (a different field each entry:
a field takes one first value), the first ``--warmup`` of them untimed. Target: the API
reaches at least 40 % of the direct throughput. ``--clients``, ``--entries``, ``--warmup``
and ``--workers`` set the sizes (``python -m bench.batch_entries --help``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg

from bench.api_list import _cli
from bench.harness import (
    ROOT,
    HttpConnection,
    Result,
    drop_database,
    free_port,
    fresh_database,
    post_request,
    server_env,
    start_server,
)
from opencdmo.audit import keys, sealer
from opencdmo.audit.chain import KEYED, entry_mac
from opencdmo.batches import entries, execution, record
from opencdmo.batches import service as batches
from opencdmo.batches.demo import FORMULA
from opencdmo.canonical import canonical_json
from opencdmo.db import engine as db
from opencdmo.db.urls import APP_ROLE, resolve_urls, with_user
from opencdmo.errors import ValidationFailed
from opencdmo.hub.model import DataCaptureField, Parameter, UnitOperation, decode
from opencdmo.identity import passwords
from opencdmo.identity import service as identity
from opencdmo.recipes import service as recipes
from opencdmo.scope import SYSTEM, Actor, RequestMeta, TenantContext
from opencdmo.settings import Settings
from opencdmo.tenancy import service as tenancy

SLUG = "larkspur-cdmo"
SITE = "LCG-BOS"
TARGET = 0.40
ARGON2 = {"OPENCDMO_ARGON2_TIME_COST": "1", "OPENCDMO_ARGON2_MEMORY_KIB": "1024"}
META = RequestMeta(request_id="bench:batch-entries")

# The baseline's statements (the tenant is set with BEGIN, as the app does).
LOCK = "SELECT number, status FROM batches WHERE id = $1 FOR UPDATE"
PHASE_STATUS = "SELECT status FROM batch_phases WHERE batch_id = $1 AND step = $2 AND phase = $3"
INSERT_ENTRY = """
INSERT INTO batch_entries (tenant_id, batch_id, step, phase, field, value, unit, source,
    entered_by, device_time, idempotency_key, supersedes, reason, check_result, message)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11, $12, $13, $14, $15)
ON CONFLICT (tenant_id, batch_id, idempotency_key) DO NOTHING
RETURNING id, entered_at
"""
EVENT_FIELDS = (
    "tenant_id",
    "id",
    "occurred_at",
    "actor_id",
    "actor_name",
    "action",
    "entity_type",
    "entity_id",
    "old_values",
    "new_values",
    "reason",
    "request_id",
    "address",
    "key_id",
)
INSERT_EVENT = (
    f"INSERT INTO audit_events ({', '.join(EVENT_FIELDS)}, algorithm, mac) "
    f"VALUES ({', '.join(f'${i + 1}' for i in range(len(EVENT_FIELDS) + 2))})"
)


@dataclass(frozen=True)
class Options:
    clients: int = 50
    entries: int = 120  # timed entries per operator
    warmup: int = 2  # untimed entries per operator first
    workers: int = os.cpu_count() or 1


@dataclass(frozen=True)
class Field:
    """A field of the control recipe and the value every operator records for it."""

    step: str
    phase: str
    key: str
    target: entries.Target
    value: Any

    def body(self, idempotency_key: str) -> dict[str, Any]:
        return {
            "step": self.step,
            "phase": self.phase,
            "field": self.key,
            "value": self.value,
            "idempotency_key": idempotency_key,
        }


@dataclass(frozen=True)
class Operator:
    actor: Actor
    token: str
    api_batch: UUID  # the batch it writes through the API
    direct_batch: UUID  # the batch it writes directly


@dataclass(frozen=True)
class Plant:
    ctx: TenantContext
    fields: list[Field]
    operators: list[Operator]


# --- the plant: an effective recipe, running batches, operators with tokens ----------------


async def _as(tenant_id: UUID, email: str) -> TenantContext:
    user = await identity.find_user(email)
    assert user is not None, email
    ctx = await tenancy.internal_context(
        tenant_id, Actor(user.id, user.email, user.full_name), META
    )
    assert ctx is not None
    return ctx


async def _effective_recipe(tenant_id: UUID) -> UUID:
    """The demo's CAR-T recipe, which the demo made effective with its formula."""
    engineer = await _as(tenant_id, "engineer@larkspur.example")
    (recipe,) = [r for r in await recipes.list_recipes(engineer) if r.effective_revision]
    return recipe.id


async def _running_batch(
    supervisor: TenantContext, operator: TenantContext, recipe: UUID, n: int
) -> UUID:
    """A running batch with every phase running, so that every field takes entries (the
    COI label checked at each step; the phases started out of order, with a reason)."""
    chain = batches.ChainOfIdentity(f"D-{n:04}", f"COI-{n:04}", f"APH-{n:04}")
    made = await batches.create_batch(
        supervisor, recipe, FORMULA, SITE, datetime.now(UTC), "Quillon Therapeutics", chain
    )
    await batches.command_batch(supervisor, made.id, "start")
    checked: set[str] = set()
    for view in (await record.read(supervisor, made.id)).phases:
        step = view.planned.step
        if view.planned.identity_check and step not in checked:
            await execution.check_identity(operator, made.id, step, chain.coi_label or "")
            checked.add(step)
        await execution.command_phase(
            operator, made.id, step, view.planned.phase, "start", "every phase open for the bench"
        )
    return made.id


async def _operator(ctx: TenantContext, n: int) -> tuple[Actor, str]:
    """A production operator of the tenant (no password: an API token is its credential)."""
    user = await identity.create_user_without_password(
        f"operator{n:03}@bench.example", f"Bench Operator {n}", actor=SYSTEM, meta=META
    )
    await tenancy.add_member(ctx, user.id, ["production_operator"])
    token, _ = await identity.create_token(ctx, user.id, "bench")
    return Actor(user.id, user.email, user.full_name), token


def _value(target: entries.Target) -> Any:
    """A value of the field's kind, inside its limits or ranges where it has them."""
    part = target.capture or target.parameter
    assert part is not None
    span = part.normal_range if isinstance(part, Parameter) else part.limits
    bounds = [b for b in (span.low, span.high) if b is not None] if span else []
    middle = sum(bounds) / len(bounds) if bounds else 1
    default = part.default if isinstance(part, Parameter) else None
    candidates = [default, middle, round(middle), True, *(part.choices or ()), "as expected"]
    for value in [*candidates, "2026-05-04T08:00:00+00:00"]:
        try:
            if value is not None:
                entries.validated(target, value, None)
                return value
        except ValidationFailed:
            continue
    raise AssertionError(f"no value for {target.step}/{target.phase}/{target.key}")


def _fields(document: dict[str, Any]) -> list[Field]:
    """Every field of every phase of every step of the control recipe, in order."""
    found: dict[tuple[str, str, str], Field] = {}
    for procedure in document["unit_procedures"]:
        for op in procedure["operations"]:
            operation = decode(op["unit_operation_content"])
            assert isinstance(operation, UnitOperation)
            for phase in operation.phases:
                parts: list[DataCaptureField | Parameter] = [*phase.data_capture, *phase.parameters]
                for part in parts:
                    where = (op["key"], phase.key, part.key)
                    if where not in found:
                        target = entries.target(entries.operations(document), *where)
                        found[where] = Field(*where, target, _value(target))
    return list(found.values())


async def _plant(settings: Settings, clients: int) -> Plant:
    tenant = await tenancy.tenant_by_slug(SLUG)
    assert tenant is not None
    ctx = await tenancy.internal_context(tenant.id, SYSTEM, META)
    assert ctx is not None
    recipe = await _effective_recipe(tenant.id)
    supervisor = await _as(tenant.id, "supervisor@larkspur.example")
    operator = await _as(tenant.id, "operator@larkspur.example")
    made = [await _running_batch(supervisor, operator, recipe, n) for n in range(2 * clients)]
    document = (await batches.get_batch(supervisor, made[0])).control_recipe.document
    people = [await _operator(ctx, n) for n in range(clients)]
    operators = [
        Operator(actor, token, made[n], made[clients + n])
        for n, (actor, token) in enumerate(people)
    ]
    return Plant(ctx, _fields(document), operators)


# --- the load ----------------------------------------------------------------------------

Write = Callable[[int], Awaitable[None]]


async def _measure(name: str, writers: list[Write], options: Options) -> Result:
    """Every writer makes its untimed entries first (connections open, caches filled), then
    all make their timed ones back to back at once."""

    async def run(write: Write, numbers: range, latencies: list[float] | None) -> None:
        for n in numbers:
            started = time.perf_counter()
            await write(n)
            if latencies is not None:
                latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(run(w, range(options.warmup), None) for w in writers))
    latencies: list[float] = []
    timed = range(options.warmup, options.warmup + options.entries)
    began = time.perf_counter()
    await asyncio.gather(*(run(w, timed, latencies) for w in writers))
    return Result(name, len(writers), len(latencies), time.perf_counter() - began, latencies)


def _event(plant: Plant, who: Operator, field: Field, made: Any, number: str) -> dict[str, Any]:
    """The audit event the entry service writes for a first entry (``batch.entry_recorded``)."""
    checked = entries.check(field.target, field.value)
    return {
        "tenant_id": plant.ctx.tenant_id,
        "id": uuid.uuid4(),
        "occurred_at": made["entered_at"],
        "actor_id": who.actor.id,
        "actor_name": who.actor.full_name,
        "action": "batch.entry_recorded",
        "entity_type": "batch",
        "entity_id": str(who.direct_batch),
        "old_values": None,
        "new_values": canonical_json(
            {
                "number": number,
                "entry_id": str(made["id"]),
                "step": field.step,
                "phase": field.phase,
                "field": field.key,
                "field_name": field.target.name,
                "value": field.value,
                "unit": field.target.unit,
                "source": "manual",
                "check": checked.result,
                "device_time": None,
            }
        ),
        "reason": None,
        "request_id": META.request_id,
        "address": "127.0.0.1",
        "key_id": keys.keyring().current.id,
    }


def _direct_writer(pool: asyncpg.Pool, plant: Plant, who: Operator) -> Write:
    begin = f"BEGIN; SELECT set_config('app.tenant_id', '{plant.ctx.tenant_id}', true)"
    key = keys.keyring().current

    async def write(n: int) -> None:
        field = plant.fields[n]
        unit = entries.validated(field.target, field.value, None)
        checked = entries.check(field.target, field.value)
        async with pool.acquire() as connection:
            await connection.execute(begin)
            try:
                batch = await connection.fetchrow(LOCK, who.direct_batch)
                if batch is None or batch["status"] != "running":
                    raise RuntimeError(f"batch {who.direct_batch} is not running")
                phase = await connection.fetchval(
                    PHASE_STATUS, who.direct_batch, field.step, field.phase
                )
                if phase != "running":
                    raise RuntimeError(f"phase {field.phase} is not running")
                made = await connection.fetchrow(
                    INSERT_ENTRY,
                    plant.ctx.tenant_id,
                    who.direct_batch,
                    field.step,
                    field.phase,
                    field.key,
                    json.dumps(field.value),
                    unit,
                    "manual",
                    who.actor.id,
                    None,
                    f"bench-{n}",
                    None,
                    None,
                    checked.result,
                    checked.message,
                )
                if made is not None:  # None: a retry of an entry made already
                    event = _event(plant, who, field, made, batch["number"])
                    values = [event[f] for f in EVENT_FIELDS]
                    await connection.execute(INSERT_EVENT, *values, KEYED, entry_mac(key, event))
                await connection.execute("COMMIT")
            except BaseException:
                await connection.execute("ROLLBACK")
                raise

    return write


def _api_writer(port: int, plant: Plant, who: Operator) -> tuple[Write, HttpConnection]:
    connection = HttpConnection("127.0.0.1", port, expect=201)
    path = f"/api/v1/t/{SLUG}/batches/{who.api_batch}/entries"
    headers = {"Authorization": f"Bearer {who.token}"}

    async def write(n: int) -> None:
        body = json.dumps(plant.fields[n].body(f"bench-{n}")).encode()
        await connection.send(post_request("127.0.0.1", port, path, headers, body))

    return write, connection


async def _direct(owner: str, plant: Plant, options: Options) -> Result:
    pool = await asyncpg.create_pool(
        with_user(owner, APP_ROLE, None),
        min_size=options.clients,
        max_size=options.clients,
        reset=db.release_reset,  # as the app's pool: no reset query per checkout
    )
    try:
        writers = [_direct_writer(pool, plant, who) for who in plant.operators]
        return await _measure("direct asyncpg (lock, entry, event)", writers, options)
    finally:
        await pool.close()


async def _api(env: dict[str, str], plant: Plant, options: Options) -> Result:
    port = free_port()
    server = await start_server({**env, "OPENCDMO_WORKERS": str(options.workers)}, port)
    pairs = [_api_writer(port, plant, who) for who in plant.operators]
    try:
        return await _measure("POST entries API (bearer token)", [w for w, _ in pairs], options)
    finally:
        for _, connection in pairs:
            await connection.close()
        server.terminate()
        await server.wait()


async def _check(owner: str, plant: Plant, options: Options, sealed: int) -> None:
    """Every entry was made once with one audit event, and every event sealed."""
    per_side = options.clients * (options.warmup + options.entries)
    assert sealed == per_side, f"{sealed} of the baseline's {per_side} events sealed"
    connection = await asyncpg.connect(owner)
    try:
        ours = [b for o in plant.operators for b in (o.direct_batch, o.api_batch)]
        made = await connection.fetchval(
            "SELECT count(*) FROM batch_entries WHERE batch_id = ANY($1)", ours
        )
        events = await connection.fetchval(
            "SELECT count(*) FROM audit_events WHERE action = 'batch.entry_recorded'"
            " AND seq IS NOT NULL AND entity_id = ANY($1)",
            [str(b) for b in ours],
        )
    finally:
        await connection.close()
    assert made == events == 2 * per_side, (made, events, 2 * per_side)


# --- the run -------------------------------------------------------------------------------


def _settings(owner: str, data_dir: str) -> Settings:
    return Settings(
        database_url=owner,
        data_dir=Path(data_dir),
        secret_key="bench",
        argon2_time_cost=1,
        argon2_memory_kib=1024,
    )


async def main(options: Options | None = None) -> list[Result]:
    options = options or Options()
    owner, data_dir = await fresh_database("bench_entries")
    env = {**server_env(owner, data_dir), **ARGON2}
    settings = _settings(owner, data_dir)
    engine = None
    try:
        await _cli(env, "demo", str(ROOT / "tenants"))
        keys.configure(settings)  # the data dir's audit key, which the server uses too
        passwords.configure(settings)
        engine = db.bind_engine(resolve_urls(settings, owner))
        await db.start_pool(engine, 8)
        plant = await _plant(settings, options.clients)
        if options.warmup + options.entries > len(plant.fields):
            raise SystemExit(
                f"--warmup + --entries is at most {len(plant.fields)} (the recipe's fields)"
            )
        direct = await _direct(owner, plant, options)
        sealed = await sealer.seal_round(plant.ctx.tenant_id)
        api = await _api(env, plant, options)
        await _check(owner, plant, options, sealed)
    finally:
        if engine is not None:
            await db.close_pool(engine)
        await drop_database(owner)
    return [direct, api]


def report(results: list[Result]) -> bool:
    print(__doc__.strip().splitlines()[0])
    direct, api = results
    print(direct.line())
    print(api.line())
    ratio = api.rps / direct.rps
    met = ratio >= TARGET
    print(f"  API / direct: {ratio:.0%} (target >= {TARGET:.0%}: {'met' if met else 'NOT met'})")
    return met


def parse(argv: Sequence[str]) -> Options:
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m bench.batch_entries",
        description=__doc__.strip().splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--clients", type=int, default=defaults.clients, help="operators")
    parser.add_argument(
        "--entries", type=int, default=defaults.entries, help="timed entries per operator"
    )
    parser.add_argument(
        "--warmup", type=int, default=defaults.warmup, help="untimed entries per operator first"
    )
    parser.add_argument(
        "--workers", type=int, default=defaults.workers, help="server worker processes"
    )
    args = parser.parse_args(argv)
    if min(args.clients, args.entries, args.workers) < 1 or args.warmup < 0:
        parser.error("--clients, --entries and --workers are at least 1, --warmup at least 0")
    return Options(args.clients, args.entries, args.warmup, args.workers)


if __name__ == "__main__":
    options = parse(sys.argv[1:])
    sys.exit(0 if report(asyncio.run(main(options))) else 1)
