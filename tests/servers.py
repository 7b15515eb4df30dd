"""A real server process on the test database, as deployed (``opencdmo serve``): for the
browser tests, and for the tests of what a setting the in-process app does not have (a mail
server, say) changes in a page."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from opencdmo.db.urls import DatabaseUrls
from opencdmo.settings import Settings
from tests.conftest import AUDIT_KEY, DATA_DIR


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def served(
    database: DatabaseUrls, settings: Settings, **settings_env: str
) -> AsyncIterator[str]:
    """``async with served(database, settings, OPENCDMO_SMTP_URL=...) as base:`` - the server's
    address (http://127.0.0.1:<port>) once it answers /readyz; stopped on leaving. The
    secret and audit keys, the data and checkpoint directories are the tests' own (the
    in-process services open what the server seals); ``settings_env`` adds or overrides
    settings."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCDMO_")}
    env.update(
        {
            "OPENCDMO_DATABASE_URL": database.owner,
            "OPENCDMO_DATA_DIR": str(DATA_DIR),
            "OPENCDMO_SECRET_KEY": settings.resolved_secret_key(),
            "OPENCDMO_AUDIT_KEY": AUDIT_KEY,
            "OPENCDMO_AUDIT_CHECKPOINT_DIR": str(settings.resolved_audit_checkpoint_dir()),
            "OPENCDMO_COOKIE_SECURE": "false",
            "OPENCDMO_ARGON2_TIME_COST": "1",
            "OPENCDMO_ARGON2_MEMORY_KIB": "1024",
            "OPENCDMO_LOG_LEVEL": "WARNING",
            **settings_env,
        }
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "opencdmo.cli", "serve", "--port", str(port), env=env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(150):
                try:
                    if (await client.get(base + "/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("the server did not start")
        yield base
    finally:
        process.terminate()
        await process.wait()
