"""An effective master recipe as a HUB recipe document.

Every step, sampling point and release specification references the HUB version that its
library item stands for: an installed copy or an unchanged fork is the version it was copied
from; an edited fork is the version of the tenant's own publication of that fork with the
same content (publish the fork first). Site details stay at the site: equipment bindings,
acknowledgements of values outside the normal range, and formulas.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from opencdmo.errors import ValidationFailed

# What a library item stands for on the HUB: (slug, version), or why it cannot be referenced.
Ref = tuple[str, str] | str
SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Listing:
    """How the recipe is listed on the HUB (not part of the signed recipe content)."""

    slug: str
    version: str
    summary: str
    description: str
    changelog: str
    licence: str = "CC-BY-4.0"
    tags: list[str] = field(default_factory=list)
    visibility: str = "private"


def hub_key(key: str, prefix: str = "k") -> str:
    """A key (or a name) in the HUB's snake_case key format."""
    text = re.sub(r"[^a-z0-9]+", "_", str(key).lower()).strip("_")
    return text if text[:1].isalpha() else f"{prefix}_{text}".rstrip("_")


def slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:80].strip("-")


def next_version(latest: str | None) -> str:
    """The version a new publication proposes: 1.0.0, or the next minor version."""
    if latest is None:
        return "1.0.0"
    major, minor, _ = (int(part) for part in latest.split(".")[:3])
    return f"{major}.{minor + 1}.0"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def document(
    recipe: dict[str, Any],
    content: dict[str, Any],
    refs: dict[str, Ref],
    listing: Listing,
    authors: list[str],
) -> dict[str, Any]:
    """The HUB recipe document of one revision; ``refs`` maps library item ids to the HUB
    versions they stand for. Raises with every problem found, each naming its place."""
    problems: list[str] = []
    spec = content.get("specification") or {}
    if not spec.get("modality"):
        problems.append("specification.modality: set the modality in the designer")
    if not spec.get("batch_size"):
        problems.append("specification.batch_size: set the nominal batch size in the designer")

    def ref(where: str, library_item_id: Any) -> tuple[str, str]:
        found = refs.get(str(library_item_id), "its library item is not available on the HUB")
        if isinstance(found, str):
            problems.append(f"{where}: {found}")
            return ("", "")
        return found

    procedures = []
    for up in content.get("unit_procedures", []):
        if not up.get("operations"):
            problems.append(f"unit_procedures[{up['key']}]: has no steps")
        operations = []
        for op in up.get("operations", []):
            slug, version = ref(
                f"unit_procedures[{up['key']}].operations[{op['key']}]", op.get("library_item_id")
            )
            operation: dict[str, Any] = {
                "key": hub_key(op["key"]),
                "unit_operation": slug,
                "version": version,
                "parameter_overrides": dict(op.get("parameters") or {}),
            }
            if _one_line(op.get("notes") or ""):
                operation["note"] = op["notes"].strip()
            operations.append(operation)
        procedure: dict[str, Any] = {
            "key": hub_key(up["key"]),
            "name": _one_line(up.get("name") or up["key"]),
            "operations": operations,
        }
        procedures.append(procedure)
    if not procedures:
        problems.append("unit_procedures: the recipe has no unit procedures")

    sampling = []
    for point in content.get("sampling_points", []) or []:
        slug, version = ref(f"sampling_points[{point['key']}]", point.get("library_item_id"))
        entry: dict[str, Any] = {
            "key": hub_key(point["key"]),
            "after_operation": hub_key(point["after_operation"]),
            "method": slug,
            "method_version": version,
            "sample_volume": point["sample_volume"],
        }
        if _one_line(point.get("note") or ""):
            entry["note"] = point["note"].strip()
        sampling.append(entry)

    release = []
    for spec_line in content.get("release_specifications", []) or []:
        where = f"release_specifications[{spec_line['attribute']}]"
        slug, version = ref(where, spec_line.get("library_item_id"))
        line: dict[str, Any] = {
            "method": slug,
            "method_version": version,
            "attribute": spec_line["attribute"],
            "acceptance_criterion": spec_line["acceptance_criterion"],
        }
        line.update({k: spec_line[k] for k in ("limits", "unit") if spec_line.get(k)})
        release.append(line)

    if problems:
        raise ValidationFailed(
            "This recipe cannot be published yet: " + "; ".join(problems),
            details={"problems": problems},
        )
    return {
        "kind": "recipe",
        "slug": listing.slug,
        "name": _one_line(recipe["name"]),
        "summary": _one_line(listing.summary),
        "description": listing.description.strip(),
        "version": listing.version.strip(),
        "changelog": listing.changelog.strip(),
        "authors": authors,
        "licence": listing.licence,
        "tags": sorted(set(listing.tags)),
        "product": _one_line(recipe.get("product") or recipe["name"]),
        "modality": spec["modality"],
        "batch_size": spec["batch_size"],
        "unit_procedures": procedures,
        "sampling_points": sampling,
        "release_specifications": release,
    }
