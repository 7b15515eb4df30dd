"""Password rules: length, common passwords, predictable passwords."""

from __future__ import annotations

import pytest

from opencdmo.errors import ValidationFailed
from opencdmo.identity.passwords import check_password_rules, password_problem


@pytest.mark.parametrize(
    "password",
    [
        "short-pass1",  # 11 characters
        "password1234",  # common, with digits added
        "qwertyuiop123",  # common keyboard walk with digits
        "123qweasdzxc",  # on the common list as is
        "aaaaaaaaaaaaaaaa",  # too few distinct characters
        "ababababababab",
    ],
)
def test_refused(password: str) -> None:
    assert password_problem(password) is not None
    with pytest.raises(ValidationFailed):
        check_password_rules(password)


@pytest.mark.parametrize(
    "password",
    [
        "correct-horse-battery-42",
        "twelve chars",
        "x" * 40 + "yz0123456789!",
        "a much longer passphrase with spaces " * 3,  # over 64 characters is accepted
        "Zürich-Läckerli-2026",
    ],
)
def test_accepted(password: str) -> None:
    assert password_problem(password) is None


def test_refuses_the_email_name() -> None:
    assert password_problem("priya.raman-2026!", "priya.raman@example.org") is not None


def test_length_limit_is_generous() -> None:
    assert password_problem("k9" + "z" * 200 + "abcde") is None
    assert password_problem("k9abc" + "z" * 2000) is not None
