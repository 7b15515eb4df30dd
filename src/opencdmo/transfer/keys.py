"""The tenant's package signing key, and the sender keys it trusts.

**Signing key.** One Ed25519 key pair per tenant, created on demand (the first export, or an
administrator on the settings page), audited. The private key is kept encrypted with AES-GCM
(``cryptography``'s AEAD) under a key-encryption key derived with HKDF-SHA256 from the
application's secret key, salted per format and bound to the tenant id; the tenant id and
the public key are its associated data, so a sealed key copied to another tenant's row, or
paired with another public key, does not open. AES-GCM rather than a PKCS#8
``BestAvailableEncryption``: that one stretches a *password* (slow on purpose, once per
signature here); the secret key is already high-entropy, and AES-GCM authenticates the
binding to the tenant, which PKCS#8 cannot say.

**Trusted keys.** An administrator (``transfer:trust``) trusts another installation's sender
key by pasting or uploading its public key (PEM, or the raw key in base64) and confirming its
fingerprint (the SHA-256 of the raw key, as the sender reads it out on its settings page);
removes it with a reason. ``trusted(ctx, fingerprint)`` answers for verification.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from typing import Final
from uuid import UUID

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.db.tx import joined, read_view, tenant_transaction, unit_of_work
from opencdmo.errors import Conflict, Forbidden, ValidationFailed
from opencdmo.fields import check_reason, folded_text
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.transfer import queries as q
from opencdmo.transfer.format import b64, fingerprint
from opencdmo.transfer.queries import KeyRow, TrustedRow

SALT: Final = b"opencdmo transfer signing key/1"
KEY_MAX: Final = 8 * 1024
LABEL_MAX: Final = 200
REASON_MAX: Final = 2000
ENTITY: Final = "transfer_key"
TRUSTED: Final = "transfer_trusted_key"


@dataclass(frozen=True)
class PublicKey:
    """The tenant's signing key as it is shown and exported."""

    fingerprint: str
    raw: bytes

    @property
    def base64(self) -> str:
        return b64(self.raw)

    @property
    def pem(self) -> str:
        key = Ed25519PublicKey.from_public_bytes(self.raw)
        return key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")


def _kek(settings: Settings, tenant_id: UUID) -> AESGCM:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=SALT, info=tenant_id.bytes).derive(
        settings.resolved_secret_key().encode()
    )
    return AESGCM(derived)


def _aad(tenant_id: UUID, public_key: bytes) -> bytes:
    return tenant_id.bytes + public_key


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


async def _created(settings: Settings, ctx: TenantContext) -> KeyRow:
    """The tenant's key in the open unit of work, created (and audited) when it has none."""
    async with joined(ctx):
        found = await q.signing_key()
        if found is not None:
            return found
        key = Ed25519PrivateKey.generate()
        public = _raw_public(key)
        nonce = os.urandom(12)
        private = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        sealed = _kek(settings, ctx.tenant_id).encrypt(nonce, private, _aad(ctx.tenant_id, public))
        printed = fingerprint(public)
        made_id = await q.insert_key(ctx.tenant_id, public, printed, sealed, nonce, ctx.user_id)
        if made_id is not None:
            await audit.record(
                ctx,
                "transfer.key_created",
                ENTITY,
                made_id,
                new={"algorithm": "Ed25519", "fingerprint": printed, "public_key": b64(public)},
            )
        made = await q.signing_key()  # another command may have created it a moment ago
        assert made is not None
        return made


async def ensure_key(settings: Settings, ctx: TenantContext) -> PublicKey:
    """The tenant's signing key, created now if it has none (its own unit of work)."""
    async with unit_of_work(ctx):
        await authorize(ctx, "transfer", "trust")
        row = await _created(settings, ctx)
    return PublicKey(row.fingerprint, row.public_key)


async def key_for_export(
    settings: Settings, ctx: TenantContext
) -> tuple[PublicKey, Ed25519PrivateKey]:
    """The signing key for an export (created on demand), opened with the application's
    secret; the caller has authorised the export."""
    async with unit_of_work(ctx):
        row = await _created(settings, ctx)
    try:
        private = _kek(settings, ctx.tenant_id).decrypt(
            row.nonce, row.encrypted_private_key, _aad(ctx.tenant_id, row.public_key)
        )
    except InvalidTag:
        raise Conflict(
            "The tenant's signing key cannot be opened with this installation's secret key "
            "(it was changed, or the key was copied from elsewhere). Restore the secret key."
        ) from None
    key = Ed25519PrivateKey.from_private_bytes(private)
    if _raw_public(key) != row.public_key:
        raise Conflict("The tenant's signing key does not match its public key.")
    return PublicKey(row.fingerprint, row.public_key), key


