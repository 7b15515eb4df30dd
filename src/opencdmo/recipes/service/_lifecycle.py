"""The master recipe lifecycle, every transition a signed command in one unit of work:
Draft -> In Review (the author signs "authored") -> Approved (QA signs "approved", as many
times as the tenant's signature flow asks) -> Effective (QA signs "approved for use"; the
previous effective revision is superseded) -> Retired (signed "retired", with a reason).
QA returns a revision in review or approved to Draft by signing "rejected" with a reason.

Each command re-authenticates the signer before its unit of work opens, then locks the
recipe row, checks the state under the lock, and writes the signature, the state change and
the audit events together: two people acting at once are serialised by the lock, so the
second approval counts, the second submit gets a 409 and leaves no signature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from opencdmo.access.service import authorize
from opencdmo.access.sod import check_author_may_not_approve
from opencdmo.audit import service as audit
from opencdmo.db.clock import database_now
from opencdmo.db.tx import tenant_transaction, unit_of_work
from opencdmo.errors import Conflict, Forbidden, ValidationFailed
from opencdmo.labels import label
from opencdmo.recipes import queries
from opencdmo.recipes.queries import RecipeRow
from opencdmo.recipes.service._revisions import record_of
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.signatures import queries as signature_queries
from opencdmo.signatures import service as signatures
from opencdmo.signatures.queries import Signer


@dataclass(frozen=True)
class Transition:
    """One lifecycle command: the states it starts from, where it leads, the meaning of its
    signature and the permission it needs."""

    action: str
    sources: tuple[str, ...]
    target: str
    meaning: str
    permission: str


TRANSITIONS = {
    t.action: t
    for t in (
        Transition("submit", ("draft",), "in_review", "authored", "submit"),
        Transition("approve", ("in_review",), "approved", "approved", "approve"),
        Transition("reject", ("in_review", "approved"), "draft", "rejected", "approve"),
        Transition("make_effective", ("approved",), "effective", "approved for use", "approve"),
        Transition("retire", ("effective",), "retired", "retired", "approve"),
    )
}

STATUS_NAMES = {
    status: label(status) for status in ("draft", "in_review", "approved", "effective", "retired")
}


def _check_state(row: RecipeRow, step: Transition) -> None:
    if row.status not in step.sources:
        allowed = " or ".join(STATUS_NAMES[s] for s in step.sources)
        raise Conflict(
            f"This recipe is {STATUS_NAMES.get(row.status, row.status)}: "
            f"'{step.action.replace('_', ' ')}' needs it {allowed}.",
            details={"status": row.status},
        )


def review_problems(content: dict[str, Any]) -> list[str]:
    """What a revision lacks to be reviewed: steps, a specification and what it is released
    against."""
    problems = []
    steps = [op for up in content.get("unit_procedures") or [] for op in up.get("operations", [])]
    if not steps:
        problems.append("add at least one step to the procedure")
    spec = content.get("specification") or {}
    if not spec.get("modality"):
        problems.append("set the modality in the specification")
    if not spec.get("batch_size"):
        problems.append("set the nominal batch size in the specification")
    if not content.get("release_specifications"):
        problems.append("add at least one release specification")
    return problems


def _refuse_second_signature(ctx: TenantContext, signers: list[Signer], unique: bool) -> None:
    mine = {s.meaning for s in signers if s.signer_id == ctx.user_id}
    if "approved" in mine or (unique and mine):
        raise Forbidden("You have already signed this revision; another person must approve.")


async def _signers(row: RecipeRow) -> list[Signer]:
    """Who signed the recipe's current revision, with which meaning."""
    return await signature_queries.signers("master_recipe", str(row.id), str(row.current_revision))


async def _precheck(ctx: TenantContext, recipe_id: UUID, step: Transition, unique: bool) -> None:
    """The refusals that need no password, before the signer is asked to re-authenticate
    (checked again under the lock)."""
    async with tenant_transaction(ctx):
        row = await queries.recipe(recipe_id)
        _check_state(row, step)
        record = await record_of(row)
        check_author_may_not_approve(record.author_id, ctx.user_id, step.meaning)
        if step.action == "approve":
            _refuse_second_signature(ctx, await _signers(row), unique)


