"""Files sent in a multipart form, and JSON bodies read by a route that also takes multipart.

A browser sends an empty text field for a file input left empty (Litestar reads a part with
no file name as text): that is no file. A part without its own Content-Type is declared as
nothing (Litestar would call it text/plain): what the bytes are is decided by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import msgspec
from litestar import Request
from litestar.datastructures import UploadFile

from opencdmo.errors import ValidationFailed
from opencdmo.fields import humanise

S = TypeVar("S")


@dataclass(frozen=True)
class FilePart:
    filename: str
    declared_type: str
    data: bytes


def is_multipart(request: Request[Any, Any, Any]) -> bool:
    return request.content_type[0] == "multipart/form-data"


async def file_part(data: dict[str, Any], name: str) -> FilePart | None:
    """The file sent under ``name`` (None when none was chosen); a 422 for text or many."""
    value = data.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, list):
        raise ValidationFailed(f"{name}: send one file.", details={"field": name})
    if not isinstance(value, UploadFile):
        raise ValidationFailed(
            f"{name}: send a file (a multipart/form-data part with a file name), not text.",
            details={"field": name},
        )
    headers = {k.lower(): v for k, v in (value.headers or {}).items()}
    body = await value.read()
    if not value.filename and not body:
        return None  # a form's file input left empty: browsers send a nameless empty part
    return FilePart(value.filename, str(headers.get("content-type", "")), body)


def decode_json(body: bytes | str, struct: type[S], field: str | None = None) -> S:
    """A JSON document as ``struct``, strictly (a 422 naming the field, a 400 for bad JSON)."""
    try:
        return msgspec.json.decode(body, type=struct, strict=True)
    except msgspec.ValidationError as exc:
        message = humanise(str(exc))
        where = f"{field}: " if field else ""
        raise ValidationFailed(
            f"The request body is not acceptable: {where}{message}.",
            details={"problems": [message]},
        ) from None
    except msgspec.DecodeError as exc:
        raise ValidationFailed(
            f"{field or 'The body'} is not valid JSON ({exc}).",
            details={"field": field} if field else None,
        ) from None


def attachment(filename: str) -> str:
    """A Content-Disposition that downloads the file under its (already cleaned) name: an
    ASCII fallback, and the name itself in UTF-8 (RFC 6266)."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in filename
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
