"""The typed HUB content (``opencdmo.hub.model``) against the published JSON Schemas and the
shipped library: every file decodes into the struct of its kind and encodes back to exactly
the document it was (so content hashes do not change), and structs and schemas agree on
fields, required fields, enumerations, lengths and patterns."""

from __future__ import annotations

import json
import types
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import msgspec
import pytest
import yaml

from opencdmo.canonical import canonical_json, content_hash
from opencdmo.hub import model
from opencdmo.hub.content import KIND_DIRS, ContentError, validate

ROOT = Path(__file__).resolve().parents[2] / "hub_content"
SCHEMA_DIR = ROOT / "schema"
FILES = sorted(p for folder in KIND_DIRS.values() for p in (ROOT / folder).rglob("*.yaml"))
FILE_IDS = [p.relative_to(ROOT).as_posix() for p in FILES]


@cache
def _schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMA_DIR / name).read_text())
    return loaded


# --- every shipped file -----------------------------------------------------------------------


@pytest.mark.parametrize("path", FILES, ids=FILE_IDS)
def test_every_file_decodes_into_its_struct_and_round_trips(path: Path) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    kind = {folder: kind for kind, folder in KIND_DIRS.items()}[path.relative_to(ROOT).parts[0]]
    content = model.decode(document)
    assert type(content) is model.KINDS[kind] and content.kind == kind
    assert model.encode(content) == document
    # Canonical JSON tells 2 from 2.0 (dict equality does not): the hash is the same.
    assert canonical_json(model.encode(content)) == canonical_json(document)
    # Read back from stored JSON text, as the library and the pins are.
    stored = json.dumps(document)
    assert model.decode_json(stored) == content
    assert content_hash(model.encode(model.decode_json(stored))) == content_hash(document)


def test_validate_gives_the_typed_content_with_the_stored_document() -> None:
    path = ROOT / "unit_operations" / "t-cell-activation" / "1.0.0.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    document = validate(data, "t-cell-activation")
    assert isinstance(document.content, model.UnitOperation)
    assert document.hash == content_hash(data) == content_hash(model.encode(document.content))
    assert set(document.content.parameters()) == {
        p["key"] for phase in data["phases"] for p in phase["parameters"]
    }


# --- the structs refuse what the schema refuses -----------------------------------------------


def _material() -> dict[str, Any]:
    path = ROOT / "materials" / "glycine" / "1.0.0.yaml"
    loaded: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "blue"}, "unknown field `colour`"),
        ({"grade": "food"}, "Invalid enum value 'food' - at `$.grade`"),
        ({"slug": "Not A Slug"}, "matching regex"),
        ({"kind": "reagent"}, "Invalid value 'reagent' - at `$.kind`"),
        ({"authors": []}, "length >= 1"),
        ({"storage": {"temperature_low": 2, "temperature_high": 8, "unit": "degC"}}, "`$.storage"),
    ],
)
def test_a_struct_refuses_what_its_schema_refuses(change: dict[str, Any], message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message.replace("$", r"\$")):
        model.decode({**_material(), **change})


def test_stored_content_that_does_not_fit_is_an_error_not_a_guess() -> None:
    with pytest.raises(ValueError, match="stored library content does not fit"):
        model.decode_json(json.dumps({**_material(), "grade": "food"}))


def test_validate_reports_the_schema_first() -> None:
    with pytest.raises(ContentError, match="glycine: grade: 'food' is not one of"):
        validate({**_material(), "grade": "food"}, "glycine")


# --- one-sided ranges -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high", "inside", "outside", "span"),
    [(1, 5, 3, 6, "1-5"), (1, None, 9, 0, "at least 1"), (None, 5.0, -3, 5.5, "at most 5.0")],
)
def test_a_range_with_one_bound_limits_on_that_side_only(
    low: float | None, high: float | None, inside: float, outside: float, span: str
) -> None:
    rng = model.Range(low=low, high=high)
    assert rng.holds(inside) and not rng.holds(outside) and rng.span() == span


# --- structs and schemas agree ----------------------------------------------------------------


def _deref(node: dict[str, Any], file: str) -> tuple[dict[str, Any], str]:
    while "$ref" in node:
        target, _, pointer = node["$ref"].partition("#")
        file = target or file
        node = _schema(file)
        for part in pointer.strip("/").split("/"):
            node = node[part]
    return node, file


