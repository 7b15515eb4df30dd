"""Every tenant route, discovered from the app's route table, against four kinds of caller.

A route added later is covered without touching this file; a route with an id parameter this
file does not know how to fill fails loudly, so its author adds a factory below.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute

from opencdmo.access.policy import roles_with
from opencdmo.identity import service as identity
from opencdmo.scope import TenantContext
from opencdmo.web.guards import PERMISSION
from tests.conftest import PERSONAS, World, as_actor
from tests.external_assets import external_assets

PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
TENANT_PREFIX = re.compile(r"^(/api/v1)?/t/\{slug:str\}")


async def _member(world: World, ctx: TenantContext) -> str:
    persona = world["viewer"] if ctx.slug == "alpha" else world["outsider"]
    from opencdmo.tenancy.service import membership_of

    membership = await membership_of(ctx, persona.user_id)
    assert membership is not None
    return str(membership)


async def _token(world: World, ctx: TenantContext) -> str:
    persona = world["admin"] if ctx.slug == "alpha" else world["outsider"]
    _, row = await identity.create_token(as_actor(ctx, persona), persona.user_id, "route test")
    return str(row.id)


async def _invitation(world: World, ctx: TenantContext) -> str:
    from opencdmo.tenancy import invitations

    invitation, _ = await invitations.invite(
        ctx, f"route-{uuid.uuid4().hex[:8]}@invited.test", ["viewer"], hours=1
    )
    return str(invitation.id)


async def _hub_item(world: World, ctx: TenantContext) -> str:
    from tests.integration.test_hub import publish_private

    return str((await publish_private(ctx)).item_id)


async def _library_item(world: World, ctx: TenantContext) -> str:
    from opencdmo.hub import library
    from tests.integration.test_hub import publish_private

    published = await publish_private(ctx)
    await library.install(ctx, published.item_id)
    entries = await library.list_library(ctx)
    return str(next(e.id for e in entries if e.hub_item_id == published.item_id))


async def _recipe(world: World, ctx: TenantContext) -> str:
    from opencdmo.recipes import service as recipes

    # In beta the provisioning system actor makes it (its admin may not write recipes).
    actor = as_actor(ctx, world["author"]) if ctx.slug == "alpha" else ctx
    return str(await recipes.create(actor, "Route test recipe"))


async def _batchml_import(world: World, ctx: TenantContext) -> str:
    """A draft imported from a BatchML master recipe with nothing in it but its identity."""
    from opencdmo.recipes.batchml_recipe import service as batchml

    actor = as_actor(ctx, world["author"]) if ctx.slug == "alpha" else ctx
    document = (
        b'<BatchInformation xmlns="http://www.mesa.org/xml/B2MML"><MasterRecipe>'
        b"<ID>route-test</ID><Description>Route test import</Description></MasterRecipe>"
        b"</BatchInformation>"
    )
    return str((await batchml.import_batchml(actor, document)).import_id)


async def _batch(world: World, ctx: TenantContext) -> str:
    """A batch row of a draft recipe's first revision, written through the batch queries (the
    route tests need one in each tenant, not an effective recipe)."""
    from opencdmo.batches import queries
    from opencdmo.db.tx import tenant_id_transaction
    from opencdmo.tenancy.service import list_sites

    recipe = uuid.UUID(await _recipe(world, ctx))
    site = (await list_sites(ctx))[0]
    new = queries.NewBatch(
        f"R-{uuid.uuid4().hex[:8]}",
        recipe,
        1,
        "1 L scale",
        site.id,
        "Route test sponsor",
        datetime.now(UTC),
        None,
        None,
        None,
        None,
    )
    async with tenant_id_transaction(ctx.tenant_id):
        batch_id = await queries.insert_batch(ctx.tenant_id, new)
        await queries.insert_control_recipe(ctx.tenant_id, batch_id, FROZEN, "0" * 64)
    return str(batch_id)


# The least a control recipe document holds (what ``batches.control.freeze`` makes).
FROZEN = {
    "recipe": {"name": "Route test recipe"},
    "formula": {"name": "1 L scale"},
    "specification": {},
    "unit_procedures": [],
    "sampling_points": [],
    "release_specifications": [],
}


async def _batch_exception(world: World, ctx: TenantContext) -> str:
    from opencdmo.batches import execution_queries as xq
    from opencdmo.db.tx import tenant_id_transaction

    batch_id = uuid.UUID(await _batch(world, ctx))
    new = xq.NewException("late_entry", "minor", "route test")
    async with tenant_id_transaction(ctx.tenant_id):
        return str((await xq.insert_exception(ctx.tenant_id, batch_id, new, None)).id)


async def _deviation(world: World, ctx: TenantContext) -> str:
    from opencdmo.batches import execution_queries as xq
    from opencdmo.db.tx import tenant_id_transaction

    batch_id = uuid.UUID(await _batch(world, ctx))
    person = world["admin"] if ctx.slug == "alpha" else world["outsider"]
    async with tenant_id_transaction(ctx.tenant_id):
        found = await xq.insert_deviation(
            ctx.tenant_id, batch_id, f"DEV-{batch_id}", "minor", "route test", person.user_id
        )
    return str(found.id)


async def _material(world: World, ctx: TenantContext) -> str:
    """A material of the tenant's master, written through the inventory queries."""
    from opencdmo.db.tx import tenant_id_transaction
    from opencdmo.inventory import queries

    new = queries.NewMaterial(
        f"M-{uuid.uuid4().hex[:8]}", "Route test material", "reagent", "", None, "mL", None
    )
    async with tenant_id_transaction(ctx.tenant_id):
        return str(await queries.insert_material(ctx.tenant_id, new, None))


