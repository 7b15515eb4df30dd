"""OPC UA capture: the capture client core against a plain asyncua subscription, same run.

200 signals change every 10 ms on the local simulator; the capture client core receives them
against a plain asyncua client subscription that does nothing with its notifications (the
baseline).

The simulator runs in a process of its own and records every value it writes, so each side's
lost samples are counted against what the server produced while that side was subscribed
(from its first notification of each signal to its last). The two sides run in alternating
rounds (``BENCH_SECONDS`` in all per side, default 4) against the same server; the delay is
from the source timestamp to receipt (p50, p95). While neither side loses anything, both
receive what the server manages to write (one asyncua process writes fewer than 20,000 values
a second here), so the rates are the server's and the ratio is near 100 % plus noise.

Then the capture worker as it runs in production (``opencdmo equipment capture``, its own
process) stores the same 200 signals into PostgreSQL (the demo tenant in a fresh database,
two units of 100 signals each), first one worker, then two sharing the units through their
leases. Its rate is what it stored per second of source time; lost is counted against what
the server produced over the same span, twice is impossible (the table's key) and checked
anyway; the delay is from the source timestamp to the row's ``stored_at`` (p50, p95). A
plain client stays subscribed alongside the workers, so both count the same span of the
same server under the same load: the target is at least 80 % of its rate, nothing lost.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import math
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any
from uuid import UUID

import asyncpg
from asyncua.client.client import Client
from asyncua.common.subscription import DataChangeNotif

from bench.harness import ROOT, drop_database, free_port, fresh_database, server_env
from opencdmo.equipment.opcua_client import CaptureClient, Sample
from opencdmo.equipment.signals import synthetic
from opencdmo.equipment.simulator import Simulator, SimulatorConfig

SIGNALS = int(os.environ.get("BENCH_SIGNALS", "200"))
RATE = float(os.environ.get("BENCH_RATE", "100"))  # updates per second per signal
SECONDS = float(os.environ.get("BENCH_SECONDS", "4"))
ROUNDS = 2  # alternating rounds per side
PUBLISHING_MS = 50.0
TARGET = 0.80  # the stored rate against the plain client's, with nothing lost
STORE_SECONDS = float(os.environ.get("BENCH_STORE_SECONDS", "8"))  # measured per storing run
SETTLE = 4.0  # seconds a storing run starts, subscribes and shares the units before it counts
SLUG = "larkspur-cdmo"
UNITS = 2

Stamp = tuple[str, dt.datetime]


@dataclass
class Side:
    """What one side received: (node, source timestamp) and the delay of each sample."""

    name: str
    seconds: float = 0.0
    seen: list[Stamp] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    lost: int = 0
    twice: int = 0
    window: tuple[dt.datetime, dt.datetime] | None = None  # counted over, for every signal

    @property
    def rate(self) -> float:
        return len(self.seen) / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        ordered = sorted(self.delays)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000 if ordered else 0.0

    def line(self) -> str:
        return (
            f"{self.name:<28} {self.rate:>8.0f} samples/s  lost {self.lost:>6}  "
            f"twice {self.twice:>3}  delay p50 {self.pct(0.5):6.1f} ms  "
            f"p95 {self.pct(0.95):6.1f} ms"
        )


def _serve(port: int, ready: Any, done: Connection) -> None:
    """The simulator's process: serve until told to stop, then send back what it wrote."""

    async def run() -> None:
        simulator = Simulator(
            SimulatorConfig(
                port=port, rate=RATE, extra_signals=SIGNALS, seed=11, record=True, history=0
            )
        )
        await simulator.start()
        began = time.monotonic()
        ready.set()
        await asyncio.to_thread(done.recv)
        await simulator.stop(drain=0)
        elapsed = time.monotonic() - began
        nodes = {spec.node for spec in synthetic(SIGNALS)}
        produced = {
            node: [stamp for stamp, _ in points]
            for node, points in simulator.produced.values.items()
            if node in nodes
        }
        done.send((produced, elapsed))

    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)  # a deleted subscription's last poll
    asyncio.run(run())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def _plain(
    endpoint: str,
    nodes: list[str],
    side: Side,
    until: Callable[[Side], Awaitable[None]] | None = None,
) -> None:
    """The baseline: the library's own subscription with a handler that only notes each one,
    for its share of the time (or ``until`` returns)."""

    class Handler:
        def datachange_notification(self, node: Any, _val: Any, data: DataChangeNotif) -> None:
            source = data.monitored_item.Value.SourceTimestamp
            assert source is not None
            side.seen.append((node.nodeid.to_string(), source))
            side.delays.append((_now() - source).total_seconds())

    async with Client(endpoint) as client:
        subscription = await client.create_subscription(PUBLISHING_MS, Handler())
        items = [client.get_node(node) for node in nodes]
        await subscription.subscribe_data_change(items, queuesize=10_000, sampling_interval=0)
        await (until or _timed)(side)
        await subscription.delete()


