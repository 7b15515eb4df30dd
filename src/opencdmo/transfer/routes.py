"""Tech transfer through the JSON API: export a recipe's effective revision as a signed
package (``transfer:export``), list and download the packages sent, and the tenant's
signing key and trusted sender keys (``transfer:trust``)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.response import Response

from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.transfer import export, keys
from opencdmo.transfer.queries import PackageRow, TrustedRow
from opencdmo.transfer.schemas import (
    ExportIn,
    KeyOut,
    PackageOut,
    TrustedKeyOut,
    TrustIn,
    UntrustIn,
)
from opencdmo.web.guards import requires

PACKAGES = "/transfer/packages"
TRUSTED = "/transfer/trusted-keys"


def package_out(ctx: TenantContext, row: PackageRow) -> PackageOut:
    fields = {k: v for k, v in row.__dict__.items() if k != "storage_key"}
    return PackageOut(**fields, download=f"/api/v1/t/{ctx.slug}{PACKAGES}/{row.id}/archive")


def trusted_out(row: TrustedRow) -> TrustedKeyOut:
    return TrustedKeyOut(**{k: v for k, v in row.__dict__.items() if k != "public_key"})


def key_out(key: keys.PublicKey) -> KeyOut:
    return KeyOut(
        algorithm="Ed25519", fingerprint=key.fingerprint, public_key=key.base64, pem=key.pem
    )


def archive_response(ctx: TenantContext, row: PackageRow, data: bytes) -> Response[Any]:
    name = f"{ctx.slug}-package-{str(row.id)[:8]}-r{row.revision}.zip"
    return Response(
        data,
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Content-SHA256": row.sha256,
        },
    )


@post(
    "/recipes/{recipe_id:uuid}/transfer-packages",
    opt=requires("transfer", "export"),
    tags=["transfer"],
    status_code=201,
)
async def api_export(
    ctx: NamedDependency[TenantContext],
    settings: NamedDependency[Settings],
    recipe_id: FromPath[UUID],
    data: JSONBody[ExportIn],
) -> PackageOut:
    """Export the recipe's effective revision as a tech-transfer package, signed "approved
    for transfer" with the password (a draft, in review or retired recipe: 409)."""
    made = await export.export_package(settings, ctx, recipe_id, data.password, data.reason)
    return package_out(ctx, made.package)


@get(PACKAGES, opt=requires("transfer", "export"), tags=["transfer"])
async def api_packages(ctx: NamedDependency[TenantContext]) -> list[PackageOut]:
    """The packages the tenant sent, newest first."""
    return [package_out(ctx, r) for r in await export.packages(ctx)]


@get(
    PACKAGES + "/{package_id:uuid}/archive",
    opt=requires("transfer", "export"),
    tags=["transfer"],
    media_type="application/zip",
)
async def api_package_archive(
    ctx: NamedDependency[TenantContext], package_id: FromPath[UUID]
) -> Response[Any]:
    """The package archive, as it was signed (its SHA-256 in ``X-Content-SHA256``)."""
    row, data = await export.package_of(ctx, package_id)
    return archive_response(ctx, row, data)


@get("/transfer/key", opt=requires("transfer", "trust"), tags=["transfer"])
async def api_key(ctx: NamedDependency[TenantContext]) -> KeyOut | None:
    """The tenant's package signing key (null until it is created)."""
    found = await keys.public_key(ctx)
    return None if found is None else key_out(found)


@post("/transfer/key", opt=requires("transfer", "trust"), tags=["transfer"], status_code=200)
async def api_create_key(
    ctx: NamedDependency[TenantContext], settings: NamedDependency[Settings]
) -> KeyOut:
    """The tenant's package signing key, created now if it has none."""
    return key_out(await keys.ensure_key(settings, ctx))


@get(TRUSTED, opt=requires("transfer", "trust"), tags=["transfer"])
async def api_trusted(ctx: NamedDependency[TenantContext]) -> list[TrustedKeyOut]:
    """The sender keys the tenant trusts, and those it trusted before."""
    return [trusted_out(r) for r in await keys.trusted_keys(ctx)]


@post(TRUSTED, opt=requires("transfer", "trust"), tags=["transfer"], status_code=201)
async def api_trust(ctx: NamedDependency[TenantContext], data: JSONBody[TrustIn]) -> TrustedKeyOut:
    """Trust another installation's sender key; the fingerprint must be the key's."""
    return trusted_out(await keys.trust(ctx, data.public_key, data.fingerprint, data.label))


@post(
    TRUSTED + "/{trusted_key_id:uuid}/remove",
    opt=requires("transfer", "trust"),
    tags=["transfer"],
    status_code=200,
)
async def api_untrust(
    ctx: NamedDependency[TenantContext],
    trusted_key_id: FromPath[UUID],
    data: JSONBody[UntrustIn],
) -> TrustedKeyOut:
    """Stop trusting a sender key, saying why (it stays in the list, marked removed)."""
    return trusted_out(await keys.untrust(ctx, trusted_key_id, data.reason))


api = [
    api_export,
    api_packages,
    api_package_archive,
    api_key,
    api_create_key,
    api_trusted,
    api_trust,
    api_untrust,
]
