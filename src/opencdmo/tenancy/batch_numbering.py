"""Batch numbers from the tenant's pattern (``batch_number_pattern`` in its manifest; set and
kept by the tenancy context, like the token policy), for example ``{site}-{yy}-{seq:04}`` ->
``LCG-BOS-26-0007``.

Placeholders: ``{site}`` (the site code), ``{yy}`` and ``{yyyy}`` (the year of creation, in
the site's time zone), ``{seq:0N}`` (the tenant's counter for the pattern's prefix, N digits
with leading zeros, 1 <= N <= 9; ``{seq}`` without width). Exactly one ``{seq...}`` is
required; any other brace is refused when the manifest is loaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.db.tx import tenant_transaction
from opencdmo.errors import ValidationFailed
from opencdmo.scope import TenantContext
from opencdmo.tenancy.queries import tenants

DEFAULT_PATTERN = "{site}-{yy}-{seq:04}"
MAX_LENGTH = 100
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_SEQ = re.compile(r"^seq(?::0([1-9]))?$")
_LITERAL = re.compile(r"^[A-Za-z0-9._/-]*$")


@dataclass(frozen=True)
class Parts:
    """What a number is made of: the site code, the date of creation and the counter."""

    site: str
    day: date
    seq: int


def problem(pattern: str) -> str | None:
    """What is wrong with a pattern, in a sentence (None: it is usable)."""
    if not pattern or len(pattern) > MAX_LENGTH:
        return f"must be 1 to {MAX_LENGTH} characters"
    names = _PLACEHOLDER.findall(pattern)
    unknown = [n for n in names if n not in ("site", "yy", "yyyy") and not _SEQ.match(n)]
    if unknown:
        return (
            f"unknown placeholder {{{unknown[0]}}}; the placeholders are {{site}}, {{yy}}, "
            "{yyyy} and {seq:0N}"
        )
    if sum(1 for n in names if _SEQ.match(n)) != 1:
        return "needs exactly one {seq} or {seq:0N} placeholder"
    if not _LITERAL.match(_PLACEHOLDER.sub("", pattern)):
        return "may hold only letters, digits, '-', '_', '.', '/' besides the placeholders"
    return None


def format_number(pattern: str, parts: Parts) -> str:
    """The batch number the pattern gives for these parts."""
    return _render(pattern, parts.site, parts.day, parts.seq)


def counter_key(pattern: str, site: str, day: date) -> str:
    """The key of the counter a number draws from: the pattern with every placeholder but the
    counter filled in, so that each site and year counts from 1 where the pattern says so."""
    return _render(pattern, site, day, None)


def _render(pattern: str, site: str, day: date, seq: int | None) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "site":
            return site
        if name == "yy":
            return f"{day.year % 100:02d}"
        if name == "yyyy":
            return f"{day.year:04d}"
        width = _SEQ.match(name)
        assert width is not None, f"unchecked pattern {pattern!r}"
        if seq is None:
            return "{seq}"
        return f"{seq:0{int(width.group(1) or 1)}d}"

    return _PLACEHOLDER.sub(fill, pattern)


def check_pattern(pattern: str) -> None:
    found = problem(pattern)
    if found:
        raise ValidationFailed(
            f"batch_number_pattern: {found}.", details={"field": "batch_number_pattern"}
        )


async def batch_number_pattern(ctx: TenantContext) -> str:
    """The tenant's batch number pattern, read in the transaction open in this context."""
    async with tenant_transaction(ctx):
        return (await tenants.this_tenant(ctx.tenant_id)).batch_number_pattern


async def set_batch_number_pattern(ctx: TenantContext, pattern: str) -> bool:
    """Set the tenant's pattern (numbers given before keep theirs); audited. False: unchanged."""
    await authorize(ctx, "tenant", "provision")
    check_pattern(pattern)
    async with tenant_transaction(ctx):
        old = (await tenants.this_tenant(ctx.tenant_id, lock=True)).batch_number_pattern
        if old == pattern:
            return False
        await tenants.set_batch_number_pattern(ctx.tenant_id, pattern)
        await audit.record(
            ctx,
            "tenant.batch_numbering_changed",
            "tenant",
            ctx.tenant_id,
            old={"batch_number_pattern": old},
            new={"batch_number_pattern": pattern},
        )
    return True
