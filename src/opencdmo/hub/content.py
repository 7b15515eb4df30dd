"""HUB content files: loading, JSON Schema validation, identity and dependencies of an item.

The schemas in ``hub_content/schema/`` serve the files and the API alike. A document that
passes its schema is decoded once into its typed content (``opencdmo.hub.model``); its hash
stays that of the document as stored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from opencdmo.canonical import content_hash
from opencdmo.errors import ValidationFailed
from opencdmo.fields import humanise
from opencdmo.hub.model import LibraryContent, Method, Recipe, UnitOperation, decode

ROOT = Path(__file__).resolve().parents[3] / "hub_content"
SCHEMA_DIR = ROOT / "schema"
KIND_DIRS = {
    "material": "materials",
    "equipment_class": "equipment_classes",
    "method": "methods",
    "unit_operation": "unit_operations",
    "recipe": "recipes",
}
# Publishing order: what is referenced comes before what references it.
KIND_ORDER = tuple(KIND_DIRS)
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


class ContentError(ValidationFailed):
    """A content file or document that cannot be published; the message names file and field."""


@dataclass(frozen=True)
class Reference:
    """A dependency: another item by kind and slug, pinned to a version or not."""

    kind: str
    slug: str
    version: str | None


@dataclass(frozen=True)
class Document:
    """A validated document: ``data`` as it is stored and hashed, ``content`` typed."""

    kind: str
    slug: str
    version: str
    data: dict[str, Any]
    source: str
    content: LibraryContent

    @property
    def hash(self) -> str:
        return content_hash(self.data)

    @property
    def semver(self) -> tuple[int, int, int]:
        return semver(self.version)

    def references(self) -> list[Reference]:
        return sorted(set(_references(self.content)), key=lambda r: (r.kind, r.slug))


def semver(version: str) -> tuple[int, int, int]:
    match = SEMVER.match(version)
    if match is None:
        raise ContentError(f"'{version}' is not a semantic version (MAJOR.MINOR.PATCH).")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


@cache
def _registry() -> Registry:
    schemas = [json.loads(p.read_text()) for p in sorted(SCHEMA_DIR.glob("*.schema.json"))]
    return Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in schemas)


@cache
def common_enum(name: str) -> tuple[str, ...]:
    """The values of an enumeration in the common schema (modalities, units, licences)."""
    common = json.loads((SCHEMA_DIR / "common.schema.json").read_text())
    return tuple(common["$defs"][name]["enum"])


@cache
def _validator(kind: str) -> Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / f"{kind}.schema.json").read_text())
    return Draft202012Validator(schema, registry=_registry())


def validate(data: Any, source: str) -> Document:
    """Check a document against its kind's schema; the error names the source and the field."""
    if not isinstance(data, dict):
        raise ContentError(f"{source}: must be a mapping with kind, slug and version")
    kind = data.get("kind")
    if kind not in KIND_DIRS:
        raise ContentError(
            f"{source}: kind: must be one of {', '.join(KIND_DIRS)}",
            details={"file": source, "field": "kind"},
        )
    errors = sorted(_validator(kind).iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = ".".join(str(p) for p in first.absolute_path) or "(top level)"
        raise ContentError(
            f"{source}: {where}: {first.message}", details={"file": source, "field": where}
        )
    semver(data["version"])
    try:
        content = decode(data)
    except msgspec.ValidationError as exc:  # the schema passed it: the structs must agree
        message = humanise(str(exc))
        raise ContentError(f"{source}: {message}", details={"file": source}) from None
    return Document(kind, content.slug, content.version, data, source, content)


def load_file(path: Path, root: Path) -> Document:
    source = str(path.relative_to(root.parent) if path.is_relative_to(root.parent) else path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ContentError(f"{source}: cannot be read as YAML: {exc}") from None
    document = validate(data, source)
    expected = (KIND_DIRS[document.kind], document.slug, f"{document.version}.yaml")
    if path.parts[-3:] != expected:
        raise ContentError(
            f"{source}: the path must be {'/'.join(expected)} for kind {document.kind}, "
            f"slug {document.slug} and version {document.version}"
        )
    return document


def load_tree(root: Path) -> list[Document]:
    """Every item version under ``root``, in publishing order."""
    if not root.is_dir():
        raise ContentError(f"{root}: no such directory")
    paths = [p for folder in KIND_DIRS.values() for p in sorted((root / folder).rglob("*.yaml"))]
    if not paths:
        raise ContentError(f"{root}: no content files found")
    documents = [load_file(path, root) for path in paths]
    return sorted(documents, key=lambda d: (KIND_ORDER.index(d.kind), d.slug, d.semver))


def _references(content: LibraryContent) -> Iterator[Reference]:
    if isinstance(content, UnitOperation | Method):
        for slug in content.equipment_classes or ():
            yield Reference("equipment_class", slug, None)
    if isinstance(content, UnitOperation):
        for line in content.materials:
            yield Reference("material", line.material, None)
    if isinstance(content, Recipe):
        for procedure in content.unit_procedures:
            for operation in procedure.operations:
                yield Reference("unit_operation", operation.unit_operation, operation.version)
        for point in content.sampling_points:
            yield Reference("method", point.method, point.method_version)
        for spec in content.release_specifications:
            yield Reference("method", spec.method, spec.method_version)


def search_text(data: dict[str, Any]) -> tuple[str, str, str]:
    """Weighted text for full-text search: (name, summary and tags, everything else)."""
    words: list[str] = [data.get("description", ""), data.get("category", "") or ""]
    words += [*data.get("modalities", []), data.get("modality") or "", data.get("product", "")]
    for phase in data.get("phases", []):
        words.append(phase["name"])
        words += [p["name"] for p in phase.get("parameters", [])]
        words += [f["name"] for f in phase.get("data_capture", [])]
    words += [f["name"] for f in data.get("result_fields", [])]
    words += [data.get("technique", ""), data.get("sample_type", "")]
    tags = " ".join(data.get("tags", []))
    # The slug whole and word by word: the parser reads "84e4d9" in "buffer-84e4d9" as one
    # word, and alone (as a query word) as the number "84e4" then "d9".
    slug = data["slug"]
    return (
        f"{data['name']} {slug} {slug.replace('-', ' ')}",
        f"{data['summary']} {tags}",
        " ".join(w for w in words if w),
    )
