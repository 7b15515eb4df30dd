"""Partner tables: one ``partner_links`` row per side of a relationship (see migration 0033)."""

from __future__ import annotations

from piccolo.columns import UUID, Boolean, Text, Timestamptz
from piccolo.table import Table

from opencdmo.db.clock import DatabaseTime


class PartnerLink(Table, tablename="partner_links"):
    tenant_id = UUID()
    id = UUID(primary_key=True)
    partner_tenant_id = UUID()
    side = Text()
    status = Text(default="proposed")
    proposed_by_tenant_id = UUID()
    proposed_by = UUID(null=True, default=None)
    proposed_by_name = Text()
    proposed_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
    message = Text(default="")
    share_batch_records = Boolean(default=True)
    decided_by_name = Text(null=True, default=None)
    decided_at = Timestamptz(null=True, default=None)
    closed_by_tenant_id = UUID(null=True, default=None)
    closed_by_name = Text(null=True, default=None)
    closed_at = Timestamptz(null=True, default=None)
    reason = Text(null=True, default=None)
    updated_at = Timestamptz(default=DatabaseTime("clock_timestamp()"))
