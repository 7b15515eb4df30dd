"""Column defaults Piccolo lacks: a timestamp taken from the database's own clock."""

from __future__ import annotations

from typing import Literal

from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.querystring import QueryString


class DatabaseTime(TimestamptzNow):
    """Insert default of a ``timestamptz`` column: the function its migration's ``DEFAULT``
    names, evaluated by the database (Piccolo's own default is the app server's clock)."""

    def __init__(self, function: Literal["now()", "clock_timestamp()"] = "now()") -> None:
        self.function = function

    def python(self) -> QueryString:
        return QueryString(self.function)
