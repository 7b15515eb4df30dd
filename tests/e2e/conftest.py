"""Browser fixtures: a real server process and Debian's Chromium through Playwright."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright

from opencdmo.db.urls import DatabaseUrls
from opencdmo.settings import Settings
from tests.conftest import World
from tests.servers import served

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


# One server and one browser for the whole run: each start costs seconds, and what a test
# needs of its own (a tenant, a person) it makes itself. A module that needs the server
# started otherwise overrides ``server`` (test_sso_browser: the provider's client secret).
@pytest.fixture(scope="session")
async def server(database: DatabaseUrls, world: World, settings: Settings) -> AsyncIterator[str]:
    async with served(database, settings, OPENCDMO_SECRET_KEY="e2e") as base:
        yield base


# What the browser refused under the Content-Security-Policy (inline script or style, eval,
# a foreign host): every page a test opens is watched, and a test fails on any refusal.
CSP_VIOLATIONS: list[str] = []
# Every document a page loads must be checked (check_page: axe-core, document width): the
# addresses loaded, and those checked.
LOADED: list[str] = []
CHECKED: set[str] = set()

AXE = (Path(__file__).parent / "vendor" / "axe-core-4.14.1" / "axe.min.js").read_text()
# WCAG 2.2 A and AA, and axe's best practices; serious and critical findings fail a test.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
FAILING = ("serious", "critical")
TABLET = {"width": 1024, "height": 768}
DESK = {"width": 1920, "height": 1080}
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("OPENCDMO_E2E_SCREENSHOTS", ROOT / "build" / "screenshots"))


def _watch(page: Page) -> None:
    def seen(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            CSP_VIOLATIONS.append(f"{page.url}: {message.text}")

    page.on("console", seen)
    page.on("load", lambda loaded: LOADED.append(loaded.url))


async def axe_violations(page: Page) -> list[str]:
    """The serious and critical axe-core findings on the page as it is now, each naming the
    rule and the elements (axe runs through the DevTools protocol: the page's CSP allows it)."""
    if not await page.evaluate("() => Boolean(window.axe)"):
        await page.evaluate(AXE)
    found = await page.evaluate(
        """tags => axe.run(document, {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]})
            .then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(" ") + ": " + n.html.slice(0, 160))})))""",
        AXE_TAGS,
    )
    return [
        f"{v['impact']} {v['id']} ({v['help']}) at " + "; ".join(v["nodes"][:5])
        for v in found
        if v["impact"] in FAILING
    ]


async def overflow(page: Page, size: dict[str, int]) -> str | None:
    """At this window size, whether the document scrolls sideways (it must not: tables scroll
    inside their card)."""
    await page.set_viewport_size(size)
    scroll, client = await page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    if scroll > client:
        return f"{page.url} at {size['width']}x{size['height']}: {scroll} px wide in {client} px"
    if size == DESK:
        rows = await page.evaluate(MENU_ROWS)
        if rows > 1:
            return f"{page.url} at {size['width']} px: the main menu takes {rows} rows"
    return await top_bar_overlap(page, size)


# How many rows the main menu's entries take (a desktop's screen holds them in one).
MENU_ROWS = """() => new Set([...document.querySelectorAll('.mainnav .nav-item')]
  .filter(e => e.offsetParent !== null).map(e => Math.round(e.getBoundingClientRect().top))).size"""


# The parts of the top bar (brand, tenant switcher, search, notifications and user menu) that
# are drawn over one another, as "a / b" lines (hidden parts skipped).
TOP_BAR_OVERLAPS = """() => {
  const parts = [...document.querySelectorAll(
    '.topbar-inner > *, .topbar-end > *, .tenant-switcher select, .topsearch input')]
    .filter(e => e.offsetParent !== null && !e.classList.contains('topbar-end'));
  const box = e => e.getBoundingClientRect();
  const name = e => e.className || e.tagName;
  const found = [];
  parts.forEach((a, i) => parts.slice(i + 1).forEach(b => {
    if (a.contains(b) || b.contains(a)) return;
    const p = box(a), q = box(b);
    if (p.left < q.right - 1 && q.left < p.right - 1 && p.top < q.bottom - 1 && q.top < p.bottom - 1)
      found.push(name(a) + ' / ' + name(b));
  }));
  return found;
}"""


async def top_bar_overlap(page: Page, size: dict[str, int]) -> str | None:
    """At this window size, whether parts of the top bar are drawn over one another (a long
    organisation name must give way, never cover the search box)."""
    found: list[str] = await page.evaluate(TOP_BAR_OVERLAPS)
    if found:
        return f"{page.url} at {size['width']}x{size['height']}: top bar overlaps {found}"
    return None


async def check_page(page: Page, name: str, *, scripts: bool = True) -> None:
    """What every page a test visits must pass: no serious or critical axe-core violation, no
    horizontal scrolling of the document and no overlap in the top bar at 1024x768 (nor at
    1920 px), the main menu on one row at 1920 px, and a screenshot of it as a test artefact
    (build/screenshots, not committed).

    scripts=False: a page opened without JavaScript, where axe cannot run (it needs timers);
    its layout (html.no-js) is checked by ``axe_without_scripts`` on a page with them."""
    await page.wait_for_load_state("load")
    # Colours as they rest: no transition half-way (Bootstrap drops them under reduced
    # motion) and no hover left on the control a test just clicked.
    await page.emulate_media(reduced_motion="reduce")
    await page.mouse.move(0, 0)
    size = page.viewport_size or TABLET
    problems = [p for p in [await overflow(page, TABLET), await overflow(page, DESK)] if p]
    await page.set_viewport_size(TABLET)
    if scripts:
        problems += await axe_violations(page)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    await page.set_viewport_size(size)
    CHECKED.add(page.url)
    assert not problems, f"{name} ({page.url}):\n" + "\n".join(problems)


async def axe_without_scripts(page: Page) -> list[str]:
    """The axe-core findings on this page laid out as without scripts (html.no-js: dialogs
    as forms in place), then back."""
    await page.evaluate("() => document.documentElement.classList.replace('js', 'no-js')")
    try:
        return await axe_violations(page)
    finally:
        await page.evaluate("() => document.documentElement.classList.replace('no-js', 'js')")


async def visit(page: Page, url: str, name: str, *, scripts: bool = True) -> None:
    """Open a page and check it."""
    response = await page.goto(url)
    assert response is not None and response.ok, f"{url}: {response and response.status}"
    await check_page(page, name, scripts=scripts)


@pytest.fixture(scope="session")
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        open_page = browser.new_page

        async def new_page(**options: Any) -> Page:
            page = await open_page(**{"viewport": TABLET, **options})
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


@pytest.fixture(autouse=True)
def every_page_checked() -> Iterator[None]:
    LOADED.clear()
    CHECKED.clear()
    yield
    assert [url for url in LOADED if url not in CHECKED] == [], "pages loaded but not checked"
