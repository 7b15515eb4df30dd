"""Master recipes through the JSON API (the designer pages build on the same service)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated
from uuid import UUID

from litestar import get, post, put
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, JSONBody, QueryParameter

from opencdmo.recipes import publication, service
from opencdmo.recipes.model import content_to_dict
from opencdmo.recipes.schemas import (
    ChangeOut,
    Created,
    FromHub,
    PublicationOut,
    RecipeCreate,
    RecipeDetail,
    RecipePublish,
    RecipeSummary,
    RevisionOut,
    RevisionSave,
    Saved,
    SignatureOut,
    SignRequest,
    Transitioned,
)
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.signatures.service import signatures_for
from opencdmo.web.guards import requires

BASE = "/recipes"
ONE = BASE + "/{recipe_id:uuid}"
Revision = Annotated[int | None, QueryParameter(ge=1, required=False)]


@get(
    BASE,
    opt=requires("recipes", "read"),
    tags=["recipes"],
)
async def api_recipes(ctx: NamedDependency[TenantContext]) -> list[RecipeSummary]:
    """The tenant's master recipes."""
    rows = await service.list_recipes(ctx)
    wanted = RecipeSummary.__struct_fields__
    return [RecipeSummary(**{f: getattr(r, f) for f in wanted}) for r in rows]


@post(
    BASE,
    opt=requires("recipes", "edit"),
    tags=["recipes"],
    status_code=201,
)
async def api_create(ctx: NamedDependency[TenantContext], data: JSONBody[RecipeCreate]) -> Created:
    """A new draft master recipe (revision 1, empty); returns its id."""
    return Created(await service.create(ctx, data.name, data.product))


@get(
    ONE,
    opt=requires("recipes", "read"),
    tags=["recipes"],
)
async def api_recipe(
    ctx: NamedDependency[TenantContext], recipe_id: FromPath[UUID]
) -> RecipeDetail:
    """The recipe's current revision, status and signatures (each checked against the content
    of the revision it signed)."""
    row = await service.get(ctx, recipe_id)
    record = service.RecipeRecord(
        str(recipe_id), str(row.current_revision), row.author_id, row.content
    )
    signatures = [
        SignatureOut(
            s.signer_name,
            s.meaning,
            s.reason,
            s.signed_at,
            s.record_version,
            s.valid and s.record_version == record.record_version,
        )
        for s in await signatures_for(ctx, record)
    ]
    return RecipeDetail(
        row.id,
        row.name,
        row.product,
        row.status,
        row.current_revision,
        row.effective_revision,
        row.content,
        signatures,
    )


@put(
    ONE + "/content",
    opt=requires("recipes", "edit"),
    tags=["recipes"],
)
async def api_save(
    ctx: NamedDependency[TenantContext], recipe_id: FromPath[UUID], data: JSONBody[RevisionSave]
) -> Saved:
    """Save a revision based on ``base_revision``; 409 lists what others saved since."""
    content = content_to_dict(data.content)
    return Saved(await service.save(ctx, recipe_id, content, data.base_revision, data.message))


@get(
    ONE + "/revisions",
    opt=requires("recipes", "read"),
    tags=["recipes"],
)
async def api_revisions(
    ctx: NamedDependency[TenantContext], recipe_id: FromPath[UUID]
) -> list[RevisionOut]:
    """Every revision, newest first."""
    return [RevisionOut(**asdict(r)) for r in await service.history(ctx, recipe_id)]


@get(
    ONE + "/diff",
    opt=requires("recipes", "read"),
    tags=["recipes"],
)
async def api_diff(
    ctx: NamedDependency[TenantContext],
    recipe_id: FromPath[UUID],
    left: Revision = None,
    right: Revision = None,
) -> list[ChangeOut]:
    """Structural diff of two revisions (default: the previous and the current one): steps
    added, removed or moved, values changed."""
    current = int((await service.get(ctx, recipe_id)).current_revision)
    newer = right or current
    older = left or max(1, newer - 1)
    return [
        ChangeOut(c.op, c.path, c.old, c.new)
        for c in await service.compare(ctx, recipe_id, older, newer)
    ]