async def _lot(world: World, ctx: TenantContext) -> str:
    """A lot in quarantine of a new material, with one container."""
    from decimal import Decimal

    from opencdmo.db.tx import tenant_id_transaction
    from opencdmo.inventory import queries

    material_id = uuid.UUID(await _material(world, ctx))
    person = world["admin"] if ctx.slug == "alpha" else world["outsider"]
    new = queries.NewLot(
        material_id, "L-1", "Route supplier", "S-1", Decimal(500), "mL", None, None
    )
    async with tenant_id_transaction(ctx.tenant_id):
        lot_id = await queries.insert_lot(ctx.tenant_id, new, person.user_id)
        await queries.insert_containers(ctx.tenant_id, lot_id, [(Decimal(500), "mL")])
    return str(lot_id)


async def _location(world: World, ctx: TenantContext) -> str:
    """A room in the storage of the tenant's first site, written through the location
    queries."""
    from opencdmo.db.tx import tenant_id_transaction
    from opencdmo.inventory import location_queries as lq
    from opencdmo.tenancy.service import list_sites

    site = (await list_sites(ctx))[0]
    person = world["admin"] if ctx.slug == "alpha" else world["outsider"]
    async with tenant_id_transaction(ctx.tenant_id):
        root = await lq.site_root(site.id)
        root_id = root.id if root else None
        if root_id is None:
            new = lq.NewLocation(None, site.id, "site", site.code, site.name, "")
            root_id = await lq.insert_location(ctx.tenant_id, new, person.user_id)
        room = lq.NewLocation(root_id, site.id, "room", uuid.uuid4().hex[:8], "Route room", "")
        return str(await lq.insert_location(ctx.tenant_id, room, person.user_id))


async def _container(world: World, ctx: TenantContext) -> str:
    from opencdmo.db.tx import tenant_id_transaction
    from opencdmo.inventory import queries

    lot_id = uuid.UUID(await _lot(world, ctx))
    async with tenant_id_transaction(ctx.tenant_id):
        return str((await queries.containers(lot_id))[0].id)


async def _equipment(world: World, ctx: TenantContext) -> str:
    """An equipment unit at the tenant's first site, written through the equipment queries
    (its code: the route parameter)."""
    from opencdmo.db.tx import tenant_id_transaction
    from opencdmo.equipment import queries as eq
    from opencdmo.tenancy.service import list_sites
    from tests.conftest import recorded

    site = (await list_sites(ctx))[0]
    code = f"RT-{uuid.uuid4().hex[:8]}"
    new = eq.Settable("co2-incubator", f"Route unit {code}", site.id, None, None, None)
    async with tenant_id_transaction(ctx.tenant_id):
        unit_id = await eq.insert_unit(ctx.tenant_id, code, new, None)
    # Its registration's event, as the registry writes it (audit verify looks for it).
    await recorded(ctx, "equipment.registered", "equipment", unit_id, new={"code": code})
    return code


async def _certificate(world: World, ctx: TenantContext) -> str:
    """A trusted OPC UA server certificate, written through the trust list queries."""
    import tempfile
    from pathlib import Path

    from opencdmo.db.tx import tenant_id_transaction
    from opencdmo.equipment import opcua_pki, trust, trust_queries
    from tests.conftest import recorded

    with tempfile.TemporaryDirectory() as folder:
        made = opcua_pki.ensure_certificate(Path(folder), "urn:route:test", server=True)
        new = trust.parse(made.certificate.read_bytes())
    person = world["admin"] if ctx.slug == "alpha" else world["outsider"]
    async with tenant_id_transaction(ctx.tenant_id):
        found = await trust_queries.insert(ctx.tenant_id, new, person.user_id)
    await recorded(ctx, "equipment.certificate_trusted", "opcua_certificate", found, new={})
    return str(found)


