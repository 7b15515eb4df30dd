"""The recipe work queues' data access: for one person, the revisions that await their
signature, their drafts, the revisions returned to them, and the recipes recently made
effective, each as one query returning typed rows and the size of the whole queue.

Raw SQL: each queue relates a recipe to its current revision and that revision's signatures
(no foreign keys Piccolo could join along, and correlated EXISTS and LATERAL subqueries) and
counts the whole queue beside the rows it shows (a window function), all in one round trip.
Each runs in the transaction open in its context (a page's read view); row-level security
keeps every row in the tenant. The indexes they use: ``master_recipes_status``,
``master_recipes_effective`` (migration 0016), ``recipe_revisions``' key and
``signatures_record``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID

from opencdmo.recipes.tables import MasterRecipe


@dataclass(frozen=True)
class RecipeWork:
    """One recipe revision in a queue: ``at`` and ``by`` are the step that put it there (the
    submission, the approval, the return, the save, the making effective)."""

    recipe_id: UUID
    name: str
    revision: int
    status: str
    at: datetime | None
    by: str | None
    note: str | None


@dataclass(frozen=True)
class RecipeQueue:
    """The first rows of a queue, and how many it holds in all."""

    rows: list[RecipeWork]
    total: int


# The signatures on the recipe's current revision (alias s, recipe alias r).
_ON_CURRENT = (
    "s.tenant_id = r.tenant_id AND s.record_type = 'master_recipe'"
    " AND s.record_id = r.id::text AND s.record_version = r.current_revision::text"
)
_COLUMNS = (
    "r.id AS recipe_id, r.name, {revision} AS revision, r.status, {at} AS at, {by} AS by,"
    " {note} AS note, count(*) OVER () AS total"
)
_CURRENT_REVISION = (
    "JOIN recipe_revisions v ON v.tenant_id = r.tenant_id AND v.recipe_id = r.id"
    " AND v.revision = r.current_revision"
)

# In review: an approval, which the revision's author may not give, nor anyone who already
# approved it (nor, when the tenant's signers must differ, anyone who signed it at all).
# Approved: "approved for use", which anyone but its author may give. The order: first come.
_AWAITING = f"""
SELECT {
    _COLUMNS.format(
        revision="r.current_revision", at="last.signed_at", by="last.signer_name", note="NULL::text"
    )
}
FROM master_recipes r
JOIN tenants t ON t.id = r.tenant_id
{_CURRENT_REVISION}
LEFT JOIN LATERAL (
    SELECT s.signer_name, s.signed_at FROM signatures s
    WHERE {_ON_CURRENT}
      AND s.meaning = CASE r.status WHEN 'in_review' THEN 'authored' ELSE 'approved' END
    ORDER BY s.signed_at DESC LIMIT 1
) last ON true
WHERE r.status IN ('in_review', 'approved')
  AND coalesce(v.saved_by, r.author_id) IS DISTINCT FROM {{}}
  AND (r.status = 'approved' OR NOT EXISTS (
      SELECT 1 FROM signatures s
      WHERE {_ON_CURRENT} AND s.signer_id = {{}}
        AND (s.meaning = 'approved' OR t.recipe_unique_signers)))
ORDER BY last.signed_at NULLS FIRST, r.name, r.id
LIMIT {{}}
"""

# Back in Draft with signatures on the current revision: its last review cycle ended in a
# rejection. It is returned to the person who submitted it.
_RETURNED = f"""
SELECT {
    _COLUMNS.format(
        revision="r.current_revision",
        at="last.signed_at",
        by="last.signer_name",
        note="last.reason",
    )
}
FROM master_recipes r
JOIN LATERAL (
    SELECT s.signer_name, s.signed_at, s.reason, s.meaning FROM signatures s
    WHERE {_ON_CURRENT}
    ORDER BY s.signed_at DESC LIMIT 1
) last ON last.meaning = 'rejected'
WHERE r.status = 'draft'
  AND EXISTS (
      SELECT 1 FROM signatures s
      WHERE {_ON_CURRENT} AND s.meaning = 'authored' AND s.signer_id = {{}})
ORDER BY last.signed_at DESC, r.id
LIMIT {{}}
"""

# Drafts whose current revision the person saved, leaving out revisions returned from review
# (the returned queue shows those, with the reason).
_DRAFTS = f"""
SELECT {
    _COLUMNS.format(
        revision="r.current_revision",
        at="v.saved_at",
        by="NULL::text",
        note="nullif(v.message, '')",
    )
}
FROM master_recipes r
{_CURRENT_REVISION}
WHERE r.status = 'draft' AND coalesce(v.saved_by, r.author_id) = {{}}
  AND NOT EXISTS (SELECT 1 FROM signatures s WHERE {_ON_CURRENT} AND s.meaning = 'rejected')
ORDER BY v.saved_at DESC, r.id
LIMIT {{}}
"""

# Revisions made effective in the last days (a recipe being revised again keeps its effective
# revision in force), with who signed them "approved for use".
_RECENTLY_EFFECTIVE = f"""
SELECT {
    _COLUMNS.format(
        revision="r.effective_revision",
        at="r.effective_at",
        by="last.signer_name",
        note="NULL::text",
    )
}
FROM master_recipes r
LEFT JOIN LATERAL (
    SELECT s.signer_name FROM signatures s
    WHERE s.tenant_id = r.tenant_id AND s.record_type = 'master_recipe'
      AND s.record_id = r.id::text AND s.record_version = r.effective_revision::text
      AND s.meaning = 'approved for use'
    ORDER BY s.signed_at DESC LIMIT 1
) last ON true
WHERE r.effective_revision IS NOT NULL
  AND r.effective_at >= now() - make_interval(days => {{}})
ORDER BY r.effective_at DESC, r.id
LIMIT {{}}
"""

_FIELDS = [f.name for f in fields(RecipeWork)]


async def _queue(sql: str, *args: Any) -> RecipeQueue:
    rows = await MasterRecipe.raw(sql, *args)
    return RecipeQueue(
        [RecipeWork(**{name: row[name] for name in _FIELDS}) for row in rows],
        int(rows[0]["total"]) if rows else 0,
    )


async def awaiting_signature(person: UUID, limit: int) -> RecipeQueue:
    """Revisions in review or approved that need a signature this person may give and has
    not given (separation of duties applied as the lifecycle applies it)."""
    return await _queue(_AWAITING, person, person, limit)


async def returned(person: UUID, limit: int) -> RecipeQueue:
    """Revisions this person submitted that QA returned to Draft, with who and why."""
    return await _queue(_RETURNED, person, limit)


async def drafts(person: UUID, limit: int) -> RecipeQueue:
    """Drafts whose current revision this person saved (not those returned from review)."""
    return await _queue(_DRAFTS, person, limit)


async def recently_effective(days: int, limit: int) -> RecipeQueue:
    """Recipes whose effective revision came into force in the last ``days`` days."""
    return await _queue(_RECENTLY_EFFECTIVE, days, limit)
