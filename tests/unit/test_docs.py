"""Docs that cannot drift: the README lists every setting and every CLI command."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from opencdmo.cli import build_parser
from opencdmo.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_readme() -> None:
    missing = [
        f"OPENCDMO_{f.name.upper()}"
        for f in fields(Settings)
        if f"`OPENCDMO_{f.name.upper()}`" not in README
    ]
    assert not missing


def test_every_setting_has_a_one_line_doc() -> None:
    assert all(f.metadata.get("doc") for f in fields(Settings))


def test_every_cli_command_is_in_the_readme() -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name, sub in commands.items():
        actions = [a for a in sub._actions if a.__class__.__name__ == "_SubParsersAction"]
        names = [f"opencdmo {name} {child}" for a in actions for child in a.choices] or [
            f"opencdmo {name}"
        ]
        for full in names:
            assert full in README, full


def test_settings_read_from_the_environment() -> None:
    settings = Settings.from_env({"OPENCDMO_PORT": "9001", "OPENCDMO_COOKIE_SECURE": "no"})
    assert settings.port == 9001
    assert settings.cookie_secure is False


def test_bad_setting_values_are_named() -> None:
    import pytest

    from opencdmo.settings import SettingsError

    with pytest.raises(SettingsError, match="OPENCDMO_PORT"):
        Settings.from_env({"OPENCDMO_PORT": "eighty"})
    with pytest.raises(SettingsError, match="OPENCDMO_LOG_JSON"):
        Settings.from_env({"OPENCDMO_LOG_JSON": "maybe"})
