"""Browser fixtures: a real server process and Debian's Chromium through Playwright."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator

import httpx
import pytest
from playwright.async_api import Browser, async_playwright

from opencdmo.db.urls import DatabaseUrls
from opencdmo.settings import Settings
from tests.conftest import AUDIT_KEY, DATA_DIR, World

CHROMIUM = os.environ.get("OPENCDMO_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
async def server(database: DatabaseUrls, world: World, settings: Settings) -> AsyncIterator[str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCDMO_")}
    env.update(
        {
            "OPENCDMO_DATABASE_URL": database.owner,
            "OPENCDMO_DATA_DIR": str(DATA_DIR),
            "OPENCDMO_SECRET_KEY": "e2e",
            "OPENCDMO_AUDIT_KEY": AUDIT_KEY,
            "OPENCDMO_AUDIT_CHECKPOINT_DIR": str(settings.resolved_audit_checkpoint_dir()),
            "OPENCDMO_COOKIE_SECURE": "false",
            "OPENCDMO_ARGON2_TIME_COST": "1",
            "OPENCDMO_ARGON2_MEMORY_KIB": "1024",
            "OPENCDMO_LOG_LEVEL": "WARNING",
        }
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "opencdmo.cli", "serve", "--port", str(port), env=env
    )
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as client:
        for _ in range(100):
            try:
                if (await client.get(base + "/readyz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError("the server did not start")
    yield base
    process.terminate()
    await process.wait()


@pytest.fixture(scope="module")
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        await browser.close()
