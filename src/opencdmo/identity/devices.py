"""Trusted browsers: a browser where a person signed in carries a cookie that vouches for it.

The cookie (``opencdmo_device``) holds a random browser id and an HMAC of the account's email
and that id under the secret key, so it cannot be made for another account or forged. The
sign-in throttle counts a trusted browser's failures on their own and does not slow it down
for failures from elsewhere (``identity.throttle``). One browser is trusted for the last
account that signed in with it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

DEVICE_COOKIE = "opencdmo_device"
TRUST_DAYS = 90
_VALUE = re.compile(r"([0-9a-f]{32})\.([0-9a-f]{64})")


def _mac(secret: bytes, email: str, device_id: str) -> str:
    message = f"device|{email}|{device_id}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def trusted(secret: bytes, email: str, cookie: str | None) -> str | None:
    """The browser's id when its cookie vouches for ``email``; otherwise None."""
    found = _VALUE.fullmatch(cookie or "")
    if found is None:
        return None
    device_id, mac = found.groups()
    return device_id if hmac.compare_digest(mac, _mac(secret, email, device_id)) else None


def issue(secret: bytes, email: str, device_id: str | None = None) -> str:
    """The cookie value trusting this browser for ``email`` (a new id unless one is given)."""
    device_id = device_id or secrets.token_hex(16)
    return f"{device_id}.{_mac(secret, email, device_id)}"
