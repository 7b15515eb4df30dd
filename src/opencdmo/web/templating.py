"""Jinja2 environment: templates from frontend/templates, filters for times in a site's zone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from opencdmo import units
from opencdmo.labels import label
from opencdmo.timefmt import localtime

FRONTEND = Path(__file__).resolve().parents[3] / "frontend"
TEMPLATES = FRONTEND / "templates"
STATIC = FRONTEND / "static"


def paragraphs(text: str | None) -> list[str]:
    """Text as paragraphs: blank lines separate them, single line breaks are spaces."""
    if not text:
        return []
    return [" ".join(block.split()) for block in text.split("\n\n") if block.strip()]


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
    return env


def template_config() -> TemplateConfig[Any]:
    environment = build_environment()
    return TemplateConfig(engine=JinjaTemplateEngine.from_environment(environment))
