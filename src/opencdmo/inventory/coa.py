"""A lot's certificate of analysis (CoA): the files accepted (a PDF, PNG or JPEG, by their
bytes), the rules for attaching or replacing one, and what the audit trail records of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from opencdmo.errors import Conflict, ValidationFailed
from opencdmo.inventory.queries import LotRow
from opencdmo.storage.queries import StoredFileRow
from opencdmo.storage.uploads import JPEG, PDF, PNG, Upload, accept, sniff

COA_KINDS = (PDF, PNG, JPEG)
# Lots whose CoA may be attached or replaced (as shown: an expired lot may not).
OPEN = ("quarantine", "on_hold")


@dataclass(frozen=True)
class CoaView:
    file: StoredFileRow
    uploaded_by_name: str


def accept_coa(
    filename: str, declared_type: str, data: bytes, max_bytes: int, field: str = "coa"
) -> Upload:
    """The uploaded CoA, or a 422 saying what is wrong with it (empty, too big, not a PDF,
    PNG or JPEG by its bytes, or declared as something else)."""
    return accept(filename, declared_type, data, max_bytes=max_bytes, kinds=COA_KINDS, field=field)


def check_kind(upload: Upload, field: str = "coa") -> None:
    """The service's own check of an upload the edge accepted: its bytes are a CoA's kind."""
    kind = sniff(upload.data, COA_KINDS)
    if not upload.data or kind is None or kind.content_type != upload.content_type:
        raise ValidationFailed(
            f"{field}: a certificate of analysis is a PDF, PNG or JPEG file.",
            details={"field": field},
        )


def check_replacement(row: LotRow, reason: str, replaces: UUID | None) -> None:
    """A lot with a CoA gets another only as a replacement of the one the person saw, with
    a reason: a first attachment that finds one there already (someone was quicker) is a
    409, as is a replacement of a CoA that has been replaced since."""
    current = row.coa_file_id
    if current is None:
        if replaces is not None:
            raise Conflict(
                f"Lot {row.lot_number} has no certificate of analysis to replace; reload the "
                "lot and attach one.",
                details={"coa_file_id": None},
            )
        return
    if replaces is None:
        raise Conflict(
            f"Lot {row.lot_number} has a certificate of analysis already (attached meanwhile?): "
            "replacing it needs a reason and the file it replaces. Reload the lot to see it.",
            details={"coa_file_id": str(current)},
        )
    if replaces != current:
        raise Conflict(
            f"The certificate of analysis of lot {row.lot_number} was replaced since you "
            "loaded it; reload the lot to see the current one before replacing it.",
            details={"coa_file_id": str(current)},
        )
    if not reason:
        raise ValidationFailed(
            "A reason is required to replace a certificate of analysis.",
            details={"field": "reason"},
        )


def audit_values(stored: StoredFileRow) -> dict[str, Any]:
    """The CoA as the audit trail keeps it: the stored file's id, SHA-256, size, type, name."""
    return {
        "file_id": str(stored.id),
        "sha256": stored.sha256,
        "size_bytes": stored.size_bytes,
        "content_type": stored.content_type,
        "filename": stored.filename,
    }
