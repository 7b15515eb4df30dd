"""Pages show quantities, ranges and keys as people write them: units as °C and 10⁶ cells/mL
(never the UCUM codes content stores), display names for modalities, criticalities, kinds and
roles, and the range state of each value in words beside it."""

from __future__ import annotations

import html
import re
import uuid
from typing import Any

import asyncpg
from litestar import Litestar

from opencdmo.identity import service as identity
from opencdmo.recipes import service as recipes
from opencdmo.scope import SYSTEM, RequestMeta
from opencdmo.tenancy import service as tenancy
from tests.conftest import PASSWORD, Browser

# Stored codes and keys that must not reach a person's eyes.
RAW = (
    "Cel",
    "10*6/mL",
    "10*6",
    "{bead}/{cell}",
    "[iU]/mL",
    "[iU]",
    "production_supervisor",
    "process_engineer",
    "qa_approver",
    "unit_operation",
    "non-critical",
    "seeding_density",
)


def visible(page: str) -> str:
    """The text a person reads: no head, scripts, tags or attributes; entities decoded."""
    body = page.split("<body", 1)[1]
    body = re.sub(r"<(script|style|code)\b.*?</\1>", " ", body, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


def assert_no_raw_keys(page: str) -> None:
    text = visible(page)
    shown = [
        text[max(m.start() - 60, 0) : m.end() + 20]
        for raw in RAW
        for m in re.finditer(rf"(?<![\w*{{\[]){re.escape(raw)}(?![\w*/}}])", text)
    ]
    assert shown == []


async def _item(owner: asyncpg.Connection, slug: str) -> Any:
    return await owner.fetchval(
        "SELECT i.id FROM hub_items i JOIN tenants t ON t.id = i.publisher_id "
        "WHERE i.slug = $1 AND t.slug = 'opencdmo-hub'",
        slug,
    )


async def test_recipe_page_and_record_show_units_ranges_and_states_in_words(
    lab: dict[str, Any], owner: asyncpg.Connection, browser: Any
) -> None:
    author = lab["author"]
    recipe = await recipes.create(author, "CAR-T display", "Example CAR-T")
    operation = {
        "key": "activate",
        "library_item_id": lab["uo"],
        "parameters": {"seeding_density": 1.8, "bead_to_cell_ratio": 3, "il2_concentration": 100},
        "acknowledged": {"seeding_density": "high-density pilot run"},
        "equipment_class": "co2-incubator",
        "notes": "",
    }
    content = {
        "unit_procedures": [
            {"key": "cell-processing", "name": "Cell processing", "operations": [operation]}
        ],
        "specification": {"modality": "car-t", "batch_size": {"quantity": 200, "unit": "10*6"}},
        "formulas": [{"name": "1 L scale", "overrides": {"activate.seeding_density": 1.1}}],
    }
    assert await recipes.save(author, recipe, content, 1) == 2
    client = await browser("author")
    slug = lab["ctx"].slug

    detail = await client.get(f"/t/{slug}/recipes/{recipe}")
    assert detail.status_code == 200
    text = visible(detail.text)
    assert "1.8 × 10⁶ cells/mL" in text and "normal 0.8–1.2 × 10⁶ cells/mL" in text
    assert "proven acceptable 0.5–2 × 10⁶ cells/mL" in text
    assert "3 beads per cell" in text and "100 IU/mL" in text
    assert "outside normal range, acknowledged: high-density pilot run" in text
    assert "in normal range" in text
    assert "CAR-T" in text and "200 × 10⁶ cells" in text
    assert 'badge-warning range-state">outside normal range, acknowledged' in detail.text
    # A formula's overrides by step and parameter name, with the unit.
    assert "1 L scale: T-cell activation" in text and "Seeding density 1.1 × 10⁶ cells/mL" in text
    assert "activate.seeding_density" not in text
    assert_no_raw_keys(detail.text)

    printed = await client.get(f"/t/{slug}/recipes/{recipe}/print")
    assert printed.status_code == 200
    text = visible(printed.text)
    assert "1.8 × 10⁶ cells/mL" in text and "0.8–1.2 × 10⁶ cells/mL" in text
    assert "37 °C" in text and "2.5–3.5 beads per cell" in text and "80–120 IU/mL" in text
    assert "outside normal range, acknowledged: high-density pilot run" in text
    assert "in normal range" in text
    assert "Critical process parameter" in text and "Non-critical" in text
    assert "CAR-T" in text and "200 × 10⁶ cells" in text
    # Materials by their names in the library, not their slugs.
    assert "Serum-free T-cell expansion medium" in text
    assert "serum-free-t-cell-medium" not in text
    assert_no_raw_keys(printed.text)


async def test_hub_item_page_shows_units_ranges_and_display_names(
    synced: Any, owner: asyncpg.Connection, browser: Any
) -> None:
    client = await browser("author")
    item = await _item(owner, "t-cell-activation")
    page = await client.get(f"/t/alpha/hub/items/{item}")
    assert page.status_code == 200
    text = visible(page.text)
    assert "1 × 10⁶ cells/mL" in text and "0.8–1.2 × 10⁶ cells/mL" in text
    assert "100 IU/mL" in text and "3 beads per cell" in text and "37 °C" in text
    assert "Unit operation" in text and "CAR-T" in text
    assert "Critical process parameter" in text
    assert_no_raw_keys(page.text)


async def test_members_page_shows_role_display_names(app: Litestar) -> None:
    slug = f"disp-{uuid.uuid4().hex[:8]}"
    ctx = await tenancy.create_tenant(slug, f"Org {slug}", "cdmo", SYSTEM, RequestMeta())
    people = []
    for n, role in enumerate(("tenant_admin", "production_supervisor", "qa_approver")):
        email = f"p{n}-{slug}@org.test"
        user = await identity.create_user(email, f"Person {n}", PASSWORD)
        await tenancy.add_member(ctx, user.id, [role])
        people.append(email)
    client = Browser(app)
    assert (await client.login(people[0])).status_code == 303
    page = await client.get(f"/t/{slug}/members")
    assert page.status_code == 200
    text = visible(page.text)
    assert "Tenant administrator" in text and "Production supervisor" in text
    assert "QA approver" in text
    # The role checkboxes still post the keys.
    assert 'value="production_supervisor"' in page.text
    assert_no_raw_keys(page.text)
    await client.close()
