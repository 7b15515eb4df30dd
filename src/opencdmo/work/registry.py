"""The queue registry: queue providers found in ``opencdmo.work.queues``, the queues a member
may see, and the count of items awaiting their action (see the package docstring)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from opencdmo.access.service import can
from opencdmo.db.tx import read_view
from opencdmo.scope import TenantContext

SHOWN = 10  # items a queue shows on the dashboard
MAX_SHOWN = 100  # the most the API returns per queue


@dataclass(frozen=True)
class QueueItem:
    """One thing in a queue: what it is, where to act on it, since when and by whom it is
    there, and a note (the reason it was returned, the signature it needs)."""

    label: str
    link: str
    when: datetime | None = None
    who: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class Found:
    """What a provider's fetch returns: the first items and the size of the whole queue."""

    items: list[QueueItem]
    total: int


Fetch = Callable[[TenantContext, int], Awaitable[Found]]


@dataclass(frozen=True)
class QueueProvider:
    key: str
    title: str
    permission: tuple[str, str]  # what a member needs to see (and act on) the queue
    empty: str  # shown when the queue is empty: what the person may do next
    rank: int  # the dashboard shows queues by rank, lowest first
    fetch: Fetch
    action: bool = False  # its items await the person's own action: the notification counts them


@dataclass(frozen=True)
class Queue:
    """A queue as one member sees it."""

    key: str
    title: str
    count: int
    items: list[QueueItem]
    empty: str
    action: bool


QUEUES_PACKAGE = "opencdmo.work.queues"


@cache
def providers() -> tuple[QueueProvider, ...]:
    """Every provider of every module in ``opencdmo.work.queues``, by rank; two with one key
    are a configuration error."""
    package = importlib.import_module(QUEUES_PACKAGE)
    found: list[QueueProvider] = []
    for module in pkgutil.iter_modules(package.__path__):
        found += getattr(importlib.import_module(f"{QUEUES_PACKAGE}.{module.name}"), "QUEUES", ())
    keys = [p.key for p in found]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise RuntimeError(f"work queues declared twice: {', '.join(twice)}")
    return tuple(sorted(found, key=lambda p: (p.rank, p.key)))


async def visible(ctx: TenantContext) -> list[QueueProvider]:
    """The providers whose permission the member has."""
    return [p for p in providers() if await can(ctx, *p.permission)]


async def queues_for(ctx: TenantContext, shown: int = SHOWN) -> list[Queue]:
    """The queues the member may see, each with its first ``shown`` items and its count,
    read in one transaction (the page's read view, when one is open)."""
    mine = await visible(ctx)
    queues = []
    async with read_view(ctx):
        for provider in mine:
            found = await provider.fetch(ctx, shown)
            queues.append(
                Queue(
                    provider.key,
                    provider.title,
                    found.total,
                    found.items,
                    provider.empty,
                    provider.action,
                )
            )
    return queues


def awaiting(queues: list[Queue]) -> int:
    """How many items of these queues await the person's action."""
    return sum(q.count for q in queues if q.action)


async def notification_count(ctx: TenantContext) -> int:
    """How many items await the member's action, over every queue they may see: one query per
    such queue, each reading a single row (the count comes with it)."""
    mine = [p for p in await visible(ctx) if p.action]
    total = 0
    async with read_view(ctx):
        for provider in mine:
            total += (await provider.fetch(ctx, 1)).total
    return total
