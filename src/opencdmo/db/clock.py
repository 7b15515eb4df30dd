"""The database's clock in Piccolo writes.

Times the migrations default to ``now()`` or ``clock_timestamp()`` (and the audit trail's)
come from the database, never the app server. Piccolo's own timestamp default is the app's
clock, so a table declares ``DatabaseTime()`` as the column's default (inserts), and an
update that sets a time passes ``database_now()`` as its value.
"""

from __future__ import annotations

from typing import Literal

from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.querystring import QueryString


def database_now() -> QueryString:
    """``clock_timestamp()``, as a value in a Piccolo insert or update."""
    return QueryString("clock_timestamp()")


class DatabaseTime(TimestamptzNow):
    """Insert default of a ``timestamptz`` column: the function its migration's ``DEFAULT``
    names, evaluated by the database."""

    def __init__(self, function: Literal["now()", "clock_timestamp()"] = "now()") -> None:
        self.function = function

    def python(self) -> QueryString:
        return QueryString(self.function)
