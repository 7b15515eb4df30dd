"""The capture worker: every unit of a tenant with an OPC UA description, subscribed through
the capture client, its samples stored through one ``samples.Batcher``.

``opencdmo equipment capture --tenant SLUG [--once SECONDS]`` runs it in its own process
(never in the web workers): until SIGINT or SIGTERM, or for SECONDS. One worker captures
the tenant's units it holds leases of: several workers share the units between them, and
when one dies another takes its units once their leases expire (``leases``).

Security: the worker's own application certificate is made on first start under the data
directory (``opcua/client``), and a server's certificate is trusted only when it is in the
tenant's trust list (``trust``: kept in the database, written to ``opcua/trust/<tenant id>``
before each round of leases).

Every few seconds the worker runs what it is given to evaluate over the stored samples (the
command gives it the batch excursions' evaluation). It does not seal the stored samples: the
job worker does (``seals``, the ``equipment.seal`` job), from the database alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from uuid import UUID, uuid4

from opencdmo.db.tx import tenant_id_transaction
from opencdmo.equipment import leases, queries, samples, trust
from opencdmo.equipment.opcua_client import Backoff, CaptureClient, CaptureError, Security
from opencdmo.equipment.opcua_security import Mode
from opencdmo.equipment.spool import DEFAULT_MAX_BYTES, Spool

logger = logging.getLogger(__name__)

PARTITIONS_EVERY = 3600.0  # seconds between making the coming months' partitions
KILLED_WAIT = 2.0  # seconds a cancelled worker gives its clients to end
JOIN_WAIT = 0.5  # seconds from a worker saying it is there to taking its share of the units


@dataclass(frozen=True)
class Unit:
    """A unit to capture: its id, code, endpoint, security, signal key -> node id, and the
    user name with the environment variable holding its password, if the server asks."""

    id: UUID
    code: str
    endpoint: str
    mode: str
    signals: dict[str, str]
    user: str | None = None
    password_env: str | None = None

    def credentials(self) -> tuple[str, str] | None:
        """The user name and password (from the environment), or None without a user."""
        if self.user is None or self.password_env is None:
            return None
        password = os.environ.get(self.password_env)
        if password is None:
            raise CaptureError(
                f"{self.code} signs in as {self.user}: set its password in the environment "
                f"variable {self.password_env}"
            )
        return self.user, password


@dataclass
class Report:
    """What a worker run did."""

    units: list[str] = field(default_factory=list)
    stored: int = 0
    offered: int = 0
    failed: dict[str, str] = field(default_factory=dict)


async def units_to_capture(tenant_id: UUID) -> list[Unit]:
    """The tenant's units with an OPC UA description naming at least one signal."""
    async with tenant_id_transaction(tenant_id):
        rows = await queries.units()
    found = []
    for row in rows:
        described = row.connection
        if not described or not described.get("signals"):
            continue
        signals = {key: spec["node"] for key, spec in described["signals"].items()}
        mode = described.get("security", {}).get("mode", "None")
        user = described.get("user") or {}
        found.append(
            Unit(
                row.id,
                row.code,
                described["endpoint"],
                mode,
                signals,
                user.get("name"),
                user.get("password_env"),
            )
        )
    return found


