"""A page's export as a person gets it: the form posted, the export's page polled until
the job worker built it, then the file (tests using it need the ``job_worker`` fixture)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import pytest

from opencdmo.settings import Settings


def _wait(settings: Settings, seconds: int) -> Iterator[None]:
    kept = settings.export_wait_seconds
    object.__setattr__(settings, "export_wait_seconds", seconds)  # the session's, put back
    yield
    object.__setattr__(settings, "export_wait_seconds", kept)


@pytest.fixture
def short_export_wait(settings: Settings) -> Iterator[None]:
    """The API waits one second for an export to be built (then answers 202)."""
    yield from _wait(settings, 1)


@pytest.fixture(scope="module")
def no_export_wait(settings: Settings) -> Iterator[None]:
    """The API answers 202 at once for an export not built (for a module that calls every
    route, with no job worker)."""
    yield from _wait(settings, 0)


async def export_by_form(
    client: Any, slug: str, url: str, data: dict[str, str] | None = None
) -> Any:
    """Post the export form at ``url`` and return the download of the built export."""
    await client.prime()
    asked = await client.send("POST", url, data=data or {})
    assert asked.status_code == 303, asked.text
    location = asked.headers["location"]
    assert re.fullmatch(rf"/t/{re.escape(slug)}/exports/[0-9a-f-]{{36}}", location), location
    for _ in range(600):
        page = await client.get(location, headers={"HX-Request": "true"})
        assert page.status_code == 200, page.text
        state = re.search(r'data-state="(\w+)"', page.text)
        assert state, page.text
        if state.group(1) == "done":
            return await client.get(location + "/file")
        assert state.group(1) != "failed", page.text
        await asyncio.sleep(0.1)
    raise AssertionError(f"the export at {location} was never built")
