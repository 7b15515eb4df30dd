"""Partners: relationships between a sponsor tenant and a CDMO tenant of this installation,
and the sponsor's read-only view of the batches the CDMO makes for it.

``partner_links``: each relationship is held twice, one row in each tenant (same id), so that
each tenant reads its own side under its own row-level security policy, like every other
tenant table. A command changes both rows and writes one audit event in each tenant's chain,
in one transaction: it locks the sponsor's row first, then the CDMO's (one order for every
command, so two at once serialise instead of deadlocking), and writes the other tenant's row
and event with the transaction's tenant setting switched to that tenant for those statements
only (``partners.crossing``): the app role stays under row-level security throughout, and
the other tenant's rows are written under that tenant's own policy. At most one open
(proposed or active) relationship per pair: a partial unique index on each side.

``batches.sponsor_tenant_id``: the sponsor tenant a batch is made for, set when the batch is
created for the sponsor of an active relationship (the ``sponsor`` text stays what the CDMO
calls its client). A column on the batch rather than a list of sponsor strings on the
relationship: it is fixed, audited with the batch's creation, and cannot pull in another
client's batches when a string is edited.

``sponsor_batches()``: the one way a sponsor reads another tenant's batches. A SECURITY
DEFINER function that returns, for the calling tenant (the transaction's tenant setting) and
only for its active relationships (active on both sides), the listed columns of the batches
made for it: number, recipe name, status, current step, open exception and deviation counts,
the release decision, and whether the CDMO shares the batch record. It reads each CDMO's rows
with the tenant setting switched to that CDMO inside the function (so it works whatever role
owns it, row-level security being forced on the owner too) and restores it before it
returns. Nothing else of the CDMO is reachable; a revoked relationship returns nothing.

Revision ID: 0033
Revises: 0032
"""

from opencdmo.db.rls import protect_tenant_table
from opencdmo.db.script import run

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE partner_links (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    id uuid NOT NULL,
    partner_tenant_id uuid NOT NULL REFERENCES tenants (id),
    side text NOT NULL CHECK (side IN ('sponsor', 'cdmo')),
    status text NOT NULL DEFAULT 'proposed'
        CHECK (status IN ('proposed', 'active', 'declined', 'revoked')),
    proposed_by_tenant_id uuid NOT NULL REFERENCES tenants (id),
    proposed_by uuid REFERENCES users (id),
    proposed_by_name text NOT NULL CHECK (length(proposed_by_name) <= 400),
    proposed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    message text NOT NULL DEFAULT '' CHECK (length(message) <= 2000),
    share_batch_records boolean NOT NULL DEFAULT true,
    decided_by_name text CHECK (length(decided_by_name) <= 400),
    decided_at timestamptz,
    closed_by_tenant_id uuid REFERENCES tenants (id),
    closed_by_name text CHECK (length(closed_by_name) <= 400),
    closed_at timestamptz,
    reason text CHECK (length(reason) <= 2000),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    CHECK (partner_tenant_id <> tenant_id),
    CHECK (proposed_by_tenant_id IN (tenant_id, partner_tenant_id)),
    CHECK ((status = 'revoked') = (closed_at IS NOT NULL))
);
CREATE UNIQUE INDEX partner_links_open ON partner_links (tenant_id, partner_tenant_id)
    WHERE status IN ('proposed', 'active');
CREATE INDEX partner_links_partner ON partner_links (tenant_id, status, partner_tenant_id);

ALTER TABLE batches ADD COLUMN sponsor_tenant_id uuid REFERENCES tenants (id);
CREATE INDEX batches_sponsor_tenant ON batches (tenant_id, sponsor_tenant_id)
    WHERE sponsor_tenant_id IS NOT NULL;
"""

PROJECTION = """
-- The sponsor's view (see the module): the calling tenant's active relationships' CDMOs'
-- batches made for it, these columns only.
CREATE FUNCTION sponsor_batches() RETURNS TABLE (
    cdmo_tenant_id uuid,
    cdmo_name text,
    batch_id uuid,
    number text,
    recipe text,
    status text,
    current_step text,
    open_exceptions integer,
    open_deviations integer,
    decision text,
    decided_at timestamptz,
    planned_start timestamptz,
    record_shared boolean
)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    me uuid := nullif(current_setting('app.tenant_id', true), '')::uuid;
    links uuid[];
    cdmos uuid[];
    names text[];
BEGIN
    IF me IS NULL THEN
        RETURN;
    END IF;
    -- read whole before the setting changes (a cursor would read its later rows as another)
    SELECT array_agg(l.id ORDER BY t.name), array_agg(l.partner_tenant_id ORDER BY t.name),
           array_agg(t.name ORDER BY t.name)
    INTO links, cdmos, names
    FROM partner_links l JOIN tenants t ON t.id = l.partner_tenant_id
    WHERE l.tenant_id = me AND l.side = 'sponsor' AND l.status = 'active';
    FOR i IN 1 .. coalesce(array_length(links, 1), 0) LOOP
        PERFORM set_config('app.tenant_id', cdmos[i]::text, true);
        RETURN QUERY
        SELECT cdmos[i], names[i], b.id, b.number,
               coalesce(c.document -> 'recipe' ->> 'name', ''), b.status,
               (SELECT p.step FROM batch_phases p WHERE p.tenant_id = b.tenant_id
                  AND p.batch_id = b.id AND p.status NOT IN ('stopped', 'aborted', 'complete')
                ORDER BY (p.status = 'running') DESC, p.position LIMIT 1),
               (SELECT count(*)::integer FROM batch_exceptions e WHERE e.tenant_id = b.tenant_id
                  AND e.batch_id = b.id AND e.disposition IS NULL),
               (SELECT count(*)::integer FROM deviations d WHERE d.tenant_id = b.tenant_id
                  AND d.batch_id = b.id AND d.status <> 'closed'),
               CASE b.disposition WHEN 'released' THEN 'released'
                    WHEN 'rejected' THEN 'rejected' ELSE 'pending' END,
               b.dispositioned_at, b.planned_start, cdmo.share_batch_records
        FROM partner_links cdmo
        JOIN batches b ON b.tenant_id = cdmo.tenant_id AND b.sponsor_tenant_id = me
        LEFT JOIN control_recipes c ON c.tenant_id = b.tenant_id AND c.batch_id = b.id
        WHERE cdmo.tenant_id = cdmos[i] AND cdmo.id = links[i]
          AND cdmo.partner_tenant_id = me AND cdmo.side = 'cdmo' AND cdmo.status = 'active'
        ORDER BY b.planned_start DESC, b.number;
        PERFORM set_config('app.tenant_id', me::text, true);
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION sponsor_batches() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sponsor_batches() TO opencdmo_app;
"""


def upgrade() -> None:
    run(TABLES)
    run(
        protect_tenant_table(
            "partner_links",
            "SELECT, INSERT, UPDATE (status, share_batch_records, decided_by_name, decided_at,"
            " closed_by_tenant_id, closed_by_name, closed_at, reason, updated_at)",
        )
    )
    run(PROJECTION)


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
