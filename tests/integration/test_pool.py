"""Shutting down never hangs on a connection that was not given back to the pool."""

from __future__ import annotations

import asyncpg
import pytest
from piccolo.engine.postgres import PostgresEngine

from opencdmo.db import engine as engines
from opencdmo.db.urls import DatabaseUrls


async def test_closing_a_pool_with_a_leaked_connection_does_not_hang(
    database: DatabaseUrls, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = PostgresEngine(config={"dsn": database.app})
    await engine.start_connection_pool(min_size=1, max_size=2)
    assert engine.pool is not None
    leaked = await engine.pool.acquire()  # never released, as after a cancelled COMMIT
    monkeypatch.setattr(engines, "POOL_CLOSE_SECONDS", 0.2)
    await engines.close_pool(engine)
    assert engine.pool is None
    with pytest.raises(asyncpg.InterfaceError):  # terminated with the pool
        await leaked.fetchval("SELECT 1")
