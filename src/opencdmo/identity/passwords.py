"""Password hashing (argon2id) and the password rules (NIST SP 800-63B style)."""

from __future__ import annotations

import re
from functools import cache

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from opencdmo.errors import ValidationFailed
from opencdmo.settings import Settings

MIN_LENGTH = 12
MAX_LENGTH = 1024
_SUFFIX = re.compile(r"[\d\W_]+$")

_hasher = PasswordHasher()


def configure(settings: Settings) -> None:
    global _hasher
    _hasher = PasswordHasher(
        time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib
    )


@cache
def _common() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def password_problem(password: str, email: str = "") -> str | None:
    """Why a password is refused, or None when it is acceptable."""
    if len(password) < MIN_LENGTH:
        return f"Passwords need at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"Passwords may have at most {MAX_LENGTH} characters."
    lowered = password.lower()
    base = _SUFFIX.sub("", lowered)
    if lowered in _common() or (base in _common() and len(base) < MIN_LENGTH):
        return "This password is on the list of commonly used passwords; choose another."
    if len(set(lowered)) < 5:
        return "This password repeats too few characters; choose a less predictable one."
    local = email.split("@", 1)[0].lower()
    if len(local) >= 4 and local in lowered:
        return "Passwords may not contain your email name."
    return None


def check_password_rules(password: str, email: str = "") -> None:
    problem = password_problem(password, email)
    if problem:
        raise ValidationFailed(problem, details={"field": "password"})


async def hash_password(password: str) -> str:
    return await anyio.to_thread.run_sync(_hasher.hash, password)


async def verify_password(password_hash: str, password: str) -> bool:
    def _verify() -> bool:
        try:
            return bool(_hasher.verify(password_hash, password))
        except (VerificationError, InvalidHashError):
            return False

    return await anyio.to_thread.run_sync(_verify)


# Verified against when the account does not exist, so timing does not reveal which emails exist.
_DUMMY: list[str] = []


async def verify_nonexistent(password: str) -> None:
    if not _DUMMY:
        _DUMMY.append(await hash_password("not-a-real-account-password"))
    await verify_password(_DUMMY[0], password)