async def _capture(endpoint: str, nodes: list[str], side: Side) -> None:
    """The capture client core, its sink collecting in memory."""

    class Collect:
        async def write(self, samples: list[Sample]) -> None:
            now = _now()
            for sample in samples:
                assert sample.source_timestamp is not None
                side.seen.append((sample.node, sample.source_timestamp))
                side.delays.append((now - sample.source_timestamp).total_seconds())

    signals = {f"signal_{i:04d}": node for i, node in enumerate(nodes)}
    client = CaptureClient(endpoint, signals, Collect(), publishing_interval_ms=PUBLISHING_MS)
    task = asyncio.create_task(client.run())
    await asyncio.wait_for(client.connected.wait(), 20)
    await _timed(side)
    client.stop()
    await task


async def _timed(side: Side) -> None:
    """Count from the first notification on, for this round's share of the time."""
    while not side.seen:  # noqa: ASYNC110 - the first notification, from a handler
        await asyncio.sleep(0.005)
    began = asyncio.get_running_loop().time()
    await asyncio.sleep(SECONDS / ROUNDS)
    side.seconds += asyncio.get_running_loop().time() - began


def _account(side: Side, produced: dict[str, list[dt.datetime]]) -> None:
    """Lost: what the server wrote while this side was subscribed (per signal, between its
    first and last notification) that it did not receive; twice: received more than once."""
    got: dict[str, list[dt.datetime]] = {}
    for node, stamp in side.seen:
        got.setdefault(node, []).append(stamp)
    for node, stamps in got.items():
        unique = set(stamps)
        side.twice += len(stamps) - len(unique)
        first, last = side.window or (min(unique), max(unique))
        expected = {s for s in produced[node] if first <= s <= last}
        side.lost += len(expected - unique)


async def _round(
    run: Callable[[str, list[str], Side], Awaitable[None]],
    endpoint: str,
    nodes: list[str],
    name: str,
) -> Side:
    side = Side(name)
    await run(endpoint, nodes, side)
    return side


async def main() -> list[Side]:
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    port = free_port()
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    parent, child = context.Pipe()
    server = context.Process(target=_serve, args=(port, ready, child), daemon=True)
    server.start()
    try:
        if not await asyncio.to_thread(ready.wait, 60):
            raise RuntimeError("the simulator did not start")
        endpoint = f"opc.tcp://127.0.0.1:{port}/opencdmo/sim"
        nodes = [spec.node for spec in synthetic(SIGNALS)]
        plain: list[Side] = []
        capture: list[Side] = []
        for _ in range(ROUNDS):
            plain.append(await _round(_plain, endpoint, nodes, "plain asyncua subscription"))
            capture.append(await _round(_capture, endpoint, nodes, "capture client core"))
        stored = await _storing(endpoint, nodes)
        parent.send("stop")
        produced, elapsed = await asyncio.to_thread(parent.recv)
    finally:
        server.join(30)
        if server.is_alive():
            server.terminate()
    for side in plain + capture:
        _account(side, produced)
    for run in stored:
        _account(run, produced)
    written = sum(len(stamps) for stamps in produced.values())
    print(
        f"the simulator wrote {written} values in {elapsed:.1f} s ({written / elapsed:.0f}/s; "
        f"asked for {SIGNALS} signals at {RATE:g}/s each, {SIGNALS * RATE:.0f}/s)"
    )
    return [_merged(plain), _merged(capture), *stored]


async def _storing(endpoint: str, nodes: list[str]) -> list[Side]:
    """One capture worker process storing every signal, then two sharing the units."""
    owner, data_dir = await fresh_database("bench_capture")
    env = {**server_env(owner, data_dir), "OPENCDMO_ARGON2_TIME_COST": "1"}
    try:
        await _cli(env, "demo", str(ROOT / "tenants"))
        connection = await asyncpg.connect(owner)
        try:
            tenant = await _units(connection, endpoint, nodes)
            one = await _workers(env, connection, tenant, 1, endpoint, nodes)
            two = await _workers(env, connection, tenant, 2, endpoint, nodes)
        finally:
            await connection.close()
    finally:
        await drop_database(owner)
    return [*one, *two]


async def _units(connection: asyncpg.Connection, endpoint: str, nodes: list[str]) -> UUID:
    """The benchmark's units in the demo tenant: the signals split between ``UNITS`` units
    like its bioreactor (the demo's own units are not captured here)."""
    tenant: UUID = await connection.fetchval("SELECT id FROM tenants WHERE slug = $1", SLUG)
    # Raw SQL: benchmark set-up as the owner, bypassing the registry's class check (the
    # synthetic signals are no class's typical signals).
    await connection.execute("UPDATE equipment SET opcua = NULL WHERE tenant_id = $1", tenant)
    share = math.ceil(len(nodes) / UNITS)
    for index in range(UNITS):
        signals = {
            f"signal_{i:04d}": {"node": node, "unit": "1"}
            for i, node in enumerate(nodes)
            if i // share == index
        }
        description = {"endpoint": endpoint, "security": {"mode": "None", "policy": "None"}}
        await connection.execute(
            "INSERT INTO equipment (tenant_id, id, code, class_slug, site_id, name, status, opcua) "
            "SELECT tenant_id, gen_random_uuid(), $2, class_slug, site_id, $2, 'available', "
            "$3::jsonb FROM equipment "
            "WHERE tenant_id = $1 AND class_slug = 'rocking-motion-bioreactor' LIMIT 1",
            tenant,
            f"BENCH-{index + 1:02d}",
            json.dumps({**description, "signals": signals}),
        )
    return tenant


