"""Run the alembic migrations as the owner role."""

from __future__ import annotations

from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config

from opencdmo.db.urls import APP_ROLE, DatabaseUrls

ROOT = Path(__file__).resolve().parents[3]
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(urls: DatabaseUrls) -> Config:
    ini = ROOT / "alembic.ini"
    config = Config(str(ini)) if ini.exists() else Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["sqlalchemy_url"] = urls.sqlalchemy_owner()
    return config


def upgrade(urls: DatabaseUrls, revision: str = "head") -> None:
    """Blocking: call from a thread when an event loop is running."""
    command.upgrade(alembic_config(urls), revision)


async def set_app_password(urls: DatabaseUrls, password: str) -> None:
    connection = await asyncpg.connect(urls.owner)
    try:
        quoted = await connection.fetchval("SELECT quote_literal($1::text)", password)
        await connection.execute(f"ALTER ROLE {APP_ROLE} PASSWORD {quoted}")
    finally:
        await connection.close()
