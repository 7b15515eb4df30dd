"""The job worker: up to ``worker_concurrency`` jobs at once, woken by ``NOTIFY`` when a job
is enqueued (and every ``job_poll_seconds`` in any case: a job retried after its backoff, one
whose worker stopped).

A running job beats (``heartbeat_at``) every third of ``job_stale_seconds``; a worker killed
mid-job stops beating and another takes the job again once the beat is that old. ``stop()``
(SIGTERM, SIGINT) takes no new job and waits for the running ones to finish, at most
``worker_stop_seconds``; one still running then is put back in the queue, its attempt not
counted, for the next worker.

Periodic work: the worker enqueues each periodic job once per period (``dedupe_key`` names
the period, so several workers enqueue it once between them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from uuid import uuid4

from opencdmo.db import jobs as queue
from opencdmo.db.engine import get_engine
from opencdmo.db.jobs import Job
from opencdmo.db.tx import autonomous
from opencdmo.errors import AppError
from opencdmo.jobs import registry, tasks
from opencdmo.settings import Settings

log = logging.getLogger("opencdmo.jobs")


@dataclass(frozen=True)
class Periodic:
    """A job the worker enqueues every ``seconds`` (for no tenant: it sweeps them all)."""

    kind: str
    seconds: int


def periodic_jobs(settings: Settings) -> list[Periodic]:
    found = []
    if settings.lot_expiry_seconds > 0:
        found.append(Periodic(tasks.LOT_EXPIRY, settings.lot_expiry_seconds))
    if settings.smtp_url and settings.notify_seconds > 0:
        found.append(Periodic(tasks.WORK_NOTIFY, settings.notify_seconds))
    if settings.prune_seconds > 0:
        found.append(Periodic(tasks.PRUNE, settings.prune_seconds))
    if settings.quarantine_sweep_seconds > 0:
        found.append(Periodic(tasks.QUARANTINE_SWEEP, settings.quarantine_sweep_seconds))
    if settings.seal_seconds > 0:
        found.append(Periodic(tasks.EQUIPMENT_SEAL, settings.seal_seconds))
    return found


@dataclass
class Worker:
    settings: Settings
    name: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid4().hex[:8]}"
    )
    handlers: dict[str, registry.Handler] | None = None
    periodic: list[Periodic] | None = None
    on_done: Callable[[Job, str], None] | None = None  # (job, "done" | "queued" | "failed")

    def __post_init__(self) -> None:
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._running: dict[asyncio.Task[None], Job] = {}
        self._periods: dict[str, int] = {}  # the last period each periodic job was enqueued

    def stop(self) -> None:
        """Take no new job; the running ones finish (see the module)."""
        self._stopping.set()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self, *, until_idle: bool = False) -> None:
        """Work until ``stop()`` (``until_idle``: until no job is due and none is running)."""
        registry.configure(self.settings)
        handlers = self.handlers if self.handlers is not None else registry.load()
        periodic = self.periodic if self.periodic is not None else periodic_jobs(self.settings)
        engine = get_engine()
        assert engine.pool is not None, "the pool is not started"
        listener = await engine.pool.acquire()
        await listener.add_listener(queue.CHANNEL, self._notified)
        try:
            while not self.stopping:
                await self._enqueue_periodic(periodic)
                claimed = await self._fill(handlers)
                if until_idle and not claimed and not self._running:
                    break
                self._wake.clear()
                waiting = {asyncio.ensure_future(self._wake.wait()), *self._running}
                await asyncio.wait(
                    waiting,
                    timeout=self.settings.job_poll_seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for task in waiting - set(self._running):
                    if not task.done():
                        task.cancel()
        finally:
            await self._finish_running()
            with contextlib.suppress(Exception):
                await listener.remove_listener(queue.CHANNEL, self._notified)
            await engine.pool.release(listener)

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def _fill(self, handlers: dict[str, registry.Handler]) -> bool:
        claimed = False
        while not self.stopping and len(self._running) < self.settings.worker_concurrency:
            stale = self.settings.job_stale_seconds
            job = await queue.claim(self.name, stale, sorted(handlers))
            if job is None:
                break
            claimed = True
            task = asyncio.ensure_future(self._run_one(job, handlers))
            self._running[task] = job
            task.add_done_callback(self._ended)
        return claimed

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        self._wake.set()

    async def _run_one(self, job: Job, handlers: dict[str, registry.Handler]) -> None:
        beating = asyncio.ensure_future(self._beat(job))
        outcome = "done"
        try:
            await handlers[job.kind](job)
        except asyncio.CancelledError:
            beating.cancel()
            await queue.release(job.id, self.name)
            raise
        except Exception as exc:
            message = exc.message if isinstance(exc, AppError) else f"{type(exc).__name__}: {exc}"
            log.warning("job %s (%s) failed: %s", job.id, job.kind, message)
            backoff = self.settings.job_retry_seconds
            outcome = await queue.failed(job.id, self.name, message, backoff) or "lost"
        else:
            await queue.done(job.id, self.name)
        finally:
            beating.cancel()
        if self.on_done is not None:
            self.on_done(job, outcome)

    async def _beat(self, job: Job) -> None:
        every = max(self.settings.job_stale_seconds / 3, 0.2)
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(Exception):
                await queue.beat(job.id, self.name)

    async def _finish_running(self) -> None:
        if not self._running:
            return
        tasks = set(self._running)
        _, late = await asyncio.wait(tasks, timeout=self.settings.worker_stop_seconds)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)

    async def _enqueue_periodic(self, periodic: list[Periodic]) -> None:
        for p in periodic:
            period = int(time.time() // p.seconds)
            if self._periods.get(p.kind) == period:
                continue
            key = f"{p.kind}:{p.seconds}:{period}"
            async with autonomous(None) as conn:
                await queue.enqueue(p.kind, {}, tenant_id=None, dedupe_key=key, on=conn)
            self._periods[p.kind] = period
