"""How long a tenant's API tokens may live: a default and a maximum number of days, set by the
tenant manifest (``api_tokens: {default_days, max_days}``). Part of the tenancy service."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from opencdmo.audit import service as audit
from opencdmo.db.tx import tenant_transaction
from opencdmo.errors import ValidationFailed
from opencdmo.scope import TenantContext
from opencdmo.tenancy.queries import tenants
from opencdmo.tenancy.queries.tenants import TenantRow

LONGEST_DAYS = 3650


@dataclass(frozen=True)
class TokenPolicy:
    default_days: int = 90
    max_days: int = 365

    @classmethod
    def of(cls, tenant: TenantRow) -> TokenPolicy:
        return cls(tenant.token_default_days, tenant.token_max_days)


def check_token_policy(policy: TokenPolicy) -> None:
    if not 1 <= policy.max_days <= LONGEST_DAYS:
        raise ValidationFailed(f"api_tokens.max_days must be between 1 and {LONGEST_DAYS}.")
    if not 1 <= policy.default_days <= policy.max_days:
        raise ValidationFailed("api_tokens.default_days must be between 1 and max_days.")


async def token_policy(ctx: TenantContext) -> TokenPolicy:
    async with tenant_transaction(ctx):
        return TokenPolicy.of(await tenants.this_tenant(ctx.tenant_id))


async def set_token_policy(ctx: TenantContext, policy: TokenPolicy) -> bool:
    """Set the tenant's token lifetimes (tokens made before keep their expiry); audited."""
    check_token_policy(policy)
    async with tenant_transaction(ctx):
        old = TokenPolicy.of(await tenants.this_tenant(ctx.tenant_id, lock=True))
        if old == policy:
            return False
        await tenants.set_token_days(ctx.tenant_id, policy.default_days, policy.max_days)
        await audit.record(
            ctx,
            "tenant.token_policy_changed",
            "tenant",
            ctx.tenant_id,
            old=asdict(old),
            new=asdict(policy),
        )
    return True
