"""The opencdmo command, run as a real process against the test database."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from opencdmo.cli import build_parser
from opencdmo.db.urls import DatabaseUrls
from tests.conftest import AUDIT_KEY, DATA_DIR, PASSWORD, World, recorded


@pytest.fixture
def cli_env(database: DatabaseUrls, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCDMO_")}
    env.update(
        {
            "OPENCDMO_DATABASE_URL": database.owner,
            "OPENCDMO_DATA_DIR": str(DATA_DIR),
            "OPENCDMO_SECRET_KEY": "test",
            "OPENCDMO_AUDIT_KEY": AUDIT_KEY,
            "OPENCDMO_AUDIT_CHECKPOINT_DIR": str(tmp_path / "audit-checkpoints"),
            "OPENCDMO_ARGON2_TIME_COST": "1",
            "OPENCDMO_ARGON2_MEMORY_KIB": "1024",
        }
    )
    return env


async def run(env: dict[str, str], *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "opencdmo.cli",
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate(stdin.encode() if stdin is not None else None)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def _commands(parser: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                found += _commands(sub, (*prefix, name))
    return found


@pytest.mark.parametrize(
    "command", _commands(build_parser()), ids=lambda c: " ".join(c) or "opencdmo"
)
def test_every_command_has_help(
    command: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*command, "--help"])
    assert exit_.value.code == 0
    assert "usage: opencdmo" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["frobnicate"])
    assert exit_.value.code == 2


async def test_users_create_tokens_and_revoke(
    world: World, cli_env: dict[str, str], browser: Any
) -> None:
    email = f"cli-{uuid.uuid4().hex[:6]}@alpha.test"
    code, out, err = await run(
        cli_env,
        "users",
        "create",
        "--email",
        email,
        "--name",
        "Cli Person",
        "--tenant",
        "alpha",
        "--role",
        "qa_approver",
        stdin=PASSWORD + "\n",
    )
    assert code == 0, err
    assert "added to alpha" in out
    code, out, err = await run(cli_env, "tokens", "create", "--tenant", "alpha", "--email", email)
    assert code == 0, err
    token = out.strip()
    assert token.startswith("ocd_")
    assert len(out.strip().splitlines()) == 1
    client = await browser()
    bearer = {"Authorization": f"Bearer {token}"}
    response = await client.get("/api/v1/t/alpha/tokens", headers=bearer)
    assert response.status_code == 200
    token_id = response.json()[0]["id"]
    code, out, err = await run(cli_env, "tokens", "revoke", "--tenant", "alpha", "--id", token_id)
    assert code == 0, err
    assert (await client.get("/api/v1/t/alpha", headers=bearer)).status_code == 401


async def test_members_invite_prints_the_link_once(
    world: World, cli_env: dict[str, str], browser: Any, owner: asyncpg.Connection
) -> None:
    email = f"cli-invite-{uuid.uuid4().hex[:6]}@people.test"
    env = {**cli_env, "OPENCDMO_PUBLIC_URL": "https://cdmo.example"}
    args = ("members", "invite", "--tenant", "alpha", "--email", email, "--role", "viewer")
    code, out, err = await run(env, *args)
    assert code == 0, err
    link = out.strip().splitlines()[-1]
    assert link.startswith("https://cdmo.example/invitations/accept?token=alpha.")
    page = await (await browser()).get(link.removeprefix("https://cdmo.example"))
    assert page.status_code == 200
    assert "invites" in page.text and email in page.text
    stored = await owner.fetchval("SELECT token_hash FROM invitations WHERE email = $1", email)
    assert stored != link.split("token=")[1]  # only a hash of the token is kept
    code, out, err = await run(env, *args)
    assert code == 2
    assert "already pending" in err


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (
            ("users", "create", "--email", "weak@alpha.test", "--name", "Weak"),
            "password1234\n",
            "commonly used",
        ),
        (
            ("users", "create", "--email", "not-an-email", "--name", "X"),
            PASSWORD + "\n",
            "not an email",
        ),
        (("tokens", "create", "--tenant", "nope", "--email", "a@b.test"), None, "No tenant"),
        (
            ("tokens", "create", "--tenant", "alpha", "--email", "outsider@beta.test"),
            None,
            "not a member",
        ),
        (("tokens", "revoke", "--tenant", "alpha", "--id", "xyz"), None, "not a token id"),
        (("tenants", "apply", "/no/such/path"), None, "no such file"),
    ],
)
async def test_bad_input_exits_2_with_a_message(
    world: World, cli_env: dict[str, str], args: tuple[str, ...], stdin: str | None, message: str
) -> None:
    code, out, err = await run(cli_env, *args, stdin=stdin)
    assert code == 2, (out, err)
    assert message in err
    assert "Traceback" not in err


async def test_tenants_apply_twice(cli_env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "cli-tenant"
    folder.mkdir()
    email = f"new-{uuid.uuid4().hex[:6]}@cli.test"
    (folder / "tenant.yaml").write_text(
        f"name: CLI Tenant\nkind: sponsor\nadmins:\n  - {{email: {email}, full_name: New Admin}}\n"
    )
    code, out, _ = await run(cli_env, "tenants", "apply", str(tmp_path))
    assert code == 0
    assert "tenant created" in out
    assert f"cli-tenant: user {email} created\n" in out
    hint = f"{email} has no password yet: opencdmo users set-password --email {email}"
    assert out.splitlines()[-1] == hint
    code, out, _ = await run(cli_env, "tenants", "apply", str(tmp_path))
    assert code == 0
    assert "no changes" in out
    code, _, err = await run(
        cli_env, "users", "set-password", "--email", email, stdin=PASSWORD + "\n"
    )
    assert code == 0, err
    code, out, _ = await run(cli_env, "tenants", "apply", str(tmp_path))
    assert out.strip() == "no changes: everything up to date"


async def test_audit_verify_exit_codes(
    world: World, cli_env: dict[str, str], owner: asyncpg.Connection
) -> None:
    code, out, err = await run(cli_env, "audit", "verify", "--tenant", "alpha")
    assert code == 0, out + err
    assert "tenant alpha" in out
    assert "events checked" in out
    from opencdmo.audit import service as audit
    from opencdmo.db.tx import unit_of_work
    from opencdmo.scope import SYSTEM, RequestMeta
    from opencdmo.tenancy import service as tenancy

    slug = f"v-{uuid.uuid4().hex[:8]}"
    ctx = await tenancy.create_tenant(slug, "Verify", "cdmo", SYSTEM, RequestMeta())
    for i in range(3):
        async with unit_of_work(ctx):
            await audit.record(ctx, "test.event", "thing", i)
    async with owner.transaction():
        await owner.execute("SET LOCAL session_replication_role = replica")
        await owner.execute(
            "UPDATE audit_events SET action = 'test.rewritten' WHERE tenant_id = $1 AND seq = 3",
            ctx.tenant_id,
        )
    code, out, _ = await run(cli_env, "audit", "verify", "--tenant", slug)
    assert code == 1
    assert f"tenant {slug}: first broken sequence number 3" in out
    code, out, _ = await run(cli_env, "audit", "verify")
    assert code == 1
    assert "audit trail BROKEN" in out
    code, _, err = await run(cli_env, "audit", "verify", "--tenant", "no-such")
    assert code == 2
    assert "No tenant" in err


async def test_audit_checkpoints_catch_a_rewound_chain(
    world: World, cli_env: dict[str, str], owner: asyncpg.Connection
) -> None:
    from opencdmo.scope import SYSTEM, RequestMeta
    from opencdmo.tenancy import service as tenancy

    slug = f"k-{uuid.uuid4().hex[:8]}"
    ctx = await tenancy.create_tenant(slug, "Checkpoint", "cdmo", SYSTEM, RequestMeta())
    for i in range(3):
        await recorded(ctx, "test.event", "thing", i)
    code, out, err = await run(cli_env, "audit", "verify", "--tenant", slug)
    assert code == 0, err
    assert "1 checkpoint(s) written" in out
    code, out, _ = await run(cli_env, "audit", "checkpoint", "--tenant", slug)
    assert code == 0
    assert f"current tenant {slug}: seq 4, no change" in out
    await recorded(ctx, "test.event", "thing", 4)
    code, out, _ = await run(cli_env, "audit", "checkpoint", "--tenant", slug)
    assert code == 0
    assert f"written tenant {slug}: seq 5" in out
    # A superuser removes the last two events and rewinds the head to match.
    async with owner.transaction():
        await owner.execute("SET LOCAL session_replication_role = replica")
        await owner.execute(
            "DELETE FROM audit_events WHERE tenant_id = $1 AND seq >= 4", ctx.tenant_id
        )
        await owner.execute(
            "UPDATE audit_heads SET last_seq = 3, last_hash = (SELECT hash FROM audit_events "
            "WHERE tenant_id = $1 AND seq = 3) WHERE tenant_id = $1",
            ctx.tenant_id,
        )
    code, out, _ = await run(cli_env, "audit", "verify", "--tenant", slug)
    assert code == 1
    assert f"tenant {slug}, seq 4: truncated:" in out
    code, out, _ = await run(cli_env, "audit", "checkpoint", "--tenant", slug)
    assert code == 1
    assert f"REFUSED tenant {slug}" in out


async def test_audit_verify_with_another_key_says_wrong_key(
    world: World, cli_env: dict[str, str]
) -> None:
    env = {**cli_env, "OPENCDMO_AUDIT_KEY": "not-the-key-the-trail-was-written-with"}
    code, out, _ = await run(env, "audit", "verify", "--tenant", "alpha")
    assert code == 1
    assert "tenant alpha, seq 1: wrong_key:" in out
    assert "which this verifier does not hold" in out


async def test_db_upgrade_anchors_chains_that_end_unkeyed(
    world: World, cli_env: dict[str, str], owner: asyncpg.Connection
) -> None:
    from opencdmo.audit.chain import AUDIT_FIELDS, GENESIS, event_hash
    from opencdmo.scope import SYSTEM, RequestMeta
    from opencdmo.tenancy import service as tenancy

    slug = f"u-{uuid.uuid4().hex[:8]}"
    ctx = await tenancy.create_tenant(slug, "Upgrade", "cdmo", SYSTEM, RequestMeta())
    # As an install from before the key: its one event unkeyed.
    event = await owner.fetchrow("SELECT * FROM audit_events WHERE tenant_id = $1", ctx.tenant_id)
    digest = event_hash(GENESIS, event, AUDIT_FIELDS)
    async with owner.transaction():
        await owner.execute("SET LOCAL session_replication_role = replica")
        await owner.execute(
            "UPDATE audit_events SET algorithm = 'sha256', key_id = NULL, mac = NULL, hash = $2 "
            "WHERE tenant_id = $1",
            ctx.tenant_id,
            digest,
        )
        await owner.execute(
            "UPDATE audit_heads SET last_hash = $2 WHERE tenant_id = $1", ctx.tenant_id, digest
        )
    code, out, _ = await run(cli_env, "audit", "verify", "--tenant", slug)
    assert code == 1
    assert f"tenant {slug}, seq 1: unkeyed:" in out
    code, out, err = await run(cli_env, "db", "upgrade")
    assert code == 0, err
    assert f"audit chain of tenant {slug} keyed" in out
    code, out, _ = await run(cli_env, "audit", "verify", "--tenant", slug)
    assert code == 0
    assert f"ok      tenant {slug}: 2 events checked" in out
