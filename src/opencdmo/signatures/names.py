"""What the audit trail vouches for of the signatures context: every signature as stored is
covered by the ``signature.applied`` event written with it (its record, the record's hash,
its meaning and signer)."""

from __future__ import annotations

from opencdmo.audit.coverage import Coverage
from opencdmo.audit.sentences import Resolver

AUDIT_NAMES: dict[str, Resolver] = {}

# Raw SQL: it runs on the verifier's own snapshot connection.
AUDIT_COVERAGE = (
    Coverage(
        "signature",
        """
SELECT s.id::text AS id, s.meaning || ' by ' || s.signer_name AS what
FROM signatures s
WHERE s.tenant_id = $1 AND NOT EXISTS (
    SELECT 1 FROM audit_events a
    WHERE a.tenant_id = s.tenant_id
      AND a.action = 'signature.applied'
      AND a.entity_type = s.record_type AND a.entity_id = s.record_id
      AND a.new_values ->> 'signature_id' = s.id::text
      AND a.new_values ->> 'record_hash' = s.record_hash
      AND a.new_values ->> 'meaning' = s.meaning
      AND a.actor_id = s.signer_id)
""",
    ),
)
