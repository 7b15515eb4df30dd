"""Password guessing is throttled so that an attacker can neither try many passwords nor lock a
named person out cheaply.

Sign-in failures are counted over a sliding window (``login_window_seconds``):

- **Per account and address** (or per trusted browser): ``login_max_failures_account``
  failures for one account from one address refuse further tries of that pair until the
  oldest of them leaves the window. Brute force from one address stops there; the person
  signing in from anywhere else is not affected.
- **A trusted browser** (one where the person signed in before: a cookie with an HMAC of the
  account under the secret key, ``identity.devices``) is counted on its own and is exempt
  from the two slow-downs below, so attempts from elsewhere never keep the person out of
  their usual browser.
- **Per account, from everywhere else**: once the account has that many failures from
  untrusted sources, each further untrusted attempt waits 1, 2, 4 ... seconds (at most
  ``MAX_DELAY_SECONDS``) after the latest failure. Guessing from many addresses is slowed to
  about one try a minute; it is a delay, never a lock.
- **Per address, counting accounts**: an address where ``login_max_failures_address``
  different accounts failed (password spraying) gets the same growing delay for untrusted
  attempts. People behind a shared address who mistype now and then are not counted once
  they sign in (their failures from that address are cleared), and trusted browsers behind it
  are exempt.

Password re-entry by a signed-in person (signatures, password change) is counted apart from
sign-in, per session or API token (``RequestMeta.credential``): wrong signature passwords
sent through a token never count toward the person's sign-in. A credential is refused after
``login_max_failures_account`` failures; the account's re-entries from all its credentials
together are slowed down after twice that many.

Only real failures count: a refused attempt is not checked and not counted, so nobody can
extend a refusal for good.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from opencdmo.db.tx import global_transaction
from opencdmo.errors import TooManyAttempts
from opencdmo.settings import Settings

SIGN_IN = "sign_in"
RE_ENTRY = "re_entry"
MAX_DELAY_SECONDS = 60

_LOCK = """
SELECT extract(epoch FROM (failed_at + make_interval(secs => $1) - clock_timestamp())) AS left
FROM login_failures
WHERE failed_at > clock_timestamp() - make_interval(secs => $1) AND {where}
ORDER BY failed_at DESC LIMIT {limit}
"""
_SPREAD = """
SELECT count({counted}) AS n,
       extract(epoch FROM (clock_timestamp() - max(failed_at))) AS since
FROM login_failures
WHERE failed_at > clock_timestamp() - make_interval(secs => $1) AND {where}
"""


@dataclass(frozen=True)
class SignIn:
    """One sign-in attempt: the account tried, from where, and the trusted browser if any."""

    email: str
    address: str
    device: str | None = None


async def _lock(connection: Any, window: int, limit: int, where: str, *args: Any) -> float:
    """Seconds until fewer than ``limit`` failures match ``where`` (0: not locked)."""
    rows = await connection.fetch(_LOCK.format(where=where, limit=int(limit)), float(window), *args)
    return float(rows[-1]["left"]) if len(rows) >= limit else 0.0


async def _delay(
    connection: Any, window: int, threshold: int, counted: str, where: str, *args: Any
) -> float:
    """Seconds still to wait after the latest failure, once ``threshold`` is reached: the
    delay doubles with every failure (or account) beyond it, up to MAX_DELAY_SECONDS."""
    row = await connection.fetchrow(
        _SPREAD.format(counted=counted, where=where), float(window), *args
    )
    if row["n"] < threshold:
        return 0.0
    delay = float(min(MAX_DELAY_SECONDS, 2 ** min(int(row["n"]) - threshold, 16)))
    return max(0.0, delay - float(row["since"]))


def _refuse(wait: float, what: str) -> None:
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise TooManyAttempts(f"Too many failed {what}. Try again in {seconds} seconds.", seconds)


async def check_sign_in(settings: Settings, attempt: SignIn) -> None:
    """Raise 429 when this attempt must wait (see the module's description)."""
    window, limit = settings.login_window_seconds, settings.login_max_failures_account
    async with global_transaction() as connection:
        if attempt.device is not None:
            wait = await _lock(
                connection, window, limit, "kind = $2 AND email = $3 AND source = $4",
                SIGN_IN, attempt.email, attempt.device,
            )  # fmt: skip
        else:
            untrusted = "kind = $2 AND source IS NULL AND "
            wait = max(
                await _lock(
                    connection, window, limit, untrusted + "email = $3 AND address = $4",
                    SIGN_IN, attempt.email, attempt.address,
                ),
                await _delay(
                    connection, window, limit, "*", untrusted + "email = $3",
                    SIGN_IN, attempt.email,
                ),
                await _delay(
                    connection, window, settings.login_max_failures_address,
                    "DISTINCT email", untrusted + "address = $3", SIGN_IN, attempt.address,
                ),
            )  # fmt: skip
    _refuse(wait, "sign-in attempts")


async def record_sign_in_failure(attempt: SignIn) -> None:
    await _insert(SIGN_IN, attempt.email, attempt.address, attempt.device)


async def clear_sign_in(attempt: SignIn) -> None:
    """A successful sign-in forgets its own failures: those from this address and browser
    (failures from elsewhere keep counting: they may be someone else's)."""
    async with global_transaction() as connection:
        await connection.execute(
            "DELETE FROM login_failures WHERE kind = $1 AND email = $2 "
            "AND ((source IS NULL AND address = $3) OR source = $4)",
            SIGN_IN,
            attempt.email,
            attempt.address,
            attempt.device,
        )


async def check_re_entry(settings: Settings, email: str, credential: str) -> None:
    """Raise 429 when this session or token, or the account's re-entries, must wait."""
    window, limit = settings.login_window_seconds, settings.login_max_failures_account
    async with global_transaction() as connection:
        wait = max(
            await _lock(
                connection, window, limit, "kind = $2 AND email = $3 AND source = $4",
                RE_ENTRY, email, credential,
            ),
            await _delay(
                connection, window, 2 * limit, "*", "kind = $2 AND email = $3", RE_ENTRY, email
            ),
        )  # fmt: skip
    _refuse(wait, "password entries")


async def record_re_entry_failure(email: str, address: str, credential: str) -> None:
    await _insert(RE_ENTRY, email, address, credential)


async def _insert(kind: str, email: str, address: str, source: str | None) -> None:
    async with global_transaction() as connection:
        await connection.execute(
            "INSERT INTO login_failures (kind, email, address, source) VALUES ($1, $2, $3, $4)",
            kind,
            email,
            address,
            source,
        )
