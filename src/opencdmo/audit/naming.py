"""Helpers for the contexts' audit-name resolvers (see ``audit.sentences``)."""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID


def uuids(ids: Iterable[str]) -> list[UUID]:
    """The ids that are UUIDs (an event's entity id is text: skip any other)."""
    found = []
    for ident in ids:
        try:
            found.append(UUID(ident))
        except ValueError:
            continue
    return found
