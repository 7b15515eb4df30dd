"""The Piccolo engine on an asyncpg pool, bound to every context's tables at start."""

from __future__ import annotations

import asyncio
import importlib
import logging
import pkgutil
from typing import Any

from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

import opencdmo
from opencdmo.db.urls import DatabaseUrls

_engine: PostgresEngine | None = None

log = logging.getLogger(__name__)


def discover_tables() -> list[type[Table]]:
    """Every Piccolo table declared in an ``opencdmo.<context>.tables`` module."""
    found: list[type[Table]] = []
    for module in pkgutil.iter_modules(opencdmo.__path__):
        if not module.ispkg:
            continue
        name = f"opencdmo.{module.name}.tables"
        try:
            tables = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        for value in vars(tables).values():
            is_table = isinstance(value, type) and issubclass(value, Table) and value is not Table
            if is_table and value.__module__ == name:
                found.append(value)
    return found


def bind_engine(urls: DatabaseUrls) -> PostgresEngine:
    """Build the engine (it checks the server version synchronously) and bind all tables."""
    global _engine
    engine = PostgresEngine(config={"dsn": urls.app}, extensions=())
    for table in discover_tables():
        table._meta.db = engine
    _engine = engine
    return engine


def get_engine() -> PostgresEngine:
    if _engine is None:
        raise RuntimeError("the database engine is not bound: call bind_engine() at start")
    return _engine


async def release_reset(connection: Any) -> None:
    """On release asyncpg still rolls back an open transaction; the full reset query (RESET ALL,
    UNLISTEN, advisory unlock) is skipped: this app keeps no session state (the tenant is set
    per transaction only), and the reset would cost a round trip per checkout."""


async def start_pool(engine: PostgresEngine, size: int) -> None:
    options: dict[str, Any] = {
        "min_size": 1,
        "max_size": size,
        "reset": release_reset,
        "server_settings": {"application_name": "opencdmo", "timezone": "UTC"},
    }
    await engine.start_connection_pool(**options)


POOL_CLOSE_SECONDS = 10.0


async def close_pool(engine: PostgresEngine) -> None:
    """Close the pool gracefully; a connection never released (a transaction cancelled during
    COMMIT leaks one) would keep it waiting for ever, so after POOL_CLOSE_SECONDS the rest are
    terminated and the shutdown goes on."""
    pool = engine.pool
    if pool is None:
        return
    try:
        async with asyncio.timeout(POOL_CLOSE_SECONDS):
            await pool.close()
    except TimeoutError:
        log.warning(
            "the pool did not close within %ss; terminating its connections", POOL_CLOSE_SECONDS
        )
        pool.terminate()
    engine.pool = None
