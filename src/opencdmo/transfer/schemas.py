"""The tech-transfer API's bodies and answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from msgspec import Meta, Struct

from opencdmo.fields import Secret, Text

Note = Annotated[str, Meta(max_length=2000)]


class ExportIn(Struct, forbid_unknown_fields=True):
    """The QA approval of the package: password and reason (meaning "approved for transfer")."""

    password: Secret
    reason: Text


class PackageOut(Struct, kw_only=True):
    """A package the tenant sent: the archive's SHA-256 and size, the revision it carries."""

    id: UUID
    direction: str
    status: str
    recipe_id: UUID | None
    revision: int | None
    content_hash: str
    sha256: str
    size_bytes: int
    signature_id: UUID | None
    sender_fingerprint: str
    created_by: UUID
    created_at: datetime
    download: str


class KeyOut(Struct, kw_only=True):
    """The tenant's package signing key (Ed25519): the fingerprint is the SHA-256 of the raw
    public key."""

    algorithm: str
    fingerprint: str
    public_key: str  # the raw key, base64
    pem: str


class TrustIn(Struct, forbid_unknown_fields=True, kw_only=True):
    """A sender key to trust: the key (PEM, or the raw key in base64), its fingerprint as
    the sender gave it (confirmed against the key's), and the sender's name."""

    public_key: Annotated[str, Meta(max_length=8192)]
    fingerprint: Annotated[str, Meta(max_length=200)]
    label: Annotated[str, Meta(max_length=200)]


class TrustedKeyOut(Struct, kw_only=True):
    id: UUID
    fingerprint: str
    label: str
    added_by: UUID
    added_at: datetime
    removed_by: UUID | None
    removed_at: datetime | None
    removal_reason: str | None


class UntrustIn(Struct, forbid_unknown_fields=True, kw_only=True):
    """Why the key is no longer trusted."""

    reason: Note


class GapOut(Struct, kw_only=True):
    """One gap of a received package: what it is, where it stands, the receiver's choice."""

    kind: str
    ref: str
    name: str
    status: str
    reason: str
    resolution: str
    resolved: bool


class GapReportOut(Struct, kw_only=True):
    """The gap report of a received package."""

    package_id: UUID
    status: str
    sender: str
    recipe: str
    revision: int
    content_hash: str
    resolved: bool
    gaps: list[GapOut]
    previous_import: UUID | None
    changes_since_previous: list[str]
    imported_recipe_id: UUID | None


class MappingIn(Struct, forbid_unknown_fields=True):
    """The receiver's choice for one gap: ``use`` (a library item, class or material of its
    own) or ``install`` (from the HUB; ``target``: the version)."""

    gap_kind: Annotated[str, Meta(max_length=40)]
    ref: Annotated[str, Meta(min_length=1, max_length=200)]
    resolution: Annotated[str, Meta(max_length=40)]
    target_id: UUID | None = None
    target: Annotated[str, Meta(max_length=200)] = ""


class ImportOut(Struct, kw_only=True):
    """The draft recipe (or its new revision) the package became."""

    recipe_id: UUID
    revision: int
    new_recipe: bool
    recipe: str


class SendIn(Struct, forbid_unknown_fields=True, kw_only=True):
    """The relationship whose partner receives the package."""

    partner_link_id: UUID


class SendOut(Struct, kw_only=True):
    """A send of a package to a partner, with the receiver's status of it now."""

    id: UUID
    package_id: UUID
    receiver_tenant_id: UUID
    receiver_name: str
    partner_link_id: UUID
    sent_by_name: str
    sent_at: datetime
    receiver_status: str | None
    receiver_reason: str | None


class FindingOut(Struct, kw_only=True):
    code: str
    message: str
    member: str | None


class ReceivedOut(Struct, kw_only=True):
    """A package in the tenant's inbox: its sender, recipe, status and the verification's
    findings (a rejected one: the reason)."""

    id: UUID
    status: str
    sender_name: str
    sender_tenant_id: UUID | None
    sender_fingerprint: str
    recipe_name: str
    revision: int | None
    content_hash: str
    sha256: str
    size_bytes: int
    partner_link_id: UUID | None
    findings: list[FindingOut]
    status_reason: str | None
    import_refused: str | None
    created_at: datetime
    status_changed_at: datetime


class JobOut(Struct, kw_only=True):
    """A verification's progress."""

    id: UUID
    package_id: UUID | None
    stage: str
    done_bytes: int
    total_bytes: int
    state: str
    percent: int
    findings: list[FindingOut] = []
    error: str | None = None
