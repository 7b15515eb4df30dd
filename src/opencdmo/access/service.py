"""Authorization has one door: casbin RBAC with the tenant as domain.

Role grants live in ``role_assignments`` and ``site_role_assignments`` (tenant tables; they
are written by ``opencdmo.tenancy``). Each tenant gets its own enforcer,
rebuilt when the tenant's ``policy_version`` moves (every grant change bumps it in the same
transaction), so every app process sees a change on its next request.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from uuid import UUID

import casbin

from opencdmo.access.policy import MODEL_PATH, default_policies, system_permissions
from opencdmo.db.tx import tenant_id_transaction
from opencdmo.errors import Forbidden
from opencdmo.scope import TenantContext

# SQL: access sits below tenancy (it cannot import tenancy's tables), and Piccolo has no UNION.
_GRANTS = """
SELECT m.user_id, r.role, NULL::uuid AS site_id FROM role_assignments r
JOIN memberships m ON m.tenant_id = r.tenant_id AND m.id = r.membership_id
WHERE m.is_active
UNION ALL
SELECT m.user_id, s.role, s.site_id FROM site_role_assignments s
JOIN memberships m ON m.tenant_id = s.tenant_id AND m.id = s.membership_id
WHERE m.is_active
"""


def _domain(tenant_id: UUID, site_id: UUID | None) -> str:
    return str(tenant_id) if site_id is None else site_domain(tenant_id, site_id)


def site_domain(tenant_id: UUID, site_id: UUID) -> str:
    """The casbin domain of one site of a tenant (a tenant-wide grant's domain is the
    tenant id)."""
    return f"{tenant_id}/{site_id}"


DECISIONS_PER_TENANT = 50_000


@dataclass
class _Cached:
    """One tenant's enforcer at one policy version, with its decisions memoised.

    The enforcer never changes once built (a grant change bumps the version and builds a new
    one), so a decision for (user, object, action) holds for the life of this entry.
    casbin evaluates its matcher expression afresh on every call (~0.5 ms); the memo makes a
    repeated check a dictionary lookup.
    """

    version: int
    enforcer: casbin.Enforcer
    # The site domains each user holds a grant in (a site-scoped check looks in these).
    site_domains: dict[str, frozenset[str]] = field(default_factory=dict)
    decisions: dict[tuple[str, str, str, str], bool] = field(default_factory=dict)

    def decide(self, user: str, domain: str, obj: str, act: str) -> bool:
        key = (user, domain, obj, act)
        decision = self.decisions.get(key)
        if decision is None:
            decision = bool(self.enforcer.enforce(user, domain, obj, act))
            if len(self.decisions) >= DECISIONS_PER_TENANT:
                self.decisions.clear()
            self.decisions[key] = decision
        return decision


class EnforcerCache:
    def __init__(self) -> None:
        self._by_tenant: dict[UUID, _Cached] = {}
        self._lock = asyncio.Lock()

    async def for_tenant(self, tenant_id: UUID, version: int) -> _Cached:
        cached = self._by_tenant.get(tenant_id)
        if cached is not None and cached.version >= version:
            return cached
        async with self._lock:
            cached = self._by_tenant.get(tenant_id)
            if cached is None or cached.version < version:
                cached = _Cached(version, *await _build(tenant_id))
                self._by_tenant[tenant_id] = cached
        return cached

    def clear(self) -> None:
        self._by_tenant.clear()


async def _build(tenant_id: UUID) -> tuple[casbin.Enforcer, dict[str, frozenset[str]]]:
    enforcer = casbin.Enforcer(str(MODEL_PATH))
    enforcer.add_policies([list(row) for row in default_policies()])
    async with tenant_id_transaction(tenant_id) as connection:
        grants = await connection.fetch(_GRANTS)
    if grants:
        enforcer.add_named_grouping_policies(
            "g",
            [
                [
                    str(g["user_id"]),
                    g["role"],
                    str(tenant_id)
                    if g["site_id"] is None
                    else site_domain(tenant_id, g["site_id"]),
                ]
                for g in grants
            ],
        )
    sites: dict[str, set[str]] = {}
    for g in grants:
        if g["site_id"] is not None:
            sites.setdefault(str(g["user_id"]), set()).add(site_domain(tenant_id, g["site_id"]))
    return enforcer, {user: frozenset(domains) for user, domains in sites.items()}


ENFORCERS = EnforcerCache()


async def can(ctx: TenantContext, obj: str, act: str, *, site_id: UUID | None = None) -> bool:
    """Whether the actor may do ``act`` on ``obj`` in the tenant (at the site, with
    ``site_id``): a person by the roles granted to them tenant-wide or at that site, the
    system actor (CLI provisioning, HUB sync, workers) by the permissions listed for it in
    ``system.csv`` and nothing else."""
    if ctx.actor.is_system:
        return (obj, act) in system_permissions()
    cached = await ENFORCERS.for_tenant(ctx.tenant_id, ctx.policy_version)
    user = str(ctx.user_id)
    if cached.decide(user, str(ctx.tenant_id), obj, act):
        return True
    return site_id is not None and cached.decide(
        user, site_domain(ctx.tenant_id, site_id), obj, act
    )


async def can_somewhere(ctx: TenantContext, obj: str, act: str) -> bool:
    """Whether the actor may do ``act`` on ``obj`` in the whole tenant or at one site at
    least (the first door of a site-scoped route; the service checks the site itself)."""
    if await can(ctx, obj, act):
        return True
    if ctx.actor.is_system:
        return False
    cached = await ENFORCERS.for_tenant(ctx.tenant_id, ctx.policy_version)
    user = str(ctx.user_id)
    return any(
        cached.decide(user, domain, obj, act) for domain in cached.site_domains.get(user, ())
    )


async def authorize(ctx: TenantContext, obj: str, act: str, *, site_id: UUID | None = None) -> None:
    """The service-side check: every command checks the permission of the actor it is given,
    whoever calls it (a route, the CLI, a worker); the HTTP guard is only the first door."""
    if not await can(ctx, obj, act, site_id=site_id):
        who = "The system" if ctx.actor.is_system else "Your roles"
        raise Forbidden(f"{who} in {ctx.name} may not do this ({permission_text(obj, act)}).")


def permission_text(obj: str, act: str) -> str:
    """A permission as a person reads it: ``hub: approve publication``."""
    return f"{obj}: {act.replace('_', ' ')}"
