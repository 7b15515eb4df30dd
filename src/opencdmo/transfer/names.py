"""Names of tech-transfer records for the audit trail (``audit.sentences``)."""

from __future__ import annotations

from opencdmo.audit.coverage import Coverage
from opencdmo.audit.naming import uuids
from opencdmo.audit.sentences import Named, Resolver
from opencdmo.scope import TenantContext
from opencdmo.transfer.tables import TransferPackage, TrustedKey


async def _packages(ctx: TenantContext, ids: list[str]) -> dict[str, Named]:
    wanted = uuids(ids)
    if not wanted:
        return {}
    rows = await TransferPackage.select(
        TransferPackage.id, TransferPackage.revision, TransferPackage.direction
    ).where(TransferPackage.id.is_in(wanted))
    return {
        str(r["id"]): Named(
            f"{'received ' if r['direction'] == 'received' else ''}transfer package "
            f"{str(r['id'])[:8]} (revision {r['revision']})",
            f"/t/{ctx.slug}/transfer/packages"
            + (f"/{r['id']}" if r["direction"] == "received" else ""),
        )
        for r in rows
    }


async def _trusted(ctx: TenantContext, ids: list[str]) -> dict[str, Named]:
    wanted = uuids(ids)
    if not wanted:
        return {}
    rows = await TrustedKey.select(TrustedKey.id, TrustedKey.label).where(
        TrustedKey.id.is_in(wanted)
    )
    return {
        str(r["id"]): Named(f"the sender key of {r['label']}", f"/t/{ctx.slug}/settings/transfer")
        for r in rows
    }


AUDIT_NAMES: dict[str, Resolver] = {
    "transfer_package": _packages,
    "transfer_trusted_key": _trusted,
}

# Raw SQL: each runs on the verifier's own snapshot connection.
AUDIT_COVERAGE = (
    # Each package sent: the event of its export, with the archive's SHA-256, its signature
    # and the person who exported it.
    Coverage(
        "transfer package",
        """
SELECT p.id::text AS id, 'package of revision ' || coalesce(p.revision::text, '?') AS what
FROM transfer_packages p
WHERE p.tenant_id = $1 AND p.direction = 'sent' AND NOT EXISTS (
    SELECT 1 FROM audit_events a
    WHERE a.tenant_id = p.tenant_id
      AND a.entity_type = 'transfer_package' AND a.entity_id = p.id::text
      AND a.action = 'transfer.package_exported'
      AND a.new_values ->> 'sha256' = p.sha256
      AND a.new_values ->> 'signature_id' = p.signature_id::text
      AND a.actor_id = p.created_by)
""",
    ),
    # Each package received (from a partner or an upload): the event of its arrival, with
    # the archive's SHA-256, by the person who sent or uploaded it.
    Coverage(
        "received transfer package",
        """
SELECT p.id::text AS id, 'received package of revision ' || coalesce(p.revision::text, '?') AS what
FROM transfer_packages p
WHERE p.tenant_id = $1 AND p.direction = 'received' AND NOT EXISTS (
    SELECT 1 FROM audit_events a
    WHERE a.tenant_id = p.tenant_id
      AND a.entity_type = 'transfer_package' AND a.entity_id = p.id::text
      AND a.action = 'transfer.package_received'
      AND a.new_values ->> 'sha256' = p.sha256
      AND a.actor_id = p.created_by)
""",
    ),
    # Each verified or rejected package: the event of that outcome, by who verified it.
    Coverage(
        "verification of a received package",
        """
SELECT p.id::text AS id, p.status || ' package of revision ' || coalesce(p.revision::text, '?')
    AS what
FROM transfer_packages p
WHERE p.tenant_id = $1 AND p.direction = 'received' AND p.status IN ('verified', 'rejected')
  AND NOT EXISTS (
    SELECT 1 FROM audit_events a
    WHERE a.tenant_id = p.tenant_id
      AND a.entity_type = 'transfer_package' AND a.entity_id = p.id::text
      AND a.action = 'transfer.package_' || p.status
      AND a.actor_id = p.verified_by)
""",
    ),
    # Each send to a partner: the event of the send, by the person who sent it.
    Coverage(
        "transfer package send",
        """
SELECT s.id::text AS id, 'send to ' || s.receiver_name AS what
FROM transfer_sends s
WHERE s.tenant_id = $1 AND NOT EXISTS (
    SELECT 1 FROM audit_events a
    WHERE a.tenant_id = s.tenant_id
      AND a.entity_type = 'transfer_package' AND a.entity_id = s.package_id::text
      AND a.action = 'transfer.package_sent'
      AND a.new_values ->> 'partner_link_id' = s.partner_link_id::text
      AND a.actor_id = s.sent_by)
""",
    ),
    # The signing key: the event of its creation, with its fingerprint.
    Coverage(
        "transfer signing key",
        """
SELECT k.id::text AS id, 'signing key ' || k.fingerprint AS what
FROM transfer_signing_keys k
WHERE k.tenant_id = $1 AND NOT EXISTS (
    SELECT 1 FROM audit_events a
    WHERE a.tenant_id = k.tenant_id
      AND a.entity_type = 'transfer_key' AND a.entity_id = k.id::text
      AND a.action = 'transfer.key_created'
      AND a.new_values ->> 'fingerprint' = k.fingerprint)
""",
    ),
    # Each trusted sender key: the event that trusted it, by the person who did.
    Coverage(
        "trusted sender key",
        """
SELECT k.id::text AS id, 'sender key of ' || k.label AS what
FROM transfer_trusted_keys k
WHERE k.tenant_id = $1 AND NOT EXISTS (
    SELECT 1 FROM audit_events a
    WHERE a.tenant_id = k.tenant_id
      AND a.entity_type = 'transfer_trusted_key' AND a.entity_id = k.id::text
      AND a.action = 'transfer.key_trusted'
      AND a.new_values ->> 'fingerprint' = k.fingerprint
      AND a.actor_id = k.added_by)
""",
    ),
    # Each import: the event that made it, with the recipe and revision it became, by the
    # person who imported.
    Coverage(
        "transfer import",
        """
SELECT i.id::text AS id, 'import of package ' || i.package_id::text AS what
FROM transfer_imports i
WHERE i.tenant_id = $1 AND NOT EXISTS (
    SELECT 1 FROM audit_events a
    WHERE a.tenant_id = i.tenant_id
      AND a.entity_type = 'transfer_package' AND a.entity_id = i.package_id::text
      AND a.action = 'transfer.package_imported'
      AND a.new_values ->> 'recipe_id' = i.recipe_id::text
      AND a.new_values ->> 'revision' = i.revision::text
      AND a.new_values ->> 'content_hash' = i.content_hash
      AND a.actor_id = i.imported_by)
""",
    ),
    # Each mapping choice as it stands: the event that saved it, by the person who chose.
    Coverage(
        "transfer mapping",
        """
SELECT m.id::text AS id, 'choice for ' || m.gap_ref AS what
FROM transfer_mappings m
WHERE m.tenant_id = $1 AND NOT EXISTS (
    SELECT 1 FROM audit_events a
    WHERE a.tenant_id = m.tenant_id
      AND a.entity_type = 'transfer_package' AND a.entity_id = m.package_id::text
      AND a.action = 'transfer.gap_mapped'
      AND a.new_values ->> 'gap_kind' = m.gap_kind
      AND a.new_values ->> 'ref' = m.gap_ref
      AND a.new_values ->> 'resolution' = m.resolution
      AND a.new_values ->> 'target' = m.target
      AND a.actor_id = m.decided_by)
""",
    ),
)
