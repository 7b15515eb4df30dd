"""Where a person goes after signing in: the ``next`` target, checked against the route table.

A target is kept only when it is a path on this site whose GET route renders a page. A
target that is a form action (``/t/a/recipes/<id>/design/move`` is POST only) leads to the
nearest enclosing page instead (``/t/a/recipes/<id>/design``); anything off-site or malformed
(``//evil``, ``https://x``, ``/\\evil``, control characters, dot segments) leads nowhere.
"""

from __future__ import annotations

import unicodedata
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from litestar import Litestar
from litestar.exceptions import HTTPException
from litestar.response import Template

# Pages that make no sense to return to once signed in.
NOT_AFTER_LOGIN = frozenset({"/login", "/logout"})


def page_after_login(app: Litestar, target: str | None) -> str | None:
    """The page to show after signing in for ``target``, or None (the caller's default)."""
    parts = _local_parts(target)
    if parts is None:
        return None
    segments, query, trailing = parts
    for keep in range(len(segments), 0, -1):
        path = "/" + "/".join(segments[:keep])
        if path not in NOT_AFTER_LOGIN and _is_page(app, path):
            encoded = "/" + "/".join(quote(segment, safe="") for segment in segments[:keep])
            if keep < len(segments):
                return encoded
            return encoded + ("/" if trailing else "") + (f"?{query}" if query else "")
    return None


def _local_parts(target: str | None) -> tuple[list[str], str, bool] | None:
    """The decoded path segments, the raw query and whether the path ends with a slash, of a
    same-site path; None for anything else."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(_unsafe(char) for char in target):
        return None
    split = urlsplit(target)
    if split.scheme or split.netloc:
        return None
    path = unquote(split.path)
    if "\\" in path or any(_unsafe(char) for char in path):
        return None
    segments = [segment for segment in path.split("/") if segment]
    if any(segment in (".", "..") for segment in segments):
        return None
    return segments, split.query, path.endswith("/") and bool(segments)


def _unsafe(char: str) -> bool:
    """Control, format (zero-width, bidi) and whitespace characters: browsers strip or
    reinterpret some of them, so a target holding any is refused whole."""
    return char.isspace() or unicodedata.category(char) in ("Cc", "Cf")


def _is_page(app: Litestar, path: str) -> bool:
    try:
        handler: Any = app.asgi_router.handle_routing(path, "GET")[1]
    except HTTPException:
        return False
    return bool(handler.parsed_fn_signature.return_type.is_subclass_of(Template))
