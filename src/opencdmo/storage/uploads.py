"""Files people upload, checked at the edge before anything is stored: not empty, not over
the size limit, of an accepted kind by their first bytes (the declared type must agree, or
say nothing), and a file name fit to show and to send back (one line, no path, at most
``NAME_MAX`` characters)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from opencdmo.errors import ValidationFailed

NAME_MAX = 200


@dataclass(frozen=True)
class Kind:
    content_type: str
    label: str
    magic: tuple[bytes, ...]
    extensions: tuple[str, ...]
    aliases: tuple[str, ...] = ()


PDF = Kind("application/pdf", "PDF", (b"%PDF-",), (".pdf",), ("application/x-pdf",))
PNG = Kind("image/png", "PNG image", (b"\x89PNG\r\n\x1a\n",), (".png",))
JPEG = Kind("image/jpeg", "JPEG image", (b"\xff\xd8\xff",), (".jpg", ".jpeg"), ("image/jpg",))
KINDS = (PDF, PNG, JPEG)
# What browsers and clients declare when they do not know: the bytes decide.
UNDECLARED = {"", "application/octet-stream", "binary/octet-stream"}

_UNSAFE = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]')


@dataclass(frozen=True)
class Upload:
    """An accepted file: its cleaned name, its type as its bytes show it, and the bytes."""

    filename: str
    content_type: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


def sniff(data: bytes, kinds: tuple[Kind, ...] = KINDS) -> Kind | None:
    """The kind the first bytes show, among ``kinds``."""
    return next((k for k in kinds if any(data.startswith(m) for m in k.magic)), None)


def clean_filename(name: str, kind: Kind) -> str:
    """The last part of the path as sent, one line of visible characters, at most NAME_MAX,
    ending in an extension of its kind (added when it has another)."""
    base = re.split(r"[/\\]", unicodedata.normalize("NFC", name))[-1]
    text = " ".join(_UNSAFE.sub("_", " ".join(base.split())).split()).lstrip(".").strip()
    if not any(unicodedata.category(c)[0] in "LN" for c in text):
        text = "file"
    if not text.lower().endswith(kind.extensions):
        text += kind.extensions[0]
    if len(text) > NAME_MAX:
        stem, dot, extension = text.rpartition(".")
        text = stem[: NAME_MAX - len(extension) - 1].rstrip() + dot + extension
    return text


def _size(count: int) -> str:
    return f"{count / (1024 * 1024):.1f} MB" if count >= 1024 * 1024 else f"{count} bytes"


def accept(
    filename: str,
    declared_type: str,
    data: bytes,
    *,
    max_bytes: int,
    kinds: tuple[Kind, ...] = KINDS,
    field: str = "file",
) -> Upload:
    """The upload, or a 422 naming ``field`` saying what is wrong with it."""
    labels = [k.label for k in kinds]
    names = " or ".join([", ".join(labels[:-1]), labels[-1]] if len(labels) > 1 else labels)
    if not data:
        raise ValidationFailed(f"{field}: the file is empty.", details={"field": field})
    if len(data) > max_bytes:
        raise ValidationFailed(
            f"{field}: the file is {_size(len(data))}; at most {_size(max_bytes)} are accepted.",
            details={"field": field, "limit": max_bytes},
        )
    kind = sniff(data, kinds)
    if kind is None:
        raise ValidationFailed(
            f"{field}: the file is not a {names} (its content does not start as one does).",
            details={"field": field},
        )
    declared = declared_type.split(";", 1)[0].strip().lower()
    if declared not in UNDECLARED and declared not in (kind.content_type, *kind.aliases):
        raise ValidationFailed(
            f"{field}: the file is declared as {declared[:100]} but its content is a "
            f"{kind.label}; send it with its own type.",
            details={"field": field},
        )
    return Upload(clean_filename(filename, kind), kind.content_type, data)
