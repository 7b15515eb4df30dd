"""``opencdmo equipment simulate``: an OPC UA server (asyncua) with simulated equipment.

The server listens on 127.0.0.1 only, in the namespace ``urn:opencdmo:sim`` (index 2), with a
variable per signal of :mod:`opencdmo.equipment.signals` (node ids ``ns=2;s=BR01.Temperature``
...) updated ``rate`` times a second, and writable setpoint nodes. Security is None, and with
a PKI directory also Basic256Sha256 Sign and SignAndEncrypt with the server's own certificate
(made there on first start). Each node keeps its last changes for HistoryRead, and each value
written is kept in memory (``produced``), so a test or benchmark can compare what a client
received with what the server made.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from asyncua import ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.server import Server
from asyncua.server.user_managers import UserManager

from opencdmo.equipment import opcua_pki
from opencdmo.equipment.signals import (
    NAMESPACE,
    SETPOINTS,
    SIGNALS,
    Curve,
    Excursion,
    SignalSpec,
    synthetic,
)

PATH = "/opencdmo/sim"
DEFAULT_PORT = 4840
APPLICATION_URI = "urn:opencdmo:sim:server"
MAX_RATE = 100.0


@dataclass(frozen=True)
class SimulatorConfig:
    """What the simulator serves and how fast its signals change."""

    port: int = DEFAULT_PORT
    rate: float = 1.0  # updates per second per signal
    extra_signals: int = 0
    excursions: tuple[Excursion, ...] = ()
    seed: int = 0
    pki: Path | None = None  # with a directory: Basic256Sha256 endpoints, own certificate there
    record: bool = True  # keep every value written in memory (``produced``)
    history: int = 10_000  # changes a node keeps for HistoryRead (0: none, for load tests)
    users: tuple[tuple[str, str], ...] = ()  # (name, password): sign-in required, no anonymous

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}{PATH}"


@dataclass
class Produced:
    """What the server wrote: per node id, the (source timestamp, value) of each update."""

    values: dict[str, list[tuple[dt.datetime, float]]] = field(default_factory=dict)
    count: int = 0


class Simulator:
    """The simulated equipment's OPC UA server; ``start`` then ``stop`` (or ``async with``)."""

    def __init__(self, config: SimulatorConfig) -> None:
        if not 0 < config.rate <= MAX_RATE:
            raise ValueError(f"rate must be above 0 and at most {MAX_RATE:g} updates per second")
        self.config = config
        self.signals: tuple[SignalSpec, ...] = SIGNALS + synthetic(config.extra_signals)
        self.produced = Produced({spec.node: [] for spec in self.signals})
        self.server_certificate: bytes | None = None
        self._curves = [Curve(spec, config.seed) for spec in self.signals]
        self._excursions = {excursion.node: excursion for excursion in config.excursions}
        self._server = Server(user_manager=_Users(config.users) if config.users else None)
        self._nodes: list[ua.NodeId] = []
        self._variables: list[Any] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def endpoint(self) -> str:
        return self.config.endpoint

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Build the address space, listen, and start updating the signals."""
        await self._server.init()
        self._server.set_endpoint(self.endpoint)
        self._server.set_server_name("OpenCDMO equipment simulator")
        await self._server.set_application_uri(APPLICATION_URI)
        self._server.set_security_policy(await self._security())
        if self.config.users:
            self._server.set_identity_tokens([ua.UserNameIdentityToken])
        namespace = await self._server.register_namespace(NAMESPACE)
        if namespace != 2:  # the node ids say ns=2
            raise RuntimeError(f"namespace {NAMESPACE} got index {namespace}, not 2")
        await self._build(namespace)
        await self._server.start()
        self._record_initial()
        if self.config.history:  # a client back after a drop reads what it missed
            await self._server.historize_node_data_change(
                self._variables, period=dt.timedelta(days=1), count=self.config.history
            )
        self._task = asyncio.create_task(self._update_loop())

    async def _security(self) -> list[ua.SecurityPolicyType]:
        if self.config.pki is None:
            return [ua.SecurityPolicyType.NoSecurity]
        own = opcua_pki.ensure_certificate(self.config.pki, APPLICATION_URI, server=True)
        await self._server.load_certificate(str(own.certificate))
        await self._server.load_private_key(str(own.private_key))
        self.server_certificate = own.certificate.read_bytes()
        return [
            ua.SecurityPolicyType.NoSecurity,
            ua.SecurityPolicyType.Basic256Sha256_Sign,
            ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
        ]

    async def _build(self, namespace: int) -> None:
        objects = self._server.nodes.objects
        units: dict[str, Any] = {}
        for spec in self.signals:
            if spec.equipment not in units:
                units[spec.equipment] = await objects.add_object(namespace, spec.equipment)
            unit = units[spec.equipment]
            node = await unit.add_variable(
                ua.NodeId.from_string(spec.node), spec.key, spec.base, ua.VariantType.Double
            )
            self._nodes.append(node.nodeid)
            self._variables.append(node)
        for setpoint in SETPOINTS:
            unit = units[setpoint.equipment]
            node = await unit.add_variable(
                ua.NodeId.from_string(setpoint.node),
                setpoint.key,
                setpoint.initial,
                ua.VariantType.Double,
            )
            await node.set_writable()

    def _record_initial(self) -> None:
        """The value each node was made with is the first one a client can see."""
        for nodeid, spec in zip(self._nodes, self.signals, strict=True):
            value = self._server.read_attribute_value(nodeid)
            stamp = value.SourceTimestamp
            if self.config.record and stamp is not None and value.Value is not None:
                aware = stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)
                self.produced.values[spec.node].append((aware, float(value.Value.Value)))

    async def _update_loop(self) -> None:
        """Update every signal ``rate`` times a second, on a fixed schedule (a late tick is
        written at once, none is skipped)."""
        period = 1.0 / self.config.rate
        began = time.monotonic()
        tick = 0
        last = dt.datetime.min.replace(tzinfo=dt.UTC)
        while True:
            now = dt.datetime.now(dt.UTC)
            stamp = now if now > last else last + dt.timedelta(microseconds=1)
            last = stamp
            await self._write_all(stamp, time.monotonic() - began)
            tick += 1
            await asyncio.sleep(max(0.0, began + tick * period - time.monotonic()))

    async def _write_all(self, stamp: dt.datetime, elapsed: float) -> None:
        for nodeid, curve in zip(self._nodes, self._curves, strict=True):
            node = curve.spec.node
            value = curve.value(elapsed, self._excursions.get(node))
            datavalue = ua.DataValue(
                ua.Variant(value, ua.VariantType.Double),
                ua.StatusCode(),
                SourceTimestamp=cast(ua.DateTime, stamp),
                ServerTimestamp=cast(ua.DateTime, stamp),
            )
            await self._server.write_attribute_value(nodeid, datavalue)
            if self.config.record:
                self.produced.values[node].append((stamp, value))
            self.produced.count += 1

    async def stop(self, *, drain: float = 0.5) -> None:
        """Stop updating, let subscribers receive the last values for ``drain`` seconds (a
        clean shutdown loses nothing already written), then close the server."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            await asyncio.sleep(drain)
        await self._server.stop()

    async def read_setpoint(self, node: str) -> float:
        """The current value of a writable setpoint node (what a client last wrote)."""
        value = await self._server.get_node(node).read_value()
        return float(value)


