"""Jinja2 environment: templates from frontend/templates, the component kit (``kit``), filters
for times in a site's zone and for HTML attributes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig
from markupsafe import Markup

from opencdmo import units
from opencdmo.labels import label
from opencdmo.timefmt import localtime

FRONTEND = Path(__file__).resolve().parents[3] / "frontend"
TEMPLATES = FRONTEND / "templates"
STATIC = FRONTEND / "static"
KIT = "_kit"


def paragraphs(text: str | None) -> list[str]:
    """Text as paragraphs: blank lines separate them, single line breaks are spaces."""
    if not text:
        return []
    return [" ".join(block.split()) for block in text.split("\n\n") if block.strip()]


def attributes(values: Mapping[str, Any] | None) -> Markup:
    """HTML attributes from a mapping, each escaped: True gives a bare attribute (``required``),
    False and None leave it out. A leading space, so that ``<input{{ a | attrs }}>`` works."""
    parts = []
    for name, value in (values or {}).items():
        if value is None or value is False:
            continue
        if value is True:
            parts.append(Markup(" {}").format(name))
        else:
            parts.append(Markup(' {}="{}"').format(name, value))
    return Markup("").join(parts)


class Kit:
    """The component macros of ``frontend/templates/_kit`` as one namespace, ``kit.card(...)``:
    every page is written from them (frontend/README.md lists them). A name defined in two
    kit files is an error, so that a macro never shadows another."""

    def __init__(self, environment: Environment) -> None:
        self._environment = environment
        self._macros: dict[str, Any] | None = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self.macros()[name]
        except KeyError:
            raise AttributeError(f"the kit has no component {name!r}") from None

    def macros(self) -> dict[str, Any]:
        if self._macros is None:
            found: dict[str, Any] = {}
            for path in sorted((TEMPLATES / KIT).glob("*.html")):
                module = self._environment.get_template(f"{KIT}/{path.name}").module
                for name, value in vars(module).items():
                    if name.startswith("_") or not callable(value):
                        continue
                    if name in found:
                        raise RuntimeError(f"kit component {name!r} is defined twice")
                    found[name] = value
            self._macros = found
        return self._macros


def filesize(count: int) -> str:
    """A file's size as people read it: 812 bytes, 14.2 KB, 3.1 MB (units of 1024)."""
    if count < 1024:
        return f"{count} bytes"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KB"
    return f"{count / (1024 * 1024):.1f} MB"


def build_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "xml"]),
        trim_blocks=True,
        lstrip_blocks=True,
        enable_async=False,
    )
    env.filters["localtime"] = localtime
    env.filters["paragraphs"] = paragraphs
    # Science as people read it: {{ code | unit }}, {{ x | number }}, {{ x | quantity(code) }},
    # {{ limits(low, high, code) }}, and display names for stored keys: {{ key | label }}.
    env.filters["unit"] = units.unit
    env.filters["number"] = units.number
    env.filters["quantity"] = units.quantity
    env.filters["label"] = label
    env.globals["limits"] = units.limits
    env.filters["attrs"] = attributes
    env.filters["filesize"] = filesize
    env.globals["kit"] = Kit(env)
    return env


def template_config() -> TemplateConfig[Any]:
    environment = build_environment()
    return TemplateConfig(engine=JinjaTemplateEngine.from_environment(environment))
