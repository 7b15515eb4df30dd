"""Run a multi-statement SQL script inside a migration (asyncpg's simple query protocol)."""

from __future__ import annotations

from alembic import op
from sqlalchemy.util import await_only


def run(sql: str) -> None:
    driver = op.get_bind().connection.driver_connection
    assert driver is not None
    await_only(driver.execute(sql))
