"""API structs of the search box."""

from __future__ import annotations

from uuid import UUID

from msgspec import Struct


class FoundOut(Struct):
    id: UUID
    name: str
    code: str  # slug of a library or HUB item, product of a recipe
    detail: str
    url: str  # the thing's page
    badge: str | None = None  # "Installed v1.0.0", "Fork"


class SearchResults(Struct):
    q: str
    recipes: list[FoundOut] | None  # None: the member may not read recipes
    library: list[FoundOut] | None  # None: the member may not read the library
    hub: list[FoundOut] | None  # None: the member may not read the HUB
