"""HUB browse and search, item pages, and the JSON API."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Request, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Template

from opencdmo.hub import labels, queries, search, service
from opencdmo.hub.schemas import (
    Dependency,
    FacetValue,
    ItemDetail,
    ItemSummary,
    SearchPage,
    VersionMark,
    VersionSummary,
    VisibilityRequest,
)
from opencdmo.scope import TenantContext
from opencdmo.web.guards import requires
from opencdmo.web.pages import page

READ = requires("hub", "read")
Q = Annotated[str, QueryParameter(name="q", max_length=200)]
Kind = Annotated[str | None, QueryParameter(name="kind", required=False, max_length=40)]
Modality = Annotated[str | None, QueryParameter(name="modality", required=False, max_length=40)]
Category = Annotated[str | None, QueryParameter(name="category", required=False, max_length=60)]
Publisher = Annotated[str | None, QueryParameter(name="publisher", required=False, max_length=60)]
Equipment = Annotated[
    str | None, QueryParameter(name="equipment_class", required=False, max_length=80)
]
Sort = Annotated[str, QueryParameter(name="sort", max_length=20)]
PageNo = Annotated[int, QueryParameter(name="page", ge=1, le=10_000)]
PerPage = Annotated[int, QueryParameter(name="per_page", ge=1, le=100)]


def _query(
    q: str,
    kind: str | None,
    modality: str | None,
    category: str | None,
    publisher: str | None,
    equipment: str | None,
    sort: str,
    page_no: int,
    per_page: int,
) -> search.SearchQuery:
    """The search asked for: relevance is the default order, by name while no words are
    typed (``SearchQuery.order``), so that a search typed into the box is by relevance."""
    return search.SearchQuery(
        q,
        kind or None,
        modality or None,
        category or None,
        publisher or None,
        equipment or None,
        sort,
        page_no,
        per_page,
    )


@get(
    "/hub",
    opt=READ,
    include_in_schema=False,
)
async def hub_page(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    q: Q = "",
    kind: Kind = None,
    modality: Modality = None,
    category: Category = None,
    publisher: Publisher = None,
    equipment_class: Equipment = None,
    sort: Sort = "relevance",
    page_no: PageNo = 1,
) -> Template:
    query = _query(q, kind, modality, category, publisher, equipment_class, sort, page_no, 20)
    result = await search.search(ctx, query)
    pages = max(1, -(-result.total // query.per_page))
    return await page(
        request,
        "hub/browse.html",
        block="results",
        query=query,
        result=result,
        pages=pages,
        sorts=list(search.SORTS),
        sort_names=labels.SORTS,
        order_names=labels.ORDERS,
        facet_names=labels.FACETS,
        label=labels.label,
    )


def _content_rows(content: dict[str, Any]) -> list[dict[str, Any]]:
    """Parameters of every phase, for the parameter table."""
    rows = []
    for phase in content.get("phases", []):
        for parameter in phase.get("parameters", []):
            rows.append({"phase": phase["name"], **parameter})
    return rows


@get(
    "/hub/items/{item_id:uuid}",
    opt=READ,
    include_in_schema=False,
)
async def item_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], item_id: FromPath[UUID]
) -> Template:
    item = await queries.get_item(ctx, item_id)
    latest = item.versions[0] if item.versions else None
    content: dict[str, Any] = {}
    tree: list[queries.Dependency] = []
    if latest is not None:
        content = (await queries.get_version(ctx, item_id, latest.version)).content
        tree = await queries.dependency_tree(ctx, latest.id)
    installed = await search.installed(ctx, item_id)
    return await page(
        request,
        "hub/item.html",
        item=item,
        content=content,
        tree=tree,
        parameters=_content_rows(content),
        installed=installed,
        upgrade=_newer(item.versions, installed),
        label=labels.label,
    )


def _newer(versions: tuple[queries.Version, ...], installed: search.Installed | None) -> str | None:
    """The newest version not yanked, when it is newer than the installed one."""
    if installed is None:
        return None
    for v in versions:  # newest first
        if v.yanked_at is None:
            return v.version if _semver(v.version) > _semver(installed.version) else None
    return None


def _semver(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _summary(hit: search.Hit) -> ItemSummary:
    return ItemSummary(
        hit.id,
        hit.kind,
        hit.slug,
        hit.name,
        hit.summary,
        hit.latest_version,
        hit.category,
        list(hit.modalities),
        hit.publisher,
        hit.install_count,
        hit.updated_at,
        hit.installed_version,
    )


@get(
    "/hub/items",
    opt=READ,
    tags=["hub"],
)
async def api_search(
    ctx: NamedDependency[TenantContext],
    q: Q = "",
    kind: Kind = None,
    modality: Modality = None,
    category: Category = None,
    publisher: Publisher = None,
    equipment_class: Equipment = None,
    sort: Sort = "relevance",
    page_no: PageNo = 1,
    per_page: PerPage = 20,
) -> SearchPage:
    """Full-text search over names, summaries, descriptions, parameters and tags, with facets
    (kind, modality, category, publisher, equipment class; each value with its display name).
    Tolerates typos in plain words ("mycoplsma" finds mycoplasma); ``q`` also takes web-search
    syntax (quotes, ``-word``, ``or``), searched as typed. Relevance (the default order while
    ``q`` has words; by name otherwise): name or slug equal to ``q``, then starting with it,
    then full-text rank, then matches through a correction. Each item says the version this
    tenant installed, if any."""
    query = _query(q, kind, modality, category, publisher, equipment_class, sort, page_no, per_page)
    result = await search.search(ctx, query)
    facets = {
        name: [FacetValue(v.value, v.count, v.label) for v in values]
        for name, values in result.facets.items()
    }
    return SearchPage(
        [_summary(r) for r in result.items], result.total, query.page, query.per_page, facets
    )


@get(
    "/hub/items/{item_id:uuid}",
    opt=READ,
    tags=["hub"],
)
async def api_item(ctx: NamedDependency[TenantContext], item_id: FromPath[UUID]) -> ItemDetail:
    """An item: versions with changelogs, the latest content and its dependency tree, and the
    version this tenant installed, if any."""
    item = await queries.get_item(ctx, item_id)
    installed = await search.installed(ctx, item_id)
    versions = [
        VersionSummary(
            v.version,
            v.content_hash,
            v.changelog,
            v.published_at,
            v.deprecated_message,
            v.yanked_at is not None,
        )
        for v in item.versions
    ]
    content: dict[str, Any] = {}
    dependencies: list[Dependency] = []
    if item.versions:
        latest = item.versions[0]
        content = (await queries.get_version(ctx, item_id, latest.version)).content
        dependencies = [
            Dependency(d.depth, d.kind, d.slug, d.name, d.version, d.pinned, d.item_id)
            for d in await queries.dependency_tree(ctx, latest.id)
        ]
    return ItemDetail(
        item.id,
        item.kind,
        item.slug,
        item.name,
        item.summary,
        item.publisher,
        item.visibility,
        item.install_count,
        item.latest_version,
        versions,
        dependencies,
        content,
        installed.version if installed else None,
    )


@put(
    "/hub/publications/{item_id:uuid}/visibility",
    opt=requires("hub", "publish"),
    tags=["hub"],
)
async def api_visibility(
    ctx: NamedDependency[TenantContext], item_id: FromPath[UUID], data: JSONBody[VisibilityRequest]
) -> None:
    """Make one of this tenant's published items public, private, or shared with tenants."""
    await service.set_visibility(ctx, item_id, data.visibility, data.shared_with)


@post(
    "/hub/publications/{item_id:uuid}/versions/{version:str}/mark",
    opt=requires("hub", "publish"),
    tags=["hub"],
    status_code=204,
)
async def api_mark(
    ctx: NamedDependency[TenantContext],
    item_id: FromPath[UUID],
    version: FromPath[str],
    data: JSONBody[VersionMark],
) -> None:
    """Deprecate (with a message) or yank one of this tenant's published versions; the
    reason, when given, is recorded with the audit event."""
    await service.mark_version(
        ctx,
        item_id,
        version,
        deprecated_message=data.deprecated_message,
        yank=data.yank,
        reason=data.reason,
    )


# Pages of a tenant, under /t/{slug} (the app mounts them in the context's router).
pages = [
    hub_page,
    item_page,
]

# The JSON API of a tenant, under /api/v1/t/{slug} (the app mounts it likewise).
api = [
    api_search,
    api_item,
    api_visibility,
    api_mark,
]
