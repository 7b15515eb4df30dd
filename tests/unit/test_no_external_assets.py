"""No template, stylesheet or script of the app loads anything from another host."""

from __future__ import annotations

from pathlib import Path

import pytest

from opencdmo.web.templating import STATIC, TEMPLATES
from tests.external_assets import external_assets

FILES = sorted(
    [*TEMPLATES.rglob("*.html"), *STATIC.rglob("*.css"), *STATIC.rglob("*.js")],
    key=str,
)


def test_the_scan_finds_what_it_looks_for() -> None:
    samples = [
        '<script src="https://cdn.example/htmx.js"></script>',
        "<link rel=stylesheet href='//fonts.example/css'>",
        "body { background: url(https://img.example/x.png) }",
        '@import "https://fonts.example/a.css";',
        '<img srcset="http://img.example/a.png 2x">',
        '<form action="https://evil.example/">',
        'fetch("https://api.example/v1")',
    ]
    assert [bool(external_assets(s)) for s in samples] == [True] * len(samples)
    harmless = [
        '<script src="/static/js/app.js"></script>',
        '<svg xmlns="http://www.w3.org/2000/svg">',
        '<a href="https://example.org/licence">licence</a>',
    ]
    assert [external_assets(s) for s in harmless] == [[], [], []]


def test_there_are_files_to_scan() -> None:
    assert len(FILES) > 20


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(Path(p).name))
def test_no_file_references_an_external_host(path: Path) -> None:
    assert external_assets(path.read_text(encoding="utf-8")) == []
