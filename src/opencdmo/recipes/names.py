"""Names of master recipes for the audit trail (``audit.sentences``)."""

from __future__ import annotations

from opencdmo.audit.coverage import Coverage
from opencdmo.audit.naming import uuids
from opencdmo.audit.sentences import Named, Resolver
from opencdmo.recipes.tables import MasterRecipe
from opencdmo.scope import TenantContext


async def _recipes(ctx: TenantContext, ids: list[str]) -> dict[str, Named]:
    wanted = uuids(ids)
    if not wanted:
        return {}
    rows = await MasterRecipe.select(MasterRecipe.id, MasterRecipe.name).where(
        MasterRecipe.id.is_in(wanted)
    )
    return {str(r["id"]): Named(r["name"], f"/t/{ctx.slug}/recipes/{r['id']}") for r in rows}


AUDIT_NAMES: dict[str, Resolver] = {"master_recipe": _recipes}

# Each record that only its audit event vouches for. Raw SQL: it runs on the verifier's own
# snapshot.
AUDIT_COVERAGE = (
    # Each recipe document: the event that attached it (its title, kind, file, the file's
    # SHA-256 and size, by the person who did), and for a removed one the event that removed
    # it (by the person who did, with the reason): a document added, changed, swapped for
    # another file or un-removed behind the application's back is a finding.
    Coverage(
        "recipe document",
        """
SELECT d.id::text AS id, 'document ' || d.title || ' of recipe ' || d.recipe_id::text AS what
FROM recipe_documents d
JOIN stored_files f ON f.tenant_id = d.tenant_id AND f.id = d.file_id
WHERE d.tenant_id = $1 AND (NOT EXISTS (
    SELECT 1 FROM audit_events a
    WHERE a.tenant_id = d.tenant_id
      AND a.entity_type = 'master_recipe' AND a.entity_id = d.recipe_id::text
      AND a.action = 'recipe.document_added'
      AND a.new_values ->> 'document_id' = d.id::text
      AND a.new_values ->> 'title' = d.title
      AND a.new_values ->> 'kind' = d.kind
      AND a.new_values -> 'file' ->> 'file_id' = d.file_id::text
      AND a.new_values -> 'file' ->> 'sha256' = f.sha256
      AND (a.new_values -> 'file' ->> 'size_bytes')::bigint = f.size_bytes
      AND a.actor_id = d.added_by)
  OR (d.removed_at IS NULL) = EXISTS (
    SELECT 1 FROM audit_events a
    WHERE a.tenant_id = d.tenant_id
      AND a.entity_type = 'master_recipe' AND a.entity_id = d.recipe_id::text
      AND a.action = 'recipe.document_removed'
      AND a.new_values ->> 'document_id' = d.id::text
      AND a.actor_id IS NOT DISTINCT FROM d.removed_by
      AND a.reason IS NOT DISTINCT FROM d.removal_reason))
""",
    ),
)
