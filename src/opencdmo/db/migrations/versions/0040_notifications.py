"""E-mail notifications of work awaiting a person.

``users.notify_by_email``: the person's choice on their account page, "E-mail me when work
awaits my action" (on unless they switch it off; nothing is mailed unless the installation
configures ``OPENCDMO_SMTP_URL``).

``notifications_sent``: what the ``work.notify`` job has mailed to whom, one row per item
(``item``: the item's link and the time it entered the queue, so a revision submitted again
is new) and person, unique per tenant, person and item: a restart or a second worker never
mails an item twice. The rows are written in the unit of work that sends the digest and
writes its ``notification.sent`` audit event; the mail goes out before that unit commits.

Revision ID: 0040
Revises: 0039
"""

from opencdmo.db.rls import protect_tenant_table
from opencdmo.db.script import run

revision = "0040"
down_revision = "0039"
branch_labels = None
depends_on = None

TABLES = """
ALTER TABLE users ADD COLUMN notify_by_email boolean NOT NULL DEFAULT true;
GRANT UPDATE (notify_by_email) ON users TO opencdmo_app;

CREATE TABLE notifications_sent (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL,
    item text NOT NULL CHECK (length(item) BETWEEN 1 AND 2100),
    link text NOT NULL CHECK (length(link) BETWEEN 1 AND 2000),
    sent_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, user_id, item),
    FOREIGN KEY (tenant_id, user_id) REFERENCES memberships (tenant_id, user_id)
);
"""


def upgrade() -> None:
    run(TABLES)
    run(protect_tenant_table("notifications_sent", "SELECT, INSERT"))


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
