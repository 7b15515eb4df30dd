"""The audit trail as CSV or JSON, oldest first, with each event's hashes: the writer the
export job streams to a temporary file (and tests call directly)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from opencdmo.audit import queries
from opencdmo.canonical import canonical_json
from opencdmo.scope import TenantContext

# A spreadsheet reads a cell that begins with one of these as a formula (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
FORMATS = ("csv", "json")


def csv_cell(value: Any) -> Any:
    """A cell as written to the CSV export: text that a spreadsheet would run as a formula is
    prefixed with a single quote (OWASP), so it shows as the text it is."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def subject(flt: queries.AuditFilter, fmt: str) -> dict[str, Any]:
    """The format and filter of an audit trail export as kept (and as its audit event says)."""
    return {
        "format": fmt,
        **flt.as_query(),
        "since": flt.since.isoformat() if flt.since else None,
        "until": flt.until.isoformat() if flt.until else None,
    }


def from_subject(kept: dict[str, Any]) -> tuple[queries.AuditFilter, str]:
    """The filter and format ``subject`` kept."""
    since, until = kept.get("since"), kept.get("until")
    flt = queries.AuditFilter(
        str(kept.get("actor") or ""),
        str(kept.get("entity") or ""),
        str(kept.get("action") or ""),
        datetime.fromisoformat(since) if since else None,
        datetime.fromisoformat(until) if until else None,
    )
    return flt, str(kept["format"])


def media_type(fmt: str) -> str:
    return "text/csv" if fmt == "csv" else "application/json"


def file_name(ctx: TenantContext, fmt: str) -> str:
    return f"audit-{ctx.slug}.{fmt}"


async def chunks(ctx: TenantContext, flt: queries.AuditFilter, fmt: str) -> AsyncIterator[bytes]:
    """The export's bytes, a batch of events at a time (each batch read in a transaction of
    its own by ``queries.batches``)."""
    if fmt == "csv":
        yield ("\ufeff" + ",".join(queries.COLUMNS) + "\r\n").encode()
    else:
        yield b"["
    first = True
    async for batch in queries.batches(ctx, flt):
        buffer = io.StringIO()
        for event in batch:
            row = event.as_dict()
            if fmt == "csv":
                csv.writer(buffer, lineterminator="\r\n").writerow(
                    [csv_cell(row[c]) for c in queries.COLUMNS]
                )
            else:
                buffer.write(
                    ("" if first else ",")
                    + "\n"
                    + canonical_json(
                        {
                            **row,
                            "old_values": None
                            if row["old_values"] is None
                            else json.loads(row["old_values"]),
                            "new_values": None
                            if row["new_values"] is None
                            else json.loads(row["new_values"]),
                        }
                    )
                )
                first = False
        yield buffer.getvalue().encode()
    if fmt == "json":
        yield b"\n]\n"
