"""API structs of the partners context."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from msgspec import Meta, Struct

from opencdmo.fields import Text

Slug = Annotated[str, Meta(min_length=1, max_length=64, description="The partner's slug.")]
Reason = Annotated[str, Meta(max_length=1000, description="Why (recorded in both trails).")]


class ProposeIn(Struct, forbid_unknown_fields=True):
    partner: Slug
    message: Text = ""


class ReasonIn(Struct, forbid_unknown_fields=True):
    reason: Reason


class RevokeIn(Struct, forbid_unknown_fields=True):
    reason: Reason
    # The status the revoker saw: given, a relationship that changed since is a 409.
    status: Literal["proposed", "active"] | None = None


class SharingIn(Struct, forbid_unknown_fields=True):
    share_batch_records: bool
    reason: Reason


class RelationshipOut(Struct):
    id: UUID
    partner_slug: str
    partner_name: str
    side: str
    status: str
    proposed_by_us: bool
    proposed_by_name: str
    proposed_at: datetime
    message: str
    share_batch_records: bool
    decided_by_name: str | None
    decided_at: datetime | None
    closed_by_name: str | None
    closed_at: datetime | None
    reason: str | None
