"""Batch numbers from the tenant's pattern (``batch_number_pattern`` in its manifest), for
example ``{site}-{yy}-{seq:04}`` -> ``LCG-BOS-26-0007``.

Placeholders: ``{site}`` (the site code), ``{yy}`` and ``{yyyy}`` (the year of creation, in
the site's time zone), ``{seq:0N}`` (the tenant's counter for the pattern's prefix, N digits
with leading zeros, 1 <= N <= 9; ``{seq}`` without width). Exactly one ``{seq...}`` is
required; any other brace is refused when the manifest is loaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

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