def _unwrap(tp: Any) -> tuple[Any, list[msgspec.Meta], bool]:
    """(type without Annotated and None, its Meta constraints, whether None was allowed)."""
    metas: list[msgspec.Meta] = []
    optional = False
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        optional = len(args) < len(get_args(tp))
        if len(args) == 1:
            tp = args[0]
        else:
            inner = [_unwrap(a) for a in args]
            metas = [m for _, ms, _ in inner for m in ms]
            return frozenset(t for t, _, _ in inner), metas, optional
    if get_origin(tp) is Annotated:
        base, *extra = get_args(tp)
        inner_tp, inner_metas, inner_optional = _unwrap(base)
        return (
            inner_tp,
            [*inner_metas, *(m for m in extra if isinstance(m, msgspec.Meta))],
            optional or inner_optional,
        )
    return tp, metas, optional


def _meta(metas: list[msgspec.Meta], name: str) -> set[Any]:
    return {getattr(m, name) for m in metas if getattr(m, name) is not None}


def _agree(tp: Any, node: dict[str, Any], file: str, path: str, problems: list[str]) -> None:
    node, file = _deref(node, file)
    tp, metas, _ = _unwrap(tp)

    def expect(ok: bool, what: str) -> None:
        if not ok:
            problems.append(f"{path}: {what}")

    if "enum" in node or "const" in node:
        values = set(node["enum"]) if "enum" in node else {node["const"]}
        expect(get_origin(tp) is Literal and set(get_args(tp)) == values, "enum values differ")
        return
    kind = node.get("type")
    if isinstance(kind, list):
        expect(tp == frozenset({int, float, str, bool}), f"not int | float | str | bool: {tp}")
    elif kind == "string":
        expect(tp is str, f"not str: {tp}")
        expect(
            _meta(metas, "pattern") == ({node["pattern"]} if "pattern" in node else set()),
            "pattern",
        )
        expect(
            _meta(metas, "min_length") == ({node["minLength"]} if "minLength" in node else set()),
            "minLength",
        )
        expect(
            _meta(metas, "max_length") == ({node["maxLength"]} if "maxLength" in node else set()),
            "maxLength",
        )
    elif kind == "number":
        expect(tp == frozenset({int, float}), f"not int | float (numbers keep their kind): {tp}")
        gt = {node["exclusiveMinimum"]} if "exclusiveMinimum" in node else set()
        expect(_meta(metas, "gt") == gt, "exclusiveMinimum")
    elif kind == "boolean":
        expect(tp is bool, f"not bool: {tp}")
    elif kind == "array":
        expect(get_origin(tp) is tuple and get_args(tp)[1:] == (...,), f"not a tuple: {tp}")
        min_items = {node["minItems"]} if "minItems" in node else set()
        expect(_meta(metas, "min_length") == min_items, "minItems")
        _agree(get_args(tp)[0], node["items"], file, f"{path}[]", problems)
    elif kind == "object" and "properties" not in node:
        expect(get_origin(tp) is dict, f"not a dict: {tp}")
        _agree(get_args(tp)[0], node["propertyNames"], file, f"{path}{{key}}", problems)
        _agree(get_args(tp)[1], node["additionalProperties"], file, f"{path}{{value}}", problems)
    else:
        _agree_struct(tp, node, file, path, problems)


def _agree_struct(
    struct: type[msgspec.Struct], node: dict[str, Any], file: str, path: str, problems: list[str]
) -> None:
    config = struct.__struct_config__
    fields = {f.encode_name: f for f in msgspec.structs.fields(struct)}
    tag = {config.tag_field} if config.tag_field else set()
    if set(node["properties"]) != set(fields) | tag:
        problems.append(
            f"{path}: fields {sorted(fields)} != properties {sorted(node['properties'])}"
        )
    required = {name for name, f in fields.items() if f.required} | tag
    if set(node.get("required", [])) != required:
        problems.append(
            f"{path}: required {sorted(required)} != {sorted(node.get('required', []))}"
        )
    if config.forbid_unknown_fields != (node.get("additionalProperties") is False):
        problems.append(f"{path}: forbid_unknown_fields disagrees with additionalProperties")
    for name, field in fields.items():
        if not field.required and field.default is not None:
            problems.append(f"{path}.{name}: an optional field must default to None")
        if name in node["properties"]:
            _agree(field.type, node["properties"][name], file, f"{path}.{name}", problems)
    if config.tag_field:
        expected = node["properties"][config.tag_field]["const"]
        if config.tag != expected or getattr(struct, "kind", None) != expected:
            problems.append(f"{path}: tag {config.tag} != {expected}")


@pytest.mark.parametrize("kind", sorted(KIND_DIRS))
def test_structs_and_schemas_agree(kind: str) -> None:
    file = f"{kind}.schema.json"
    problems: list[str] = []
    _agree_struct(model.KINDS[kind], _schema(file), file, kind, problems)
    assert problems == []


def test_every_kind_has_a_struct() -> None:
    assert set(model.KINDS) == set(KIND_DIRS)
