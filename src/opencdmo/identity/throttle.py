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

from opencdmo.db.tx import global_transaction
from opencdmo.errors import TooManyAttempts
from opencdmo.identity import queries
from opencdmo.identity.queries import Failures
from opencdmo.settings import Settings

SIGN_IN = "sign_in"
RE_ENTRY = "re_entry"
MAX_DELAY_SECONDS = 60


@dataclass(frozen=True)
class SignIn:
    """One sign-in attempt: the account tried, from where, and the trusted browser if any."""

    email: str
    address: str
    device: str | None = None


async def _lock(failures: Failures, window: int, limit: int) -> float:
    """Seconds until fewer than ``limit`` of these failures are in the window (0: not locked)."""
    left = await queries.seconds_left(failures, window, limit)
    return left[-1] if len(left) >= limit else 0.0


async def _delay(failures: Failures, window: int, threshold: int, *, accounts: bool) -> float:
    """Seconds still to wait after the latest failure, once ``threshold`` is reached: the
    delay doubles with every failure (or account) beyond it, up to MAX_DELAY_SECONDS."""
    found = await queries.count_failures(failures, window, accounts=accounts)
    if found.count < threshold:
        return 0.0
    delay = float(min(MAX_DELAY_SECONDS, 2 ** min(found.count - threshold, 16)))
    return max(0.0, delay - found.since)


def _refuse(wait: float, what: str) -> None:
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise TooManyAttempts(f"Too many failed {what}. Try again in {seconds} seconds.", seconds)


async def check_sign_in(settings: Settings, attempt: SignIn) -> None:
    """Raise 429 when this attempt must wait (see the module's description)."""
    window, limit = settings.login_window_seconds, settings.login_max_failures_account
    async with global_transaction():
        if attempt.device is not None:
            trusted = Failures(SIGN_IN, email=attempt.email, source=attempt.device)
            wait = await _lock(trusted, window, limit)
        else:
            pair = Failures(SIGN_IN, email=attempt.email, address=attempt.address, untrusted=True)
            account = Failures(SIGN_IN, email=attempt.email, untrusted=True)
            address = Failures(SIGN_IN, address=attempt.address, untrusted=True)
            wait = max(
                await _lock(pair, window, limit),
                await _delay(account, window, limit, accounts=False),
                await _delay(address, window, settings.login_max_failures_address, accounts=True),
            )
    _refuse(wait, "sign-in attempts")


async def record_sign_in_failure(attempt: SignIn) -> None:
    await _insert(SIGN_IN, attempt.email, attempt.address, attempt.device)


async def clear_sign_in(attempt: SignIn) -> None:
    """A successful sign-in forgets its own failures: those from this address and browser
    (failures from elsewhere keep counting: they may be someone else's)."""
    async with global_transaction():
        await queries.clear_failures(SIGN_IN, attempt.email, attempt.address, attempt.device)


async def check_re_entry(settings: Settings, email: str, credential: str) -> None:
    """Raise 429 when this session or token, or the account's re-entries, must wait."""
    window, limit = settings.login_window_seconds, settings.login_max_failures_account
    async with global_transaction():
        wait = max(
            await _lock(Failures(RE_ENTRY, email=email, source=credential), window, limit),
            await _delay(Failures(RE_ENTRY, email=email), window, 2 * limit, accounts=False),
        )
    _refuse(wait, "password entries")


async def record_re_entry_failure(email: str, address: str, credential: str) -> None:
    await _insert(RE_ENTRY, email, address, credential)


async def _insert(kind: str, email: str, address: str, source: str | None) -> None:
    async with global_transaction():
        await queries.add_failure(kind, email, address, source)