def _lifecycle(action: str, path: str, permission: str, summary: str) -> HTTPRouteHandler:
    """One API route per lifecycle command, all served by one handler: the signature
    (password re-entry, reason) and the transition in one unit of work."""

    async def handler(
        ctx: NamedDependency[TenantContext],
        recipe_id: FromPath[UUID],
        data: JSONBody[SignRequest],
        settings: NamedDependency[Settings],
    ) -> Transitioned:
        moved = await service.run(settings, ctx, recipe_id, action, data.password, data.reason)
        return Transitioned(moved, (await service.get(ctx, recipe_id)).status)

    handler.__doc__ = summary
    return post(
        ONE + path,
        opt=requires("recipes", permission),
        tags=["recipes"],
        status_code=200,
        operation_id=f"Recipe{action.title().replace('_', '')}",
        name=f"recipe-{action}",
    )(handler)


LIFECYCLE_ROUTES = [
    _lifecycle(
        "submit", "/submit", "submit", "The author signs 'authored' and sends it to review."
    ),
    _lifecycle(
        "approve",
        "/approve",
        "approve",
        "Sign 'approved'; the author cannot, and nobody signs one revision twice. "
        "`moved` says whether the approvals the tenant's flow needs are complete.",
    ),
    _lifecycle(
        "reject",
        "/reject",
        "approve",
        "Sign 'rejected' with the reason: a revision in review or approved returns to Draft.",
    ),
    _lifecycle(
        "make_effective",
        "/effective",
        "approve",
        "Sign 'approved for use': the approved revision is in force, the previous effective "
        "one superseded.",
    ),
    _lifecycle(
        "retire",
        "/retire",
        "approve",
        "Sign 'retired' with the reason: the recipe is no longer in force.",
    ),
]


@post(
    BASE + "/from-hub",
    opt=requires("recipes", "edit"),
    tags=["recipes"],
    status_code=201,
)
async def api_from_hub(ctx: NamedDependency[TenantContext], data: JSONBody[FromHub]) -> Created:
    """A master recipe from a HUB recipe (installed and forked, keeping its lineage)."""
    return Created(await service.create_from_hub(ctx, data.hub_item_id, data.version))


@post(
    ONE + "/publish",
    opt=requires("hub", "approve_publication"),
    tags=["recipes"],
    status_code=201,
)
async def api_publish(
    ctx: NamedDependency[TenantContext],
    recipe_id: FromPath[UUID],
    data: JSONBody[RecipePublish],
    settings: NamedDependency[Settings],
) -> Created:
    """Publish the effective revision to the HUB as this tenant's recipe, signed "approved for
    publication" (password re-entry) by someone other than the revision's author. Returns the
    HUB item id."""
    listing = publication.Listing(
        data.slug,
        data.version,
        data.summary,
        data.description,
        data.changelog,
        data.licence,
        list(data.tags),
        data.visibility,
    )
    return Created(
        await service.publish_to_hub(settings, ctx, recipe_id, listing, data.password, data.reason)
    )


@get(
    ONE + "/publications",
    opt=requires("recipes", "read"),
    tags=["recipes"],
)
async def api_publications(
    ctx: NamedDependency[TenantContext], recipe_id: FromPath[UUID]
) -> list[PublicationOut]:
    """The HUB versions this recipe was published as, newest first."""
    return [PublicationOut(**asdict(p)) for p in await service.publications(ctx, recipe_id)]


# The JSON API of a tenant, under /api/v1/t/{slug} (the app mounts it likewise).
api = [
    api_publish,
    api_publications,
    api_from_hub,
    api_recipes,
    api_create,
    api_recipe,
    api_save,
    api_revisions,
    api_diff,
    *LIFECYCLE_ROUTES,
]
