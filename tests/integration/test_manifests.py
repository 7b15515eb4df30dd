"""Tenant manifests: validation that names file and field, idempotent application, audit."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import pytest

from opencdmo.tenancy.manifest import ManifestError, discover
from opencdmo.tenancy.provision import apply_path
from tests.conftest import World

GOOD = """
name: Gamma Viral Vectors
kind: cdmo
sites:
  - {code: G1, name: Gamma plant, time_zone: Asia/Singapore}
admins:
  - {email: boss@gamma.test, full_name: Gamma Boss}
members:
  - {email: eng@gamma.test, full_name: Gamma Engineer, roles: [process_engineer, viewer]}
"""


def _write(root: Path, slug: str, text: str) -> Path:
    (root / slug).mkdir(parents=True, exist_ok=True)
    path = root / slug / "tenant.yaml"
    path.write_text(text)
    return path


async def test_apply_is_idempotent_and_audited(
    world: World, tmp_path: Path, owner: asyncpg.Connection
) -> None:
    _write(tmp_path, "gamma", GOOD)
    lines: list[str] = []
    assert await apply_path(tmp_path, lines.append) > 0
    assert any("tenant created" in line for line in lines)
    assert await apply_path(tmp_path, lines.append) == 0
    tenant_id = await owner.fetchval("SELECT id FROM tenants WHERE slug = 'gamma'")
    actions = [
        r["action"]
        for r in await owner.fetch(
            "SELECT action FROM audit_events WHERE tenant_id = $1 ORDER BY seq", tenant_id
        )
    ]
    assert actions[:2] == ["tenant.created", "site.created"]
    assert actions.count("member.added") == 2
    roles = await owner.fetchval(
        "SELECT new_values FROM audit_events WHERE tenant_id = $1 AND action = 'member.roles_changed' "
        "ORDER BY seq DESC LIMIT 1",
        tenant_id,
    )
    assert json.loads(roles)["roles"] == ["process_engineer", "viewer"]
    # A change in the manifest is applied and audited; grants made elsewhere stay.
    _write(tmp_path, "gamma", GOOD.replace("Asia/Singapore", "Europe/Dublin"))
    assert await apply_path(tmp_path, lines.append) == 1
    updated = await owner.fetchrow(
        "SELECT old_values, new_values FROM audit_events WHERE tenant_id = $1 AND action = 'site.updated'",
        tenant_id,
    )
    assert json.loads(updated["old_values"])["time_zone"] == "Asia/Singapore"


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("name: X\nkind: factory\n", "kind", "is not one of"),
        (
            "name: X\nkind: cdmo\nsites:\n  - {code: A, name: a, time_zone: Mars/Olympus}\n",
            "sites.0.time_zone",
            "not a known time zone",
        ),
        (
            "name: X\nkind: cdmo\nmembers:\n  - {email: a@b.test, full_name: A, roles: [wizard]}\n",
            "members.0.roles",
            "unknown role",
        ),
        (
            "name: X\nkind: cdmo\nadmins:\n  - {email: not-an-email, full_name: A}\n",
            "admins.0.email",
            "match",
        ),
        ("name: X\nkind: cdmo\ncolour: blue\n", "(top level)", "colour"),
        (
            "name: X\nkind: cdmo\nbatch_exceptions:\n  severities: {outside_normal: fatal}\n",
            "batch_exceptions.severities.outside_normal",
            "is not one of",
        ),
        (
            "name: X\nkind: cdmo\nbatch_exceptions:\n  severities: {typo: minor}\n",
            "batch_exceptions.severities",
            "typo",
        ),
        (
            "name: X\nkind: cdmo\nbatch_exceptions:\n  late_entry_minutes: 0\n",
            "batch_exceptions.late_entry_minutes",
            "minimum",
        ),
        ("kind: cdmo\n", "(top level)", "'name' is a required property"),
        ("name: [unclosed\n", "(file)", "YAML"),
        ("- just\n- a list\n", "(file)", "mapping"),
    ],
)
def test_invalid_manifests_name_file_and_field(
    tmp_path: Path, text: str, field: str, words: str
) -> None:
    path = _write(tmp_path, "delta", text)
    with pytest.raises(ManifestError) as caught:
        discover(tmp_path)
    assert str(path) in caught.value.message
    assert f": {field}: " in caught.value.message
    assert words in caught.value.message


async def test_one_invalid_manifest_changes_nothing(
    world: World, tmp_path: Path, owner: asyncpg.Connection
) -> None:
    _write(tmp_path, "epsilon", GOOD.replace("Gamma", "Epsilon").replace("gamma.test", "eps.test"))
    _write(tmp_path, "zeta", "name: Z\nkind: nope\n")
    with pytest.raises(ManifestError):
        await apply_path(tmp_path, print)
    assert await owner.fetchval("SELECT count(*) FROM tenants WHERE slug = 'epsilon'") == 0


def test_bad_folder_name(tmp_path: Path) -> None:
    _write(tmp_path, "Bad_Slug", GOOD)
    with pytest.raises(ManifestError, match="valid tenant slug"):
        discover(tmp_path)


def test_shipped_demo_manifests_are_valid() -> None:
    manifests = discover(Path(__file__).resolve().parents[2] / "tenants")
    kinds = {m.kind for m in manifests}
    assert kinds == {"cdmo", "sponsor"}
    roles = {role for m in manifests for p in m.people for role in p.roles}
    from opencdmo.access.policy import roles as all_roles

    assert set(all_roles()) <= roles
