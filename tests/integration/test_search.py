"""Search: typos, relevance, isolation by audience and tenant, permissions, installed badges,
facet names, and bad input, through the HUB search and the search box."""

from __future__ import annotations

import asyncio
import random
import string
import uuid
from typing import Any

import asyncpg
import pytest

from opencdmo.db.textsearch import Terms, expand
from opencdmo.db.tx import tenant_transaction
from opencdmo.hub import library, service
from opencdmo.hub import search as hub_search
from opencdmo.hub.content import validate
from opencdmo.recipes import service as recipes
from opencdmo.scope import SYSTEM, RequestMeta, TenantContext
from opencdmo.tenancy import service as tenancy
from tests.conftest import World, as_actor
from tests.integration.test_hub import material


def word() -> str:
    """A word no content has: letters only, so that it is one search word."""
    return "zq" + "".join(random.choices(string.ascii_lowercase, k=8))


async def own_tenant(world: World, *roles: tuple[str, str]) -> TenantContext:
    """A tenant of its own (what other tests publish or install does not matter), with the
    personas given their roles there."""
    ctx = await tenancy.create_tenant(
        f"search-{uuid.uuid4().hex[:8]}", "Search Test", "cdmo", SYSTEM, RequestMeta()
    )
    for persona, role in roles:
        await tenancy.add_member(ctx, world[persona].user_id, [role])
    return ctx


async def publish(
    ctx: TenantContext, name: str, *, summary: str = "A buffer for tests.", visibility: str
) -> Any:
    slug = f"{name.lower().replace(' ', '-')}-{uuid.uuid4().hex[:4]}"
    doc = validate({**material(slug, name=name), "summary": summary}, "test")
    return await service.publish(ctx, doc, visibility=visibility)


async def hub_item(owner: asyncpg.Connection, slug: str) -> Any:
    return await owner.fetchval(
        "SELECT i.id FROM hub_items i JOIN tenants t ON t.id = i.publisher_id "
        "WHERE i.slug = $1 AND t.slug = 'opencdmo-hub'",
        slug,
    )


async def test_a_typo_finds_the_mycoplasma_method(synced: Any, browser: Any) -> None:
    client = await browser("viewer")
    hits = (await client.get("/api/v1/t/alpha/hub/items", params={"q": "mycoplsma"})).json()
    assert hits["items"][0]["slug"] == "mycoplasma-nat"
    box = (await client.get("/api/v1/t/alpha/search", params={"q": "mycoplsma"})).json()
    assert box["hub"][0]["code"] == "mycoplasma-nat"
    assert box["hub"][0]["url"] == f"/t/alpha/hub/items/{hits['items'][0]['id']}"
    page = await client.get("/t/alpha/hub", params={"q": "mycoplsma"})
    assert "Mycoplasma by nucleic acid amplification" in page.text


async def test_a_word_being_typed_finds_what_it_starts(synced: Any, browser: Any) -> None:
    """The last word is a prefix, also where stemming changes it ("cry" stems to 'cri')."""
    client = await browser("viewer")
    for typed, found in (("cry", "Cryopreservation bag (EVA)"), ("mycopl", "Mycoplasma")):
        hits = (await client.get("/api/v1/t/alpha/hub/items", params={"q": typed})).json()
        assert any(i["name"].startswith(found) for i in hits["items"]), typed
    for finished in (
        "cryopreservation bag",
        "bag for cryopreservation of",
    ):  # "for", "of": stop words
        hits = (await client.get("/api/v1/t/alpha/hub/items", params={"q": finished})).json()
        assert hits["items"][0]["name"] == "Cryopreservation bag (EVA)", finished


async def test_typos_in_a_recipe_name_find_it(synced: Any, world: World, browser: Any) -> None:
    ctx = await own_tenant(world, ("viewer", "viewer"), ("author", "process_engineer"))
    recipe = await recipes.create(as_actor(ctx, world["author"]), "Allogeneic NK cell expansion")
    client = await browser("viewer")
    for typed in ("allogeniec", "Allogenic NK"):  # two letters swapped; a letter missing
        found = (await client.get(f"/api/v1/t/{ctx.slug}/search", params={"q": typed})).json()
        assert [r["id"] for r in found["recipes"]] == [str(recipe)], typed
        assert found["recipes"][0]["url"] == f"/t/{ctx.slug}/recipes/{recipe}"
    nothing = await client.get(f"/api/v1/t/{ctx.slug}/search", params={"q": "hematopoietic"})
    assert nothing.json()["recipes"] == []


