"""The database's clock in Piccolo writes.

Piccolo's insert sends every column and its update sends the values given; a time column that
must come from the database's clock (as the migrations' defaults and the audit trail's do),
not the app's, takes ``database_now()`` as its value.
"""

from __future__ import annotations

from piccolo.querystring import QueryString


def database_now() -> QueryString:
    """``clock_timestamp()``, as a value in a Piccolo insert or update."""
    return QueryString("clock_timestamp()")
