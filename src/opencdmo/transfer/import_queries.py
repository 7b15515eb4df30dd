"""The mapping of a received package's gaps and its imports: typed rows, read and written in
the transaction open in the context (row-level security keeps them inside the tenant)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from opencdmo.db.rows import columns, typed
from opencdmo.transfer.tables import TransferImport, TransferMapping


@dataclass(frozen=True)
class MappingRow:
    id: UUID
    package_id: UUID
    gap_kind: str
    gap_ref: str
    resolution: str
    target_id: UUID | None
    target: str
    decided_by: UUID
    decided_at: datetime

    def applied(self) -> dict[str, Any]:
        """As the import records it."""
        return {
            "gap_kind": self.gap_kind,
            "ref": self.gap_ref,
            "resolution": self.resolution,
            "target_id": None if self.target_id is None else str(self.target_id),
            "target": self.target,
        }


@dataclass(frozen=True)
class ImportRow:
    id: UUID
    package_id: UUID
    recipe_id: UUID
    revision: int
    sender_tenant_id: UUID
    sender_name: str
    sender_recipe_id: UUID
    sender_revision: int
    content_hash: str
    sender_content: Any  # JSON text as stored
    mapping: Any
    imported_by: UUID
    imported_at: datetime

    @property
    def content(self) -> dict[str, Any]:
        found = self.sender_content
        decoded: dict[str, Any] = json.loads(found) if isinstance(found, str) else found
        return decoded


async def mappings(package_id: UUID) -> dict[tuple[str, str], MappingRow]:
    """The package's saved choices by (gap kind, ref)."""
    rows = await TransferMapping.select(*columns(TransferMapping, MappingRow)).where(
        TransferMapping.package_id == package_id
    )
    found = (typed(MappingRow, r) for r in rows)
    return {(m.gap_kind, m.gap_ref): m for m in found}


@dataclass(frozen=True)
class Choice:
    gap_kind: str
    gap_ref: str
    resolution: str
    target_id: UUID | None
    target: str


async def save_mapping(tenant_id: UUID, package_id: UUID, choice: Choice, by: UUID) -> None:
    """Insert the choice, or replace the one saved for that gap."""
    row = TransferMapping(
        tenant_id=tenant_id, package_id=package_id, decided_by=by, **choice.__dict__
    )
    await TransferMapping.insert(row).on_conflict(
        target=(
            TransferMapping.tenant_id,
            TransferMapping.package_id,
            TransferMapping.gap_kind,
            TransferMapping.gap_ref,
        ),
        action="DO UPDATE",
        values=[
            TransferMapping.resolution,
            TransferMapping.target_id,
            TransferMapping.target,
            TransferMapping.decided_by,
            TransferMapping.decided_at,
        ],
    )


@dataclass(frozen=True)
class NewImport:
    package_id: UUID
    recipe_id: UUID
    revision: int
    sender_tenant_id: UUID
    sender_name: str
    sender_recipe_id: UUID
    sender_revision: int
    content_hash: str
    sender_content: dict[str, Any]
    mapping: list[dict[str, Any]]


async def insert_import(tenant_id: UUID, new: NewImport, by: UUID) -> UUID:
    fields = {
        **new.__dict__,
        "sender_content": json.dumps(new.sender_content),
        "mapping": json.dumps(new.mapping),
    }
    rows = await TransferImport.insert(
        TransferImport(tenant_id=tenant_id, imported_by=by, **fields)
    ).returning(TransferImport.id)
    found: UUID = rows[0]["id"]
    return found


async def import_of(package_id: UUID) -> ImportRow | None:
    raw = await (
        TransferImport.select(*columns(TransferImport, ImportRow))
        .where(TransferImport.package_id == package_id)
        .first()
    )
    return None if raw is None else typed(ImportRow, raw)


async def last_import(sender_tenant_id: UUID, sender_recipe_id: UUID) -> ImportRow | None:
    """The last import of that sender's recipe, by any package."""
    raw = await (
        TransferImport.select(*columns(TransferImport, ImportRow))
        .where(
            (TransferImport.sender_tenant_id == sender_tenant_id)
            & (TransferImport.sender_recipe_id == sender_recipe_id)
        )
        .order_by(TransferImport.imported_at, ascending=False)
        .first()
    )
    return None if raw is None else typed(ImportRow, raw)
