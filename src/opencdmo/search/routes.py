"""The search box: the results page, the suggestions fragment the box asks for as one types
(``search/_box.html``), and the JSON API."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Template

from opencdmo.scope import TenantContext
from opencdmo.search import service
from opencdmo.search.schemas import FoundOut, SearchResults
from opencdmo.web.guards import requires
from opencdmo.web.pages import page

# Everyone in the tenant may search; each group is there only for those who may read it.
READ = requires("tenant", "read")
Q = Annotated[
    str,
    QueryParameter(
        name="q",
        max_length=200,
        description="Words of a name or code (typos are tolerated), at most 200 characters.",
    ),
]


@get("/search", opt=READ, include_in_schema=False)
async def search_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], q: Q = ""
) -> Template:
    groups = await service.find(ctx, q, service.PAGE)
    return await page(request, "search/results.html", groups=groups, search_text=groups.text)


@get("/search/suggest", opt=READ, include_in_schema=False)
async def suggest_fragment(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], q: Q = ""
) -> Template:
    groups = await service.find(ctx, q, service.SUGGESTIONS)
    return await page(request, "search/_suggestions.html", groups=groups)


def _out(found: list[service.Found] | None) -> list[FoundOut] | None:
    if found is None:
        return None
    return [FoundOut(f.id, f.name, f.code, f.detail, f.url, f.badge) for f in found]


@get("/search", opt=READ, tags=["search"])
async def api_search(ctx: NamedDependency[TenantContext], q: Q = "") -> SearchResults:
    """Recipes, library items and HUB items whose name or code ``q`` finds, best first (at
    most 20 of each), tolerant of typos. A group is null when the caller may not read it
    (recipes: ``recipes:read``; library and HUB: ``hub:read``)."""
    groups = await service.find(ctx, q, service.PAGE)
    return SearchResults(groups.text, _out(groups.recipes), _out(groups.library), _out(groups.hub))


pages = [search_page, suggest_fragment]
api = [api_search]
