"""The capture worker: every unit of a tenant with an OPC UA description, subscribed through
the capture client, its samples stored through one ``samples.Batcher``.

``opencdmo equipment capture --tenant SLUG [--once SECONDS]`` runs it in its own process
(never in the web workers): until SIGINT or SIGTERM, or for SECONDS. One worker captures
all of the tenant's units; sharing them among several workers (leases) is not built yet.

Security: the worker's own application certificate is made on first start under the data
directory (``opcua/client``), and a server's certificate is trusted only when it is in the
tenant's trust list (``opcua/trust/<slug>``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from uuid import UUID

from opencdmo.db.tx import tenant_id_transaction
from opencdmo.equipment import queries, samples
from opencdmo.equipment.opcua_client import Backoff, CaptureClient, CaptureError, Security
from opencdmo.equipment.opcua_security import Mode

logger = logging.getLogger(__name__)

PARTITIONS_EVERY = 3600.0  # seconds between making the coming months' partitions


@dataclass(frozen=True)
class Unit:
    """A unit to capture: its id, code, endpoint, security and signal key -> node id."""

    id: UUID
    code: str
    endpoint: str
    mode: str
    signals: dict[str, str]


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
        found.append(Unit(row.id, row.code, described["endpoint"], mode, signals))
    return found


class Worker:
    """Captures ``units`` of a tenant until ``stop`` (or for ``seconds``)."""

    def __init__(
        self,
        tenant_id: UUID,
        units: list[Unit],
        *,
        pki: Path | None = None,
        backoff: Backoff | None = None,
        interval: float = 0.1,
        size: int = 500,
    ) -> None:
        self.tenant_id = tenant_id
        self.units = units
        self.pki = pki
        self.backoff = backoff
        self.batcher = samples.Batcher(tenant_id, interval=interval, size=size)
        self.clients: dict[str, CaptureClient] = {}
        self.report = Report(units=[u.code for u in units])
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    def _security(self, unit: Unit, slug_dir: str) -> Security:
        if unit.mode == "None" or self.pki is None:
            return Security()
        return Security(
            mode=cast(Mode, unit.mode),
            certificate_dir=self.pki / "client",
            trust_dir=self.pki / "trust" / slug_dir,
        )

    async def run(self, seconds: float | None = None, trust: str = "") -> Report:
        await samples.make_partitions(self.tenant_id)
        for unit in self.units:
            self.clients[unit.code] = CaptureClient(
                unit.endpoint,
                unit.signals,
                self.batcher.sink(unit.id),
                self._security(unit, trust),
                backoff=self.backoff,
            )
        async with self.batcher:
            tasks = {
                code: asyncio.create_task(client.run()) for code, client in self.clients.items()
            }
            upkeep = asyncio.create_task(self._partitions())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)
            for client in self.clients.values():
                client.stop()
            upkeep.cancel()
            for code, task in tasks.items():
                try:
                    await task
                except (CaptureError, OSError) as exc:
                    logger.error("capture of %s stopped: %s", code, exc)
                    self.report.failed[code] = str(exc)
            with contextlib.suppress(asyncio.CancelledError):
                await upkeep
        self.report.stored, self.report.offered = self.batcher.stored, self.batcher.offered
        return self.report

    async def _partitions(self) -> None:
        while True:
            await asyncio.sleep(PARTITIONS_EVERY)
            try:
                await samples.make_partitions(self.tenant_id)
            except Exception:  # the default partition takes the samples meanwhile
                logger.exception("making the samples' partitions failed")


async def capture(
    tenant_id: UUID,
    slug: str,
    *,
    seconds: float | None,
    pki: Path | None,
    on_start: Callable[[Worker], Any] | None = None,
) -> Report:
    """Run a worker for the tenant's units (``on_start`` is given it before it runs)."""
    worker = Worker(tenant_id, await units_to_capture(tenant_id), pki=pki)
    if on_start is not None:
        on_start(worker)
    return await worker.run(seconds, trust=slug)