async def _trusted_key(world: World, ctx: TenantContext) -> str:
    """A trusted sender key, written through the transfer queries."""
    import os

    from opencdmo.db.tx import tenant_id_transaction
    from opencdmo.transfer import queries as tq
    from opencdmo.transfer.format import fingerprint
    from tests.conftest import recorded

    raw = os.urandom(32)
    person = world["admin"] if ctx.slug == "alpha" else world["outsider"]
    async with tenant_id_transaction(ctx.tenant_id):
        found = await tq.insert_trusted(
            ctx.tenant_id, fingerprint(raw), raw, "Route", person.user_id
        )
    # Its event, as the command writes it (audit verify looks for it).
    new = {"fingerprint": fingerprint(raw)}
    await recorded(
        as_actor(ctx, person), "transfer.key_trusted", "transfer_trusted_key", found, new=new
    )
    return str(found)


async def _package(world: World, ctx: TenantContext) -> str:
    """A sent package row (its blob stored, its signature written), through the queries."""
    from opencdmo.db.tx import tenant_id_transaction
    from opencdmo.signatures import queries as sq
    from opencdmo.storage.blobs import blobs
    from opencdmo.transfer import queries as tq
    from tests.conftest import recorded

    recipe = uuid.UUID(await _recipe(world, ctx))
    person = world["admin"] if ctx.slug == "alpha" else world["outsider"]
    package_id = uuid.uuid4()
    blob = await blobs().put(ctx, f"route test package {package_id}".encode())
    async with tenant_id_transaction(ctx.tenant_id):
        signature = await sq.insert(
            ctx.tenant_id,
            "transfer_package",
            str(package_id),
            "1",
            "0" * 64,
            person.user_id,
            person.full_name,
            "approved for transfer",
            "route test",
        )
        new = tq.NewPackage(
            package_id,
            recipe,
            1,
            "0" * 64,
            blob.sha256,
            blob.size,
            blob.key,
            signature.id,
            "0" * 64,
        )
        await tq.insert_sent(ctx.tenant_id, new, person.user_id)
    await recorded(
        as_actor(ctx, person),
        "signature.applied",
        "transfer_package",
        package_id,
        new={
            "signature_id": signature.id,
            "meaning": "approved for transfer",
            "record_version": "1",
            "record_hash": "0" * 64,
        },
    )
    new = {"sha256": blob.sha256, "signature_id": str(signature.id)}
    await recorded(
        as_actor(ctx, person), "transfer.package_exported", "transfer_package", package_id, new=new
    )
    return str(package_id)


async def _recipe_document(world: World, ctx: TenantContext) -> str:
    """A document of a recipe of the tenant (its file stored), through the queries."""
    from opencdmo.db.tx import tenant_id_transaction
    from opencdmo.recipes import document_queries
    from opencdmo.storage import queries as storage_queries
    from opencdmo.storage.blobs import blobs
    from tests.conftest import recorded

    recipe = uuid.UUID(await _recipe(world, ctx))
    person = world["admin"] if ctx.slug == "alpha" else world["outsider"]
    blob = await blobs().put(ctx, b"%PDF-1.7 route test " + uuid.uuid4().bytes)
    async with tenant_id_transaction(ctx.tenant_id):
        new = storage_queries.NewStoredFile(
            blob.sha256, blob.size, "application/pdf", "route.pdf", blob.key
        )
        file_id = await storage_queries.insert_file(ctx.tenant_id, new, person.user_id)
        found = await document_queries.insert_document(
            ctx.tenant_id, recipe, file_id, "Route SOP", "sop", person.user_id
        )
    new_values = {
        "document_id": str(found),
        "title": "Route SOP",
        "kind": "sop",
        "file": {"file_id": str(file_id), "sha256": blob.sha256, "size_bytes": blob.size},
    }
    await recorded(
        as_actor(ctx, person), "recipe.document_added", "master_recipe", recipe, new=new_values
    )
    return str(found)


