"""Master recipe pages: the list, a recipe with its procedure, revisions and signature
manifestations, and the lifecycle forms (the drag-and-drop designer builds on these)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import MediaType, Request, get, post
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath
from litestar.response import Redirect, Response, Template

from opencdmo.db.tx import read_view
from opencdmo.errors import AppError, ValidationFailed
from opencdmo.fields import NAME_MAX, check_name, check_text
from opencdmo.hub.content import common_enum
from opencdmo.recipes import documents, mbr, publication, service
from opencdmo.recipes.batchml_recipe import service as batchml
from opencdmo.recipes.content import step_content
from opencdmo.recipes.queries import RecipeDetail
from opencdmo.recipes.routes import Revision
from opencdmo.recipes.schemas import RecipeCreate, SignRequest
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.signatures.service import signatures_for
from opencdmo.web.flash import see_other
from opencdmo.web.guards import requires
from opencdmo.web.pages import form_data, form_struct, page


@get(
    "/recipes",
    opt=requires("recipes", "read"),
    include_in_schema=False,
)
async def recipes_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Template:
    return await _list_page(request, ctx)


async def _list_page(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    *,
    status: int = 200,
    error: AppError | None = None,
    typed: dict[str, Any] | None = None,
) -> Template:
    """The list; after a refused new recipe, the form again with what was typed and the
    message next to the field."""
    return await page(
        request,
        "recipes/list.html",
        status_code=status,
        recipes=await service.list_recipes(ctx),
        error=error.message if error else None,
        field=error.details.get("field") if error and isinstance(error.details, dict) else None,
        typed=typed or {},
    )


@post(
    "/recipes",
    opt=requires("recipes", "edit"),
    include_in_schema=False,
    status_code=303,
)
async def create_form(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext]
) -> Redirect | Template:
    data = await form_data(request)
    typed = {k: str(data.get(k, "")) for k in ("name", "product")}
    try:
        name = check_name(typed["name"], "name", "The recipe's name")
        product = check_text(typed["product"], "product", "The product", limit=NAME_MAX)
        await form_struct(request, RecipeCreate)  # and the API's struct, with its limits
        recipe_id = await service.create(ctx, name, product)
    except ValidationFailed as exc:
        return await _list_page(request, ctx, status=422, error=exc, typed=typed)
    return Redirect(f"/t/{ctx.slug}/recipes/{recipe_id}", status_code=303)


async def render_recipe_page(
    request: Request[Any, Any, Any],
    ctx: TenantContext,
    recipe_id: UUID,
    *,
    status: int = 200,
    error: str | None = None,
    form: dict[str, Any] | None = None,
    document_problem: dict[str, Any] | None = None,
    upload_max_bytes: int | None = None,
) -> Template:
    """The recipe's page, also as re-rendered after a refused command here or in another
    context that acts on a recipe from its page (documents, tech transfer)."""
    # A GET already runs in the app's read view; a form re-rendered after a refused command
    # does not, so the page opens (or joins) one itself.
    async with read_view(ctx):
        recipe = await service.get(ctx, recipe_id)
        record = service.RecipeRecord(
            str(recipe_id), str(recipe.current_revision), recipe.author_id, recipe.content
        )
        signatures = await signatures_for(ctx, record)
        history = await service.history(ctx, recipe_id)
        published = await service.publications(ctx, recipe_id)
        library = await service.library(ctx)
        pinned = await service.pinned_contents(ctx, recipe.content)
        imported = await batchml.import_of(ctx, recipe_id)
        attached = await documents.documents(ctx, recipe_id)
    flow = mbr.flow(recipe.content, library, pinned)
    listing = {
        "slug": published[0].slug if published else publication.slugify(recipe.name),
        "version": publication.next_version(published[0].version if published else None),
        "summary": "",
        "description": "",
        "changelog": "" if published else "Initial release.",
        "licence": "CC-BY-4.0",
        "tags": "",
        "visibility": "private",
        **{k: str(v) for k, v in (form or {}).items() if k not in ("password", "csrf_token")},
    }
    return await page(
        request,
        "recipes/detail.html",
        status_code=status,
        recipe=recipe,
        signatures=signatures,
        history=history,
        error=error,
        current=str(recipe.current_revision),
        publications=published,
        listing=listing,
        licences=common_enum("licence"),
        publish_open=form is not None and form.get("action") is None,
        lifecycle=lifecycle_actions(recipe),
        lifecycle_form=form if form is not None and form.get("action") else None,
        step_of=lambda op: step_content(op, library, pinned),
        states=lambda op: mbr.range_states(op, library, pinned),
        flow=flow,
        box=(mbr.BOX_W, mbr.BOX_H),
        imported=imported,
        documents=attached,
        document_kinds=documents.KINDS,
        document_problem=document_problem,
        upload_max_bytes=upload_max_bytes,
    )


@get(
    "/recipes/{recipe_id:uuid}",
    opt=requires("recipes", "read"),
    include_in_schema=False,
)
async def recipe_page(
    request: Request[Any, Any, Any],
    settings: NamedDependency[Settings],
    ctx: NamedDependency[TenantContext],
    recipe_id: FromPath[UUID],
) -> Template:
    return await render_recipe_page(
        request, ctx, recipe_id, upload_max_bytes=settings.upload_max_bytes
    )


def lifecycle_actions(recipe: RecipeDetail) -> list[dict[str, str]]:
    """The lifecycle commands open from the recipe's status, each with the statement of what
    its signer signs (21 CFR 11.50: the meaning is part of the signature)."""
    revision = recipe.current_revision
    actions = []
    for action, step in service.TRANSITIONS.items():
        if recipe.status not in step.sources:
            continue
        actions.append(
            {
                "action": action,
                "path": LIFECYCLE_PATHS[action],
                "permission": f"recipes:{step.permission}",
                "label": LIFECYCLE_LABELS[action],
                "statement": LIFECYCLE_STATEMENTS[action].format(
                    revision=revision, name=recipe.name, meaning=step.meaning
                ),
            }
        )
    return actions


LIFECYCLE_PATHS = {
    "submit": "submit",
    "approve": "approve",
    "reject": "reject",
    "make_effective": "effective",
    "retire": "retire",
}
# What the signer states (the signature's meaning, and the capacity they sign in).
LIFECYCLE_STATEMENTS = {
    "submit": "I submit revision {revision} of {name} for review as its author, "
    "meaning: {meaning}.",
    "approve": "I approve revision {revision} of {name} as QA approver, meaning: {meaning}.",
    "reject": "I return revision {revision} of {name} to draft as QA approver, meaning: {meaning}.",
    "make_effective": "I make revision {revision} of {name} effective as QA approver, "
    "meaning: {meaning}.",
    "retire": "I retire revision {revision} of {name} as QA approver, meaning: {meaning}.",
}
# The message shown once after the command (moved: whether the recipe changed status).
LIFECYCLE_DONE = {
    "submit": "Submitted revision {revision} for review.",
    "approve": "Approved revision {revision}.",
    "reject": "Returned revision {revision} to draft.",
    "make_effective": "Revision {revision} is effective.",
    "retire": "Retired revision {revision}.",
}
LIFECYCLE_LABELS = {
    "submit": "Sign as author and submit for review",
    "approve": "Sign as approver",
    "reject": "Sign and return to draft",
    "make_effective": "Sign and make effective",
    "retire": "Sign and retire",
}


def _lifecycle_form(action: str) -> HTTPRouteHandler:
    """One form route per lifecycle command, all served by one handler; a refusal shows the
    recipe page again with the message next to the form and the reason kept."""

    async def handler(
        request: Request[Any, Any, Any],
        ctx: NamedDependency[TenantContext],
        recipe_id: FromPath[UUID],
        settings: NamedDependency[Settings],
    ) -> Template | Response[Any]:
        data = await form_data(request)
        reason = str(data.get("reason", ""))
        try:
            signing, _ = await form_struct(request, SignRequest)  # as the API's lifecycle body
            moved = await service.run(
                settings, ctx, recipe_id, action, signing.password, signing.reason
            )
        except AppError as exc:
            if exc.status_code == 404:
                raise
            kept = {"action": action, "reason": reason}
            return await render_recipe_page(
                request, ctx, recipe_id, status=exc.status_code, error=exc.message, form=kept
            )
        async with read_view(ctx):
            revision = (await service.get(ctx, recipe_id)).current_revision
        done = LIFECYCLE_DONE[action] if moved else "Signed revision {revision}: {meaning}."
        message = done.format(revision=revision, meaning=service.TRANSITIONS[action].meaning)
        if not moved:
            message += " It needs more approvals before it moves on."
        return see_other(request, f"/t/{ctx.slug}/recipes/{recipe_id}", flash=message)

    step = service.TRANSITIONS[action]
    return post(
        f"/recipes/{{recipe_id:uuid}}/{LIFECYCLE_PATHS[action]}",
        opt=requires("recipes", step.permission),
        include_in_schema=False,
        status_code=303,
        media_type=MediaType.HTML,
        name=f"recipe-form-{action}",
    )(handler)


LIFECYCLE_FORMS = [_lifecycle_form(action) for action in service.TRANSITIONS]


@post(
    "/hub/items/{item_id:uuid}/master-recipe",
    opt=requires("recipes", "edit"),
    include_in_schema=False,
    status_code=303,
)
async def from_hub_form(ctx: NamedDependency[TenantContext], item_id: FromPath[UUID]) -> Redirect:
    recipe_id = await service.create_from_hub(ctx, item_id)
    return Redirect(f"/t/{ctx.slug}/recipes/{recipe_id}", status_code=303)


@get(
    "/recipes/{recipe_id:uuid}/print",
    opt=requires("recipes", "read"),
    include_in_schema=False,
)
async def print_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], recipe_id: FromPath[UUID]
) -> Template:
    """The printable master batch record of the current revision."""
    from opencdmo.canonical import content_hash

    recipe = await service.get(ctx, recipe_id)  # in the read view the app gives GET pages
    library = await service.library(ctx)
    pinned = await service.pinned_contents(ctx, recipe.content)
    record = service.RecipeRecord(
        str(recipe_id), str(recipe.current_revision), recipe.author_id, recipe.content
    )
    signatures = await signatures_for(ctx, record)
    return await page(
        request,
        "recipes/print.html",
        recipe=recipe,
        step_of=lambda op: step_content(op, library, pinned),
        states=lambda op: mbr.range_states(op, library, pinned),
        signatures=signatures,
        current=str(recipe.current_revision),
        bom=mbr.bill_of_materials(recipe.content, library, pinned),
        names=await service.names(ctx, "material", "equipment_class"),
        equipment=mbr.equipment_classes(recipe.content, library, pinned),
        flow=mbr.flow(recipe.content, library, pinned),
        box=(mbr.BOX_W, mbr.BOX_H),
        content_hash=content_hash(recipe.content),
    )


@post(
    "/recipes/{recipe_id:uuid}/publish",
    opt=requires("hub", "approve_publication"),
    include_in_schema=False,
    status_code=303,
    media_type=MediaType.HTML,
)
async def publish_form(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    recipe_id: FromPath[UUID],
    settings: NamedDependency[Settings],
) -> Any:
    """Publish the effective revision to the HUB, with the publication signature."""
    data = {k: str(v) for k, v in (await form_data(request)).items()}
    listing = publication.Listing(
        data.get("slug", "").strip(),
        data.get("version", "").strip(),
        data.get("summary", ""),
        data.get("description", ""),
        data.get("changelog", ""),
        data.get("licence", ""),
        [t.strip() for t in data.get("tags", "").split(",") if t.strip()],
        data.get("visibility", "private"),
    )
    try:
        item_id = await service.publish_to_hub(
            settings, ctx, recipe_id, listing, data.get("password", ""), data.get("reason", "")
        )
    except AppError as exc:
        if exc.status_code == 404:
            raise
        return await render_recipe_page(
            request, ctx, recipe_id, status=exc.status_code, error=exc.message, form=data
        )
    message = f"Signed and published {listing.slug} v{listing.version} to the HUB."
    return see_other(request, f"/t/{ctx.slug}/hub/items/{item_id}", flash=message)


@get(
    "/recipes/{recipe_id:uuid}/compare",
    opt=requires("recipes", "read"),
    include_in_schema=False,
)
async def compare_page(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    recipe_id: FromPath[UUID],
    left: Revision = None,
    right: Revision = None,
) -> Template:
    """A structural diff of two revisions side by side (default: the previous and the
    current one)."""
    recipe = await service.get(ctx, recipe_id)  # in the read view the app gives GET pages
    newer = right or int(recipe.current_revision)
    older = left or max(1, newer - 1)
    history = await service.history(ctx, recipe_id)
    changes, described = await service.compare_described(ctx, recipe_id, older, newer)
    return await page(
        request,
        "recipes/compare.html",
        recipe=recipe,
        history=history,
        changes=changes,
        described=described,
        left=older,
        right=newer,
    )


# Pages of a tenant, under /t/{slug} (the app mounts them in the context's router).
pages = [
    compare_page,
    publish_form,
    print_page,
    from_hub_form,
    recipes_page,
    create_form,
    recipe_page,
    *LIFECYCLE_FORMS,
]