class Worker:
    """Captures the units it holds leases of until ``stop`` (or for ``seconds``).

    Every ``renew`` seconds it takes (or renews, for ``ttl`` seconds) the leases of the
    tenant's units (``units``, or every unit with an OPC UA description, read again each
    round), starts a capture client for each unit it gained and stops the one of each unit it
    lost. A clean stop releases its leases; a worker that dies keeps them until they expire,
    then another worker takes them. ``leases=False``: capture ``units`` without leases.
    """

    def __init__(
        self,
        tenant_id: UUID,
        units: list[Unit] | None = None,
        *,
        pki: Path | None = None,
        backoff: Backoff | None = None,
        interval: float = 0.1,
        size: int = 500,
        leases: bool = True,
        renew: float = 2.0,
        ttl: float = 6.0,
        name: str | None = None,
        spool: Path | None = None,
        spool_bytes: int = DEFAULT_MAX_BYTES,
        evaluate: Callable[[UUID], Awaitable[None]] | None = None,
        evaluate_every: float = 5.0,
    ) -> None:
        self.tenant_id = tenant_id
        self.units = units
        self.pki = pki
        self.backoff = backoff
        self.leases, self.renew, self.ttl = leases, renew, ttl
        # what runs every ``evaluate_every`` seconds over the stored samples (excursions)
        self.evaluate, self.evaluate_every = evaluate, evaluate_every
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid4().hex[:8]}"
        self.batcher = samples.Batcher(
            tenant_id,
            interval=interval,
            size=size,
            spool=None if spool is None else Spool(spool, self.name, max_bytes=spool_bytes),
        )
        self.clients: dict[UUID, CaptureClient] = {}
        self.report = Report()
        self._tasks: dict[UUID, asyncio.Task[None]] = {}
        self._codes: dict[UUID, str] = {}
        self._stopping = asyncio.Event()
        self._trust: Path | None = None

    def stop(self) -> None:
        self._stopping.set()

    @property
    def held(self) -> set[UUID]:
        """The units this worker captures now."""
        return set(self._tasks)

    def _security(self, unit: Unit) -> Security:
        if unit.mode == "None" or self.pki is None:
            return Security()
        return Security(
            mode=cast(Mode, unit.mode),
            certificate_dir=self.pki / "client",
            trust_dir=self._trust,
        )

    async def run(self, seconds: float | None = None) -> Report:
        await samples.make_partitions(self.tenant_id)
        loop = asyncio.get_running_loop()
        until = None if seconds is None else loop.time() + seconds
        async with self.batcher:
            upkeep: asyncio.Future[Any] = asyncio.gather(self._partitions(), self._evaluations())
            try:
                if self.leases:  # the first round says it is there; its share comes next
                    await self._round()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), min(self.renew, JOIN_WAIT))
                while not self._stopping.is_set():
                    await self._round()
                    wait = self.renew if until is None else min(self.renew, until - loop.time())
                    if wait <= 0:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), wait)
            except asyncio.CancelledError:  # a worker killed: its leases run out by themselves
                pending: list[asyncio.Future[Any]] = [*self._tasks.values(), upkeep]
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending, timeout=KILLED_WAIT)
                raise
            finally:
                upkeep.cancel()
            for unit_id in list(self._tasks):
                await self._end(unit_id)
            with contextlib.suppress(asyncio.CancelledError):
                await upkeep
        if self.leases:
            await leases.release(self.tenant_id, self.name)
        self.report.stored, self.report.offered = self.batcher.stored, self.batcher.offered
        return self.report

    async def _round(self) -> None:
        """Take or renew the leases; start and stop clients to match."""
        units = self.units if self.units is not None else await units_to_capture(self.tenant_id)
        by_id = {u.id: u for u in units}
        if self.pki is not None and any(u.mode != "None" for u in units):
            self._trust = await trust.trust_dir(self.tenant_id, self.pki)
        if self.leases:
            held = await leases.take(self.tenant_id, self.name, list(by_id), self.ttl)
        else:
            held = set(by_id)
        for unit_id in [u for u in self._tasks if u not in held]:
            logger.warning("lease of %s lost: no longer capturing it", self._codes[unit_id])
            await self._end(unit_id)
        for unit_id in held - set(self._tasks):
            await self._start(by_id[unit_id])

    async def _start(self, unit: Unit) -> None:
        """Start capturing a unit, from the newest sample stored of each of its signals (a
        unit taken over from a worker that died: what changed meanwhile is read from the
        server's history)."""
        try:
            user = unit.credentials()
        except CaptureError as exc:
            if self.report.failed.get(unit.code) != str(exc):
                logger.error("%s", exc)
            self.report.failed[unit.code] = str(exc)
            return
        client = CaptureClient(
            unit.endpoint,
            unit.signals,
            self.batcher.sink(unit.id),
            self._security(unit),
            backoff=self.backoff,
            resume_from=await samples.newest(self.tenant_id, unit.id, list(unit.signals)),
            user=user,
        )
        self.clients[unit.id], self._codes[unit.id] = client, unit.code
        self._tasks[unit.id] = asyncio.create_task(client.run())
        if unit.code not in self.report.units:
            self.report.units.append(unit.code)

    async def _end(self, unit_id: UUID) -> None:
        self.clients.pop(unit_id).stop()
        try:
            await self._tasks.pop(unit_id)
        except (CaptureError, OSError) as exc:
            logger.error("capture of %s stopped: %s", self._codes[unit_id], exc)
            self.report.failed[self._codes[unit_id]] = str(exc)

    async def _partitions(self) -> None:
        while True:
            await asyncio.sleep(PARTITIONS_EVERY)
            try:
                await samples.make_partitions(self.tenant_id)
            except Exception:  # the default partition takes the samples meanwhile
                logger.exception("making the samples' partitions failed")

    async def _evaluations(self) -> None:
        while self.evaluate is not None:
            await asyncio.sleep(self.evaluate_every)
            try:
                await self.evaluate(self.tenant_id)
            except Exception:  # the next round evaluates from where this one stopped
                logger.exception("evaluating the samples against the batches' limits failed")


async def capture(
    tenant_id: UUID,
    slug: str,
    *,
    seconds: float | None,
    pki: Path | None,
    spool: Path | None = None,
    on_start: Callable[[Worker], Any] | None = None,
    evaluate: Callable[[UUID], Awaitable[None]] | None = None,
) -> Report:
    """Run a worker for the tenant's units (``on_start`` is given it before it runs;
    ``evaluate`` runs every few seconds)."""
    worker = Worker(tenant_id, pki=pki, spool=spool, evaluate=evaluate)
    if on_start is not None:
        on_start(worker)
    return await worker.run(seconds)
