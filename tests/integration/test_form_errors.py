"""Refused input as a person meets it: the form comes back with what was typed and the message
next to the field, text fields have limits, and error pages speak in sentences."""

from __future__ import annotations

import re
from typing import Any

import asyncpg

from opencdmo.recipes import service as recipes
from tests.conftest import World


def _field_error(html: str, field_id: str) -> str:
    found = re.search(rf'<span class="field-error" id="{re.escape(field_id)}"[^>]*>([^<]*)<', html)
    assert found, f"no message next to {field_id}"
    return found.group(1)


async def test_new_recipe_form_keeps_what_was_typed(
    browser: Any, world: World, owner: asyncpg.Connection
) -> None:
    client = await browser("author")
    before = await owner.fetchval("SELECT count(*) FROM master_recipes")

    async def create(name: str, product: str = "CAR-T lot") -> Any:
        return await client.send(
            "POST",
            "/t/alpha/recipes",
            data={"_csrf_token": client.csrf, "name": name, "product": product},
        )

    empty = await create("   ")
    assert empty.status_code == 422
    assert "Master recipes" in empty.text and 'value="CAR-T lot"' in empty.text
    assert _field_error(empty.text, "name-error") == "The recipe&#39;s name must not be empty."
    assert 'aria-invalid="true" aria-describedby="name-error"' in empty.text
    assert "{&#39;field&#39;" not in empty.text and "{'field'" not in empty.text
    long = await create("n" * 600)
    assert long.status_code == 422
    assert "600 characters long; at most 200 are allowed" in _field_error(long.text, "name-error")
    assert 'value="' + "n" * 600 + '"' in long.text
    invisible = await create("\u200b\u200c")
    assert "must contain visible characters" in _field_error(invisible.text, "name-error")
    assert await owner.fetchval("SELECT count(*) FROM master_recipes") == before
    made = await create("  Lentiviral   vector  ")
    assert made.status_code == 303
    assert await owner.fetchval(
        "SELECT count(*) FROM master_recipes WHERE name = 'Lentiviral vector'"
    )


async def test_api_refuses_a_600_character_name(browser: Any) -> None:
    client = await browser("author")
    response = await client.send("POST", "/api/v1/t/alpha/recipes", json={"name": "n" * 600})
    assert response.status_code == 422
    assert response.json()["error"]["details"] == {
        "problems": ["name: must be at most 200 characters long"]
    }


async def test_parameter_errors_are_sentences_on_pages_and_in_the_api(browser: Any) -> None:
    client = await browser("admin")
    page = await client.get("/t/alpha/audit?before=0")
    assert page.status_code == 400
    assert "before (query): must be at least 1" in page.text
    for raw in ("ParamType", "{&#39;", "Expected `int"):
        assert raw not in page.text
    api = await client.get("/api/v1/t/alpha/audit?limit=abc&before=0")
    assert api.status_code == 400
    error = api.json()["error"]
    assert {
        "field": "before",
        "source": "query",
        "message": "before (query): must be at least 1",
    } in (error["details"])
    assert error["message"].startswith("The request is not acceptable: ")
    assert "limit (query): must be a whole number" in error["message"]


async def test_designer_keeps_what_was_typed_next_to_the_message(
    lab: dict[str, Any], browser: Any
) -> None:
    recipe = await recipes.create(lab["author"], "Typed values")
    content = {
        "unit_procedures": [
            {
                "key": "up1",
                "name": "Cell processing",
                "operations": [{"key": "activate", "library_item_id": lab["uo"]}],
            }
        ]
    }
    await recipes.save(lab["author"], recipe, content, 1)
    client = await browser("author")
    base = f"/t/{lab['ctx'].slug}/recipes/{recipe}/design"

    async def post(action: str, **fields: str) -> Any:
        data = {"_csrf_token": client.csrf, "base_revision": "2", **fields}
        return await client.send("POST", f"{base}/{action}", data=data)

    configure = await post(
        "configure", step="activate", **{"param:seeding_density": "lots"}, notes="pilot run"
    )
    assert configure.status_code == 422
    assert 'value="lots"' in configure.text and 'value="pilot run"' in configure.text
    assert "is not a number" in _field_error(
        configure.text, "configure-param-seeding_density-error"
    )
    outside = await post("configure", step="activate", **{"param:seeding_density": "9"})
    assert outside.status_code == 422 and 'value="9"' in outside.text
    assert "proven acceptable range" in _field_error(
        outside.text, "configure-param-seeding_density-error"
    )
    formula = await post("formula", formula="5 L scale", overrides="activate.seeding_density 2")
    assert formula.status_code == 422
    assert 'value="5 L scale"' in formula.text and ">activate.seeding_density 2</textarea>" in (
        formula.text
    )
    assert "write step.parameter = number" in _field_error(formula.text, "formula-overrides-error")
    procedure = await post("procedure", name="\u200b")
    assert "must contain visible characters" in _field_error(procedure.text, "procedure-name-error")
    assert (await recipes.get(lab["author"], recipe)).current_revision == 2


async def test_forms_are_read_into_the_api_structs_with_their_limits(
    browser: Any, world: World, owner: asyncpg.Connection
) -> None:
    """A form and the API body of one command share one struct: the same limits, the same
    message, and nothing changes."""
    client = await browser("admin")
    member = await owner.fetchval(
        "SELECT id FROM memberships WHERE user_id = $1", world["viewer"].user_id
    )
    too_many = await client.send(
        "POST",
        "/t/alpha/invitations",
        data={"_csrf_token": client.csrf, "email": "many@alpha.test", "roles": ["viewer"] * 21},
    )
    assert too_many.status_code == 422
    assert "roles" in too_many.text
    api = await client.send(
        "POST",
        "/api/v1/t/alpha/invitations",
        json={"email": "many@alpha.test", "roles": ["viewer"] * 21},
    )
    assert api.status_code == 422
    long_reason = await client.send(
        "POST",
        f"/t/alpha/members/{member}/roles",
        data={"_csrf_token": client.csrf, "roles": "viewer", "reason": "r" * 10_001},
    )
    assert long_reason.status_code == 422
    assert "reason" in long_reason.text
    assert not await owner.fetchval(
        "SELECT count(*) FROM invitations WHERE email = 'many@alpha.test'"
    )