async def public_key(ctx: TenantContext) -> PublicKey | None:
    """The tenant's signing key (None: not created yet)."""
    async with tenant_transaction(ctx):
        row = await q.signing_key()
    return None if row is None else PublicKey(row.fingerprint, row.public_key)


# --- trusted sender keys ----------------------------------------------------------------------


def _refused(message: str, field: str = "public_key") -> ValidationFailed:
    return ValidationFailed(message, details={"field": field})


def parse_public_key(text: str) -> bytes:
    """The raw 32 bytes of an Ed25519 public key given as PEM (SubjectPublicKeyInfo) or as
    the raw key in base64; anything else is refused, saying why."""
    text = text.strip()
    if not text:
        raise _refused("Paste or upload the sender's public key (PEM).")
    if len(text) > KEY_MAX:
        raise _refused(f"The key is longer than {KEY_MAX} characters: it is no public key.")
    if text.startswith("-----BEGIN"):
        if text.count("-----BEGIN ") != 1 or "-----BEGIN PUBLIC KEY-----" not in text:
            raise _refused("A PEM here holds exactly one public key (BEGIN PUBLIC KEY).")
        try:
            key = serialization.load_pem_public_key(text.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise _refused("The PEM does not hold a readable public key.") from None
        if not isinstance(key, Ed25519PublicKey):
            raise _refused("The PEM holds a public key of another kind; sender keys are Ed25519.")
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _refused("The key is neither a PEM nor a base64 Ed25519 public key.") from None
    if len(raw) != 32:
        raise _refused(f"An Ed25519 public key has 32 bytes; this one has {len(raw)}.")
    return raw


def _actor(ctx: TenantContext) -> UUID:
    if ctx.user_id is None:
        raise Forbidden("Only a signed-in person changes the trusted keys.")
    return ctx.user_id


async def trust(ctx: TenantContext, key_text: str, confirmed: str, label: str) -> TrustedRow:
    """Trust a sender key once its fingerprint is confirmed; audited."""
    raw = parse_public_key(key_text)
    printed = fingerprint(raw)
    typed = "".join(confirmed.split()).replace(":", "").lower()
    if typed != printed:
        raise _refused(
            f"The fingerprint you confirmed is not this key's: the key's fingerprint is "
            f"{printed}. Compare it with the one the sender reads out to you.",
            "fingerprint",
        )
    name = folded_text(label, "label", "The sender's name", limit=LABEL_MAX)
    if not name:
        raise _refused("Name the sender whose key this is.", "label")
    by = _actor(ctx)
    async with unit_of_work(ctx):
        await authorize(ctx, "transfer", "trust")
        if await q.current_trusted(printed) is not None:
            raise Conflict(f"This key is trusted already ({printed[:16]}…).")
        try:
            found = await q.insert_trusted(ctx.tenant_id, printed, raw, name, by)
        except asyncpg.UniqueViolationError:
            raise Conflict("This key was trusted a moment ago.") from None
        await audit.record(
            ctx,
            "transfer.key_trusted",
            TRUSTED,
            found,
            new={"fingerprint": printed, "label": name, "public_key": b64(raw)},
        )
        return await q.trusted_key(found)


async def untrust(ctx: TenantContext, key_id: UUID, reason: str) -> TrustedRow:
    """Stop trusting a sender key, saying why; audited (the row stays, marked removed)."""
    why = check_reason(reason, limit=REASON_MAX)
    by = _actor(ctx)
    async with unit_of_work(ctx):
        await authorize(ctx, "transfer", "trust")
        row = await q.trusted_key(key_id, lock=True)
        if not row.current:
            raise Conflict("This key was removed from the trusted keys already.")
        await q.remove_trusted(row.id, by, why)
        await audit.record(
            ctx,
            "transfer.key_untrusted",
            TRUSTED,
            row.id,
            old={"fingerprint": row.fingerprint, "label": row.label},
            new={"fingerprint": row.fingerprint, "removed": True},
            reason=why,
        )
        return await q.trusted_key(row.id)


async def trusted_keys(ctx: TenantContext) -> list[TrustedRow]:
    async with read_view(ctx):
        await authorize(ctx, "transfer", "trust")
        return await q.trusted_keys()


async def trusted(ctx: TenantContext, fingerprint_hex: str) -> bool:
    """Whether the tenant trusts the sender key with this fingerprint now: one of its trusted
    keys, or the signing key of a tenant it has an active relationship with."""
    from opencdmo.transfer import receive_queries

    async with tenant_transaction(ctx):
        if await q.current_trusted(fingerprint_hex) is not None:
            return True
        return fingerprint_hex in await receive_queries.partner_fingerprints()