class _Users(UserManager):
    """Signs in the configured users by name and password; anyone else is refused."""

    def __init__(self, users: tuple[tuple[str, str], ...]) -> None:
        self._users = dict(users)

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        known = self._users.get(username or "")
        if known is None or password is None:
            return None
        if not hmac.compare_digest(known.encode(), password.encode()):
            return None
        return User(role=UserRole.User, name=username)


def parse_excursion(text: str, signals: tuple[SignalSpec, ...]) -> Excursion:
    """``SIGNAL:VALUE:SECONDS[:AFTER]``; SIGNAL is a node id, ``BR01.Temperature``,
    ``BR-01.culture_temperature`` or a signal key found on one unit only."""
    parts = text.split(":")
    if len(parts) not in (3, 4):
        raise ValueError(f"excursion {text!r}: expected SIGNAL:VALUE:SECONDS[:AFTER]")
    name, *numbers = parts
    try:
        value, seconds, after = (float(n) for n in [*numbers, "0"][:3])
    except ValueError:
        raise ValueError(f"excursion {text!r}: VALUE, SECONDS and AFTER must be numbers") from None
    if seconds <= 0 or after < 0:
        raise ValueError(f"excursion {text!r}: SECONDS must be above 0 and AFTER not negative")
    return Excursion(_find_signal(name, signals).node, value, seconds, after)


def _find_signal(name: str, signals: tuple[SignalSpec, ...]) -> SignalSpec:
    found = [
        spec
        for spec in signals
        if name in (spec.node, spec.name, f"{spec.equipment}.{spec.key}", spec.key)
    ]
    if len(found) != 1:
        known = ", ".join(f"{spec.equipment}.{spec.key}" for spec in signals[:12])
        why = "is ambiguous" if found else "is not a simulated signal"
        raise ValueError(f"excursion signal {name!r} {why} (signals: {known}, ...)")
    return found[0]


async def serve(simulator: Simulator) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    await simulator.start()
    count = len(simulator.signals)
    secure = " (None, Basic256Sha256 Sign, SignAndEncrypt)" if simulator.config.pki else ""
    print(f"simulating {count} signals on {simulator.endpoint}{secure}", flush=True)
    try:
        await stopping.wait()
    finally:
        await simulator.stop()
        print("simulator stopped", flush=True)
