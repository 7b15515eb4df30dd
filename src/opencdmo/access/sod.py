"""Separation of duties, as one reusable rule."""

from __future__ import annotations

from uuid import UUID

from opencdmo.errors import Forbidden

APPROVING_MEANINGS = frozenset(
    {
        "approved",
        "reviewed",
        "verified",
        "released",
        "approved for publication",
        "approved for use",
        "released for use",
        "approved for transfer",
    }
)


def check_author_may_not_approve(
    author_id: UUID | None, signer_id: UUID | None, meaning: str
) -> None:
    """The author of a record cannot sign it with an approving meaning."""
    if meaning in APPROVING_MEANINGS and author_id is not None and author_id == signer_id:
        raise Forbidden(
            f"Separation of duties: the author of this record cannot sign it as '{meaning}'."
        )
