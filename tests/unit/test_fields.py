"""Text limits, the sentences made of msgspec's messages, the JSON body checks and the typed
recipe content's mapping."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opencdmo.errors import ValidationFailed
from opencdmo.fields import (
    Name,
    check_name,
    check_reason,
    check_text,
    folded_text,
    humanise,
    is_email,
    visible,
)
from opencdmo.recipes.model import RecipeContent, content_to_dict, parse_content
from opencdmo.webapp.bodies import MalformedBody, check_json, depth_exceeds


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("Cell processing", True),
        ("  padded  ", True),
        ("Zellkultur \u00e4", True),
        ("\u200b\u200c\u200d\u2060\ufeff", False),
        ("\x01\x02", False),
        (" \t ", False),
        ("a\nb", False),
        ("x" * 200, True),
        ("x" * 201, False),
    ],
)
def test_names_need_a_visible_character_and_a_limit(text: str, ok: bool) -> None:
    decoded = msgspec.json.encode(text)
    if ok:
        assert msgspec.json.decode(decoded, type=Name) == text
    else:
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(decoded, type=Name)


def test_form_checks_fold_spaces_and_name_the_field() -> None:
    assert check_name("  Cell   processing ", "name") == "Cell processing"
    with pytest.raises(ValidationFailed, match="Name must not be empty") as empty:
        check_name("\u3000 ", "name")
    assert empty.value.details == {"field": "name"}
    with pytest.raises(ValidationFailed, match="visible characters"):
        check_name("\u200b", "name")
    with pytest.raises(ValidationFailed, match="601 characters long; at most 200"):
        check_name("x" * 601, "name")
    assert check_text("two\nlines\tand a tab", "notes") == "two\nlines\tand a tab"
    with pytest.raises(ValidationFailed, match="Notes must not contain control characters"):
        check_text("bell\x07", "notes")
    assert not visible("\u200b\u2060") and visible("\u200ba")


def test_a_reason_is_folded_and_required_unless_said_otherwise() -> None:
    assert folded_text(" two\n lines\tand  a tab ", "note") == "two lines and a tab"
    assert check_reason("  Label\r\n torn ") == "Label torn"
    with pytest.raises(ValidationFailed, match=r"^A reason is required\.$") as blank:
        check_reason(" \n ")
    assert blank.value.details == {"field": "reason"}
    with pytest.raises(ValidationFailed, match="A reason is required to remove a document"):
        check_reason("", purpose="remove a document")
    assert check_reason(" ", required=False) == ""
    with pytest.raises(ValidationFailed, match="The reason is 11 characters long; at most 10"):
        check_reason("x" * 11, limit=10)
    with pytest.raises(ValidationFailed, match="The reason must not contain control characters"):
        check_reason("a\x00b")


@pytest.mark.parametrize(
    ("email", "ok"),
    [
        ("a@b.test", True),
        ("first.last@sub.example.org", True),
        ("x@y@z", False),
        ("@b.test", False),
        ("a@", False),
        ("a b@c.test", False),
        ("a@.test", False),
        ("a@b..test", False),
        ("a@b.test\x00", False),
    ],
)
def test_an_email_has_one_at(email: str, ok: bool) -> None:
    assert is_email(email) is ok


@pytest.mark.parametrize(
    ("message", "sentence"),
    [
        (
            "Expected `int`, got `str` - at `$.base_revision`",
            "base_revision: must be a whole number, not text",
        ),
        ("Expected `int` >= 1", "Must be at least 1"),
        (
            "Expected `str | null`, got `array` - at `$.a[0].b`",
            "a[0].b: must be text or nothing (null), not a list",
        ),
        (
            "Object missing required field `operations` - at `$.unit_procedures[0]`",
            "unit_procedures[0].operations: is required",
        ),
        ("Object contains unknown field `colour`", "colour: is not a known field"),
        (
            "Expected `str` of length <= 200 - at `$.name`",
            "name: must be at most 200 characters long",
        ),
        ("Invalid enum value 'xml'", "'xml' is not one of the accepted values"),
        ("Something new - at `$.x`", "x: Something new"),
    ],
)
def test_msgspec_messages_become_sentences(message: str, sentence: str) -> None:
    assert humanise(message) == sentence


def test_humanise_prefixes_the_field_it_is_given() -> None:
    assert humanise("Expected `int` >= 1", "limit (query)") == "limit (query): must be at least 1"


def test_json_nesting_is_counted_outside_strings() -> None:
    assert not depth_exceeds(b"[" * 32 + b"]" * 32)
    assert depth_exceeds(b"[" * 33 + b"]" * 33)
    assert not depth_exceeds(b'{"a": "' + b"[" * 100 + b'"}')
    assert not depth_exceeds(b'{"a": "\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}')


def test_json_bodies_refused_before_decoding() -> None:
    with pytest.raises(MalformedBody, match="nested more than 32 levels"):
        check_json(b"[" * 1000 + b"]" * 1000)
    with pytest.raises(MalformedBody, match="the key 'a' twice"):
        check_json(b'{"a": 1, "b": {"a": 1}, "a": 2}')
    with pytest.raises(MalformedBody, match="not valid JSON"):
        check_json(b"{not json")
    with pytest.raises(ValidationFailed, match="unit_procedures: is required"):
        check_json(b'{"formulas": []}', RecipeContent)
    with pytest.raises(ValidationFailed, match="x: a text of more than 100000 characters"):
        check_json(b'{"x": "' + b"y" * 100_001 + b'"}')
    check_json(b'{"unit_procedures": []}', RecipeContent)


KEYS = st.from_regex(r"\A[a-z][a-z0-9_]{0,10}\Z")
VALUES = st.one_of(
    st.integers(-(10**9), 10**9),
    st.floats(-1e9, 1e9, allow_nan=False),
    st.booleans(),
    st.text(max_size=5),
)
OPERATION = st.fixed_dictionaries(
    {"key": KEYS, "library_item_id": st.uuids().map(str)},
    optional={
        "parameters": st.dictionaries(KEYS, VALUES, max_size=3),
        "notes": st.text(max_size=20).filter(lambda t: t.isprintable()),
        "content_hash": st.sampled_from(["0" * 64, "a" * 64]),
    },
)
CONTENT = st.fixed_dictionaries(
    {
        "unit_procedures": st.lists(
            st.fixed_dictionaries(
                {
                    "key": KEYS,
                    "name": st.just("Step"),
                    "operations": st.lists(OPERATION, max_size=3),
                }
            ),
            max_size=3,
        )
    },
    optional={
        "formulas": st.lists(
            st.fixed_dictionaries(
                {"name": st.just("1 L"), "overrides": st.dictionaries(KEYS, VALUES, max_size=2)}
            ),
            max_size=2,
        )
    },
)


@settings(max_examples=100, derandomize=True, database=None)
@given(CONTENT)
def test_content_maps_both_ways_without_loss(content: dict[str, Any]) -> None:
    stored = content_to_dict(parse_content(content))
    assert content_to_dict(parse_content(stored)) == stored
    for i, procedure in enumerate(content["unit_procedures"]):
        for j, op in enumerate(procedure["operations"]):
            kept = stored["unit_procedures"][i]["operations"][j]
            assert {k: kept[k] for k in op} == op  # what was sent is stored as sent
            assert type(kept.get("parameters", {})) is dict


def test_a_busy_database_is_a_503_with_retry_after() -> None:
    """Out of database connections is not the caller's fault and changed nothing: 503."""
    import asyncpg

    from opencdmo.webapp.errors import _describe

    status, message, _, headers = _describe(
        asyncpg.exceptions.TooManyConnectionsError("remaining connection slots are reserved")
    )
    assert (status, headers["Retry-After"]) == (503, "5")
    assert "nothing was changed" in message


def _raised_while_handling(lost: Exception, then: Exception) -> Exception:
    try:
        try:
            raise lost
        except Exception:
            raise then  # noqa: B904 - the context is the point: a rollback failing after the loss
    except Exception as exc:
        return exc


def test_a_lost_database_connection_is_a_503_asking_for_a_retry() -> None:
    """A killed backend, and the rollback that fails after it, is a 503 with a sentence, not
    an internal error; a cancelled query or another error is not."""
    import asyncpg

    from opencdmo.webapp.errors import _describe

    killed = asyncpg.exceptions.AdminShutdownError("terminating connection")
    after_rollback = _raised_while_handling(
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.exceptions.InterfaceError("connection has been released back to the pool"),
    )
    for lost in (killed, after_rollback):
        status, message, _, headers = _describe(lost)
        assert (status, headers["Retry-After"]) == (503, "1")
        assert message == "The database connection was lost; retry the request."
    for other in (
        asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"),
        asyncpg.exceptions.InterfaceError("cannot perform operation"),
    ):
        assert _describe(other)[0] == 500
