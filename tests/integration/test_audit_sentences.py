"""The audit trail as sentences: people and records named and linked, values as a readable
list of changes, filters from lists, and nothing named from another tenant."""

from __future__ import annotations

import re
import uuid
from typing import Any

from litestar import Litestar

from opencdmo.audit import queries, sentences
from opencdmo.db.tx import read_view
from opencdmo.identity import service as identity
from opencdmo.scope import SYSTEM, RequestMeta
from opencdmo.tenancy import service as tenancy
from tests.conftest import PASSWORD, Browser, World, as_actor, recorded


async def _org() -> tuple[Any, list[dict[str, Any]]]:
    slug = f"snt-{uuid.uuid4().hex[:8]}"
    ctx = await tenancy.create_tenant(slug, f"Sentences {slug}", "cdmo", SYSTEM, RequestMeta())
    people = []
    for n, (name, role) in enumerate(
        (("Avery Lindqvist", "tenant_admin"), ("Sofia Marchetti", "viewer"))
    ):
        email = f"p{n}-{slug}@org.test"
        user = await identity.create_user(email, name, PASSWORD)
        membership = await tenancy.add_member(ctx, user.id, [role])
        people.append({"email": email, "member_id": str(membership), "user_id": user.id})
    return ctx, people


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


async def test_a_role_change_reads_as_a_sentence_with_the_reason(app: Litestar) -> None:
    ctx, people = await _org()
    admin = Browser(app)
    assert (await admin.login(people[0]["email"])).status_code == 303
    url = f"/api/v1/t/{ctx.slug}/members/{people[1]['member_id']}/roles"
    body = {"roles": ["viewer", "qc_analyst"], "reason": "joins the QC lab"}
    assert (await admin.send("PUT", url, json=body)).status_code == 200
    page = await admin.get(f"/t/{ctx.slug}/audit", params={"action": "member.roles_changed"})
    assert page.status_code == 200
    assert "Avery Lindqvist gave Sofia Marchetti the role QC analyst: joins the QC lab" in _text(
        page.text
    ).replace(" :", ":")
    assert f'<a href="/t/{ctx.slug}/members">Sofia Marchetti</a>' in page.text
    assert '<q class="reason">joins the QC lab</q>' in page.text
    # The values on demand, readable: labelled roles, no JSON.
    assert "<summary>What changed (1 value)</summary>" in page.text
    assert '<td class="old">Viewer</td><td class="new">QC analyst, Viewer</td>' in page.text
    assert '{"roles"' not in page.text and "qc_analyst</td>" not in page.text
    await admin.close()


async def test_sentences_name_records_of_this_tenant_only(world: World) -> None:
    """An event that refers to another tenant's record (by id) does not get its name."""
    ctx, _ = await _org()
    beta_member = await tenancy.add_member(
        world.beta,
        (
            await identity.create_user(f"x-{uuid.uuid4().hex[:6]}@b.test", "Hidden Name", PASSWORD)
        ).id,
        [],
    )
    await recorded(ctx, "member.deactivated", "membership", beta_member)
    async with read_view(ctx):
        rows, _ = await queries.page(
            ctx,
            queries.parse_filter(ctx, None, None, "member.deactivated", None, None),
            limit=5,
            before=None,
        )
        described = await sentences.describe(ctx, rows)
    assert len(described) == 1
    assert "Hidden Name" not in described[0].text
    assert described[0].text == f"OpenCDMO system deactivated membership {str(beta_member)[:8]}"


def test_every_action_the_code_records_has_a_sentence() -> None:
    """A new action gets its sentence with it (the generic one is a fallback, not a plan)."""
    from pathlib import Path

    src = Path(__file__).resolve().parents[2] / "src" / "opencdmo"
    recorded_actions = set()
    for path in src.rglob("*.py"):
        recorded_actions |= set(
            re.findall(
                r"\"((?:user|tenant|site|member|invitation|token|recipe|signature|hub|library|audit|access|partner)\.[a-z_]+)\"",
                path.read_text(),
            )
        )
    lifecycle = {f"recipe.{a}" for a in ("submit", "approve", "reject", "make_effective", "retire")}
    missing = (recorded_actions | lifecycle) - set(sentences.SENTENCES)
    assert not missing, f"give these actions a sentence: {sorted(missing)}"


async def test_an_action_without_a_sentence_still_reads_as_one(world: World) -> None:
    ctx, _ = await _org()
    await recorded(
        as_actor(ctx, world["admin"]), "tenant.renamed_in_future", "tenant", ctx.tenant_id
    )
    async with read_view(ctx):
        rows, _ = await queries.page(
            ctx,
            queries.parse_filter(ctx, None, None, "tenant.renamed", None, None),
            limit=5,
            before=None,
        )
        described = await sentences.describe(ctx, rows)
    assert described[0].text == f"Admin Person did tenant.renamed_in_future on tenant {ctx.name}"
    assert described[0].parts[-1].href == f"/t/{ctx.slug}/"


async def test_filters_offer_people_actions_and_kinds_from_lists(app: Litestar) -> None:
    ctx, people = await _org()
    admin = Browser(app)
    assert (await admin.login(people[0]["email"])).status_code == 303
    page = await admin.get(f"/t/{ctx.slug}/audit")
    assert '<option value="Sofia Marchetti">' in page.text
    assert '<option value="member.roles_changed">Member roles changed</option>' in page.text
    assert '<option value="master_recipe">Master recipe</option>' in page.text
    chosen = await admin.get(f"/t/{ctx.slug}/audit", params={"entity": "membership"})
    assert '<option value="membership" selected>Membership</option>' in chosen.text
    assert "added" in _text(chosen.text) and "created the organisation" not in _text(chosen.text)
    await admin.close()
