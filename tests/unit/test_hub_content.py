"""Validate the shipped HUB content library in ``hub_content/``.

Every YAML item is checked against the JSON Schema of its kind (``hub_content/schema/``) and
against the rules JSON Schema cannot express: the file path names the item, numeric parameters
have their default inside the normal operating range (NOR) and the NOR inside the proven
acceptable range (PAR), keys are unique, every reference resolves to an existing item (and
version, where pinned), and recipe overrides stay inside the pinned PAR.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator, ValidationError
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parents[2] / "hub_content"
SCHEMA_DIR = ROOT / "schema"
KIND_DIRS = {
    "unit_operation": "unit_operations",
    "recipe": "recipes",
    "method": "methods",
    "material": "materials",
    "equipment_class": "equipment_classes",
}
DIR_KINDS = {folder: kind for kind, folder in KIND_DIRS.items()}
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
NUMERIC = {"number", "integer", "duration"}
DURATION_UNITS = {"s", "min", "h", "d"}
# Brand and company names that must not appear: the library uses generic names only.
BRANDS = re.compile(
    r"\b(?:"
    r"G-?Rex|Wilson Wolf|CliniMACS|TexMACS|Miltenyi|Prodigy|Dynabeads?|TransAct|Benzonase|"
    r"Denarase|CryoStor|Plasma-?Lyte|Normosol|X-VIVO|ImmunoCult|OpTmizer|AIM-V|Gibco|"
    r"Thermo ?Fisher|Invitrogen|Lonza|Cytiva|GE Healthcare|Sartorius|Merck|Millipore\w*|"
    r"Sigma-Aldrich|Corning|HyperFlask|HYPERStack|CellSTACK|Nunc|Xuri|WAVE Bioreactor|Sepax|"
    r"Lovo|Cocoon|Fresenius|Terumo|Cryocyte|TrypLE|Accutase|Triton|Tween|Pluronic|Kolliphor|"
    r"PEIpro|FectoVIR|Polyplus|Lipofectamine|FreeStyle|Expi293|Opti-?MEM|LentiBOOST|"
    r"RetroNectin|Takara|Vectofusion|POROS|CaptureSelect|Sepharose|Capto|Mustang|Sartobind|"
    r"CIMmultus|Natrix|Sartopore|Durapore|Pellicon|KrosFlo|Repligen|Vi-?CELL|NucleoCounter|"
    r"ChemoMetec|Cellometer|Countess|FACS\w*|Beckman|Bio-?Rad|ddPCR|QX200|QIAcuity|Qiagen|"
    r"TaqMan|SYBR|PicoGreen|Qubit|Endosafe|Charles River|BacT/?ALERT|BACTEC|bioM[eé]rieux|"
    r"MycoAlert|MycoSEQ|Luminex|[ÄA]KTA|Amicon|Stericup|Nalgene|Eppendorf|Mr\.? Frosty|"
    r"CoolCell"
    r")\b",
    re.IGNORECASE,
)

Item = dict[str, Any]


# --------------------------------------------------------------------------- loading


def _content_files() -> list[Path]:
    return sorted(
        p for folder in KIND_DIRS.values() for p in (ROOT / folder).rglob("*") if p.is_file()
    )


FILES = _content_files()
FILE_IDS = [p.relative_to(ROOT).as_posix() for p in FILES]


def _files_of(kind: str) -> list[Path]:
    return [p for p in FILES if p.relative_to(ROOT).parts[0] == KIND_DIRS[kind]]


def _ids(paths: list[Path]) -> list[str]:
    return [p.relative_to(ROOT).as_posix() for p in paths]


@cache
def _load(path: Path) -> Item:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path}: top level must be a mapping"
    return data


@cache
def _schemas() -> dict[str, dict[str, Any]]:
    return {
        p.name: json.loads(p.read_text(encoding="utf-8"))
        for p in sorted(SCHEMA_DIR.glob("*.schema.json"))
    }


@cache
def _registry() -> Registry:
    resources = [(s["$id"], Resource.from_contents(s)) for s in _schemas().values()]
    return Registry().with_resources(resources)


@cache
def _validator(kind: str) -> Draft202012Validator:
    return Draft202012Validator(_schemas()[f"{kind}.schema.json"], registry=_registry())


def _semver_key(version: str) -> tuple[int, int, int]:
    major, minor, patch = re.split(r"[.+-]", version)[:3]
    return int(major), int(minor), int(patch)


@cache
def _library() -> dict[str, dict[str, dict[str, Item]]]:
    """kind -> slug -> version -> item, for every file whose path is well formed."""
    lib: dict[str, dict[str, dict[str, Item]]] = {kind: defaultdict(dict) for kind in KIND_DIRS}
    for path in FILES:
        parts = path.relative_to(ROOT).parts
        if len(parts) != 3 or not path.name.endswith(".yaml"):
            continue
        lib[DIR_KINDS[parts[0]]][parts[1]][path.name.removesuffix(".yaml")] = _load(path)
    return lib


def _get(kind: str, slug: str, version: str | None = None) -> Item | None:
    versions = _library()[kind].get(slug)
    if not versions:
        return None
    if version is None:
        return versions[max(versions, key=_semver_key)]
    return versions.get(version)


# --------------------------------------------------------------------------- helpers


def _range_errors(where: str, rng: dict[str, float] | None) -> list[str]:
    if rng and "low" in rng and "high" in rng and rng["low"] > rng["high"]:
        return [f"{where}: low {rng['low']} > high {rng['high']}"]
    return []


def _inside(inner: dict[str, float], outer: dict[str, float]) -> bool:
    """True when the interval ``inner`` lies inside ``outer`` (a missing bound is infinite)."""
    if "low" in outer and ("low" not in inner or inner["low"] < outer["low"]):
        return False
    return not ("high" in outer and ("high" not in inner or inner["high"] > outer["high"]))


def _contains(rng: dict[str, float], value: float) -> bool:
    return rng.get("low", value) <= value <= rng.get("high", value)


def _duplicates(keys: list[str]) -> list[str]:
    return sorted(key for key, count in Counter(keys).items() if count > 1)


def _parameters(uo: Item) -> dict[str, Item]:
    return {p["key"]: p for phase in uo["phases"] for p in phase["parameters"]}


def _signal_errors(where: str, field: Item, allowed_classes: list[str]) -> list[str]:
    ref = field.get("equipment_signal")
    if ref is None:
        return []
    cls_slug, sig_key = ref["equipment_class"], ref["signal"]
    if cls_slug not in allowed_classes:
        return [f"{where}: signal class {cls_slug!r} is not in the item's equipment_classes"]
    cls = _get("equipment_class", cls_slug)
    if cls is None:
        return [f"{where}: equipment class {cls_slug!r} does not exist"]
    errors = []
    if not cls["opc_ua_capable"]:
        errors.append(f"{where}: {cls_slug} is not OPC UA capable, its signals cannot be captured")
    signals = {s["key"]: s for s in cls["typical_signals"]}
    if sig_key not in signals:
        errors.append(f"{where}: {cls_slug} has no signal {sig_key!r}")
    elif signals[sig_key].get("unit") != field.get("unit"):
        errors.append(
            f"{where}: unit {field.get('unit')!r} differs from signal unit "
            f"{signals[sig_key].get('unit')!r}"
        )
    return errors


def _field_errors(where: str, fields: list[Item], allowed_classes: list[str]) -> list[str]:
    errors = []
    for f in fields:
        errors += _range_errors(f"{where}.{f['key']}.limits", f.get("limits"))
        errors += _signal_errors(f"{where}.{f['key']}", f, allowed_classes)
    return errors


def _parameter_errors(where: str, p: Item) -> list[str]:
    errors: list[str] = []
    nor, par, default = p.get("normal_range"), p.get("proven_acceptable_range"), p["default"]
    if p["type"] == "choice" and default not in p["choices"]:
        errors.append(f"{where}: default {default!r} is not one of the choices")
    if p["type"] == "duration" and p.get("unit") not in DURATION_UNITS:
        errors.append(f"{where}: duration unit must be one of {sorted(DURATION_UNITS)}")
    if p["type"] not in NUMERIC:
        return errors
    errors += _range_errors(f"{where}.normal_range", nor)
    errors += _range_errors(f"{where}.proven_acceptable_range", par)
    if nor and par and not _inside(nor, par):
        errors.append(
            f"{where}: normal range {nor} is not inside the proven acceptable range {par}"
        )
    if nor and not _contains(nor, default):
        errors.append(f"{where}: default {default} is outside the normal range {nor}")
    elif par and not _contains(par, default):
        errors.append(f"{where}: default {default} is outside the proven acceptable range {par}")
    return errors


def _override_errors(where: str, param: Item, value: object) -> list[str]:
    kind = param["type"]
    if kind in NUMERIC:
        valid = isinstance(value, int) if kind == "integer" else isinstance(value, int | float)
        if isinstance(value, bool) or not valid or not isinstance(value, int | float):
            return [f"{where}: {value!r} is not a valid {kind}"]
        bounds = param.get("proven_acceptable_range") or param.get("normal_range")
        if bounds and not _contains(bounds, value):
            return [f"{where}: {value} is outside the pinned proven acceptable range {bounds}"]
        return []
    if kind == "boolean" and not isinstance(value, bool):
        return [f"{where}: {value!r} is not a boolean"]
    if kind == "choice" and value not in param["choices"]:
        return [f"{where}: {value!r} is not one of {param['choices']}"]
    if kind == "text" and not isinstance(value, str):
        return [f"{where}: {value!r} is not text"]
    return []


def _message(error: ValidationError) -> str:
    allowed = error.validator_value
    if error.validator == "enum" and isinstance(allowed, list) and len(allowed) > 10:
        return f"{error.instance!r} is not one of the allowed values listed in the schema"
    return error.message


def _report(errors: list[str]) -> None:
    assert not errors, "\n".join(errors)


# --------------------------------------------------------------------------- schemas and layout


def test_schemas_are_valid_draft_2020_12() -> None:
    schemas = _schemas()
    assert set(schemas) == {"common.schema.json"} | {f"{k}.schema.json" for k in KIND_DIRS}
    for name, schema in schemas.items():
        Draft202012Validator.check_schema(schema)
        assert schema["$id"].endswith("/" + name), name
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema", name


def test_layout_has_only_known_entries() -> None:
    allowed = {"README.md", "schema", *KIND_DIRS.values()}
    unexpected = sorted(p.name for p in ROOT.iterdir() if p.name not in allowed)
    assert not unexpected, f"unexpected entries in hub_content/: {unexpected}"
    assert (ROOT / "README.md").is_file()


@pytest.mark.parametrize("path", FILES, ids=FILE_IDS)
def test_file_path_names_the_item(path: Path) -> None:
    parts = path.relative_to(ROOT).parts
    assert len(parts) == 3, "content lives at <kind plural>/<slug>/<version>.yaml"
    folder, slug, filename = parts
    assert filename.endswith(".yaml"), "content files use the .yaml extension"
    version = filename.removesuffix(".yaml")
    assert SEMVER.match(version), f"{version!r} is not a semantic version"
    item = _load(path)
    assert item.get("kind") == DIR_KINDS[folder], "kind does not match the folder"
    assert item.get("slug") == slug, "slug does not match the folder name"
    assert item.get("version") == version, "version does not match the file name"


@pytest.mark.parametrize("path", FILES, ids=FILE_IDS)
def test_item_matches_its_schema(path: Path) -> None:
    item = _load(path)
    kind = DIR_KINDS[path.relative_to(ROOT).parts[0]]
    errors = sorted(_validator(kind).iter_errors(item), key=lambda e: list(map(str, e.path)))
    _report([f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {_message(e)}" for e in errors])


@pytest.mark.parametrize("path", FILES, ids=FILE_IDS)
def test_description_says_values_are_examples(path: Path) -> None:
    description = _load(path)["description"].lower()
    assert "example" in description, "description must say the values are examples"
    assert "validat" in description, "description must say the values need validation"


@pytest.mark.parametrize("path", FILES, ids=FILE_IDS)
def test_no_brand_or_company_names(path: Path) -> None:
    found = sorted({m.group(0) for m in BRANDS.finditer(path.read_text(encoding="utf-8"))})
    assert not found, f"brand or company names found, use generic names: {found}"


# --------------------------------------------------------------------------- unit operations

UNIT_OPERATIONS = _files_of("unit_operation")


@pytest.mark.parametrize("path", UNIT_OPERATIONS, ids=_ids(UNIT_OPERATIONS))
def test_unit_operation_rules(path: Path) -> None:
    uo = _load(path)
    errors: list[str] = []
    phases = uo["phases"]
    for label, keys in {
        "phase": [ph["key"] for ph in phases],
        "parameter": [p["key"] for ph in phases for p in ph["parameters"]],
        "data-capture": [f["key"] for ph in phases for f in ph["data_capture"]],
        "material": [m["material"] for m in uo["materials"]],
    }.items():
        if dups := _duplicates(keys):
            errors.append(f"duplicate {label} keys in the unit operation: {dups}")
    for slug in uo["equipment_classes"]:
        if _get("equipment_class", slug) is None:
            errors.append(f"equipment class {slug!r} does not exist")
    for line in uo["materials"]:
        if _get("material", line["material"]) is None:
            errors.append(f"material {line['material']!r} does not exist")
    for ph in phases:
        for p in ph["parameters"]:
            errors += _parameter_errors(f"{ph['key']}.{p['key']}", p)
        errors += _field_errors(ph["key"], ph["data_capture"], uo["equipment_classes"])
    _report(errors)


# --------------------------------------------------------------------------- recipes

RECIPES = _files_of("recipe")


@pytest.mark.parametrize("path", RECIPES, ids=_ids(RECIPES))
def test_recipe_references_and_overrides(path: Path) -> None:
    recipe = _load(path)
    errors: list[str] = []
    operations = [op for up in recipe["unit_procedures"] for op in up["operations"]]
    for label, keys in {
        "unit procedure": [up["key"] for up in recipe["unit_procedures"]],
        "operation": [op["key"] for op in operations],
        "sampling point": [sp["key"] for sp in recipe["sampling_points"]],
    }.items():
        if dups := _duplicates(keys):
            errors.append(f"duplicate {label} keys: {dups}")
    for op in operations:
        where = f"operation {op['key']}"
        uo = _get("unit_operation", op["unit_operation"], op["version"])
        if uo is None:
            errors.append(
                f"{where}: unit operation {op['unit_operation']}@{op['version']} not found"
            )
            continue
        if recipe["modality"] not in uo["modalities"]:
            errors.append(
                f"{where}: {op['unit_operation']} does not list modality {recipe['modality']}"
            )
        params = _parameters(uo)
        for key, value in op["parameter_overrides"].items():
            if key not in params:
                errors.append(f"{where}: override {key!r} is not a parameter of the pinned version")
            else:
                errors += _override_errors(f"{where}.{key}", params[key], value)
    operation_keys = {op["key"] for op in operations}
    for sp in recipe["sampling_points"]:
        where = f"sampling point {sp['key']}"
        if sp["after_operation"] not in operation_keys:
            errors.append(f"{where}: operation {sp['after_operation']!r} is not in the recipe")
        method = _get("method", sp["method"], sp["method_version"])
        if method is None:
            errors.append(f"{where}: method {sp['method']}@{sp['method_version']} not found")
            continue
        need, take = method["sample_volume"], sp["sample_volume"]
        if need["unit"] == take["unit"] and take["quantity"] < need["quantity"]:
            errors.append(f"{where}: {take} is less than the method needs ({need})")
    for spec in recipe["release_specifications"]:
        where = f"release specification {spec['method']}.{spec['attribute']}"
        method = _get("method", spec["method"], spec["method_version"])
        if method is None:
            errors.append(f"{where}: method {spec['method']}@{spec['method_version']} not found")
            continue
        fields = {f["key"]: f for f in method["result_fields"]}
        if spec["attribute"] not in fields:
            errors.append(
                f"{where}: not a result field of {spec['method']}@{spec['method_version']}"
            )
            continue
        errors += _range_errors(where, spec.get("limits"))
        field_unit = fields[spec["attribute"]].get("unit")
        if "unit" in spec and spec["unit"] != field_unit:
            errors.append(
                f"{where}: unit {spec['unit']!r} differs from the result unit {field_unit!r}"
            )
        if "limits" in spec and "unit" not in spec:
            errors.append(f"{where}: limits need a unit")
    _report(errors)


# --------------------------------------------------------------------------- methods

METHODS = _files_of("method")


@pytest.mark.parametrize("path", METHODS, ids=_ids(METHODS))
def test_method_rules(path: Path) -> None:
    method = _load(path)
    errors: list[str] = []
    keys = [f["key"] for f in method["result_fields"]]
    if dups := _duplicates(keys):
        errors.append(f"duplicate result field keys: {dups}")
    classes = method.get("equipment_classes", [])
    for slug in classes:
        if _get("equipment_class", slug) is None:
            errors.append(f"equipment class {slug!r} does not exist")
    errors += _field_errors("result_fields", method["result_fields"], classes)
    for crit in method["acceptance_criteria"]:
        if crit["field"] not in keys:
            errors.append(f"acceptance criterion refers to unknown result field {crit['field']!r}")
        errors += _range_errors(f"acceptance criterion {crit['field']}", crit)
    _report(errors)


# --------------------------------------------------------------------------- materials, equipment

MATERIALS = _files_of("material")
EQUIPMENT = _files_of("equipment_class")


@pytest.mark.parametrize("path", MATERIALS, ids=_ids(MATERIALS))
def test_material_storage_range(path: Path) -> None:
    storage = _load(path)["storage"]
    assert storage["temperature_low"] <= storage["temperature_high"]


@pytest.mark.parametrize("path", EQUIPMENT, ids=_ids(EQUIPMENT))
def test_equipment_signal_keys_unique(path: Path) -> None:
    keys = [s["key"] for s in _load(path)["typical_signals"]]
    assert not _duplicates(keys), f"duplicate signal keys: {_duplicates(keys)}"


# --------------------------------------------------------------------------- the library as a whole


def test_library_size_and_versions() -> None:
    lib = _library()
    assert len(lib["unit_operation"]) >= 30
    assert len(lib["recipe"]) >= 4
    assert len(lib["method"]) >= 12
    multi = [slug for kind in lib.values() for slug, versions in kind.items() if len(versions) > 1]
    assert len(multi) >= 3, f"at least 3 items should ship in several versions, got {multi}"


def test_later_versions_explain_their_change() -> None:
    errors = []
    for kind, items in _library().items():
        for slug, versions in items.items():
            ordered = sorted(versions, key=_semver_key)
            logs = [versions[v]["changelog"].strip() for v in ordered]
            if len(set(logs)) != len(logs):
                errors.append(f"{kind} {slug}: versions share the same changelog")
            errors += [
                f"{kind} {slug}@{v}: the changelog must describe the change"
                for v in ordered[1:]
                if versions[v]["changelog"].strip().lower() == "initial release."
            ]
    _report(errors)
