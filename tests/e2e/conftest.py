"""Browser fixtures: a real server process and Debian's Chromium through Playwright."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright

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


# What the browser refused under the Content-Security-Policy (inline script or style, eval,
# a foreign host): every page a test opens is watched, and a test fails on any refusal.
CSP_VIOLATIONS: list[str] = []


def _watch(page: Page) -> None:
    def seen(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            CSP_VIOLATIONS.append(f"{page.url}: {message.text}")

    page.on("console", seen)


@pytest.fixture(scope="module")
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        open_page = browser.new_page

        async def new_page(**options: Any) -> Page:
            page = await open_page(**options)
            _watch(page)
            return page

        browser.new_page = new_page  # type: ignore[method-assign]
        yield browser
        await browser.close()


@pytest.fixture(autouse=True)
def no_csp_violations() -> Iterator[None]:
    CSP_VIOLATIONS.clear()
    yield
    assert CSP_VIOLATIONS == []
