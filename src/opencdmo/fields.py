"""Constrained text and number types for API structs and forms, and the checks behind them.

Every text field a user or a file can send has a length limit, and names must show something:
a name made only of spaces, control or zero-width characters is refused, as is a NUL
anywhere. The same types are used by the API structs (msgspec checks them while decoding) and
by the form parsers (``check_name``, ``check_text``), so both refuse the same input with the
same message.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from msgspec import Meta

from opencdmo.errors import ValidationFailed

NAME_MAX = 200
TEXT_MAX = 10_000
REASON_MAX = 2000  # the reason for a change, as the audit trail keeps it
KEY_MAX = 64

# A single line with at least one visible character: no C0/C1 control characters, no line
# or paragraph separators; zero-width and other format characters may join visible ones but
# cannot stand alone.
_INVISIBLE = (
    "\\s\\u00ad\\u034f\\u061c\\u115f\\u1160\\u17b4\\u17b5\\u180e\\u200b-\\u200f"
    "\\u202a-\\u202e\\u2060-\\u206f\\u3164\\ufeff\\uffa0"
)
_CONTROL = "\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029"
NAME_PATTERN = f"^[^{_CONTROL}]*[^{_CONTROL}{_INVISIBLE}][^{_CONTROL}]*$"
# Free text: any length up to the limit, line breaks and tabs allowed, other controls not.
TEXT_PATTERN = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]*$"
KEY_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.:-]*$"

Name = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=NAME_MAX,
        pattern=NAME_PATTERN,
        description="A single line with at least one visible character, at most 200.",
    ),
]
Text = Annotated[
    str,
    Meta(
        max_length=TEXT_MAX,
        pattern=TEXT_PATTERN,
        description="Free text of at most 10,000 characters, without control characters.",
    ),
]
Key = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=KEY_MAX,
        pattern=KEY_PATTERN,
        description="An identifier: letters, digits, '_', '-', '.', ':' (at most 64).",
    ),
]
Short = Annotated[str, Meta(max_length=NAME_MAX, pattern=TEXT_PATTERN)]
Hash = Annotated[str, Meta(pattern="^[0-9a-f]{64}$", description="A SHA-256 in hex.")]
Secret = Annotated[str, Meta(max_length=1024, description="A password (at most 1,024).")]
# An address as typed (at most 320 characters); is_email checks its shape where it is used.
Email = Annotated[str, Meta(min_length=1, max_length=320)]
# A finite number a person could mean (JSON has no NaN, but 1e400 decodes as infinity).
Number = Annotated[float, Meta(ge=-1e15, le=1e15)]
Count = Annotated[int, Meta(ge=-(10**15), le=10**15)]

_NAME = re.compile(NAME_PATTERN)
_TEXT = re.compile(TEXT_PATTERN)


def check_name(value: str, field: str, label: str | None = None) -> str:
    """A form's name field: whitespace runs folded, and refused when empty, invisible, with
    control characters, or longer than NAME_MAX."""
    label = label or field.replace("_", " ").capitalize()
    folded = " ".join(value.split())
    if not folded:
        raise ValidationFailed(f"{label} must not be empty.", details={"field": field})
    if len(folded) > NAME_MAX:
        raise ValidationFailed(
            f"{label} is {len(folded)} characters long; at most {NAME_MAX} are allowed.",
            details={"field": field},
        )
    if not _NAME.match(folded) or not visible(folded):
        raise ValidationFailed(
            f"{label} must contain visible characters and no control characters.",
            details={"field": field},
        )
    return folded


def check_text(value: str, field: str, label: str | None = None, limit: int = TEXT_MAX) -> str:
    """A form's free-text field: at most ``limit`` characters, no control characters."""
    label = label or field.replace("_", " ").capitalize()
    if len(value) > limit:
        raise ValidationFailed(
            f"{label} is {len(value)} characters long; at most {limit} are allowed.",
            details={"field": field},
        )
    if not _TEXT.match(value):
        raise ValidationFailed(
            f"{label} must not contain control characters.", details={"field": field}
        )
    return value


def folded_text(value: str, field: str, label: str | None = None, limit: int = TEXT_MAX) -> str:
    """:func:`check_text`, its runs of white space folded into one space (as it is stored)."""
    return " ".join(check_text(value, field, label, limit).split())


def check_reason(
    value: str, *, purpose: str = "", limit: int = REASON_MAX, required: bool = True
) -> str:
    """The reason a change is audited with: free text of at most ``limit`` characters, white
    space folded; when blank and ``required``, refused ("A reason is required to <purpose>.")."""
    text = folded_text(value, "reason", "The reason", limit)
    if required and not text:
        ending = f" to {purpose}" if purpose else ""
        raise ValidationFailed(f"A reason is required{ending}.", details={"field": "reason"})
    return text


