"""The report written out: oq-report.json (checked against its JSON Schema before it is
written) and oq-report.html (a printable page with no external assets)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import jsonschema
from markupsafe import Markup, escape

from opencdmo.validation.matrix import DOCS
from opencdmo.validation.report import Report
from opencdmo.web.templating import build_environment

REPORT_SCHEMA = DOCS / "oq-report.schema.json"
TEMPLATE = "validation/report.html"
SOURCES = {
    "21 CFR Part 11": "21 CFR Part 11: electronic records and electronic signatures",
    "EU GMP Annex 11": "EU GMP Annex 11: computerised systems",
    "OpenCDMO URS": "OpenCDMO user requirements",
}


CODE_SPAN = re.compile(r"`([^`]+)`")


def code_spans(text: str | None) -> Markup:
    """Text with `backquoted` words as code, everything escaped."""
    return Markup(CODE_SPAN.sub(r"<code>\1</code>", str(escape(text or ""))))  # noqa: S704


def as_json(report: Report) -> dict[str, Any]:
    document = {"schema_version": 1, **asdict(report)}
    jsonschema.validate(document, json.loads(REPORT_SCHEMA.read_text()))
    return document


def render_html(report: Report) -> str:
    groups = [
        (heading, [r for r in report.requirements if r.source == source])
        for source, heading in SOURCES.items()
    ]
    environment = build_environment()
    environment.filters["code_spans"] = code_spans
    template = environment.get_template(TEMPLATE)
    return template.render(report=report, groups=[g for g in groups if g[1]])


def write(report: Report, output: Path) -> tuple[Path, Path]:
    output.mkdir(parents=True, exist_ok=True)
    json_path, html_path = output / "oq-report.json", output / "oq-report.html"
    document = as_json(report)
    json_path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    html_path.write_text(render_html(report), encoding="utf-8")
    return json_path, html_path
