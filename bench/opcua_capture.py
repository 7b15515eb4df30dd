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

This is the plain-client half of the issue's benchmark: the capture client only collects in
memory here; storing the samples (and the target of at least 80 % of the plain client's rate
when storing) comes with the storage side, and two workers after it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import multiprocessing
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from asyncua.client.client import Client
from asyncua.common.subscription import DataChangeNotif

from bench.harness import free_port
from opencdmo.equipment.opcua_client import CaptureClient, Sample
from opencdmo.equipment.signals import synthetic
from opencdmo.equipment.simulator import Simulator, SimulatorConfig

SIGNALS = int(os.environ.get("BENCH_SIGNALS", "200"))
RATE = float(os.environ.get("BENCH_RATE", "100"))  # updates per second per signal
SECONDS = float(os.environ.get("BENCH_SECONDS", "4"))
ROUNDS = 2  # alternating rounds per side
PUBLISHING_MS = 50.0
TARGET = 0.80  # the target, once the capture side stores: reported, not enforced yet

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


async def _plain(endpoint: str, nodes: list[str], side: Side) -> None:
    """The baseline: the library's own subscription with a handler that only notes each one."""

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
        await _timed(side)
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
        first, last = min(unique), max(unique)
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
        parent.send("stop")
        produced, elapsed = await asyncio.to_thread(parent.recv)
    finally:
        server.join(30)
        if server.is_alive():
            server.terminate()
    for side in plain + capture:
        _account(side, produced)
    written = sum(len(stamps) for stamps in produced.values())
    print(
        f"the simulator wrote {written} values in {elapsed:.1f} s ({written / elapsed:.0f}/s; "
        f"asked for {SIGNALS} signals at {RATE:g}/s each, {SIGNALS * RATE:.0f}/s)"
    )
    return [_merged(plain), _merged(capture)]


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
    baseline, capture = results
    print(baseline.line())
    print(capture.line())
    ratio = capture.rate / baseline.rate if baseline.rate else 0.0
    clean = capture.lost == 0 and capture.twice == 0
    verdict = "met" if ratio >= TARGET and clean else "NOT met"
    print(
        f"  capture / plain: {ratio:.0%}, capture lost {capture.lost}, twice {capture.twice} "
        f"(target >= {TARGET:.0%} and none lost: {verdict}; storage not yet in the loop)"
    )
    if baseline.delays and capture.delays:
        more = statistics.median(capture.delays) - statistics.median(baseline.delays)
        print(f"  median delay, capture - plain: {more * 1000:+.1f} ms")
    return clean


if __name__ == "__main__":
    report(asyncio.run(main()))
