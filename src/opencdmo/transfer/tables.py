"""Tech transfer: the tenant's signing key, the sender keys it trusts, the packages it sent."""

from __future__ import annotations

from piccolo.columns import JSONB, UUID, BigInt, Bytea, Integer, Text, Timestamptz
from piccolo.table import Table

from opencdmo.db.clock import DatabaseTime


class SigningKey(Table, tablename="transfer_signing_keys"):
    """The tenant's Ed25519 key pair; the private key AES-GCM encrypted (32 bytes + tag)."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    algorithm = Text()
    public_key = Bytea()
    fingerprint = Text()
    encrypted_private_key = Bytea()
    nonce = Bytea()
    created_by = UUID(null=True, default=None)
    created_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))


class TrustedKey(Table, tablename="transfer_trusted_keys"):
    """A sender key of another installation the tenant trusts (until removed, with a reason)."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    fingerprint = Text()
    public_key = Bytea()
    label = Text()
    added_by = UUID()
    added_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
    removed_by = UUID(null=True, default=None)
    removed_at = Timestamptz(null=True, default=None)
    removal_reason = Text(null=True, default=None)


class TransferPackage(Table, tablename="transfer_packages"):
    """A package the tenant sent (or received): the archive's hash, size and blob key."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    direction = Text()
    recipe_id = UUID(null=True, default=None)
    revision = Integer(null=True, default=None)
    content_hash = Text()
    sha256 = Text()
    size_bytes = BigInt()
    status = Text()
    storage_key = Text()
    signature_id = UUID(null=True, default=None)
    sender_fingerprint = Text()
    created_by = UUID()
    created_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
    sender_tenant_id = UUID(null=True, default=None)
    sender_name = Text(default="")
    recipe_name = Text(default="")
    partner_link_id = UUID(null=True, default=None)
    findings = JSONB(default="[]")
    manifest = JSONB(null=True, default=None)
    status_reason = Text(null=True, default=None)
    verified_by = UUID(null=True, default=None)
    status_changed_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))


class TransferSend(Table, tablename="transfer_sends"):
    """A package sent to a partner's inbox: who sent it, to whom, through which relationship."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    package_id = UUID()
    receiver_tenant_id = UUID()
    receiver_name = Text()
    partner_link_id = UUID()
    sent_by = UUID()
    sent_by_name = Text()
    sent_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))


class TransferJob(Table, tablename="transfer_jobs"):
    """A verification's progress: stage, bytes done of bytes in all, state (and an upload's
    outcome: its findings, or the error)."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    package_id = UUID(null=True, default=None)
    stage = Text()
    done_bytes = BigInt(default=0)
    total_bytes = BigInt(default=0)
    state = Text(default="running")
    started_by = UUID()
    started_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
    updated_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
    findings = JSONB(default="[]")  # an upload refused: every finding
    error = Text(null=True, default=None)  # stopped without an outcome: why, in words


class TransferMapping(Table, tablename="transfer_mappings"):
    """The receiver's resolution of one gap of a received package (changeable until import)."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    package_id = UUID()
    gap_kind = Text()
    gap_ref = Text()
    resolution = Text()
    target_id = UUID(null=True, default=None)
    target = Text(default="")
    decided_by = UUID()
    decided_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))


class TransferImport(Table, tablename="transfer_imports"):
    """A received package imported as a draft recipe (or a new revision of one), with its
    lineage and the mapping as applied (append-only)."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    package_id = UUID()
    recipe_id = UUID()
    revision = Integer()
    sender_tenant_id = UUID()
    sender_name = Text()
    sender_recipe_id = UUID()
    sender_revision = Integer()
    content_hash = Text()
    sender_content = JSONB()
    mapping = JSONB()
    imported_by = UUID()
    imported_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