async def _partner_link(world: World, ctx: TenantContext) -> str:
    """A relationship proposed by the tenant to a new tenant of the other kind (its own: a
    relationship between alpha and beta would be both tenants' object)."""
    from opencdmo.partners import service as partners
    from opencdmo.scope import SYSTEM, RequestMeta
    from opencdmo.tenancy import service as tenancy

    kind = "sponsor" if ctx.kind == "cdmo" else "cdmo"
    slug = f"route-{kind}-{uuid.uuid4().hex[:8]}"
    await tenancy.create_tenant(slug, f"Route {kind}", kind, SYSTEM, RequestMeta())
    person = world["admin"] if ctx.slug == "alpha" else world["outsider"]
    return str((await partners.propose(as_actor(ctx, person), slug)).row.id)


async def _transfer_job(world: World, ctx: TenantContext) -> str:
    """A verification's progress row, written through the receiving queries."""
    from opencdmo.db.tx import unit_of_work
    from opencdmo.transfer import receive_queries as rq

    job_id = uuid.uuid4()
    person = world["author"] if ctx.slug == "alpha" else world["outsider"]
    async with unit_of_work(as_actor(ctx, person)):
        await rq.insert_job(ctx.tenant_id, job_id, "verify", 1, person.user_id)
    return str(job_id)


async def _export(world: World, ctx: TenantContext) -> str:
    """An export asked for (queued), written through its table as its service writes it."""
    import json

    from opencdmo.db.tx import unit_of_work
    from opencdmo.exports.tables import Export

    export_id = uuid.uuid4()
    person = world["admin"] if ctx.slug == "alpha" else world["outsider"]
    async with unit_of_work(as_actor(ctx, person)):
        await Export.insert(
            Export(
                tenant_id=ctx.tenant_id,
                id=export_id,
                kind="audit_trail",
                subject=json.dumps({"format": "csv"}),
                requested_by=person.user_id,
            )
        )
    return str(export_id)


# How to make an object of each id parameter in a given tenant.
FACTORIES: dict[str, Callable[[World, TenantContext], Awaitable[str]]] = {
    "member_id": _member,
    "token_id": _token,
    "invitation_id": _invitation,
    "item_id": _hub_item,
    "library_id": _library_item,
    "recipe_id": _recipe,
    "import_id": _batchml_import,
    "batch_id": _batch,
    "exception_id": _batch_exception,
    "deviation_id": _deviation,
    "material_id": _material,
    "lot_id": _lot,
    "start_id": _lot,  # a genealogy trace starts from a lot (or a batch)
    "location_id": _location,
    "container_id": _container,
    "code": _equipment,  # an equipment unit's code
    "certificate_id": _certificate,
    "trusted_key_id": _trusted_key,
    "package_id": _package,
    "link_id": _partner_link,
    "document_id": _recipe_document,
    "job_id": _transfer_job,
    "export_id": _export,
}