async def _workers(
    env: dict[str, str],
    connection: asyncpg.Connection,
    tenant: UUID,
    count: int,
    endpoint: str,
    nodes: list[str],
) -> list[Side]:
    """``count`` capture worker processes for ``SETTLE`` + ``STORE_SECONDS``, and a plain
    client subscribed alongside them meanwhile; what each got over the same steady span."""
    name = f"{count} capture worker{'s' if count > 1 else ''} (stores)"
    seconds = SETTLE + STORE_SECONDS
    began = dt.datetime.now(dt.UTC)
    done = asyncio.Event()

    async def until_done(_: Side) -> None:
        await done.wait()

    plain = Side(f"plain subscription alongside {count}")
    alongside = asyncio.create_task(_plain(endpoint, nodes, plain, until_done))
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "opencdmo.cli",
            "equipment",
            "capture",
            "--tenant",
            SLUG,
            "--once",
            str(seconds),
            env=env,
            cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL,
        )
        for _ in range(count)
    ]
    codes = [await p.wait() for p in processes]
    done.set()
    await alongside
    if any(codes):
        raise RuntimeError(f"a capture worker failed ({codes})")
    rows = await connection.fetch(
        "SELECT e.opcua -> 'signals' -> s.signal ->> 'node' AS node, s.source_time, "
        "extract(epoch FROM s.stored_at - s.source_time) AS delay "
        "FROM equipment_samples s JOIN equipment e ON e.tenant_id = s.tenant_id "
        "AND e.id = s.equipment_id WHERE s.tenant_id = $1 AND s.source_time >= $2",
        tenant,
        began,
    )
    # The steady span: from when every signal is stored (the workers started, subscribed
    # and shared the units) to when the first of them stopped, a margin off each end.
    first: dict[str, dt.datetime] = {}
    last: dict[str, dt.datetime] = {}
    for r in rows:
        node, at = r["node"], r["source_time"]
        first[node] = min(first.get(node, at), at)
        last[node] = max(last.get(node, at), at)
    margin = dt.timedelta(seconds=0.5)
    since, until = max(first.values()) + margin, min(last.values()) - margin
    kept = [r for r in rows if since <= r["source_time"] <= until]
    side = Side(name, seconds=(until - since).total_seconds(), window=(since, until))
    side.seen = [(r["node"], r["source_time"]) for r in kept]
    side.delays = [float(r["delay"]) for r in kept]
    print(f"  {name}: {len(first)} signals stored, counted over {side.seconds:.1f} s")
    received = [(i, seen) for i, seen in enumerate(plain.seen) if since <= seen[1] <= until]
    baseline = Side(plain.name, seconds=side.seconds, window=(since, until))
    baseline.seen = [seen for _, seen in received]
    baseline.delays = [plain.delays[i] for i, _ in received]
    return [baseline, side]


async def _cli(env: dict[str, str], *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "opencdmo.cli",
        *args,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"opencdmo {' '.join(args)} failed: {err.decode()[-2000:]}")
    return out.decode()


def _merged(rounds: list[Side]) -> Side:
    merged = Side(rounds[0].name)
    for side in rounds:
        merged.seconds += side.seconds
        merged.seen += side.seen
        merged.delays += side.delays
        merged.lost += side.lost
        merged.twice += side.twice
    return merged


def report(results: list[Side]) -> bool:
    print(__doc__.strip().splitlines()[0])
    baseline, capture, *stored = results
    for side in results:
        print(side.line())
    ok = True
    pairs = [(baseline, capture), *zip(stored[::2], stored[1::2], strict=True)]
    for plain, side in pairs:
        ratio = side.rate / plain.rate if plain.rate else 0.0
        clean = side.lost == 0 and side.twice == 0
        met = ratio >= TARGET and clean
        ok = ok and (met if side is not capture else clean)
        print(
            f"  {side.name} / {plain.name}: {ratio:.0%}, lost {side.lost}, twice "
            f"{side.twice} (target >= {TARGET:.0%} and none lost: {'met' if met else 'NOT met'})"
        )
    if baseline.delays and capture.delays:
        more = statistics.median(capture.delays) - statistics.median(baseline.delays)
        print(f"  median delay, capture client core - plain: {more * 1000:+.1f} ms")
    return ok


if __name__ == "__main__":
    report(asyncio.run(main()))