def visible(text: str) -> bool:
    """At least one character that prints (not a separator, control, format or unassigned
    code point)."""
    return any(unicodedata.category(ch)[0] in "LMNPS" for ch in text)


def is_email(text: str) -> bool:
    """One ``@`` between a non-empty local part and a dotted-or-plain domain without spaces."""
    local, at, domain = text.partition("@")
    return (
        bool(at and local and domain)
        and "@" not in domain
        and len(text) <= 320
        and not any(ch.isspace() or unicodedata.category(ch)[0] == "C" for ch in text)
        and not domain.startswith(".")
        and not domain.endswith(".")
        and ".." not in domain
    )


# --- msgspec's validation messages, for people ------------------------------------------------

_KINDS = {
    "int": "a whole number",
    "float": "a number",
    "str": "text",
    "bool": "true or false",
    "null": "nothing (null)",
    "object": "an object",
    "array": "a list",
    "uuid": "an id (UUID)",
    "datetime": "a date and time",
    "date": "a date",
}
_AT = re.compile(r"^(?P<message>.*?)(?: - at (?P<key>`key` in )?`\$(?P<path>[^`]*)`)?$", re.S)
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"Expected `([^`]+)`, got `(\w+)`"), "must be {0}, not {1}"),
    (re.compile(r"Expected `str` of length <= (\d+)"), "must be at most {0} characters long"),
    (re.compile(r"Expected `str` of length >= (\d+)"), "must be at least {0} characters long"),
    (re.compile(r"Expected `(?:array|object)` of length <= (\d+)"), "must have at most {0} items"),
    (re.compile(r"Expected `(?:array|object)` of length >= (\d+)"), "must have at least {0} items"),
    (re.compile(r"Expected `str` matching regex"), "is not in the expected format"),
    (re.compile(r"Expected `(?:int|float)` >= (\S+)"), "must be at least {0}"),
    (re.compile(r"Expected `(?:int|float)` > (\S+)"), "must be greater than {0}"),
    (re.compile(r"Expected `(?:int|float)` <= (\S+)"), "must be at most {0}"),
    (re.compile(r"Expected `(?:int|float)` < (\S+)"), "must be less than {0}"),
    (re.compile(r"Invalid enum value '(.*)'"), "'{0}' is not one of the accepted values"),
    (re.compile(r"Invalid UUID"), "must be an id (UUID)"),
    (re.compile(r"Invalid RFC3339 encoded datetime"), "must be a date and time (RFC 3339)"),
)
# Messages about a field inside the object at the path: (rule, sentence).
_INNER = (
    (re.compile(r"Object missing required field `([^`]+)`"), "is required"),
    (re.compile(r"Object contains unknown field `([^`]+)`"), "is not a known field"),
)


_FORMATS = {
    NAME_PATTERN: "must contain visible characters and no control characters",
    TEXT_PATTERN: "must not contain control characters",
    KEY_PATTERN: "must be an identifier (letters, digits, '_', '-', '.', ':')",
    "^[0-9a-f]{64}$": "must be a SHA-256 hash (64 hexadecimal digits)",
}


def _kind(name: str) -> str:
    """``str | null`` -> ``text or nothing (null)``."""
    return " or ".join(_KINDS.get(part.strip(), part.strip()) for part in name.split("|"))


def _format_rule(text: str) -> str | None:
    for pattern, sentence in _FORMATS.items():
        if f"regex {pattern!r}" in text or f"regex '{pattern}'" in text:
            return sentence
    return None


def humanise(message: str, field: str | None = None) -> str:
    """A msgspec validation message as a sentence naming the field:
    ``Expected `int`, got `str` - at `$.base_revision``` becomes
    ``base_revision: must be a whole number, not text``."""
    found = _AT.match(message)
    text, path = (found["message"], found["path"]) if found else (message, None)
    parts = [field or "", (path or "").lstrip(".")]
    sentence = _format_rule(text) or text.replace("`", "")
    for rule, template in () if _format_rule(text) else _RULES:
        matched = rule.search(text)
        if matched:
            sentence = template.format(*(_kind(g) for g in matched.groups()))
            break
    for rule, template in _INNER:
        matched = rule.search(text)
        if matched:
            parts.append(matched.group(1))
            sentence = template
    if found and found["key"]:
        sentence = "its keys " + sentence.removeprefix("is ")
    where = ".".join(p for p in parts if p).replace(".[", "[").replace("[...]", "[key]")
    if where.endswith("[key]") and found and found["key"]:
        where = where.removesuffix("[key]")
    if where:
        return f"{where}: {sentence}"
    return sentence[:1].upper() + sentence[1:]
