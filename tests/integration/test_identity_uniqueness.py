"""One account per identification code (21 CFR 11.300(a)): the email address is unique across
the platform, whatever the case of its letters, in the service and in the database."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from opencdmo.errors import Conflict
from opencdmo.identity import service as identity
from tests.conftest import PASSWORD, World


async def test_one_account_per_email_address(world: World, owner: asyncpg.Connection) -> None:
    email = f"unique-{uuid.uuid4().hex[:8]}@alpha.test"
    await identity.create_user(email, "First Person", PASSWORD)
    with pytest.raises(Conflict, match="already exists"):
        await identity.create_user(email.upper(), "Second Person", "another-passphrase-77")
    # Past the service, the database refuses a second row and any upper-case spelling.
    with pytest.raises(asyncpg.UniqueViolationError):
        await owner.execute(
            "INSERT INTO users (email, full_name, password_hash) VALUES ($1, 'Third', 'x')", email
        )
    with pytest.raises(asyncpg.CheckViolationError):
        await owner.execute(
            "INSERT INTO users (email, full_name, password_hash) VALUES ($1, 'Fourth', 'x')",
            email.upper(),
        )
    names = await owner.fetch("SELECT full_name FROM users WHERE lower(email) = $1", email)
    assert [r["full_name"] for r in names] == ["First Person"]
