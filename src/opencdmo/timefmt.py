"""Times as people read them: stored in UTC, shown in a site's zone with the zone named."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo


def localtime(value: datetime | None, zone: str = "UTC", fmt: str = "%Y-%m-%d %H:%M:%S %Z") -> str:
    """A UTC time shown in the site's zone, with the zone named (Part 11 manifestations)."""
    if value is None:
        return ""
    return value.astimezone(ZoneInfo(zone)).strftime(fmt)
