"""The tenant manifest's ``sso:`` section (found by name, as the tenancy manifest finds each
context's section): the tenant's OpenID provider. Checked when the file is read (roles known,
the secret only by environment-variable name); applying stores it, or removes it when the
manifest has none."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from opencdmo.access.policy import roles as known_roles
from opencdmo.identity.sso import service
from opencdmo.identity.sso.config import SCHEMA as CONFIG_SCHEMA
from opencdmo.identity.sso.config import SsoConfig
from opencdmo.scope import TenantContext
from opencdmo.tenancy.manifest import ManifestError

SECTION = "sso"
SCHEMA: dict[str, Any] = CONFIG_SCHEMA


def check(path: Path, value: Any, data: dict[str, Any]) -> SsoConfig | None:
    if not value:
        return None
    config = SsoConfig.from_json(value)
    for group, roles in config.roles.items():
        unknown = [r for r in roles if r not in known_roles()]
        if unknown:
            raise ManifestError(
                f"{path}: sso.roles.{group}: unknown role(s) {', '.join(unknown)}; roles are "
                f"{', '.join(known_roles())}",
                details={"file": str(path), "field": f"sso.roles.{group}"},
            )
    return config


async def apply(
    ctx: TenantContext, path: Path, config: SsoConfig | None, report: Callable[[str], None]
) -> int:
    if await service.set_config(ctx.tenant_id, config):
        report(f"{ctx.slug}: single sign-on {'configured' if config else 'removed'}")
        return 1
    return 0
