"""A short-lived cache of API token lookups, invalidated by the database.

An API request with a bearer token costs a lookup (token, user, membership, roles, tenant)
before its own work. Positive lookups are kept for ``auth_cache_seconds`` and dropped as
soon as anything they depend on changes: triggers on tokens, users, memberships, role
assignments, tenants and sites send ``NOTIFY opencdmo_auth`` on commit, and every process
listens on a dedicated connection. A process also drops its cache after each unsafe request
it served itself. Unknown or refused tokens are never cached: every failure reaches the
database.

The cache is used only while the listener is connected: if the connection drops, lookups go
to the database until it is back. A lookup that overlaps an invalidation is not stored (the
generation changed while it ran). What remains is the delivery time of a notification from
another process (milliseconds): a request arriving in that window is served as before the
change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import asyncpg

CHANNEL = "opencdmo_auth"
log = logging.getLogger("opencdmo.authcache")


class TokenCache:
    def __init__(self) -> None:
        self.ttl = 0.0
        self.generation = 0
        self._entries: dict[tuple[str, str], tuple[float, Any]] = {}
        self._listener: asyncpg.Connection | None = None
        self._listening = False
        self._task: asyncio.Task[None] | None = None
        self._url = ""

    @property
    def active(self) -> bool:
        return self.ttl > 0 and self._listening

    @property
    def listener_pid(self) -> int | None:
        """The listening connection's server process (None while there is none)."""
        return self._listener.get_server_pid() if self._listening and self._listener else None

    def get(self, key: tuple[str, str]) -> Any:
        if not self.active:
            return None
        entry = self._entries.get(key)
        if entry is None or time.monotonic() - entry[0] > self.ttl:
            return None
        return entry[1]

    def put(self, key: tuple[str, str], row: Any, generation: int) -> None:
        """Keep a lookup made at ``generation``, unless something changed since."""
        if self.active and generation == self.generation:
            self._entries[key] = (time.monotonic(), row)

    def forget(self, key: tuple[str, str]) -> None:
        self._entries.pop(key, None)

    def invalidate(self, *_: Any) -> None:
        self.generation += 1
        self._entries.clear()

    async def start(self, url: str, ttl_seconds: float) -> None:
        self.ttl, self._url = ttl_seconds, url
        if ttl_seconds > 0:
            await self._connect()

    async def _connect(self) -> None:
        connection = await asyncpg.connect(self._url)
        await connection.add_listener(CHANNEL, self.invalidate)
        connection.add_termination_listener(self._lost)
        self.invalidate()
        self._listener, self._listening = connection, True

    def _lost(self, *_: Any) -> None:
        """The listener is gone: stop using the cache and reconnect in the background."""
        self._listening = False
        self.invalidate()
        self._listener = None
        if self.ttl > 0 and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        delay = 0.5
        while self.ttl > 0 and self._listener is None:
            try:
                await self._connect()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("auth cache listener: %s; retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def stop(self) -> None:
        self.ttl, self._listening = 0, False
        self.invalidate()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        listener, self._listener = self._listener, None
        if listener is not None and not listener.is_closed():
            await listener.close()


tokens = TokenCache()
