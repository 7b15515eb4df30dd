"""Applying manifests: create what is missing, change what differs, audit every change."""

from __future__ import annotations

from pathlib import Path

from opencdmo.identity import service as identity
from opencdmo.scope import SYSTEM, Actor, RequestMeta, TenantContext
from opencdmo.tenancy import service
from opencdmo.tenancy.batch_numbering import set_batch_number_pattern
from opencdmo.tenancy.batch_rules import set_exception_rules
from opencdmo.tenancy.manifest import Manifest, Report, discover, manifest_sections
from opencdmo.tenancy.token_policy import set_token_policy


async def apply_path(root: Path, report: Report, actor: Actor = SYSTEM) -> int:
    """Validate every manifest first (nothing changes if one is invalid), then apply each."""
    manifests = discover(root)
    changes = 0
    for manifest in manifests:
        changes += await apply(manifest, report, actor)
    return changes


async def apply(manifest: Manifest, report: Report, actor: Actor = SYSTEM) -> int:
    meta = RequestMeta(request_id=f"manifest:{manifest.path}")
    changes = 0
    existing = await service.tenant_by_slug(manifest.slug)
    if existing is None:
        ctx = await service.create_tenant(manifest.slug, manifest.name, manifest.kind, actor, meta)
        report(f"{manifest.slug}: tenant created")
        changes += 1
    else:
        found = await service.internal_context(existing.id, actor, meta)
        assert found is not None
        ctx = found
        if await service.update_tenant(ctx, manifest.name, manifest.kind):
            report(f"{manifest.slug}: name/kind updated")
            changes += 1
    for code, name, zone in manifest.sites:
        outcome = await service.upsert_site(ctx, code, name, zone)
        if outcome:
            report(f"{manifest.slug}: site {code} {outcome}")
            changes += 1
    if await service.set_signature_flow(ctx, manifest.recipe_approvers, manifest.unique_signers):
        report(
            f"{manifest.slug}: master recipes need {manifest.recipe_approvers} approval(s)"
            + ("" if manifest.unique_signers else "; one person may sign two stages")
        )
        changes += 1
    if await set_token_policy(ctx, manifest.token_policy):
        policy = manifest.token_policy
        report(
            f"{manifest.slug}: API tokens valid for {policy.default_days} days by default, "
            f"{policy.max_days} at most"
        )
        changes += 1
    if await set_batch_number_pattern(ctx, manifest.batch_number_pattern):
        report(f"{manifest.slug}: batch numbers follow {manifest.batch_number_pattern}")
        changes += 1
    if await set_exception_rules(ctx, manifest.exception_rules):
        report(f"{manifest.slug}: batch exception rules set")
        changes += 1
    sections = manifest_sections()
    for name, checked in manifest.sections.items():
        changes += await sections[name].apply(ctx, manifest.path, checked, report)
    for person in manifest.people:
        changes += await _ensure_member(ctx, person.email, person.full_name, person.roles, report)
    return changes


async def _ensure_member(
    ctx: TenantContext, email: str, full_name: str, roles: tuple[str, ...], report: Report
) -> int:
    user = await identity.find_user(email)
    changes = 0
    if user is None:
        user = await identity.create_user_without_password(
            email, full_name, actor=ctx.actor, meta=ctx.meta
        )
        report(f"{ctx.slug}: user {email} created")
        changes += 1
    membership_id = await service.membership_of(ctx, user.id)
    if membership_id is None:
        await service.add_member(ctx, user.id, roles)
        report(f"{ctx.slug}: {email} added with roles {', '.join(roles) or '-'}")
        return changes + 1
    if await service.set_roles(ctx, membership_id, roles, "tenant manifest", only_add=True):
        report(f"{ctx.slug}: {email} granted {', '.join(roles)}")
        changes += 1
    return changes