async def test_recipes_created_at_the_same_moment_with_the_same_words_all_succeed(
    synced: Any, world: World, browser: Any
) -> None:
    """The vocabulary has no unique key, so writers adding the same words never wait for
    each other (nor deadlock): duplicates read as one."""
    ctx = await own_tenant(world, ("author", "process_engineer"))
    client = await browser("author")
    token = word()
    names = [f"{token} process {n}" if n % 2 else f"Process {token}" for n in range(8)]
    responses = await asyncio.gather(
        *(client.send("POST", f"/api/v1/t/{ctx.slug}/recipes", json={"name": n}) for n in names)
    )
    assert [r.status_code for r in responses] == [201] * 8
    typo = token[:4] + token[5:]
    found = (await client.get(f"/api/v1/t/{ctx.slug}/search", params={"q": typo})).json()
    assert sorted(r["name"] for r in found["recipes"]) == sorted(names)


async def test_a_renamed_fork_is_found_by_its_new_name_with_a_typo(
    synced: Any, world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    ctx = await own_tenant(world, ("author", "process_engineer"))
    author = as_actor(ctx, world["author"])
    fork = await library.fork(author, await hub_item(owner, "t-cell-activation"))
    content = (await library.get_library_item(author, fork)).content
    token = word()
    await library.edit_fork(author, fork, {**content, "name": f"{token} activation"})
    client = await browser("author")
    typo = token[:4] + token[5:]  # a letter missing: no prefix of the name, a correction
    found = (await client.get(f"/api/v1/t/{ctx.slug}/search", params={"q": typo})).json()
    assert [(f["id"], f["badge"]) for f in found["library"]] == [(str(fork), "Fork")]


async def test_relevance_with_words_and_name_order_without(
    synced: Any, world: World, browser: Any
) -> None:
    ctx = await own_tenant(world, ("author", "process_engineer"))
    author = as_actor(ctx, world["author"])
    token = word()
    names = [
        token,  # the name is the query
        f"{token} filtration",  # the name starts with it
        "Filtration with spacer",  # the word in the summary only
        f"Buffer {token}ish",  # a word that starts with the query
    ]
    await publish(author, names[0], visibility="private")
    await publish(author, names[3], visibility="private")
    await publish(author, names[2], summary=f"Uses {token} for filtration.", visibility="private")
    await publish(author, names[1], visibility="private")
    client = await browser("author")
    api = f"/api/v1/t/{ctx.slug}/hub/items"
    ranked = (await client.get(api, params={"q": token})).json()
    assert [i["name"] for i in ranked["items"]] == names
    by_name = (await client.get(api, params={"q": token, "sort": "name"})).json()
    assert [i["name"] for i in by_name["items"]] == sorted(names)
    # Live search (the htmx fragment the box asks for): by relevance, and it says so.
    live = await client.get(
        f"/t/{ctx.slug}/hub",
        params={"q": token, "sort": "relevance"},
        headers={"HX-Request": "true"},
    )
    assert "best match first" in live.text
    shown = [live.text.index(f">{name}</a>") for name in names]
    assert shown == sorted(shown)
    # Without words: by name, whatever the sort box says, and the page says so.
    browse = await client.get(f"/t/{ctx.slug}/hub", params={"kind": "material"})
    assert '<option value="relevance" selected>Relevance</option>' in browse.text
    assert "by name" in browse.text


async def test_another_tenants_private_items_and_recipes_never_appear(
    synced: Any, world: World, browser: Any
) -> None:
    other = await own_tenant(world, ("author", "process_engineer"))
    theirs = as_actor(other, world["author"])
    secret, recipe_word = word(), word()
    published = await publish(theirs, f"{secret} buffer", visibility="private")
    recipe = await recipes.create(theirs, f"{recipe_word} process")
    typo = secret[:4] + secret[5:]  # a letter missing
    alpha = await browser("viewer")
    member = await browser("author")
    for q in (secret, typo, recipe_word, recipe_word[:-1]):
        mine = (await alpha.get("/api/v1/t/alpha/search", params={"q": q})).json()
        assert mine["recipes"] == [] and mine["library"] == [] and mine["hub"] == [], q
        hub = (await alpha.get("/api/v1/t/alpha/hub/items", params={"q": q})).json()
        assert hub["total"] == 0 and all(
            p["value"] != other.slug for p in hub["facets"]["publisher"]
        ), q
        for path in ("/t/alpha/search", "/t/alpha/search/suggest", "/t/alpha/hub"):
            page = await alpha.get(path, params={"q": q})
            assert page.status_code == 200 and str(published.item_id) not in page.text
            assert str(recipe) not in page.text
    api = f"/api/v1/t/{other.slug}/search"
    found = (await member.get(api, params={"q": typo})).json()
    assert [h["id"] for h in found["hub"]] == [str(published.item_id)]
    found = (await member.get(api, params={"q": recipe_word[:-1]})).json()
    assert [r["id"] for r in found["recipes"]] == [str(recipe)]


async def test_the_vocabulary_of_an_audience_stays_with_it(synced: Any, world: World) -> None:
    """A typo is corrected only to words the tenant may see: another tenant's private words
    never widen its queries."""
    other = await own_tenant(world, ("author", "process_engineer"))
    theirs = as_actor(other, world["author"])
    secret = word()
    await publish(theirs, f"{secret} buffer", visibility="private")
    await recipes.create(theirs, f"{secret}x process")
    typo = secret[:3] + secret[4:]

    async def corrections(ctx: TenantContext) -> list[str]:
        async with tenant_transaction(ctx) as connection:
            terms = await expand(connection, typo, [hub_search.VOCABULARY, _TENANT_WORDS])
        return [text for w in terms.words for text, _ in w.corrections]

    assert await corrections(world.alpha) == []
    assert set(await corrections(other)) == {secret, f"{secret}x"}


_TENANT_WORDS = (
    "SELECT gram, word, grams FROM search_terms WHERE gram IN (SELECT g FROM query_grams)"
)


async def test_the_search_sees_exactly_what_row_level_security_shows(
    synced: Any, world: World, app_role: asyncpg.Connection
) -> None:
    """Every audience's branch together: public items, the tenant's own private and shared
    items, and items shared with it, the same set as the HUB policy shows, in results and
    counts."""
    first = await own_tenant(world, ("author", "process_engineer"))
    second = await own_tenant(world, ("author", "process_engineer"))
    token = word()
    publisher = as_actor(first, world["author"])
    shared = await publish(publisher, f"{token} shared", visibility="private")
    await service.set_visibility(publisher, shared.item_id, "shared", [second.slug])
    await publish(publisher, f"{token} hidden", visibility="private")
    await publish(as_actor(second, world["author"]), f"{token} own", visibility="private")
    for ctx in (first, second, world.alpha):
        async with app_role.transaction():
            await app_role.execute(
                "SELECT set_config('app.tenant_id', $1, true)", str(ctx.tenant_id)
            )
            visible = {r["id"] for r in await app_role.fetch("SELECT id FROM hub_items")}
            matching = {
                r["id"]
                for r in await app_role.fetch(
                    "SELECT id FROM hub_items WHERE search @@ to_tsquery('english', $1)",
                    f"'{token}':*",
                )
            }
        found = set()
        for page in range(1, -(-len(visible) // 100) + 1):
            result = await hub_search.search(ctx, hub_search.SearchQuery(page=page, per_page=100))
            found |= {hit.id for hit in result.items}
            assert result.total == len(visible)
        assert found == visible
        result = await hub_search.search(ctx, hub_search.SearchQuery(token, per_page=100))
        assert {hit.id for hit in result.items} == matching and result.total == len(matching)
        assert sum(v.count for v in result.facets["kind"]) == len(matching)
        assert len(matching) == {first: 2, second: 2, world.alpha: 0}[ctx]


async def test_the_full_text_index_serves_the_search_under_row_level_security(
    synced: Any, world: World, app_role: asyncpg.Connection
) -> None:
    """The search's plan can use the full-text index as the app role; a query on hub_items
    itself cannot (the policy comes first and @@ is not leakproof): why the search reads
    public items through their own view."""
    query = hub_search.SearchQuery("cell expansion")
    sql, args = hub_search.search_sql(world.alpha, query, Terms("cell expansion"))
    async with app_role.transaction():
        await app_role.execute(
            "SELECT set_config('app.tenant_id', $1, true)", str(world.alpha.tenant_id)
        )
        await app_role.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in await app_role.fetch("EXPLAIN " + sql, *args))
        direct = "\n".join(
            r[0]
            for r in await app_role.fetch(
                "EXPLAIN SELECT id FROM hub_items "
                "WHERE search @@ websearch_to_tsquery('english', 'cell expansion')"
            )
        )
    assert "hub_items_search" in plan
    assert "hub_items_search" not in direct


async def test_each_group_only_for_members_who_may_read_it(synced: Any, browser: Any) -> None:
    admin = await browser("admin")  # tenant_admin: the HUB, not recipes
    found = (await admin.get("/api/v1/t/alpha/search", params={"q": "activation"})).json()
    assert found["recipes"] is None and found["hub"] and found["library"] is not None
    page = await admin.get("/t/alpha/search", params={"q": "activation"})
    assert 'id="results-recipes"' not in page.text and 'id="results-hub"' in page.text
    operator = await browser("operator")  # production_operator: recipes, not the HUB
    found = (await operator.get("/api/v1/t/alpha/search", params={"q": "activation"})).json()
    assert found["hub"] is None and found["library"] is None and found["recipes"] is not None
    bare = await browser("bare")  # no role at all
    refused = await bare.get("/api/v1/t/alpha/search", params={"q": "activation"})
    assert refused.status_code == 403


async def test_installed_badges_and_the_upgrade_offer(
    synced: Any, world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    ctx = await own_tenant(world, ("author", "process_engineer"))
    author = as_actor(ctx, world["author"])
    item = await hub_item(owner, "t-cell-activation")
    await library.install(author, item, "1.0.0")
    client = await browser("author")
    hits = (
        await client.get(f"/api/v1/t/{ctx.slug}/hub/items", params={"q": "T-cell activation"})
    ).json()
    hit = next(i for i in hits["items"] if i["id"] == str(item))
    assert hit["installed_version"] == "1.0.0" and hit["latest_version"] == "1.1.0"
    # The item and its dependencies, installed with it: nothing else has a badge.
    versions = {str(e.hub_item_id): e.version for e in await library.list_library(author)}
    assert {i["id"]: i["installed_version"] for i in hits["items"]} == {
        i["id"]: versions.get(i["id"]) for i in hits["items"]
    }
    detail = (await client.get(f"/api/v1/t/{ctx.slug}/hub/items/{item}")).json()
    assert detail["installed_version"] == "1.0.0"
    browse = await client.get(f"/t/{ctx.slug}/hub", params={"q": "T-cell activation"})
    assert "Installed v1.0.0" in browse.text
    page = (await client.get(f"/t/{ctx.slug}/hub/items/{item}")).text
    assert "Installed v1.0.0" in page and "Review the upgrade to v1.1.0" in page
    assert "Install v1.1.0" not in page
    entry = next(e for e in await library.list_library(author) if e.hub_item_id == item)
    await library.upgrade(author, entry.id, "1.1.0", "take the update")
    page = (await client.get(f"/t/{ctx.slug}/hub/items/{item}")).text
    assert "Installed v1.1.0" in page and "It is the latest version." in page
    assert "Review the upgrade" not in page and "Install v" not in page
    box = await client.get(f"/api/v1/t/{ctx.slug}/search", params={"q": "t-cell-activation"})
    assert box.json()["hub"][0]["badge"] == "Installed v1.1.0"


async def test_install_counts_are_pluralised(synced: Any, world: World, browser: Any) -> None:
    ctx = await own_tenant(world, ("author", "process_engineer"))
    author = as_actor(ctx, world["author"])
    token = word()
    published = await publish(author, f"{token} buffer", visibility="private")
    client = await browser("author")
    page = (await client.get(f"/t/{ctx.slug}/hub/items/{published.item_id}")).text
    assert "· 0 installs" in page
    await library.install(author, published.item_id)
    page = (await client.get(f"/t/{ctx.slug}/hub/items/{published.item_id}")).text
    assert "· 1 install</p>" in page and "1 installs" not in page
    browse = (await client.get(f"/t/{ctx.slug}/hub", params={"q": token})).text
    assert "· 1 install</p>" in browse and "1 installs" not in browse


async def test_facets_show_display_names(synced: Any, browser: Any) -> None:
    client = await browser("viewer")
    hits = (await client.get("/api/v1/t/alpha/hub/items", params={"kind": "unit_operation"})).json()
    labels = {
        name: {f["value"]: f["label"] for f in values} for name, values in hits["facets"].items()
    }
    assert labels["kind"] == {"unit_operation": "Unit operation"}
    assert labels["modality"]["car-t"] == "CAR-T"
    assert labels["category"]["cell-processing"] == "Cell processing"
    assert labels["publisher"]["opencdmo-hub"] == service.PLATFORM_NAME
    assert labels["equipment_class"]["biosafety-cabinet"] == "Class II biological safety cabinet"
    page = (await client.get("/t/alpha/hub", params={"kind": "unit_operation"})).text
    for shown in (
        "<span>CAR-T</span>",
        "<span>Cell processing</span>",
        "safety cabinet</span>",
        "Equipment class</h3>",
    ):
        assert shown in page
    assert "<span>car-t</span>" not in page and "<span>cell-processing</span>" not in page


SEARCHES = [
    "/api/v1/t/alpha/hub/items",
    "/t/alpha/hub",
    "/api/v1/t/alpha/search",
    "/t/alpha/search",
    "/t/alpha/search/suggest",
]


@pytest.mark.parametrize("path", SEARCHES)
@pytest.mark.parametrize(
    ("q", "status"),
    [("x" * 201, 400), ("cell\x07expansion", 422), ("cell\x00", 422), ("line\nbreak", 422)],
)
async def test_bad_search_text_is_refused_with_a_message(
    synced: Any, browser: Any, path: str, q: str, status: int
) -> None:
    client = await browser("viewer")
    response = await client.get(path, params={"q": q}, headers={"accept": "application/json"})
    assert response.status_code == status
    assert "q" in response.json()["error"]["message"]


@pytest.mark.parametrize("path", SEARCHES)
@pytest.mark.parametrize("q", ["?!", '"unbalanced', "-", " or ", "a & b | !c:*", "\u200b"])
async def test_odd_search_text_is_a_clean_answer(
    synced: Any, browser: Any, path: str, q: str
) -> None:
    client = await browser("viewer")
    response = await client.get(path, params={"q": q})
    assert response.status_code == 200


async def test_the_search_box_suggests_as_one_types(synced: Any, browser: Any) -> None:
    client = await browser("viewer")
    dashboard = (await client.get("/t/alpha/")).text
    assert 'id="topsearch-q"' in dashboard and 'hx-get="/t/alpha/search/suggest"' in dashboard
    fragment = await client.get(
        "/t/alpha/search/suggest", params={"q": "mycopl"}, headers={"HX-Request": "true"}
    )
    assert (
        "<html" not in fragment.text and "Mycoplasma by nucleic acid amplification" in fragment.text
    )
    assert 'href="/t/alpha/search?q=mycopl"' in fragment.text
    empty = await client.get("/t/alpha/search/suggest", params={"q": ""})
    assert empty.text.strip() == ""
    page = await client.get("/t/alpha/search", params={"q": "mycopl"})
    assert page.status_code == 200 and 'id="results-hub"' in page.text
