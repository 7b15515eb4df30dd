"""The OPC UA simulator and the capture client core, against each other on 127.0.0.1: a real
asyncua server and real asyncua client sessions, nothing mocked."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from asyncua.client.client import Client

from opencdmo.cli import build_parser
from opencdmo.equipment import opcua_pki
from opencdmo.equipment.opcua_client import (
    Backoff,
    CaptureClient,
    CaptureError,
    CollectingSink,
    Sample,
    Security,
    UntrustedServer,
)
from opencdmo.equipment.signals import SIGNALS, Excursion
from opencdmo.equipment.simulator import Simulator, SimulatorConfig

ROOT = Path(__file__).resolve().parents[2]
ALL = {f"{spec.equipment}.{spec.key}": spec.node for spec in SIGNALS}
TEMPERATURE = "ns=2;s=BR01.Temperature"
SETPOINT = "ns=2;s=BR01.TemperatureSetpoint"
FAST = Backoff(initial=0.1, max_delay=0.5)

Point = tuple[dt.datetime, float]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(check: Callable[[], bool], seconds: float = 15.0) -> None:
    async with asyncio.timeout(seconds):
        while not check():  # noqa: ASYNC110 - a condition on several objects, not one event
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def capturing(client: CaptureClient) -> AsyncIterator[asyncio.Task[None]]:
    """The client running in a task; stopped (and its error, if any, raised) on exit."""
    task = asyncio.create_task(client.run())
    try:
        yield task
    finally:
        client.stop()
        await asyncio.wait_for(task, 10)


def by_node(samples: list[Sample]) -> dict[str, list[Point]]:
    """Each node's samples in source timestamp order (read back from history after a
    reconnect, some arrive after newer ones)."""
    found: dict[str, list[Point]] = {}
    for sample in samples:
        assert sample.source_timestamp is not None
        found.setdefault(sample.node, []).append((sample.source_timestamp, sample.value))
    return {node: sorted(points) for node, points in found.items()}


def expected_from(produced: list[Point], first: dt.datetime) -> list[Point]:
    """What the server wrote from the value the subscription started with onwards."""
    return [point for point in produced if point[0] >= first]


def assert_complete(simulator: Simulator, received: dict[str, list[Point]]) -> None:
    """Every node received every value the server wrote after its subscription began (the
    server's current value at that moment first), in order, none twice."""
    for node, points in simulator.produced.values.items():
        if node not in ALL.values():
            continue
        assert points, node
        got = received.get(node, [])
        assert got, f"nothing received for {node}"
        assert got == expected_from(points, got[0][0]), node


async def test_every_change_is_captured_once(tmp_path: Path) -> None:
    simulator = Simulator(SimulatorConfig(port=free_port(), rate=50, seed=7))
    await simulator.start()
    sink = CollectingSink()
    client = CaptureClient(simulator.endpoint, ALL, sink, backoff=FAST)
    async with capturing(client):
        await asyncio.wait_for(client.connected.wait(), 10)
        await asyncio.sleep(1.0)
        await simulator.stop()  # a clean shutdown: what was written is still delivered
    received = by_node(sink.samples)
    assert_complete(simulator, received)
    assert sum(len(points) for points in received.values()) == len(sink.samples)
    assert len(received[TEMPERATURE]) >= 30
    assert {sample.signal for sample in sink.samples} == set(ALL)
    assert all(sample.good and sample.server_timestamp for sample in sink.samples)
    assert client.stats.duplicates == 0


async def test_a_server_restart_loses_and_repeats_nothing() -> None:
    port = free_port()
    first = Simulator(SimulatorConfig(port=port, rate=50, seed=1))
    await first.start()
    sink = CollectingSink()
    client = CaptureClient(first.endpoint, ALL, sink, backoff=FAST)
    async with capturing(client):
        await asyncio.wait_for(client.connected.wait(), 10)
        await asyncio.sleep(1.0)
        await first.stop()
        before = len(sink.samples)
        await eventually(lambda: not client.connected.is_set())
        second = Simulator(SimulatorConfig(port=port, rate=50, seed=2))
        await second.start()
        await eventually(lambda: client.stats.connects == 2)
        await asyncio.sleep(1.0)
        await second.stop()
    assert client.stats.failures  # it did have to reconnect
    assert client.stats.backfilled  # what the new server wrote before the client was back
    run1, run2 = by_node(sink.samples[:before]), by_node(sink.samples[before:])
    assert_complete(first, run1)
    for node, got in run2.items():  # all the second server wrote, from its first value on
        if node in ALL.values():
            assert got == second.produced.values[node], node
    union = {(s.node, s.source_timestamp) for s in sink.samples}
    assert len(union) == len(sink.samples)


class Proxy:
    """A TCP relay in front of the server whose connections can be cut (a network drop
    while the server keeps running)."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self._writers += [writer, up_writer]
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    def cut(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def test_a_network_drop_loses_and_repeats_nothing() -> None:
    """The session outlives the connection: what the server queued while the network was
    down is republished, and the setpoint (which nobody changed) is not delivered again."""
    simulator = Simulator(SimulatorConfig(port=free_port(), rate=20, seed=3))
    await simulator.start()
    proxy = Proxy(simulator.config.port)
    await proxy.start()
    sink = CollectingSink()
    endpoint = simulator.endpoint.replace(str(simulator.config.port), str(proxy.port))
    signals = {**ALL, "temperature_setpoint": SETPOINT}
    client = CaptureClient(endpoint, signals, sink, backoff=FAST, publishing_interval_ms=200)
    async with capturing(client):
        await asyncio.wait_for(client.connected.wait(), 10)
        await asyncio.sleep(0.6)
        proxy.cut()
        await eventually(lambda: client.stats.connects == 2)
        await asyncio.sleep(0.6)
        await simulator.stop()
    await proxy.stop()
    assert client.stats.failures  # the drop was seen
    received = by_node(sink.samples)
    assert len(received.pop(SETPOINT)) == 1
    assert_complete(simulator, received)


async def test_an_excursion_is_injected_and_seen() -> None:
    excursion = Excursion(TEMPERATURE, 41.0, seconds=0.6, after=0.8)
    simulator = Simulator(SimulatorConfig(port=free_port(), rate=20, excursions=(excursion,)))
    await simulator.start()
    sink = CollectingSink()
    client = CaptureClient(simulator.endpoint, {"culture_temperature": TEMPERATURE}, sink)
    async with capturing(client):
        await asyncio.wait_for(client.connected.wait(), 10)
        await eventually(lambda: any(s.value > 40.5 for s in sink.samples))
        await eventually(lambda: sink.samples[-1].value < 38.5)
    await simulator.stop()
    values = [sample.value for sample in sink.samples]
    high = [i for i, value in enumerate(values) if value > 40.5]
    assert high == list(range(high[0], high[-1] + 1))  # one excursion, held, then back
    assert all(36.0 < value < 38.0 for value in values[: high[0]] + values[high[-1] + 1 :])


async def test_a_server_not_up_yet_is_waited_for() -> None:
    port = free_port()
    sink = CollectingSink()
    client = CaptureClient(f"opc.tcp://127.0.0.1:{port}/opencdmo/sim", ALL, sink, backoff=FAST)
    async with capturing(client):
        await eventually(lambda: len(client.stats.failures) >= 2)  # refused, and retried
        simulator = Simulator(SimulatorConfig(port=port, rate=20))
        await simulator.start()
        await asyncio.wait_for(client.connected.wait(), 10)
        await eventually(lambda: len(sink.samples) > len(ALL))
        await simulator.stop()
    assert_complete(simulator, by_node(sink.samples))


@dataclass
class Secured:
    simulator: Simulator
    trust: Path
    client_dir: Path


@pytest.fixture(scope="module")
async def secured(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Secured]:
    """A simulator with Basic256Sha256 endpoints, its certificate made in its PKI folder."""
    base = tmp_path_factory.mktemp("opcua-pki")
    simulator = Simulator(SimulatorConfig(port=free_port(), rate=20, pki=base / "server"))
    await simulator.start()
    assert simulator.server_certificate is not None
    opcua_pki.trust(base / "trusted", simulator.server_certificate, "simulator")
    yield Secured(simulator, base / "trusted", base / "client")
    await simulator.stop(drain=0)


@pytest.mark.parametrize("mode", ["Sign", "SignAndEncrypt"])
async def test_basic256sha256_sign_and_encrypt(secured: Secured, mode: str) -> None:
    sink = CollectingSink()
    security = Security(mode, certificate_dir=secured.client_dir, trust_dir=secured.trust)  # type: ignore[arg-type]
    client = CaptureClient(secured.simulator.endpoint, ALL, sink, security)
    async with capturing(client):
        await asyncio.wait_for(client.connected.wait(), 10)
        await eventually(lambda: len(by_node(sink.samples).get(TEMPERATURE, [])) >= 5)
    assert (secured.client_dir / opcua_pki.CERT_FILE).is_file()  # its own, made on first use
    received = by_node(sink.samples)
    produced = secured.simulator.produced.values[TEMPERATURE]
    assert received[TEMPERATURE] == [p for p in produced if p in received[TEMPERATURE]]
    assert all(point in produced for point in received[TEMPERATURE])


async def test_an_untrusted_server_is_refused(secured: Secured, tmp_path: Path) -> None:
    other = tmp_path / "trusted"
    other_cert = opcua_pki.ensure_certificate(tmp_path / "other", "urn:other", server=True)
    opcua_pki.trust(other, other_cert.certificate.read_bytes(), "someone-else")
    sink = CollectingSink()
    security = Security("SignAndEncrypt", certificate_dir=tmp_path / "client", trust_dir=other)
    client = CaptureClient(secured.simulator.endpoint, ALL, sink, security, backoff=FAST)
    with pytest.raises(UntrustedServer) as refused:
        await asyncio.wait_for(client.run(), 10)
    assert "not in the trust list" in str(refused.value)
    assert opcua_pki.fingerprint(secured.simulator.server_certificate or b"") in str(refused.value)
    assert client.stats.connects == 0 and not sink.samples


async def test_an_unknown_node_is_a_clear_error(secured: Secured) -> None:
    signals = {"ph": "ns=2;s=BR01.pH", "viscosity": "ns=2;s=BR01.Viscosity"}
    client = CaptureClient(secured.simulator.endpoint, signals, CollectingSink())
    with pytest.raises(CaptureError, match=r"refused the nodes ns=2;s=BR01\.Viscosity \(Bad"):
        await asyncio.wait_for(client.run(), 10)


def test_a_malformed_node_id_is_a_clear_error() -> None:
    with pytest.raises(CaptureError, match=r"signal ph: 'BR01\.pH' is not an OPC UA node id"):
        CaptureClient("opc.tcp://127.0.0.1:4840", {"ph": "BR01.pH"}, CollectingSink())
    with pytest.raises(CaptureError, match="no signals"):
        CaptureClient("opc.tcp://127.0.0.1:4840", {}, CollectingSink())


async def test_the_setpoint_is_writable(secured: Secured) -> None:
    async with Client(secured.simulator.endpoint) as client:
        await client.get_node(SETPOINT).write_value(36.5)
        assert await client.get_node(SETPOINT).read_value() == 36.5
    assert await secured.simulator.read_setpoint(SETPOINT) == 36.5


async def _wait_line(stream: asyncio.StreamReader, text: str) -> str:
    while line := (await asyncio.wait_for(stream.readline(), 20)).decode():
        if text in line:
            return line
    raise AssertionError(f"no line with {text!r}")


async def _simulate_then_stop(signum: int) -> None:
    """Start the command, read a node through it, send ``signum``: it must exit 0."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "opencdmo.cli", "equipment", "simulate",
        "--port", str(port), "--rate", "10", "--signals", "3",
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("OPENCDMO_")},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        line = await _wait_line(process.stdout, "simulating")
        assert f"10 signals on opc.tcp://127.0.0.1:{port}/opencdmo/sim" in line
        async with Client(f"opc.tcp://127.0.0.1:{port}/opencdmo/sim") as client:
            value = await client.get_node("ns=2;s=FRZ01.Temperature").read_value()
            assert -82 < value < -78
            assert await client.get_node("ns=2;s=SIM.Signal0002").read_value() is not None
    finally:
        process.send_signal(signum)
        out, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, err.decode()
    assert b"simulator stopped" in out


async def test_the_simulate_command_serves_and_stops_cleanly() -> None:
    await asyncio.gather(_simulate_then_stop(signal.SIGTERM), _simulate_then_stop(signal.SIGINT))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "500"], "at most 100"),
        (["--excursion", "BR-01.nothing:1:2"], "is not a simulated signal"),
        (["--excursion", "chamber_temperature:1:2"], "is ambiguous"),
        (["--excursion", "ph:high:2"], "must be numbers"),
        (["--excursion", "ph:7"], "expected SIGNAL:VALUE:SECONDS"),
        (["--signals", "-1"], "must not be negative"),
    ],
)
def test_bad_simulate_options_are_clear_errors(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parsed = build_parser().parse_args(["equipment", "simulate", *args])
    assert parsed.func(None, parsed) == 2
    assert message in capsys.readouterr().err
