"""The mail server as the settings name it: scheme, port, user and password (from the URL or
from a named environment variable), the sender, and what is refused."""

from __future__ import annotations

import pytest

from opencdmo.settings import Settings, SettingsError
from opencdmo.work import mail


def test_no_url_is_no_mail() -> None:
    assert mail.server(Settings()) is None


def test_smtp_with_user_and_password_in_the_url() -> None:
    found = mail.server(Settings(smtp_url="smtp://qa%40cdmo.example:s3cr%2Ft@mail.example:587"))
    assert found is not None
    assert (found.host, found.port, found.tls) == ("mail.example", 587, False)
    assert (found.user, found.password) == ("qa@cdmo.example", "s3cr/t")
    assert not found.loopback


def test_smtps_defaults_to_465_and_the_password_comes_from_the_named_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MY_SMTP_PASSWORD", "from-the-environment")
    settings = Settings(
        smtp_url="smtps://relay:in-the-url@mail.example",
        smtp_password_env="MY_SMTP_PASSWORD",
    )
    found = mail.server(settings)
    assert found is not None and found.tls and found.port == 465
    assert found.password == "from-the-environment"
    plain = mail.server(Settings(smtp_url="smtp://127.0.0.1"))
    assert plain is not None and plain.port == 25 and plain.loopback


@pytest.mark.parametrize("url", ["http://mail.example", "smtp://", "smtp://mail.example:port"])
def test_a_malformed_url_is_refused_by_name(url: str) -> None:
    with pytest.raises(SettingsError, match="OPENCDMO_SMTP_URL"):
        mail.server(Settings(smtp_url=url))


def test_the_sender_is_configured_or_named_after_the_public_host() -> None:
    assert mail.sender(Settings(mail_from="QA <qa@cdmo.example>")) == "QA <qa@cdmo.example>"
    public = Settings(smtp_url="smtp://mail.example", public_url="https://cdmo.example/")
    assert mail.sender(public) == "OpenCDMO <opencdmo@cdmo.example>"
    assert mail.sender(Settings(smtp_url="smtp://mail.example")) == (
        "OpenCDMO <opencdmo@mail.example>"
    )


def test_the_message_has_a_text_and_an_html_part() -> None:
    built = mail.message(
        Settings(mail_from="qa@cdmo.example"),
        mail.Mail(to="a@b.example", subject="Work", text="plain", html="<p>html</p>"),
    )
    assert built["To"] == "a@b.example" and built["Auto-Submitted"] == "auto-generated"
    assert [p.get_content_type() for p in built.iter_parts()] == ["text/plain", "text/html"]