# Bodies that pass validation, so that the answer is about access, not about the input.
JSON_BODIES: dict[str, Any] = {
    "/api/v1/t/{slug:str}/exports": {"kind": "audit_trail", "subject": {"format": "csv"}},
    "/api/v1/t/{slug:str}/invitations": {"email": "nobody@nowhere.test", "roles": ["viewer"]},
    "/api/v1/t/{slug:str}/members/{member_id:uuid}/roles": {"roles": ["viewer"], "reason": "x"},
    "/api/v1/t/{slug:str}/members/{member_id:uuid}/status": {"active": True, "reason": "x"},
    "/api/v1/t/{slug:str}/members/{member_id:uuid}/site-roles": {
        "site": "A1",
        "role": "viewer",
        "reason": "x",
    },
    "/api/v1/t/{slug:str}/members/{member_id:uuid}/site-roles/revoke": {
        "site": "A1",
        "role": "viewer",
        "reason": "x",
    },
    "/api/v1/t/{slug:str}/tokens": {"name": "x"},
    "/api/v1/t/{slug:str}/batches/{batch_id:uuid}/consumptions": {
        "step": "activate",
        "container_id": "00000000-0000-0000-0000-000000000000",
        "quantity": "1",
        "unit": "mL",
    },
    "/api/v1/t/{slug:str}/batches/{batch_id:uuid}/outputs": {
        "step": "activate",
        "material_id": "00000000-0000-0000-0000-000000000000",
        "quantity": "1",
        "unit": "mL",
    },
    "/api/v1/t/{slug:str}/batches/{batch_id:uuid}/equipment": {
        "step": "activate",
        "equipment": "NO-SUCH-UNIT",
    },
    "/api/v1/t/{slug:str}/batches/{batch_id:uuid}/setpoints": {
        "step": "activate",
        "phase": "incubation",
        "idempotency_key": "k-1",
        "confirmed": [{"parameter": "x", "value": 1, "unit": "Cel", "node": "ns=2;s=X"}],
    },
    "/api/v1/t/{slug:str}/settings/opcua-trust/{certificate_id:uuid}/remove": {"reason": "x"},
    "/api/v1/t/{slug:str}/partners": {"partner": "no-such-partner"},
    "/api/v1/t/{slug:str}/partners/{link_id:uuid}/decline": {"reason": "x"},
    "/api/v1/t/{slug:str}/partners/{link_id:uuid}/revoke": {"reason": "x"},
    "/api/v1/t/{slug:str}/partners/{link_id:uuid}/sharing": {
        "share_batch_records": False,
        "reason": "x",
    },
    "/api/v1/t/{slug:str}/equipment": {"code": "RT-X", "class": "co2-incubator", "site": "A1"},
    "/api/v1/t/{slug:str}/equipment/{code:str}": {"class": "co2-incubator", "site": "A1"},
    "/api/v1/t/{slug:str}/equipment/{code:str}/status": {"status": "maintenance", "reason": "x"},
    "/api/v1/t/{slug:str}/equipment/{code:str}/logbook": {
        "kind": "maintenance",
        "note": "x",
        "password": "x",
    },
    "/api/v1/t/{slug:str}/recipes": {"name": "x"},
    "/api/v1/t/{slug:str}/recipes/{recipe_id:uuid}/documents/{document_id:uuid}/remove": {
        "reason": "x"
    },
    "/api/v1/t/{slug:str}/transfer/packages/{package_id:uuid}/sends": {
        "partner_link_id": "00000000-0000-0000-0000-000000000000"
    },
    "/api/v1/t/{slug:str}/recipes/{recipe_id:uuid}/transfer-packages": {
        "password": "x",
        "reason": "x",
    },
    "/api/v1/t/{slug:str}/transfer/trusted-keys": {
        "public_key": "x",
        "fingerprint": "x",
        "label": "x",
    },
    "/api/v1/t/{slug:str}/transfer/trusted-keys/{trusted_key_id:uuid}/remove": {"reason": "x"},
    "/api/v1/t/{slug:str}/transfer/packages/{package_id:uuid}/mappings": {
        "gap_kind": "material",
        "ref": "x",
        "resolution": "use",
    },
    "/api/v1/t/{slug:str}/recipes/from-hub": {
        "hub_item_id": "00000000-0000-0000-0000-000000000000"
    },
    "/api/v1/t/{slug:str}/recipes/{recipe_id:uuid}/content": {
        "base_revision": 1,
        "content": {"unit_procedures": []},
    },
    "/api/v1/t/{slug:str}/recipes/{recipe_id:uuid}/submit": {"password": "x", "reason": "x"},
    "/api/v1/t/{slug:str}/recipes/{recipe_id:uuid}/approve": {"password": "x", "reason": "x"},
    "/api/v1/t/{slug:str}/recipes/{recipe_id:uuid}/retire": {"password": "x", "reason": "x"},
    "/api/v1/t/{slug:str}/recipes/{recipe_id:uuid}/reject": {"password": "x", "reason": "x"},
    "/api/v1/t/{slug:str}/recipes/{recipe_id:uuid}/effective": {"password": "x", "reason": "x"},
    "/api/v1/t/{slug:str}/recipes/{recipe_id:uuid}/publish": {
        "slug": "x",
        "version": "9.9.9",
        "summary": "x",
        "description": "x",
        "changelog": "x",
        "password": "x",
        "reason": "x",
    },
    "/api/v1/t/{slug:str}/batches": {
        "recipe_id": "00000000-0000-0000-0000-000000000000",
        "formula": "x",
        "site": "A1",
        "planned_start": "2026-01-01T08:00:00Z",
        "sponsor": "x",
    },
    "/api/v1/t/{slug:str}/batches/{batch_id:uuid}/commands/{command:str}": {"reason": "x"},
    "/api/v1/t/{slug:str}/batches/{batch_id:uuid}/entries": {
        "step": "activate",
        "phase": "seeding",
        "field": "pre_activation_viability",
        "value": 92,
        "idempotency_key": "k-1",
    },
    "/api/v1/t/{slug:str}/batches/{batch_id:uuid}/entries/from-equipment": {
        "step": "activate",
        "phase": "incubation",
        "field": "incubator_temperature",
        "idempotency_key": "k-2",
    },
    "/api/v1/t/{slug:str}/batches/{batch_id:uuid}/phases/{step:str}/{phase:str}/commands/"
    "{command:str}": {"reason": "x"},
    "/api/v1/t/{slug:str}/batches/{batch_id:uuid}/phases/{step:str}/{phase:str}/verification": {
        "password": "x",
        "reason": "x",
    },
    "/api/v1/t/{slug:str}/batches/{batch_id:uuid}/identity-checks": {
        "step": "activate",
        "scanned": "COI-1",
    },
    "/api/v1/t/{slug:str}/batches/{batch_id:uuid}/custody": {"location": "Suite"},
    "/api/v1/t/{slug:str}/batches/{batch_id:uuid}/exceptions/{exception_id:uuid}/accept": {
        "comment": "x"
    },
    "/api/v1/t/{slug:str}/batches/{batch_id:uuid}/deviations": {
        "exception_ids": ["00000000-0000-0000-0000-000000000000"],
        "classification": "minor",
        "description": "x",
    },
    "/api/v1/t/{slug:str}/batches/{batch_id:uuid}/deviations/{deviation_id:uuid}/close": {
        "impact": "x",
        "root_cause": "x",
        "password": "x",
        "reason": "x",
    },
    "/api/v1/t/{slug:str}/batches/{batch_id:uuid}/disposition": {
        "decision": "release",
        "password": "x",
        "reason": "x",
    },
    "/api/v1/t/{slug:str}/materials": {
        "code": "ROUTE",
        "name": "Route material",
        "material_type": "reagent",
        "default_unit": "mL",
    },
    "/api/v1/t/{slug:str}/lots": {
        "material_id": "00000000-0000-0000-0000-000000000000",
        "lot_number": "L-R",
        "supplier": "x",
        "supplier_lot": "x",
        "quantity": "1",
        "unit": "mL",
    },
    "/api/v1/t/{slug:str}/lots/{lot_id:uuid}/release": {"password": "x", "reason": "x"},
    "/api/v1/t/{slug:str}/lots/{lot_id:uuid}/reject": {"password": "x", "reason": "x"},
    "/api/v1/t/{slug:str}/lots/{lot_id:uuid}/hold": {"reason": "x"},
    "/api/v1/t/{slug:str}/lots/{lot_id:uuid}/unhold": {"reason": "x"},
    "/api/v1/t/{slug:str}/lots/{lot_id:uuid}/labels-printed": {},
    "/api/v1/t/{slug:str}/materials/{material_id:uuid}/reorder-level": {"reorder_level": "1"},
    "/api/v1/t/{slug:str}/materials/{material_id:uuid}/suppliers": {"suppliers": ["x"]},
    "/api/v1/t/{slug:str}/locations": {"kind": "site", "site": "A1"},
    "/api/v1/t/{slug:str}/locations/{location_id:uuid}/retire": {"reason": "x"},
    "/api/v1/t/{slug:str}/locations/{location_id:uuid}/containers": {
        "container_ids": ["00000000-0000-0000-0000-000000000000"]
    },
    "/api/v1/t/{slug:str}/library/{library_id:uuid}/upgrade": {"to": "9.9.9"},
    "/api/v1/t/{slug:str}/library/{library_id:uuid}/content": {"revision": 1, "content": {}},
    "/api/v1/t/{slug:str}/hub/publications/{item_id:uuid}/visibility": {"visibility": "private"},
    "/api/v1/t/{slug:str}/hub/publications/{item_id:uuid}/versions/{version:str}/mark": {
        "yank": True
    },
    "/api/v1/t/{slug:str}/library/{library_id:uuid}/publish": {
        "version": "9.9.9",
        "changelog": "x",
        "password": "x",
        "reason": "x",
    },
}
FORM_BODY = {
    "base_revision": "1",
    "visibility": "private",
    "message": "x",
    "action": "deprecate",
    "roles": "viewer",
    "active": "true",
    "name": "x",
    "email": "nobody@nowhere.test",
    "to": "9.9.9",
    "reason": "x",
}


