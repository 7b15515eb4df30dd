"""The audit key ring: the key that writes and earlier keys that still verify.

Keys never reach the database. Every keyed event and checkpoint names its key by id (a
fingerprint derived from the key), so a rotation keeps older events verifiable and a verifier
holding another key says "wrong key" instead of "altered".
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from opencdmo.settings import Settings


@dataclass(frozen=True)
class AuditKey:
    id: str
    secret: bytes = field(repr=False)

    def mac(self, message: str) -> str:
        return hmac.new(self.secret, message.encode(), hashlib.sha256).hexdigest()

    def derive(self, purpose: str) -> AuditKey:
        """A key for another purpose (checkpoints), named by the same id."""
        return AuditKey(self.id, hmac.new(self.secret, purpose.encode(), hashlib.sha256).digest())


def make_key(text: str) -> AuditKey:
    secret = text.encode()
    fingerprint = hmac.new(secret, b"opencdmo audit key id", hashlib.sha256).hexdigest()
    return AuditKey(fingerprint[:16], secret)


@dataclass(frozen=True)
class Keyring:
    current: AuditKey
    retired: tuple[AuditKey, ...] = ()

    def get(self, key_id: str | None) -> AuditKey | None:
        for key in (self.current, *self.retired):
            if key.id == key_id:
                return key
        return None


def same(a: str | None, b: str | None) -> bool:
    """Constant-time comparison of two hex digests (None never matches)."""
    return a is not None and b is not None and hmac.compare_digest(a, b)


_ring: Keyring | None = None


def keyring_from(settings: Settings) -> Keyring:
    current = make_key(settings.resolved_audit_key())
    retired = tuple(make_key(k) for k in settings.resolved_audit_retired_keys())
    return Keyring(current, tuple(k for k in retired if k.id != current.id))


def configure(settings: Settings) -> Keyring:
    """Load the key ring for this process (the app and the CLI call it at start)."""
    return use(keyring_from(settings))


def use(ring: Keyring) -> Keyring:
    global _ring
    _ring = ring
    return ring


def keyring() -> Keyring:
    if _ring is None:
        raise RuntimeError("the audit key is not configured: call audit.keys.configure() at start")
    return _ring
