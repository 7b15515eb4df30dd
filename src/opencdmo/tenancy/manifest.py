"""Tenant manifests (``tenants/<slug>/tenant.yaml``): provisioning as code, applied idempotently.

Users named in a manifest that do not exist yet are created without a usable password (they
cannot sign in until one is set with ``opencdmo users set-password``). Role grants listed are
ensured; grants made later in the UI are left alone.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from jsonschema import Draft202012Validator

import opencdmo
from opencdmo.access.policy import roles as known_roles
from opencdmo.errors import ValidationFailed
from opencdmo.tenancy.batch_numbering import DEFAULT_PATTERN, problem
from opencdmo.tenancy.batch_rules import (
    DEFAULT_EXCURSION_DEBOUNCE_SECONDS,
    DEFAULT_LATE_ENTRY_MINUTES,
    LONGEST_EXCURSION_DEBOUNCE_SECONDS,
    LONGEST_LATE_ENTRY_MINUTES,
    REFUSE,
    SEVERITIES,
    ExceptionRules,
)
from opencdmo.tenancy.batch_rules import KINDS as EXCEPTION_KINDS
from opencdmo.tenancy.service import KINDS, check_time_zone
from opencdmo.tenancy.token_policy import LONGEST_DAYS, TokenPolicy

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "kind"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "kind": {"enum": list(KINDS)},
        "sites": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["code", "name", "time_zone"],
                "properties": {
                    "code": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]*$"},
                    "name": {"type": "string", "minLength": 1},
                    "time_zone": {"type": "string", "minLength": 1},
                },
            },
        },
        "admins": {"type": "array", "items": {"$ref": "#/$defs/person"}},
        "signature_flow": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "recipe_approvers": {"type": "integer", "minimum": 1, "maximum": 3},
                "unique_signers": {"type": "boolean"},
            },
        },
        "batch_number_pattern": {"type": "string", "minLength": 1, "maxLength": 100},
        "batch_exceptions": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "severities": {
                    "type": "object",
                    "propertyNames": {"enum": list(EXCEPTION_KINDS)},
                    "additionalProperties": {"enum": [*SEVERITIES, REFUSE]},
                },
                "late_entry_minutes": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": LONGEST_LATE_ENTRY_MINUTES,
                },
                "excursion_debounce_seconds": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": LONGEST_EXCURSION_DEBOUNCE_SECONDS,
                },
            },
        },
        "api_tokens": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "default_days": {"type": "integer", "minimum": 1, "maximum": LONGEST_DAYS},
                "max_days": {"type": "integer", "minimum": 1, "maximum": LONGEST_DAYS},
            },
        },
        "members": {
            "type": "array",
            "items": {
                "allOf": [{"$ref": "#/$defs/person"}],
                "required": ["email", "full_name", "roles"],
            },
        },
    },
    "$defs": {
        "person": {
            "type": "object",
            "additionalProperties": False,
            "required": ["email", "full_name"],
            "properties": {
                "email": {"type": "string", "pattern": "^[^@\\s]+@[^@\\s]+$"},
                "full_name": {"type": "string", "minLength": 1},
                "roles": {"type": "array", "items": {"type": "string"}},
            },
        }
    },
}


@cache
def manifest_sections() -> dict[str, ModuleType]:
    """The sections of a manifest that other contexts own: each context's
    ``manifest_section`` module, with its ``SECTION`` name, its JSON ``SCHEMA``, ``check(path,
    value, data)`` (offline, a ManifestError naming the path) and ``apply(ctx, path, checked,
    report)`` (the number of changes). Found by name, as the app finds routes."""
    found: dict[str, ModuleType] = {}
    for package in pkgutil.iter_modules(opencdmo.__path__):
        name = f"opencdmo.{package.name}.manifest_section"
        if package.ispkg and importlib.util.find_spec(name):
            module = importlib.import_module(name)
            found[module.SECTION] = module
    return found


def schema() -> dict[str, Any]:
    sections = {name: module.SCHEMA for name, module in manifest_sections().items()}
    return {**SCHEMA, "properties": {**SCHEMA["properties"], **sections}}


SLUG = r"^[a-z0-9][a-z0-9-]{0,48}[a-z0-9]$"


class ManifestError(ValidationFailed):
    pass


@dataclass(frozen=True)
class Person:
    email: str
    full_name: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class Manifest:
    path: Path
    slug: str
    name: str
    kind: str
    sites: tuple[tuple[str, str, str], ...]
    people: tuple[Person, ...] = field(default_factory=tuple)
    recipe_approvers: int = 1
    unique_signers: bool = True
    token_policy: TokenPolicy = field(default_factory=TokenPolicy)
    batch_number_pattern: str = DEFAULT_PATTERN
    exception_rules: ExceptionRules = field(default_factory=ExceptionRules)
    sections: dict[str, Any] = field(default_factory=dict)  # other contexts' (checked)


def _fail(path: Path, where: str, message: str) -> ManifestError:
    return ManifestError(f"{path}: {where}: {message}", details={"file": str(path), "field": where})


def load(path: Path) -> Manifest:
    import re

    slug = path.parent.name
    if not re.match(SLUG, slug):
        raise _fail(path, "(folder name)", f"'{slug}' is not a valid tenant slug (a-z, 0-9, -)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise _fail(path, "(file)", f"cannot be read as YAML: {exc}") from None
    if not isinstance(data, dict):
        raise _fail(path, "(file)", "must be a mapping with name and kind")
    errors = sorted(Draft202012Validator(schema()).iter_errors(data), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        where = ".".join(str(p) for p in first.absolute_path) or "(top level)"
        raise _fail(path, where, first.message)
    return _semantic(path, slug, data)


def _semantic(path: Path, slug: str, data: dict[str, Any]) -> Manifest:
    sites = []
    for i, site in enumerate(data.get("sites", [])):
        try:
            check_time_zone(site["time_zone"])
        except ValidationFailed as exc:
            raise _fail(path, f"sites.{i}.time_zone", exc.message) from None
        sites.append((site["code"], site["name"], site["time_zone"]))
    codes = [s[0] for s in sites]
    if len(set(codes)) != len(codes):
        raise _fail(path, "sites", "site codes must be unique")
    people: dict[str, Person] = {}
    entries = [(f"admins.{i}", p, ["tenant_admin"]) for i, p in enumerate(data.get("admins", []))]
    entries += [(f"members.{i}", p, []) for i, p in enumerate(data.get("members", []))]
    for where, person, implied in entries:
        roles = tuple(sorted(set(person.get("roles", [])) | set(implied)))
        unknown = [r for r in roles if r not in known_roles()]
        if unknown:
            raise _fail(
                path,
                f"{where}.roles",
                f"unknown role(s) {', '.join(unknown)}; roles are {', '.join(known_roles())}",
            )
        email = person["email"].strip().lower()
        previous = people.get(email)
        merged = tuple(sorted(set(roles) | set(previous.roles if previous else ())))
        people[email] = Person(email, person["full_name"].strip(), merged)
    flow = data.get("signature_flow") or {}
    tokens = data.get("api_tokens") or {}
    max_days = int(tokens.get("max_days", TokenPolicy.max_days))
    # Only a maximum given: the default is the usual one, or the maximum when that is less.
    policy = TokenPolicy(
        int(tokens.get("default_days", min(TokenPolicy.default_days, max_days))), max_days
    )
    if policy.default_days > policy.max_days:
        raise _fail(path, "api_tokens.default_days", "must not be more than max_days")
    rules = data.get("batch_exceptions") or {}
    sections = {
        name: module.check(path, data.get(name) or [], data)
        for name, module in manifest_sections().items()
    }
    pattern = str(data.get("batch_number_pattern", DEFAULT_PATTERN))
    if problem(pattern):
        raise _fail(path, "batch_number_pattern", str(problem(pattern)))
    return Manifest(
        path,
        slug,
        data["name"],
        data["kind"],
        tuple(sites),
        tuple(people.values()),
        int(flow.get("recipe_approvers", 1)),
        bool(flow.get("unique_signers", True)),
        policy,
        pattern,
        ExceptionRules(
            dict(rules.get("severities") or {}),
            int(rules.get("late_entry_minutes", DEFAULT_LATE_ENTRY_MINUTES)),
            int(rules.get("excursion_debounce_seconds", DEFAULT_EXCURSION_DEBOUNCE_SECONDS)),
        ),
        sections,
    )


def discover(root: Path) -> list[Manifest]:
    """Every tenants/<slug>/tenant.yaml under ``root`` (or ``root`` itself if it is a file)."""
    if root.is_file():
        return [load(root)]
    if not root.is_dir():
        raise ManifestError(f"{root}: no such file or directory")
    paths = sorted(root.glob("*/tenant.yaml"))
    if not paths:
        raise ManifestError(f"{root}: no */tenant.yaml manifests found")
    return [load(p) for p in paths]


Report = Callable[[str], None]