async def _move(ctx: TenantContext, row: RecipeRow, step: Transition, reason: str) -> None:
    """The state change and its audit events, in the open unit of work."""
    updates: dict[str, Any] = {"status": step.target}
    if step.action == "make_effective":
        updates.update(effective_revision=row.current_revision, effective_at=database_now())
        if row.effective_revision is not None:
            await audit.record(
                ctx,
                "recipe.superseded",
                "master_recipe",
                row.id,
                old={"effective_revision": row.effective_revision},
                new={"effective_revision": row.current_revision},
            )
    if step.action == "retire":
        updates.update(effective_revision=None, retired_reason=reason)
    await queries.update_recipe(row.id, **updates)
    await audit.record(
        ctx,
        f"recipe.{step.action}",
        "master_recipe",
        row.id,
        old={"status": row.status},
        new={"status": step.target, "revision": row.current_revision},
        reason=reason,
    )


async def _signed(
    settings: Settings,
    ctx: TenantContext,
    recipe_id: UUID,
    action: str,
    password: str,
    reason: str,
    *,
    approvers_required: int | None = None,
) -> bool:
    """Run one lifecycle command; returns whether the recipe moved (an approval may be one of
    several the signature flow needs)."""
    from opencdmo.tenancy.service import signature_flow

    step = TRANSITIONS[action]
    await authorize(ctx, "recipes", step.permission)
    required, unique = await signature_flow(ctx)
    required = approvers_required or required
    await _precheck(ctx, recipe_id, step, unique)
    signing = await signatures.prepare(settings, ctx, step.meaning, reason, password)
    async with unit_of_work(ctx):
        row = await queries.recipe(recipe_id, lock=True)
        _check_state(row, step)
        record = await record_of(row)
        if step.action == "submit":
            problems = review_problems(record.content)
            if problems:
                raise ValidationFailed(
                    "This revision is not ready for review: " + "; ".join(problems) + ".",
                    details={"problems": problems},
                )
        moves = True
        if step.action == "approve":
            signers = await _signers(row)
            _refuse_second_signature(ctx, signers, unique)
            approvals = {s.signer_id for s in signers if s.meaning == "approved"}
            moves = len(approvals | {signing.signer_id}) >= required
        await signatures.apply(ctx, signing, record)
        if moves:
            await _move(ctx, row, step, signing.reason)
    return moves


async def submit(
    settings: Settings, ctx: TenantContext, recipe_id: UUID, password: str, reason: str
) -> None:
    """The author signs 'authored' and sends the current revision to review."""
    await _signed(settings, ctx, recipe_id, "submit", password, reason)


async def approve(
    settings: Settings,
    ctx: TenantContext,
    recipe_id: UUID,
    password: str,
    reason: str,
    *,
    approvers_required: int | None = None,
) -> bool:
    """A QA approver signs 'approved'; with enough approvals the recipe is Approved. Returns
    whether it moved. The tenant's signature flow (its manifest) sets how many approvals, and
    whether one person may sign two stages (by default not); ``approvers_required`` overrides
    the count. The author never approves, and nobody approves one revision twice."""
    return await _signed(
        settings,
        ctx,
        recipe_id,
        "approve",
        password,
        reason,
        approvers_required=approvers_required,
    )


async def reject(
    settings: Settings, ctx: TenantContext, recipe_id: UUID, password: str, reason: str
) -> None:
    """QA returns a revision in review (or approved, not yet effective) to Draft, signing
    'rejected' with the reason."""
    await _signed(settings, ctx, recipe_id, "reject", password, reason)


async def make_effective(
    settings: Settings, ctx: TenantContext, recipe_id: UUID, password: str, reason: str
) -> None:
    """QA signs 'approved for use': the approved revision is in force, the previous effective
    one superseded."""
    await _signed(settings, ctx, recipe_id, "make_effective", password, reason)


async def retire(
    settings: Settings, ctx: TenantContext, recipe_id: UUID, password: str, reason: str
) -> None:
    """QA signs 'retired' with the reason: the recipe is no longer in force and never
    changes again."""
    await _signed(settings, ctx, recipe_id, "retire", password, reason)


async def run(
    settings: Settings,
    ctx: TenantContext,
    recipe_id: UUID,
    action: str,
    password: str,
    reason: str,
) -> bool:
    """Any lifecycle command by name (the pages and the API share it)."""
    if action not in TRANSITIONS:
        raise ValidationFailed(f"Unknown lifecycle action '{action}'.", details={"field": "action"})
    return await _signed(settings, ctx, recipe_id, action, password, reason)
