"""A job worker running in the test process against the real database, for tests whose
routes hand work to jobs (``job_worker``: import it into the test module), and one that
seals equipment samples while a capture worker stores them (``seal_worker``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from litestar import Litestar

from opencdmo.jobs import tasks
from opencdmo.jobs.worker import Periodic, Worker
from opencdmo.settings import Settings


@pytest.fixture
async def job_worker(app: Litestar, settings: Settings) -> AsyncIterator[Worker]:
    """The project's transfer and export jobs worked while the test runs (the periodic ones not)."""
    quick: dict[str, Any] = {"job_poll_seconds": 1, "job_retry_seconds": 1}
    worker = Worker(
        replace(settings, **quick),
        handlers={
            tasks.TRANSFER_VERIFY: tasks.transfer_verify,
            tasks.TRANSFER_IMPORT: tasks.transfer_import,
            tasks.TRANSFER_VERIFY_UPLOAD: tasks.transfer_verify_upload,
            tasks.EXPORT_BUILD: tasks.export_build,
        },
        periodic=[],
    )
    task = asyncio.create_task(worker.run())
    yield worker
    worker.stop()
    await asyncio.wait_for(task, 60)


@pytest.fixture
async def seal_worker(app: Litestar, settings: Settings) -> AsyncIterator[Worker]:
    """The sealing jobs worked while the test runs: ``equipment.seal`` every second (one
    second periods, sealed as soon as they end) and the ``equipment.reseal`` jobs stores
    enqueue."""
    quick: dict[str, Any] = {
        "job_poll_seconds": 1,
        "job_retry_seconds": 1,
        "seal_seconds": 1,
        "seal_period_seconds": 1,
        "seal_grace_seconds": 0,
    }
    worker = Worker(
        replace(settings, **quick),
        handlers={
            tasks.EQUIPMENT_SEAL: tasks.equipment_seal,
            tasks.EQUIPMENT_RESEAL: tasks.equipment_reseal,
        },
        periodic=[Periodic(tasks.EQUIPMENT_SEAL, 1)],
    )
    task = asyncio.create_task(worker.run())
    yield worker
    worker.stop()
    await asyncio.wait_for(task, 60)
