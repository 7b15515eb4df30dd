"""Finds references to assets on another host in HTML, CSS or JavaScript (the UI must run on
an air-gapped network: every script, style, font and image comes from the app itself)."""

from __future__ import annotations

import re

# An asset attribute, a CSS url() or @import, or a fetch/import in a script whose target is an
# absolute or protocol-relative URL.
EXTERNAL = re.compile(
    r"""(?ix)
    (?:\b(?:src|srcset|poster|action|formaction|data)\s*=\s*["']?\s*
     |<link\b[^>]*?\bhref\s*=\s*["']?\s*
     |url\(\s*["']?\s*
     |@import\s+["']?\s*
     |\bimport\s*\(\s*["']
     |\bfetch\s*\(\s*["'])
    (?:https?:)?//[^\s"'<>)]+
    """
)


def external_assets(text: str) -> list[str]:
    return [match.group(0) for match in EXTERNAL.finditer(text)]
