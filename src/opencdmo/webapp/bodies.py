"""Request bodies are checked before a handler sees them (the app's ``before_request`` hook).

Litestar limits a body's size (``request_max_body_size``, 413 past it) and decodes JSON
leniently ("1" is accepted for an int, 0 for a bool) without a nesting limit (a body nested
a thousand levels deep overflows the decoder's recursion). Here every JSON body is checked
first: nested at most ``MAX_DEPTH`` levels, no key twice in one object (which value counts
would be a guess), and, where the handler declares the body's type, decoded strictly against
it, so a wrong type is a 422 naming the field. Form bodies are limited in ``form_data``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec
from litestar import Request

from opencdmo.errors import AppError, NotFound, ValidationFailed
from opencdmo.fields import humanise
from opencdmo.web.guards import JSON_BODY, JSON_PART

MAX_DEPTH = 32
MAX_TEXT = 100_000  # characters in one string of any body; fields have their own limits
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_BRACKETS = re.compile(rb"[\[\]{}]")


class MalformedBody(AppError):
    status_code = 400
    title = "Bad request"


def depth_exceeds(body: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether arrays and objects nest deeper than ``limit`` (strings skipped)."""
    depth = 0
    for bracket in _BRACKETS.finditer(_STRING.sub(b'""', body)):
        if bracket.group() in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise MalformedBody(
                f"The JSON body has the key '{key[:80]}' twice in one object; send it once.",
                details={"field": key[:80]},
            )
        seen[key] = value
    return seen


def _too_long(value: Any, path: str) -> str | None:
    """The path of the first string (value or key) longer than MAX_TEXT, if any."""
    if isinstance(value, str):
        return path if len(value) > MAX_TEXT else None
    if isinstance(value, list):
        items: Any = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    elif isinstance(value, dict):
        if any(len(key) > MAX_TEXT for key in value):
            return path
        items = ((f"{path}.{k}" if path else k, v) for k, v in value.items())
    else:
        return None
    for where, item in items:
        found = _too_long(item, where)
        if found is not None:
            return found
    return None


def check_json(body: bytes, body_type: Any = None) -> None:
    """Refuse a JSON body nested too deep, with a key twice, or not of ``body_type``."""
    if depth_exceeds(body):
        raise MalformedBody(
            f"The JSON body is nested more than {MAX_DEPTH} levels deep.",
            details={"limit": MAX_DEPTH},
        )
    try:
        decoded = json.loads(body, object_pairs_hook=_no_duplicates)
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, AppError):
            raise
        raise MalformedBody(f"The body is not valid JSON ({exc}).") from None
    where = _too_long(decoded, "")
    if where is not None:
        raise ValidationFailed(
            f"{where or 'The body'}: a text of more than {MAX_TEXT} characters is not accepted.",
            details={"field": where},
        )
    if body_type is None:
        return
    try:
        msgspec.json.decode(body, type=body_type, strict=True)
    except msgspec.ValidationError as exc:
        message = humanise(str(exc))
        raise ValidationFailed(
            f"The request body is not acceptable: {message}.",
            details={"problems": [message]},
        ) from None
    except msgspec.DecodeError as exc:
        raise MalformedBody(f"The body is not valid JSON ({exc}).") from None


def _body_type(request: Request[Any, Any, Any]) -> tuple[bool, Any]:
    """(the handler reads a JSON body, its declared type or None for any JSON)."""
    declared = request.route_handler.opt.get(JSON_BODY)
    if declared is not None:  # JSON or multipart (with a file): the JSON is checked here
        return request.content_type[0] != "multipart/form-data", declared
    data = request.route_handler.parsed_fn_signature.parameters.get("data")
    if data is None:
        return False, None
    media = getattr(data.kwarg_definition, "media_type", None)
    if media is not None and str(getattr(media, "value", media)) != "application/json":
        return False, None
    annotation = data.annotation
    return True, None if annotation is Any else annotation


async def check_request(request: Request[Any, Any, Any]) -> None:
    """The app's ``before_request`` hook: runs after the guards, before the body is decoded."""
    if "\x00" in request.scope["path"]:
        raise NotFound("No such page.")
    if request.method in SAFE_METHODS:
        return
    reads_json, body_type = _body_type(request)
    if not reads_json:
        await _check_json_part(request, body_type)
        return
    body = await request.body()
    if body:
        check_json(body, body_type)


async def _check_json_part(request: Request[Any, Any, Any], body_type: Any) -> None:
    """A multipart body's JSON part (``JSON_PART``: a receipt sent with its file), checked as
    a JSON body would be."""
    name = request.route_handler.opt.get(JSON_PART)
    if name is None or request.content_type[0] != "multipart/form-data":
        return
    value = (await request.form()).get(name)
    if isinstance(value, str) and value:
        check_json(value.encode(), body_type)
