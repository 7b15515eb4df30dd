"""The component kit every page is written from, its attribute filter, and the signed flash
cookie."""

from __future__ import annotations

from pathlib import Path

import pytest

from opencdmo.web.flash import MESSAGE_MAX, MESSAGES_MAX, Flash, FlashSigner
from opencdmo.web.templating import TEMPLATES, Kit, attributes, build_environment

PAGES = sorted(
    p
    for p in TEMPLATES.rglob("*.html")
    if "{% extends" in p.read_text(encoding="utf-8") and "_kit" not in p.parts
)


def test_the_kit_has_its_components() -> None:
    names = set(Kit(build_environment()).macros())
    assert {
        "page_header",
        "card",
        "facts",
        "field",
        "textarea",
        "select",
        "checkboxes",
        "button",
        "link_button",
        "table",
        "empty_row",
        "pager",
        "badge",
        "state_badge",
        "alert",
        "toast",
        "toasts",
        "empty_state",
        "modal",
        "modal_header",
        "modal_trigger",
        "signature_modal",
        "confirm_modal",
        "icon",
    } <= names
    assert not any(name.startswith("_") for name in names), "private macros stay private"


def test_an_unknown_component_is_an_error() -> None:
    with pytest.raises(AttributeError, match="no component 'carousel'"):
        _ = Kit(build_environment()).carousel


def test_there_are_pages() -> None:
    assert len(PAGES) > 15


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(Path(p).relative_to(TEMPLATES)))
def test_every_page_is_written_from_the_kit(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert "kit." in text
    assert 'style="' not in text and "<style" not in text, "no inline style (CSP)"
    assert "<script>" not in text and "<script " not in text.replace("<script src=", ""), (
        "no inline script (CSP)"
    )


def test_attributes_escape_and_drop_false() -> None:
    rendered = attributes({"required": True, "hidden": False, "x": None, "data-a": '"><b>'})
    assert str(rendered) == ' required data-a="&#34;&gt;&lt;b&gt;"'


def test_a_field_keeps_the_value_and_names_its_message() -> None:
    template = build_environment().from_string(
        '{{ kit.field("email", "Email", value, error="Not an address") }}'
    )
    html = template.render(value='a"b')
    assert '<label class="form-label" for="email">Email</label>' in html
    assert 'value="a&#34;b"' in html
    assert 'aria-invalid="true" aria-describedby="email-error"' in html
    assert '<span class="field-error" id="email-error" role="alert">Not an address</span>' in html


def test_flash_round_trip_and_forgery() -> None:
    signer = FlashSigner(b"k" * 32)
    value = signer.dump([Flash("Installed X v1.0.0"), Flash("Careful", "warning")])
    assert signer.load(value) == [Flash("Installed X v1.0.0"), Flash("Careful", "warning")]
    data, mac = value.rsplit(".", 1)
    assert signer.load(data + "." + ("0" if mac[0] != "0" else "1") + mac[1:]) == []
    assert FlashSigner(b"other" * 8).load(value) == [], "another key's cookie"
    assert signer.load("not a cookie") == [] and signer.load(None) == []


def test_flash_messages_are_bounded() -> None:
    signer = FlashSigner(b"k" * 32)
    many = [Flash(f"{n}" * (MESSAGE_MAX + 50)) for n in range(MESSAGES_MAX + 2)]
    loaded = signer.load(signer.dump(many))
    assert len(loaded) == MESSAGES_MAX
    assert all(len(f.message) == MESSAGE_MAX for f in loaded)
    assert loaded[0].message.startswith("2"), "the newest are kept"


def _signature_dialogs(text: str) -> list[str]:
    """Every ``kit.signature_modal(...)`` call of a template, whole (to its closing bracket)."""
    calls, start = [], text.find("kit.signature_modal(")
    while start >= 0:
        depth, at = 0, start + len("kit.signature_modal")
        while True:
            depth += {"(": 1, ")": -1}.get(text[at], 0)
            at += 1
            if depth == 0:
                break
        calls.append(text[start:at])
        start = text.find("kit.signature_modal(", at)
    return calls


def test_every_signature_asks_for_the_tenants_signing_credential() -> None:
    """A dialog given no ``signing`` would ask a single sign-on tenant's signer for a password
    they do not have."""
    missing = [
        f"{p.relative_to(TEMPLATES)}: {call[:80]}"
        for p in TEMPLATES.rglob("*.html")
        if "_kit" not in p.parts
        for call in _signature_dialogs(p.read_text(encoding="utf-8"))
        if "signing=signing" not in call
    ]
    assert missing == []
    inline = [
        str(p.relative_to(TEMPLATES))
        for p in TEMPLATES.rglob("*.html")
        if "_kit" not in p.parts and "(electronic signature)" in p.read_text(encoding="utf-8")
    ]
    assert inline == [], "sign with kit.signature_credential"


@pytest.mark.parametrize(
    ("signing", "shown", "absent"),
    [
        (None, 'type="password" autocomplete="current-password"', "Signing code"),
        (
            {"method": "signing_password", "provider": "Acme ID", "slug": "t1", "back": "/x"},
            'href="/t/t1/sso/signing-password"',
            "/sso/reauthenticate",
        ),
        (
            {
                "method": "reauthentication",
                "provider": "Acme ID",
                "slug": "t1",
                "back": "/t/t1/a b",
            },
            'href="/t/t1/sso/reauthenticate?back=/t/t1/a%20b" target="opencdmo-reauth"',
            'type="password"',
        ),
    ],
)
def test_the_signature_credential_follows_the_signing_method(
    signing: dict[str, str] | None, shown: str, absent: str
) -> None:
    kit = Kit(build_environment())
    html = str(kit.signature_credential("sign-password", signing))
    assert shown in html and absent not in html
