"""Login throttling per account and per client address, decaying over a sliding window.

Only real failures count: a throttled attempt is refused without checking the password and is
not counted, so an attacker cannot extend a lock-out for good; it ends one window after the
failures that caused it.
"""

from __future__ import annotations

import math

from opencdmo.db.tx import global_transaction
from opencdmo.errors import TooManyAttempts
from opencdmo.settings import Settings

_RECENT = """
SELECT extract(epoch FROM (failed_at + make_interval(secs => $2) - clock_timestamp())) AS left
FROM login_failures
WHERE {column} = $1 AND failed_at > clock_timestamp() - make_interval(secs => $2)
ORDER BY failed_at DESC LIMIT $3
"""


async def _retry_after(connection: object, column: str, value: str, limit: int, window: int) -> int:
    rows = await connection.fetch(_RECENT.format(column=column), value, float(window), limit)  # type: ignore[attr-defined]
    if len(rows) < limit:
        return 0
    return max(1, math.ceil(float(rows[-1]["left"])))


async def check(settings: Settings, email: str, address: str) -> None:
    """Raise 429 when the account or the address has too many recent failures."""
    window = settings.login_window_seconds
    async with global_transaction() as connection:
        account = await _retry_after(
            connection, "email", email, settings.login_max_failures_account, window
        )
        client = await _retry_after(
            connection, "address", address, settings.login_max_failures_address, window
        )
    wait = max(account, client)
    if wait:
        raise TooManyAttempts(
            f"Too many failed sign-in attempts. Try again in {wait} seconds.", retry_after=wait
        )


async def record_failure(email: str, address: str) -> None:
    async with global_transaction() as connection:
        await connection.execute(
            "INSERT INTO login_failures (email, address) VALUES ($1, $2)", email, address
        )


async def clear(email: str) -> None:
    async with global_transaction() as connection:
        await connection.execute("DELETE FROM login_failures WHERE email = $1", email)
