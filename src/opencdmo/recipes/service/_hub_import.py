"""A master recipe from a HUB recipe: installed and forked with its lineage, every pinned
unit operation and QC method referenced at exactly its pinned version, in one command."""

from __future__ import annotations

from uuid import UUID

from opencdmo.access.service import authorize
from opencdmo.db.tx import tenant_transaction, unit_of_work
from opencdmo.errors import NotFound
from opencdmo.hub import library_queries as copies
from opencdmo.hub import model as hub
from opencdmo.hub import publication_queries
from opencdmo.hub import queries as hub_queries
from opencdmo.recipes import model
from opencdmo.recipes.service._revisions import create_in, save_in
from opencdmo.scope import TenantContext

Slots = dict[tuple[str, str, str], str]


async def create_from_hub(
    ctx: TenantContext, hub_item_id: UUID, version: str | None = None
) -> UUID:
    """A master recipe from a HUB recipe, in one unit of work: the recipe and its closure are
    installed (the recipe is forked, keeping its lineage), every pinned unit operation and
    QC method is referenced at exactly its pinned version (forked at that version when the
    library holds another), and the specification, sampling points and release
    specifications come along."""
    from opencdmo.hub import library

    await authorize(ctx, "recipes", "edit")
    async with unit_of_work(ctx):
        chosen = await hub_queries.version_content(hub_item_id, version)
        hub_recipe = None if chosen is None else hub.decode(chosen.content)
        if chosen is None or not isinstance(hub_recipe, hub.Recipe):
            raise NotFound("No such HUB recipe.")
        if await copies.installed_copy(hub_item_id) is None:
            await library.install(ctx, hub_item_id, chosen.version)
        await library.fork(ctx, hub_item_id, chosen.version)
        slots = await _pinned_slots(ctx, hub_recipe)
        source = f"{hub_recipe.slug} {chosen.version}"
        recipe_id = await create_in(
            ctx, hub_recipe.name, hub_recipe.product, source_hub_version_id=chosen.id
        )
        content = model.content_to_dict(_designer_content(hub_recipe, slots, source))
        await save_in(ctx, recipe_id, content, 1, f"From HUB {source}")
    return recipe_id


def _pins(hub_recipe: hub.Recipe) -> set[tuple[str, str, str]]:
    pins = {
        ("unit_operation", op.unit_operation, op.version)
        for up in hub_recipe.unit_procedures
        for op in up.operations
    }
    pins |= {("method", p.method, p.method_version) for p in hub_recipe.sampling_points}
    pins |= {("method", r.method, r.method_version) for r in hub_recipe.release_specifications}
    return pins


async def hub_item_id(ctx: TenantContext, publisher_id: UUID | None, slug: str) -> UUID | None:
    """A HUB recipe visible to the tenant, by publisher and slug."""
    async with tenant_transaction(ctx):
        return await publication_queries.find_item(publisher_id, "recipe", slug)


async def _pinned_slots(ctx: TenantContext, hub_recipe: hub.Recipe) -> Slots:
    """(kind, slug, version) -> library item id, forking a pinned version the library lacks."""
    from opencdmo.hub import library

    items: Slots = {}
    hub_ids: dict[tuple[str, str], UUID] = {}
    for item in await copies.typed_copies("unit_operation", "method"):  # installed first
        items.setdefault((item.kind, item.slug, item.version), str(item.id))
        hub_ids.setdefault((item.kind, item.slug), item.hub_item_id)
    for kind, slug, version in sorted(_pins(hub_recipe)):
        if (kind, slug, version) not in items:
            forked = await library.fork(ctx, hub_ids[(kind, slug)], version)
            items[(kind, slug, version)] = str(forked)
    return items


def _operation(op: hub.Operation, slots: Slots, source: str) -> model.Operation:
    overrides = dict(op.parameter_overrides)
    return model.Operation(
        key=op.key,
        library_item_id=slots[("unit_operation", op.unit_operation, op.version)],
        unit_operation=op.unit_operation,
        version=op.version,
        parameters=overrides,
        acknowledged=dict.fromkeys(overrides, f"value from HUB recipe {source}"),
        notes=op.note or "",
    )


def _quantity(quantity: hub.Quantity) -> model.Quantity:
    return model.Quantity(quantity=quantity.quantity, unit=quantity.unit)


def _sampling_point(point: hub.SamplingPoint, slots: Slots) -> model.SamplingPoint:
    return model.SamplingPoint(
        key=point.key,
        after_operation=point.after_operation,
        library_item_id=slots[("method", point.method, point.method_version)],
        method=point.method,
        method_version=point.method_version,
        sample_volume=_quantity(point.sample_volume),
        note=point.note or "",
    )


def _release(spec: hub.ReleaseSpecification, slots: Slots) -> model.ReleaseSpecification:
    limits = spec.limits
    return model.ReleaseSpecification(
        attribute=spec.attribute,
        library_item_id=slots[("method", spec.method, spec.method_version)],
        method=spec.method,
        method_version=spec.method_version,
        acceptance_criterion=spec.acceptance_criterion,
        limits=None if limits is None else model.Limits(low=limits.low, high=limits.high),
        unit=spec.unit,
    )


def _designer_content(hub_recipe: hub.Recipe, slots: Slots, source: str) -> model.RecipeContent:
    """The master recipe's first content, from the HUB recipe (checked when it is saved)."""
    return model.RecipeContent(
        unit_procedures=[
            model.UnitProcedure(
                key=up.key,
                name=up.name,
                operations=[_operation(op, slots, source) for op in up.operations],
            )
            for up in hub_recipe.unit_procedures
        ],
        specification=model.Specification(
            modality=hub_recipe.modality, batch_size=_quantity(hub_recipe.batch_size)
        ),
        sampling_points=[_sampling_point(p, slots) for p in hub_recipe.sampling_points],
        release_specifications=[_release(r, slots) for r in hub_recipe.release_specifications],
    )