def tenant_routes(app: Litestar) -> list[tuple[str, str, Any]]:
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or not TENANT_PREFIX.match(route.path):
            continue
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods):
                if method in {"HEAD", "OPTIONS"}:
                    continue
                found.append((route.path, method, handler))
    return found


def _routes_for_ids() -> list[str]:
    from opencdmo.app import CONTEXT_ROUTES, context_routers
    from opencdmo.webapp.tenant_guard import handlers_of

    paths = [
        f"{method} {path}"
        for item in context_routers(CONTEXT_ROUTES)
        for path, handler in handlers_of(item)
        for method in sorted(handler.http_methods)
        if TENANT_PREFIX.match(path) and method != "OPTIONS"
    ]
    return sorted(set(paths))


ROUTES = _routes_for_ids()


def _fill(path: str, slug: str, ids: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "slug":
            return slug
        if name not in ids:
            raise AssertionError(f"{path}: no factory for id parameter '{name}' in FACTORIES")
        return ids[name]

    return PARAM.sub(value, path)


async def _call(client: Any, method: str, path: str) -> Any:
    if method == "GET":
        return await client.get(path)
    if path.startswith("/api/"):
        template = next((k for k in JSON_BODIES if _matches(k, path)), None)
        return await client.send(method, path, json=JSON_BODIES.get(template or "", {}))
    return await client.send(method, path, data={**FORM_BODY, "_csrf_token": client.csrf})


def _matches(template: str, path: str) -> bool:
    pattern = "^" + PARAM.sub("[^/]+", template) + "$"
    return re.match(pattern, path) is not None


def _route(app: Litestar, key: str) -> tuple[str, str, Any]:
    method, path = key.split(" ", 1)
    for route_path, route_method, handler in tenant_routes(app):
        if route_path in (path, path.rstrip("/")) and route_method == method:
            return route_path, method, handler
    raise AssertionError(f"{key} is not in the app's route table")


# Routes outside a tenant that anyone may call: sign-in and sign-out, the landing redirect,
# health, metrics (their own bearer token), and the invitation link (its token is the
# credential). Any other route outside a tenant needs a session (the ``signed_in`` guard): a
# new public route is declared here.
PUBLIC = {
    "/",
    "/login",
    "/logout",
    "/healthz",
    "/readyz",
    "/metrics",
    "/invitations/accept",
    # single sign-on: where a person not signed in yet goes to sign in, and comes back
    "/sso/{slug:str}/start",
    "/sso/callback",
}


def outside_routes(app: Litestar) -> list[tuple[str, str, Any]]:
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or TENANT_PREFIX.match(route.path):
            continue
        if route.path.startswith(("/static", "/schema")):
            continue
        for handler in route.route_handlers:
            methods = sorted(handler.http_methods - {"HEAD", "OPTIONS"})
            found += [(route.path, m, handler) for m in methods]
    return found


def test_routes_outside_tenants_are_public_only_by_declaration(app: Litestar) -> None:
    from opencdmo.web.guards import signed_in

    routes = outside_routes(app)
    assert {path for path, _, _ in routes} >= PUBLIC
    undeclared = [
        f"{m} {p}" for p, m, h in routes if p not in PUBLIC and signed_in not in (h.guards or [])
    ]
    assert not undeclared, undeclared


async def test_anonymous_callers_outside_tenants(app: Litestar, browser: Any) -> None:
    """Signed-in routes: 401 or the sign-in page; the public invitation link with a token that
    is not one: the same 404 for a malformed token, an unknown tenant and an unknown token."""
    client = await browser()
    for path, method, _ in outside_routes(app):
        if path in PUBLIC:
            continue
        response = await _call(client, method, path)
        expected = 401 if path.startswith("/api/") else 303
        assert response.status_code == expected, f"{method} {path}"
    answers = []
    for token in ("", "nonsense", "no-such-tenant." + "a" * 43, "alpha." + "a" * 43):
        page = await client.get(f"/invitations/accept?token={token}")
        sent = await client.send(
            "POST",
            "/invitations/accept",
            data={"token": token, "mode": "new", "_csrf_token": client.csrf},
        )
        answers += [page, sent]
    assert {a.status_code for a in answers} == {404}
    # Single sign-on: a tenant with no provider (or none at all) and a return with no
    # sign-in under way are refused, never a session.
    for path in ("/sso/no-such-tenant/start", "/sso/alpha/start"):
        assert (await client.get(path)).status_code == 404, path
    back = await client.get("/sso/callback?state=nonsense&code=x")
    assert 400 <= back.status_code < 500, back.text[:300]
    # The same page apart from its request id and the fresh CSRF nonces it carries.
    variable = re.compile(r'request [0-9a-f]{32}|(?:content|value)="[A-Za-z0-9_.-]{40,}"')
    assert len({variable.sub("", a.text) for a in answers}) == 1


def test_every_tenant_route_declares_a_permission(app: Litestar) -> None:
    routes = tenant_routes(app)
    assert len(routes) >= 15
    missing = [f"{m} {p}" for p, m, h in routes if PERMISSION not in h.opt]
    assert not missing, missing


@pytest.fixture(scope="module")
async def ids(world: World) -> dict[str, dict[str, str]]:
    made: dict[str, dict[str, str]] = {"alpha": {}, "beta": {}}
    for name, factory in FACTORIES.items():
        made["alpha"][name] = await factory(world, world.alpha)
        made["beta"][name] = await factory(world, world.beta)
    made["random"] = {name: str(uuid.uuid4()) for name in FACTORIES}
    for tenant in made.values():
        tenant["version"] = "1.0.0"  # the version every factory-made HUB item has
        tenant["action"] = "procedure"  # a designer action
        tenant["command"] = "start"  # a batch command
        tenant["step"], tenant["phase"] = "activate", "seeding"  # a batch's phase
    return made


@pytest.mark.parametrize("key", ROUTES)
async def test_anonymous_gets_401_or_the_login_page(
    app: Litestar, browser: Any, ids: Any, key: str
) -> None:
    path, method, _ = _route(app, key)
    client = await browser()
    response = await _call(client, method, _fill(path, "alpha", ids["alpha"]))
    if path.startswith("/api/"):
        assert response.status_code == 401, response.text
        assert response.json()["error"]["status"] == 401
    else:
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=")


@pytest.mark.parametrize("key", ROUTES)
async def test_member_without_the_permission_gets_403(
    app: Litestar, browser: Any, ids: Any, key: str
) -> None:
    path, method, handler = _route(app, key)
    assert not set(PERSONAS["bare"][1]) & roles_with(*handler.opt[PERMISSION])
    client = await browser("bare")
    response = await _call(client, method, _fill(path, "alpha", ids["alpha"]))
    assert response.status_code == 403, response.text


@pytest.mark.parametrize("key", ROUTES)
async def test_member_of_another_tenant_gets_404(
    app: Litestar, browser: Any, ids: Any, key: str
) -> None:
    path, method, _ = _route(app, key)
    client = await browser("outsider")
    response = await _call(client, method, _fill(path, "alpha", ids["alpha"]))
    assert response.status_code == 404, response.text
    unknown = await _call(client, method, _fill(path, "no-such-tenant", ids["alpha"]))
    assert unknown.status_code == 404
    assert _essence(response) == _essence(unknown)


def _essence(response: Any) -> Any:
    if response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()["error"]
        return response.status_code, body["title"], body["message"]
    text = re.sub(r"request [0-9a-f]{32}", "", response.text)
    # CSRF tokens carry a fresh nonce on every page.
    text = re.sub(r"[0-9a-f]{128}", "", text)
    return response.status_code, text


ID_ROUTES = [key for key in ROUTES if key.count("{") > 1]


def test_some_routes_take_object_ids() -> None:
    assert len(ID_ROUTES) >= 5


@pytest.mark.parametrize("key", ID_ROUTES)
async def test_another_tenants_object_is_the_same_404_as_a_random_id(
    app: Litestar, browser: Any, ids: Any, key: str
) -> None:
    path, method, handler = _route(app, key)
    persona = next(
        p
        for p, (t, roles) in PERSONAS.items()
        if t == "alpha" and set(roles) & roles_with(*handler.opt[PERMISSION])
    )
    client = await browser(persona)
    other = await _call(client, method, _fill(path, "alpha", ids["beta"]))
    random = await _call(client, method, _fill(path, "alpha", ids["random"]))
    assert other.status_code == 404, other.text
    assert _essence(other) == _essence(random)


PAGE_ROUTES = [key for key in ROUTES if key.startswith("GET /t/")]


@pytest.mark.parametrize("key", PAGE_ROUTES)
async def test_pages_load_nothing_from_another_host(
    app: Litestar, browser: Any, ids: Any, key: str
) -> None:
    """Every page a permitted member sees, rendered: no script, style, font or image from
    another host (the UI runs on air-gapped networks), and the security headers."""
    path, method, handler = _route(app, key)
    persona = next(
        p
        for p, (t, roles) in PERSONAS.items()
        if t == "alpha" and set(roles) & roles_with(*handler.opt[PERMISSION])
    )
    client = await browser(persona)
    response = await _call(client, method, _fill(path, "alpha", ids["alpha"]))
    assert response.status_code < 500, response.text
    assert external_assets(response.text) == []
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


@pytest.mark.parametrize("path", ["/login", "/account", "/schema", "/schema/openapi.json"])
async def test_other_pages_load_nothing_from_another_host(browser: Any, path: str) -> None:
    response = await (await browser("admin")).get(path)
    assert response.status_code == 200
    assert external_assets(response.text) == []


@pytest.mark.parametrize("path", ["/schema/swagger", "/schema/redoc", "/schema/elements"])
async def test_no_documentation_viewer_from_a_cdn_is_served(browser: Any, path: str) -> None:
    assert (await (await browser("admin")).get(path)).status_code == 404
