"""The sponsor's projection of the batches its CDMO partners make for it (migration 0033):
read in the sponsor's own transaction, through the one function that crosses to the CDMO."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from uuid import UUID

from opencdmo.db import sql
from opencdmo.db.rows import typed


@dataclass(frozen=True)
class SponsoredBatch:
    """A batch a CDMO partner makes for this sponsor: what the CDMO shares of it."""

    cdmo_tenant_id: UUID
    cdmo_name: str
    batch_id: UUID
    number: str
    recipe: str
    status: str
    current_step: str | None
    open_exceptions: int
    open_deviations: int
    decision: str  # released, rejected or pending
    decided_at: datetime | None
    planned_start: datetime
    record_shared: bool

    @property
    def record_available(self) -> bool:
        return self.decision == "released" and self.record_shared


# Raw SQL: a set-returning function (the sponsor's shared projection, migration 0033), which
# Piccolo's query builder does not call.
_SPONSORED = f"SELECT {', '.join(f.name for f in fields(SponsoredBatch))} FROM sponsor_batches()"


async def sponsored_batches() -> list[SponsoredBatch]:
    rows = await sql.connection().fetch(_SPONSORED)
    return [typed(SponsoredBatch, r) for r in rows]
