"""What Piccolo's query builder needs from the database beyond columns and values.

- ``DEFAULT``: a column's default as the migration declares it. Piccolo's insert sends every
  column; this value lets the database fill one in (``gen_random_uuid()``, ``now()``, an
  identity), exactly as an insert that names fewer columns.
- ``CLOCK``: the database's clock (``clock_timestamp()``), for times that the database
  compares with its own clock.
- ``run_on``: a Piccolo query on a connection that Piccolo's ambient transaction does not hold
  (an autonomous unit of work, a sealing round).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from piccolo.query.base import Query
from piccolo.querystring import QueryString

from opencdmo.db.engine import get_engine

DEFAULT = QueryString("DEFAULT")
CLOCK = QueryString("clock_timestamp()")


def since(seconds: float) -> QueryString:
    """The database's clock ``seconds`` ago."""
    return QueryString("clock_timestamp() - make_interval(secs => {})", float(seconds))


def connection() -> Any:
    """The connection of the transaction open in this context (for the few statements that
    stay raw SQL, each with its reason)."""
    transaction = get_engine().current_transaction.get()
    assert transaction is not None, "no transaction is open"
    return transaction.connection


async def clock(on: Any = None) -> datetime:
    """The database's clock, read in the transaction open in this context (or on ``on``)."""
    # Raw SQL: a value with no table to select it from.
    now = await (on or connection()).fetchval("SELECT clock_timestamp()")
    assert isinstance(now, datetime)
    return now


async def run_on(connection: Any, query: Query[Any, Any]) -> list[Any]:
    """The rows of a Piccolo query run on ``connection`` (asyncpg records)."""
    (querystring,) = query.querystrings
    sql, args = querystring.compile_string(engine_type="postgres")
    return list(await connection.fetch(sql, *args))
