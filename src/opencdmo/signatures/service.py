"""Part 11 electronic signatures (21 CFR 11.50, 11.70, 11.200).

``prepare`` re-authenticates with the password before the command's unit of work opens;
``apply`` writes the signature inside it (so it commits with the state change it signs, or
not at all), applies separation of duties, and links the signature to the exact record
version by the SHA-256 of its canonical content. ``verify``
recomputes that hash: a signature whose record changed since shows as invalid.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol
from uuid import UUID

from opencdmo.access.sod import check_author_may_not_approve
from opencdmo.audit import service as audit
from opencdmo.canonical import content_hash
from opencdmo.db.engine import get_engine
from opencdmo.db.tx import joined, tenant_transaction
from opencdmo.errors import NotAuthenticated, ValidationFailed
from opencdmo.identity.service import reauthenticate
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.signatures import queries
from opencdmo.signatures.queries import SignatureRow
from opencdmo.timefmt import localtime

MEANINGS = (
    "authored",
    "reviewed",
    "approved",
    "verified",
    "witnessed",
    "released",
    "rejected",
    "approved for publication",
    "approved for use",
    "released for use",
    "retired",
    "responsibility",
    "performed",
    "approved for transfer",
)


class Signable(Protocol):
    """A record that can be signed: its identity, version, author and canonical content."""

    @property
    def record_type(self) -> str: ...

    @property
    def record_id(self) -> str: ...

    @property
    def record_version(self) -> str: ...

    @property
    def author_id(self) -> UUID | None: ...

    def signed_content(self) -> Any: ...


@dataclass(frozen=True)
class SignedRecord:
    """A signable record made of its parts: what it is, which version, who wrote it, and the
    content the signature is linked to."""

    record_type: str
    record_id: str
    record_version: str
    author_id: UUID | None
    content: Any

    def signed_content(self) -> Any:
        return self.content


@dataclass(frozen=True)
class SignatureView(SignatureRow):
    """A stored signature with whether the record still hashes as it did when signed."""

    valid: bool

    def manifestation(self, zone: str = "UTC") -> str:
        """Printed name, date and time with zone, and meaning (11.50)."""
        shown = f"{self.signer_name} · {localtime(self.signed_at, zone)} · {self.meaning}"
        how = METHODS.get(self.method)
        return f"{shown} · {how}" if how else shown


# How a signer re-authenticated, as the manifestation says it (the account password: nothing).
METHODS = {
    "signing_password": "signing password",
    "reauthentication": "re-authenticated with the identity provider",
}


@dataclass(frozen=True)
class Signing:
    """A signer who has just re-entered their password for one signature with one meaning and
    reason. Made by ``prepare`` before the command's unit of work opens (argon2 is slow on
    purpose: no transaction waits for it, and a wrong password leaves no lock behind)."""

    signer_id: UUID
    signer_name: str
    meaning: str
    reason: str
    method: str = "password"


async def prepare(
    settings: Settings, ctx: TenantContext, meaning: str, reason: str, password: str
) -> Signing:
    """Check the meaning and reason, then re-authenticate the signer (wrong passwords count
    toward the sign-in throttle and are security events). Call it before the unit of work."""
    if ctx.user_id is None:
        raise NotAuthenticated("Only a signed-in person can sign.")
    if get_engine().current_transaction.get() is not None:
        raise RuntimeError("re-authenticate before the command's unit of work opens")
    if meaning not in MEANINGS:
        raise ValidationFailed(
            f"Unknown signature meaning '{meaning}'. Meanings: {', '.join(MEANINGS)}.",
            details={"field": "meaning"},
        )
    reason = " ".join(reason.split())
    if not reason:
        raise ValidationFailed("A reason is required to sign.", details={"field": "reason"})
    if len(reason) > MAX_REASON:
        raise ValidationFailed(
            f"A reason has at most {MAX_REASON} characters.", details={"field": "reason"}
        )
    method = await reauthenticate(settings, ctx, password)
    return Signing(ctx.user_id, ctx.actor.full_name, meaning, reason, method)


MAX_REASON = 2000


def check_separation(record: Signable, ctx: TenantContext, meaning: str) -> None:
    """Separation of duties as a check a command makes before it asks for the password."""
    check_author_may_not_approve(record.author_id, ctx.user_id, meaning)


async def apply(
    ctx: TenantContext, signing: Signing, record: Signable, *, slot: queries.Slot | None = None
) -> SignatureView:
    """Write the signature in the command's open unit of work, with its audit event: it
    commits with the state change it signs, or not at all. Separation of duties applies.
    ``slot``: the id and time it was given when the password was re-entered (``queries.slot``)
    for a record that carries its own signature."""
    if signing.signer_id != ctx.user_id:
        raise NotAuthenticated("The signature was prepared for another person.")
    check_author_may_not_approve(record.author_id, ctx.user_id, signing.meaning)
    digest = content_hash(record.signed_content())
    async with joined(ctx):
        row = await queries.insert(
            ctx.tenant_id,
            record.record_type,
            record.record_id,
            record.record_version,
            digest,
            signing.signer_id,
            signing.signer_name,
            signing.meaning,
            signing.reason,
            slot,
            signing.method,
        )
        await audit.record(
            ctx,
            "signature.applied",
            record.record_type,
            record.record_id,
            new={
                "signature_id": row.id,
                "meaning": signing.meaning,
                "record_version": record.record_version,
                "record_hash": digest,
                "method": signing.method,
            },
            reason=signing.reason,
        )
    return _view(row, digest)


def _view(row: SignatureRow, current_hash: str | None) -> SignatureView:
    return SignatureView(**asdict(row), valid=current_hash == row.record_hash)


async def signatures_for(ctx: TenantContext, record: Signable) -> list[SignatureView]:
    """Every signature on the record (all versions), each checked against its current content."""
    current = content_hash(record.signed_content())
    async with tenant_transaction(ctx):
        rows = await queries.on_record(record.record_type, record.record_id)
    return [_view(row, current) for row in rows]
