"""Invitations e-mailed by the job worker (``tenancy.invitation_mail``) where a mail server
is configured: each invitation's mail state (queued, sent, failed), when it was sent and why
it failed, in words, for the members page. The link's token is never stored in the clear:
the job carries it sealed (AES-GCM under a key derived from the secret key, bound to the
invitation's id).

Revision ID: 0045
Revises: 0044
"""

from __future__ import annotations

from opencdmo.db.script import run

revision = "0045"
down_revision = "0044"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run("""
ALTER TABLE invitations
    ADD COLUMN mail_state text CHECK (mail_state IN ('queued', 'sent', 'failed')),
    ADD COLUMN mailed_at timestamptz,
    ADD COLUMN mail_error text CHECK (length(mail_error) <= 2000),
    ADD CONSTRAINT invitations_mail_sent CHECK ((mail_state = 'sent') = (mailed_at IS NOT NULL));
GRANT UPDATE (mail_state, mailed_at, mail_error) ON invitations TO opencdmo_app;
""")


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
