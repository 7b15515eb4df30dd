"""The work queues: what each role sees on its dashboard, separation of duties, the tenant
boundary, the notification count, the API and the page."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from opencdmo.errors import Forbidden
from opencdmo.hub import library
from opencdmo.identity import service as identity
from opencdmo.recipes import service as recipes
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.tenancy import service as tenancy
from opencdmo.work import registry
from tests.conftest import PASSWORD, Persona, World, member_as
from tests.integration.conftest import activation, installed, new_lab, reviewable, viability
from tests.integration.test_recipes import design


@dataclass(frozen=True)
class Team:
    ctx: TenantContext
    people: dict[str, TenantContext]
    uo: str
    method: str

    def __getitem__(self, key: str) -> TenantContext:
        return self.people[key]


async def _person(ctx: TenantContext, key: str, roles: list[str]) -> Persona:
    email = f"{key}-{uuid.uuid4().hex[:8]}@work.test"
    user = await identity.create_user(email, f"{key.title()} Person", PASSWORD)
    await tenancy.add_member(ctx, user.id, roles)
    return Persona(key, email, user.full_name, user.id)


@pytest.fixture
async def team(
    synced: Any, world: World, own_tenant: TenantContext, owner: asyncpg.Connection
) -> Team:
    """A tenant of its own: the personas in their roles, a second QA approver and an engineer
    who is also a QA approver, and the library content a recipe needs."""
    extra = {
        "qa2": await _person(own_tenant, "qa2", ["qa_approver"]),
        "dual": await _person(own_tenant, "dual", ["process_engineer", "qa_approver"]),
    }
    personas = {k: world[k] for k in ("author", "approver", "operator", "viewer")} | extra
    people = {key: await member_as(own_tenant, p) for key, p in personas.items()}
    return Team(
        own_tenant,
        people,
        await activation(owner, own_tenant),
        await viability(owner, own_tenant),
    )


async def _ready(team: Team, author: TenantContext, name: str) -> UUID:
    """A recipe with a second revision ready for review."""
    recipe = await recipes.create(author, name)
    await recipes.save(author, recipe, reviewable(design(team.uo), team.method), 1)
    return recipe


async def _submitted(settings: Settings, team: Team, name: str, by: str = "author") -> UUID:
    recipe = await _ready(team, team[by], name)
    await recipes.submit(settings, team[by], recipe, PASSWORD, "ready for review")
    return recipe


async def _queues(ctx: TenantContext) -> dict[str, registry.Queue]:
    return {q.key: q for q in await registry.queues_for(ctx)}


def _labels(queue: registry.Queue) -> list[str]:
    return [item.label for item in queue.items]


async def test_each_role_sees_the_queues_it_acts_on(
    team: Team, settings: Settings, owner: asyncpg.Connection, world: World
) -> None:
    author, approver = team["author"], team["approver"]
    draft = await recipes.create(author, "Draft only")
    review = await _submitted(settings, team, "Under review")
    back = await _submitted(settings, team, "Sent back")
    await recipes.reject(settings, approver, back, PASSWORD, "Tighten the viability limit")
    approved = await _submitted(settings, team, "Approved, not in force")
    await recipes.approve(settings, approver, approved, PASSWORD, "meets spec")
    in_force = await _submitted(settings, team, "In force")
    await recipes.approve(settings, approver, in_force, PASSWORD, "meets spec")
    await recipes.make_effective(settings, approver, in_force, PASSWORD, "approved for use")
    # Revising an effective recipe starts a draft; its effective revision stays in force.
    content = reviewable(design(team.uo, density=1.1), team.method)
    await recipes.save(author, in_force, content, 2, "next campaign")
    retired = await _submitted(settings, team, "Retired")
    await recipes.approve(settings, approver, retired, PASSWORD, "ok")
    await recipes.make_effective(settings, approver, retired, PASSWORD, "in force")
    await recipes.retire(settings, approver, retired, PASSWORD, "process transferred out")
    await installed(owner, team.ctx, "lentiviral-transduction", "1.0.0")
    slug = team.ctx.slug

    mine = await _queues(author)
    assert list(mine) == ["returned", "drafts", "library_updates", "recently_effective"]
    assert _labels(mine["drafts"]) == ["In force, revision 3", "Draft only, revision 1"]
    assert mine["drafts"].items[0].note == "next campaign"
    assert mine["drafts"].items[1].link == f"/t/{slug}/recipes/{draft}"
    (returned,) = mine["returned"].items
    assert (returned.label, returned.who, returned.note) == (
        "Sent back, revision 2",
        world["approver"].full_name,
        "Tighten the viability limit",
    )
    assert returned.link == f"/t/{slug}/recipes/{back}" and returned.when is not None
    (effective,) = mine["recently_effective"].items
    assert (effective.label, effective.who) == ("In force, revision 2", world["approver"].full_name)
    # The library queue lists exactly the copies the library page offers an update for.
    offered = {e.id for e in await library.list_library(team.ctx) if e.update_available}
    updates = mine["library_updates"]
    assert {UUID(i.link.split("/")[4]) for i in updates.items} == offered
    assert updates.count == len(offered)
    assert any(i.label.endswith("1.0.0 → 2.0.0") for i in updates.items)

    qa = await _queues(approver)
    assert list(qa) == [
        "awaiting_signature",
        "batches_awaiting_release",
        "lots_awaiting_qc",
        "recently_effective",
    ]
    awaiting = qa["awaiting_signature"]
    assert [(i.label, i.note) for i in awaiting.items] == [
        ("Under review, revision 2", "Needs your approval"),
        ("Approved, not in force, revision 2", recipes_needs("approved")),
    ]
    assert awaiting.items[0].who == world["author"].full_name
    assert awaiting.items[0].link == f"/t/{slug}/recipes/{review}"
    assert awaiting.items[1].who == world["approver"].full_name
    assert awaiting.items[1].link == f"/t/{slug}/recipes/{approved}"

    for key in ("operator", "viewer"):
        seen = await _queues(team[key])
        assert list(seen) == ["recently_effective"]
        assert _labels(seen["recently_effective"]) == ["In force, revision 2"]

    counts = {key: await registry.notification_count(team[key]) for key in team.people}
    assert counts == {"author": 1, "approver": 2, "operator": 0, "viewer": 0, "qa2": 2, "dual": 2}


def recipes_needs(status: str) -> str:
    from opencdmo.work.queues.recipes import NEEDS

    return NEEDS[status]


async def test_the_author_never_sees_their_own_revision_awaiting_approval(
    team: Team, settings: Settings
) -> None:
    dual = team["dual"]  # an engineer who is also a QA approver
    recipe = await _submitted(settings, team, "Written by a QA approver", by="dual")
    assert "Written by a QA approver, revision 2" not in _labels(
        (await _queues(dual))["awaiting_signature"]
    )
    with pytest.raises(Forbidden, match="Separation of duties"):
        await recipes.approve(settings, dual, recipe, PASSWORD, "my own")
    for other in ("approver", "qa2"):
        assert _labels((await _queues(team[other]))["awaiting_signature"]) == [
            "Written by a QA approver, revision 2"
        ]
    # Approved, it awaits the signature that makes it effective: still not from its author.
    await recipes.approve(settings, team["approver"], recipe, PASSWORD, "meets spec")
    assert (await _queues(dual))["awaiting_signature"].count == 0
    assert (await _queues(team["qa2"]))["awaiting_signature"].count == 1


async def test_a_qa_who_signed_does_not_see_the_revision_again(
    team: Team, settings: Settings
) -> None:
    await tenancy.set_signature_flow(team.ctx, 2, True)
    approver, qa2 = team["approver"], team["qa2"]
    recipe = await _submitted(settings, team, "Two approvals")
    assert not await recipes.approve(settings, approver, recipe, PASSWORD, "first")
    assert (await _queues(approver))["awaiting_signature"].count == 0
    assert _labels((await _queues(qa2))["awaiting_signature"]) == ["Two approvals, revision 2"]
    assert await recipes.approve(settings, qa2, recipe, PASSWORD, "second")
    # Approved: either approver may now make it effective.
    for ctx in (approver, qa2):
        (item,) = (await _queues(ctx))["awaiting_signature"].items
        assert item.note == recipes_needs("approved")


async def test_a_qa_who_returned_a_revision_may_not_approve_it_when_signers_must_differ(
    team: Team, settings: Settings
) -> None:
    approver, qa2 = team["approver"], team["qa2"]
    recipe = await _submitted(settings, team, "Resubmitted unchanged")
    await recipes.reject(settings, approver, recipe, PASSWORD, "please check")
    await recipes.submit(settings, team["author"], recipe, PASSWORD, "checked, unchanged")
    assert (await _queues(approver))["awaiting_signature"].count == 0
    with pytest.raises(Forbidden, match="already signed"):
        await recipes.approve(settings, approver, recipe, PASSWORD, "ok now")
    assert (await _queues(qa2))["awaiting_signature"].count == 1
    # Where one person may sign two stages, the one who returned it may approve it.
    await tenancy.set_signature_flow(team.ctx, 1, False)
    assert _labels((await _queues(approver))["awaiting_signature"]) == [
        "Resubmitted unchanged, revision 2"
    ]
    assert await recipes.approve(settings, approver, recipe, PASSWORD, "ok now")


async def test_another_tenants_work_never_appears(
    team: Team, settings: Settings, world: World, owner: asyncpg.Connection
) -> None:
    # The same author and approver work in a second tenant.
    lab = await new_lab(world)
    other = Team(
        lab["ctx"],
        {"author": lab["author"], "approver": lab["approver"]},
        await activation(owner, lab["ctx"]),
        await viability(owner, lab["ctx"]),
    )
    await _submitted(settings, other, "Elsewhere, in review")
    await recipes.create(lab["author"], "Elsewhere, a draft")
    await _submitted(settings, team, "Here, in review")
    await recipes.create(team["author"], "Here, a draft")
    here_qa, there_qa = await _queues(team["approver"]), await _queues(lab["approver"])
    assert _labels(here_qa["awaiting_signature"]) == ["Here, in review, revision 2"]
    assert _labels(there_qa["awaiting_signature"]) == ["Elsewhere, in review, revision 2"]
    assert _labels((await _queues(team["author"]))["drafts"]) == ["Here, a draft, revision 1"]
    assert _labels((await _queues(lab["author"]))["drafts"]) == ["Elsewhere, a draft, revision 1"]
    assert await registry.notification_count(team["approver"]) == 1


async def test_a_queue_counts_every_item_and_shows_the_first(
    team: Team, settings: Settings
) -> None:
    for n in range(3):
        await _submitted(settings, team, f"Batch of reviews {n}")
    queue = next(q for q in await registry.queues_for(team["approver"], 2))
    assert queue.key == "awaiting_signature"
    assert (queue.count, _labels(queue)) == (
        3,
        ["Batch of reviews 0, revision 2", "Batch of reviews 1, revision 2"],
    )
    assert await registry.notification_count(team["approver"]) == 3


def test_every_queue_has_one_key_a_permission_and_an_empty_text() -> None:
    found = registry.providers()
    assert [p.key for p in found] == [
        "awaiting_signature",
        "batches_awaiting_release",
        "lots_awaiting_qc",
        "returned",
        "containers_to_label",
        "materials_below_reorder_level",
        "lots_expiring_soon",
        "drafts",
        "library_updates",
        "recently_effective",
    ]
    assert all(p.empty and len(p.permission) == 2 for p in found)
    assert {p.key for p in found if p.action} == {
        "awaiting_signature",
        "batches_awaiting_release",
        "lots_awaiting_qc",
        "returned",
        "containers_to_label",
        "materials_below_reorder_level",
    }


def _count_in_top_bar(html: str) -> int:
    found = re.search(r'data-notifications="(\d+)"', html)
    assert found, "no notification count in the top bar"
    return int(found.group(1))


async def test_the_api_the_dashboard_and_the_top_bar_agree(
    team: Team, settings: Settings, browser: Any, world: World
) -> None:
    slug = team.ctx.slug
    for n in range(2):
        await _submitted(settings, team, f"API review {n}")
    approver = await browser("approver")
    response = await approver.get(f"/api/v1/t/{slug}/work")
    assert response.status_code == 200
    body = response.json()
    assert body["awaiting_action"] == 2
    assert [q["key"] for q in body["queues"]] == [
        "awaiting_signature",
        "batches_awaiting_release",
        "lots_awaiting_qc",
        "recently_effective",
    ]
    awaiting = body["queues"][0]
    assert (awaiting["title"], awaiting["count"], awaiting["awaits_action"]) == (
        "Awaiting my signature",
        2,
        True,
    )
    first = awaiting["items"][0]
    assert first["label"] == "API review 0, revision 2"
    assert first["who"] == world["author"].full_name and first["when"]
    assert first["link"].startswith(f"/t/{slug}/recipes/")
    assert body["queues"][-1]["items"] == []
    assert body["queues"][-1]["empty"].startswith("No recipe was made effective")

    one = (await approver.get(f"/api/v1/t/{slug}/work?limit=1")).json()
    assert (one["queues"][0]["count"], len(one["queues"][0]["items"])) == (2, 1)
    for bad in ("0", "101", "many"):
        refused = await approver.get(f"/api/v1/t/{slug}/work?limit={bad}")
        assert refused.status_code == 400 and "limit" in refused.json()["error"]["message"]

    page = await approver.get(f"/t/{slug}/")
    assert page.status_code == 200
    assert '<span class="sr-only">2 items need your action</span>' in page.text
    assert _count_in_top_bar(page.text) == 2
    assert "Awaiting my signature" in page.text and "API review 1, revision 2" in page.text
    assert "No recipe was made effective in the last 30 days." in page.text
    assert "Alpha main site" not in page.text and "Own main site" in page.text
    # Every page of the tenant carries the count.
    assert _count_in_top_bar((await approver.get(f"/t/{slug}/recipes")).text) == 2
    # Outside a tenant there is none.
    assert "data-notifications" not in (await approver.get("/account")).text

    viewer = await browser("viewer")
    seen = await viewer.get(f"/t/{slug}/")
    assert '<span class="sr-only">Nothing needs your action</span>' in seen.text
    assert "Awaiting my signature" not in seen.text and "Recently effective recipes" in seen.text
    author = (await (await browser("author")).get(f"/api/v1/t/{slug}/work")).json()
    assert author["awaiting_action"] == 0
    assert [q["key"] for q in author["queues"]] == [
        "returned",
        "drafts",
        "library_updates",
        "recently_effective",
    ]


async def test_another_tenants_work_is_not_found(team: Team, browser: Any) -> None:
    outsider = await browser("outsider")
    for url in (f"/api/v1/t/{team.ctx.slug}/work", f"/t/{team.ctx.slug}/"):
        assert (await outsider.get(url)).status_code == 404
