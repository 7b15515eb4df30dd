"""Two people acting on the same record at the same moment: real concurrent requests through
the app against the real database. One command, one unit of work: each gets one success and
one clear 409, or both applied where both are valid, never a half state."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import asyncpg

from opencdmo.recipes import service as recipes
from opencdmo.settings import Settings
from opencdmo.tenancy import service as tenancy
from tests.conftest import PASSWORD, World
from tests.integration.conftest import reviewable
from tests.integration.test_recipes import design


async def _signatures(owner: asyncpg.Connection, recipe: UUID) -> list[str]:
    rows = await owner.fetch(
        "SELECT meaning FROM signatures WHERE record_type = 'master_recipe' AND record_id = $1 "
        "ORDER BY signed_at",
        str(recipe),
    )
    return [r["meaning"] for r in rows]


async def _draft(lab: dict[str, Any]) -> UUID:
    recipe = await recipes.create(lab["author"], "Raced")
    await recipes.save(lab["author"], recipe, reviewable(design(lab["uo"]), lab["method"]), 1)
    return recipe


def _sign(reason: str) -> dict[str, str]:
    return {"password": PASSWORD, "reason": reason}


async def test_two_approvals_at_the_same_moment_both_count(
    lab: dict[str, Any], settings: Settings, world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    """A revision that needs two approvals, approved by two people at once, is Approved with
    both signatures (before: it stayed In Review with two approvals)."""
    await tenancy.set_signature_flow(lab["ctx"], 2, True)
    await tenancy.add_member(lab["ctx"], world["viewer"].user_id, ["qa_approver"])
    recipe = await _draft(lab)
    await recipes.submit(settings, lab["author"], recipe, PASSWORD, "for review")
    first, second = await browser("approver"), await browser("viewer")
    url = f"/api/v1/t/{lab['ctx'].slug}/recipes/{recipe}/approve"
    answers = await asyncio.gather(
        first.send("POST", url, json=_sign("first")),
        second.send("POST", url, json=_sign("second")),
    )
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert sorted(a.json()["moved"] for a in answers) == [False, True]
    assert (await recipes.get(lab["author"], recipe)).status == "approved"
    assert await _signatures(owner, recipe) == ["authored", "approved", "approved"]
    moved = await owner.fetchval(
        "SELECT count(*) FROM audit_events WHERE entity_id = $1 AND action = 'recipe.approve'",
        str(recipe),
    )
    assert moved == 1


async def test_two_submits_at_the_same_moment_one_409_and_one_signature(
    lab: dict[str, Any], browser: Any, owner: asyncpg.Connection
) -> None:
    recipe = await _draft(lab)
    one, other = await browser("author"), await browser("author")
    url = f"/api/v1/t/{lab['ctx'].slug}/recipes/{recipe}/submit"
    answers = await asyncio.gather(
        one.send("POST", url, json=_sign("ready")), other.send("POST", url, json=_sign("ready"))
    )
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    refused = next(a for a in answers if a.status_code == 409)
    assert "In Review" in refused.json()["error"]["message"]
    assert await _signatures(owner, recipe) == ["authored"]
    assert (await recipes.get(lab["author"], recipe)).status == "in_review"


async def test_approve_and_reject_at_the_same_moment_one_wins_whole(
    lab: dict[str, Any], settings: Settings, world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    """One QA approver approves while another rejects: the second sees the first's outcome
    and is refused (409) without a signature."""
    await tenancy.add_member(lab["ctx"], world["viewer"].user_id, ["qa_approver"])
    recipe = await _draft(lab)
    await recipes.submit(settings, lab["author"], recipe, PASSWORD, "for review")
    approver, rejecter = await browser("approver"), await browser("viewer")
    base = f"/api/v1/t/{lab['ctx'].slug}/recipes/{recipe}"
    answers = await asyncio.gather(
        approver.send("POST", base + "/approve", json=_sign("meets spec")),
        rejecter.send("POST", base + "/reject", json=_sign("wrong density")),
    )
    codes = [a.status_code for a in answers]
    assert sorted(codes) in ([200, 200], [200, 409]), codes
    signatures = await _signatures(owner, recipe)
    status = (await recipes.get(lab["author"], recipe)).status
    if codes == [200, 200]:  # approve first, then reject of the approved revision: both valid
        assert (signatures, status) == (["authored", "approved", "rejected"], "draft")
    elif codes[0] == 200:
        assert (signatures, status) == (["authored", "approved"], "approved")
    else:
        assert (signatures, status) == (["authored", "rejected"], "draft")


async def test_two_publications_at_the_same_moment_leave_one_signature(
    lab: dict[str, Any], settings: Settings, world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    """Publishing signs and publishes in one unit of work: the publication that loses the race
    is refused and leaves no "approved for publication" signature behind."""
    await tenancy.add_member(lab["ctx"], world["viewer"].user_id, ["qa_approver"])
    recipe = await _draft(lab)
    await recipes.submit(settings, lab["author"], recipe, PASSWORD, "for review")
    await recipes.approve(settings, lab["approver"], recipe, PASSWORD, "ok", approvers_required=1)
    await recipes.make_effective(settings, lab["approver"], recipe, PASSWORD, "in force")
    listing = {
        "slug": f"raced-{recipe.hex[:8]}",
        "version": "1.0.0",
        "summary": "Raced publication",
        "description": "Two people publish it at once.",
        "changelog": "Initial release.",
        "licence": "CC-BY-4.0",
        "tags": [],
        "visibility": "private",
    }
    one, other = await browser("approver"), await browser("viewer")
    url = f"/api/v1/t/{lab['ctx'].slug}/recipes/{recipe}/publish"
    answers = await asyncio.gather(
        one.send("POST", url, json={**listing, **_sign("share")}),
        other.send("POST", url, json={**listing, **_sign("share")}),
    )
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    published = await _signatures(owner, recipe)
    assert published.count("approved for publication") == 1
    versions = await owner.fetchval(
        "SELECT count(*) FROM hub_versions v JOIN hub_items i ON i.id = v.item_id "
        "WHERE i.slug = $1",
        listing["slug"],
    )
    assert versions == 1


async def test_a_wrong_password_leaves_no_lock_and_no_signature(
    lab: dict[str, Any], browser: Any, owner: asyncpg.Connection
) -> None:
    """Re-authentication happens before the unit of work: a wrong password is refused while
    another person's command on the same recipe goes through."""
    recipe = await _draft(lab)
    author = await browser("author")
    url = f"/api/v1/t/{lab['ctx'].slug}/recipes/{recipe}/submit"
    wrong, right = await asyncio.gather(
        author.send("POST", url, json={"password": "not-the-password-1", "reason": "x"}),
        author.send("POST", url, json=_sign("ready")),
    )
    assert right.status_code == 200, right.text
    # The wrong one is refused for its password (401), or, when the other had committed before
    # it was read, because the recipe is in review already (409): never a second signature.
    assert wrong.status_code in (401, 409), wrong.text
    assert await _signatures(owner, recipe) == ["authored"]
