"""Records the audit chain must cover: each context names the rows of its own that an audit
event vouches for (a batch record's entries, the signatures), as one statement that returns
the rows no event matches. ``opencdmo audit verify`` runs them on its snapshot, so a row
added or changed behind the application's back (an entry's value, a signature's hash) is a
finding like a broken link, and a record verifies on its own: its rows against the events,
the events against the chain.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from opencdmo.audit.walker import Finding


@dataclass(frozen=True)
class Coverage:
    """``sql`` takes the tenant id ($1) and returns ``id`` and ``what`` (words naming the
    row) for every row of the record without the audit event that vouches for it."""

    label: str
    sql: str


@dataclass(frozen=True)
class Check:
    """A check of a record that one statement cannot say (stored samples against their
    seals): ``run(connection, tenant_id)`` returns its findings."""

    label: str
    run: Callable[[Any, UUID], Awaitable[list[Finding]]]


_REGISTERED: dict[str, Coverage | Check] = {}


def register(found: Iterable[Coverage | Check]) -> None:
    for coverage in found:
        _REGISTERED[coverage.label] = coverage


def registered() -> list[Coverage | Check]:
    return list(_REGISTERED.values())


async def findings(connection: Any, tenant_id: UUID) -> list[Finding]:
    """Every uncovered row, on the verifier's snapshot connection."""
    found = []
    for coverage in _REGISTERED.values():
        if isinstance(coverage, Check):
            found += await coverage.run(connection, tenant_id)
            continue
        for row in await connection.fetch(coverage.sql, tenant_id):
            found.append(
                Finding(
                    "uncovered",
                    None,
                    f"{coverage.label} {row['id']} ({row['what']}) has no audit event that "
                    "vouches for it as stored",
                )
            )
    return found
