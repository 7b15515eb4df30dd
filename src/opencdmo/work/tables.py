"""The work context's table: what the notification job has mailed to whom (migration 0040)."""

from __future__ import annotations

from piccolo.columns import UUID, Text, Timestamptz
from piccolo.table import Table

from opencdmo.db.clock import DatabaseTime


class NotificationSent(Table, tablename="notifications_sent"):
    """One queue item mailed to one person: ``item`` is its key (link and since when), unique
    per tenant and person."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    user_id = UUID()
    item = Text()
    link = Text()
    sent_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
