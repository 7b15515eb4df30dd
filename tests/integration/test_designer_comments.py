"""The designer's revision comment (the revision's message) and the flow diagram's links."""

from __future__ import annotations

import html
import re
from typing import Any

import asyncpg

from opencdmo.recipes import service as recipes
from tests.conftest import World


async def _designer(lab: dict[str, Any], browser: Any, name: str) -> tuple[Any, str, Any]:
    recipe = await recipes.create(lab["author"], name)
    client = await browser("author")
    base = f"/t/{lab['ctx'].slug}/recipes/{recipe}/design"

    async def act(action: str, **fields: Any) -> Any:
        state = await recipes.get(lab["author"], recipe)
        return await client.send(
            "POST",
            f"{base}/{action}",
            data={
                "_csrf_token": client.csrf,
                "base_revision": str(state.current_revision),
                **fields,
            },
        )

    return recipe, base, act


async def test_an_edit_carries_its_revision_comment(
    lab: dict[str, Any], world: World, browser: Any, owner: asyncpg.Connection
) -> None:
    recipe, _, act = await _designer(lab, browser, "Commented")
    saved = await act("procedure", name="Cell processing", comment="  Split for\n scale-up ")
    assert saved.status_code == 200
    assert "Saved as revision 2" in saved.text
    plain = await act("step", procedure="cell_processing", library_item_id=lab["uo"])
    assert plain.status_code == 200
    history = await recipes.history(lab["author"], recipe)
    assert [(h.revision, h.message) for h in history[:2]] == [
        (3, "designer: step"),  # no comment: the default message
        (2, "Split for scale-up"),
    ]
    # The audit trail's entry for the revision gives the comment as its reason.
    reason = await owner.fetchval(
        "SELECT reason FROM audit_events WHERE entity_id = $1 AND action = 'recipe.revised' "
        "AND new_values->>'revision' = '2'",
        str(recipe),
    )
    assert reason == "Split for scale-up"
    detail = await (await browser("author")).get(f"/t/{lab['ctx'].slug}/recipes/{recipe}")
    assert "Split for scale-up" in detail.text


async def test_an_over_long_comment_is_refused_and_nothing_is_saved(
    lab: dict[str, Any], world: World, browser: Any
) -> None:
    recipe, _, act = await _designer(lab, browser, "Long comment")
    assert (await act("procedure", name="Cell processing")).status_code == 200
    long = "a" * 501
    refused = await act("procedure", name="Harvest", comment=long)
    assert refused.status_code == 422
    assert "The revision comment is 501 characters long: at most 500." in refused.text
    # The form comes back as typed, the message next to the comment field.
    assert 'id="procedure-comment-error"' in refused.text and f'value="{long}"' in refused.text
    state = await recipes.get(lab["author"], recipe)
    assert state.current_revision == 2
    assert [up["name"] for up in state.content["unit_procedures"]] == ["Cell processing"]
    # The buttons' shared comment field is refused the same way, its value kept.
    refused = await act("remove", step="nothing", comment=long)
    assert refused.status_code == 422 and 'id="shared-comment-error"' in refused.text
    assert (await recipes.get(lab["author"], recipe)).current_revision == 2
    # Exactly 500 is accepted.
    assert (await act("procedure", name="Harvest", comment="b" * 500)).status_code == 200
    assert (await recipes.history(lab["author"], recipe))[0].message == "b" * 500


def _boxes(page: str) -> list[tuple[str, str, str, list[str]]]:
    """The flow's step boxes: key, link, title and label lines."""
    found = re.findall(
        r'<a class="flow-box flow-step" data-box="([^"]+)" href="([^"]*)"><title>([^<]*)</title>'
        r"(.*?)</a>",
        page,
    )
    return [
        (
            key,
            html.unescape(href),
            html.unescape(title),
            re.findall(r"<tspan[^>]*>([^<]*)</tspan>", body),
        )
        for key, href, title, body in found
    ]


async def test_flow_boxes_link_to_their_steps_with_their_full_names(
    lab: dict[str, Any], world: World, browser: Any
) -> None:
    recipe, base, act = await _designer(lab, browser, "Flowing")
    long_name = "Cell processing and expansion in a closed automated bioreactor system"
    assert (await act("procedure", name=long_name)).status_code == 200
    procedure = (await recipes.get(lab["author"], recipe)).content["unit_procedures"][0]["key"]
    for _ in range(2):
        response = await act("step", procedure=procedure, library_item_id=lab["uo"])
        assert response.status_code == 200, response.text
    state = await recipes.get(lab["author"], recipe)
    keys = [op["key"] for op in state.content["unit_procedures"][0]["operations"]]
    client = await browser("author")
    detail = (await client.get(f"/t/{lab['ctx'].slug}/recipes/{recipe}")).text
    boxes = _boxes(detail)
    assert [(key, href) for key, href, _, _ in boxes] == [(k, f"#step-{k}") for k in keys]
    for key, _, title, lines in boxes:
        assert title == "T-cell activation with anti-CD3/CD28 beads"
        assert len(lines) > 1 and " ".join(lines) == title  # wrapped, never cut
        assert f'id="step-{key}"' in detail  # the anchor the box links to
    head = re.search(
        r'<g class="flow-box flow-procedure"[^>]*><title>([^<]*)</title>(.*?)</g>', detail
    )
    assert head is not None and head.group(1) == long_name
    head_lines = re.findall(r"<tspan[^>]*>([^<]*)</tspan>", head.group(2))
    assert len(head_lines) > 1 and " ".join(head_lines) == long_name
    # On the designer, a box opens the designer with that step selected.
    designer = (await client.get(base)).text
    assert [(k, href) for k, href, _, _ in _boxes(designer)] == [(k, f"?step={k}") for k in keys]
    opened = await client.get(f"{base}?step={keys[1]}")
    assert opened.status_code == 200
    assert f'class="step selected" data-step="{keys[1]}"' in opened.text
    assert "Save step" in opened.text
