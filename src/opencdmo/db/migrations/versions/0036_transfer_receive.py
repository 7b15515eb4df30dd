"""Receiving tech-transfer packages: a partner's inbox, uploads from other installations, the
verification on receipt, and each side's view of a package's status.

``transfer_packages`` gains the received side: the sender (tenant id when it is a tenant of
this installation, its name and the recipe's name as the manifest gives them), the
relationship it came through (none for an upload), the verification's findings, the
manifest it verified (shown on the package's page) and who verified it, and the reason a package was rejected. A received row has no ``recipe_id`` (the
sender's recipe is not the receiver's).

``transfer_sends``: each send of a package to a partner, in the sender's tenant (who, to whom,
through which relationship, when). One send per package and receiver.

``transfer_jobs``: a verification's progress (stage, bytes done of bytes in all, state),
updated in short transactions of its own while it runs, polled by the page.

``trusted_partner_keys()``: the fingerprints of the signing keys of the tenants the caller has
an active relationship with (active on both sides): a package signed by a partner's own key
verifies without a manual trust. SECURITY DEFINER, reading each partner's key with the tenant
setting switched to it (row-level security being forced on the owner too), and nothing else.

``sent_package_statuses()``: the sender's view of the receiver's status. For each send the
calling tenant recorded, the receiver's row of that package: its status, the reason of a
rejection, when it last changed. A narrow projection rather than the receiver writing back to
the sender's rows: the later steps (mapping, import) change the receiver's row only, and the
sender sees them without each of those commands having to cross into the sender's tenant.

Revision ID: 0036
Revises: 0035
"""

from opencdmo.db.rls import protect_tenant_table
from opencdmo.db.script import run

revision = "0036"
down_revision = "0035"
branch_labels = None
depends_on = None

TABLES = """
ALTER TABLE transfer_packages
    ADD COLUMN sender_tenant_id uuid REFERENCES tenants (id),
    ADD COLUMN sender_name text NOT NULL DEFAULT '' CHECK (length(sender_name) <= 400),
    ADD COLUMN recipe_name text NOT NULL DEFAULT '' CHECK (length(recipe_name) <= 400),
    ADD COLUMN partner_link_id uuid,
    ADD COLUMN findings jsonb NOT NULL DEFAULT '[]'::jsonb,
    ADD COLUMN manifest jsonb,
    ADD COLUMN status_reason text CHECK (length(status_reason) <= 4000),
    ADD COLUMN verified_by uuid REFERENCES users (id),
    ADD COLUMN status_changed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    ADD CONSTRAINT transfer_packages_received_no_recipe
        CHECK (direction <> 'received' OR recipe_id IS NULL),
    ADD CONSTRAINT transfer_packages_link
        FOREIGN KEY (tenant_id, partner_link_id) REFERENCES partner_links (tenant_id, id),
    ADD CONSTRAINT transfer_packages_rejected_reason
        CHECK ((status = 'rejected') = (status_reason IS NOT NULL));
CREATE INDEX transfer_packages_direction ON transfer_packages (tenant_id, direction, created_at);

CREATE TABLE transfer_sends (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    package_id uuid NOT NULL,
    receiver_tenant_id uuid NOT NULL REFERENCES tenants (id),
    receiver_name text NOT NULL CHECK (length(receiver_name) <= 400),
    partner_link_id uuid NOT NULL,
    sent_by uuid NOT NULL REFERENCES users (id),
    sent_by_name text NOT NULL CHECK (length(sent_by_name) <= 400),
    sent_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, package_id) REFERENCES transfer_packages (tenant_id, id),
    FOREIGN KEY (tenant_id, partner_link_id) REFERENCES partner_links (tenant_id, id),
    CHECK (receiver_tenant_id <> tenant_id)
);
CREATE UNIQUE INDEX transfer_sends_once ON transfer_sends (tenant_id, package_id, receiver_tenant_id);

CREATE TABLE transfer_jobs (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    id uuid NOT NULL,
    package_id uuid,
    stage text NOT NULL CHECK (stage IN ('upload', 'verify')),
    done_bytes bigint NOT NULL DEFAULT 0 CHECK (done_bytes >= 0),
    total_bytes bigint NOT NULL DEFAULT 0 CHECK (total_bytes >= 0),
    state text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done', 'refused', 'failed')),
    started_by uuid NOT NULL REFERENCES users (id),
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id)
);
-- One running verification per package at a time.
CREATE UNIQUE INDEX transfer_jobs_running ON transfer_jobs (tenant_id, package_id)
    WHERE state = 'running' AND package_id IS NOT NULL;
"""

PROJECTIONS = """
CREATE FUNCTION trusted_partner_keys() RETURNS TABLE (fingerprint text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    me uuid := nullif(current_setting('app.tenant_id', true), '')::uuid;
    partners uuid[];
BEGIN
    IF me IS NULL THEN
        RETURN;
    END IF;
    SELECT array_agg(l.partner_tenant_id) INTO partners
    FROM partner_links l WHERE l.tenant_id = me AND l.status = 'active';
    FOR i IN 1 .. coalesce(array_length(partners, 1), 0) LOOP
        PERFORM set_config('app.tenant_id', partners[i]::text, true);
        RETURN QUERY
        SELECT k.fingerprint FROM transfer_signing_keys k
        JOIN partner_links theirs ON theirs.tenant_id = k.tenant_id
            AND theirs.partner_tenant_id = me AND theirs.status = 'active'
        WHERE k.tenant_id = partners[i];
        PERFORM set_config('app.tenant_id', me::text, true);
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION trusted_partner_keys() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION trusted_partner_keys() TO opencdmo_app;

CREATE FUNCTION sent_package_statuses() RETURNS TABLE (
    package_id uuid,
    receiver_tenant_id uuid,
    status text,
    status_reason text,
    status_changed_at timestamptz
)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    me uuid := nullif(current_setting('app.tenant_id', true), '')::uuid;
    packages uuid[];
    receivers uuid[];
BEGIN
    IF me IS NULL THEN
        RETURN;
    END IF;
    SELECT array_agg(s.package_id), array_agg(s.receiver_tenant_id) INTO packages, receivers
    FROM transfer_sends s WHERE s.tenant_id = me;
    FOR i IN 1 .. coalesce(array_length(packages, 1), 0) LOOP
        PERFORM set_config('app.tenant_id', receivers[i]::text, true);
        RETURN QUERY
        SELECT p.id, p.tenant_id, p.status, p.status_reason, p.status_changed_at
        FROM transfer_packages p
        WHERE p.tenant_id = receivers[i] AND p.id = packages[i]
          AND p.direction = 'received' AND p.sender_tenant_id = me;
        PERFORM set_config('app.tenant_id', me::text, true);
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION sent_package_statuses() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sent_package_statuses() TO opencdmo_app;
"""


def upgrade() -> None:
    run(TABLES)
    run(
        "GRANT UPDATE (status, findings, manifest, status_reason, verified_by, status_changed_at) "
        "ON transfer_packages TO opencdmo_app;"
    )
    run(protect_tenant_table("transfer_sends", "SELECT, INSERT"))
    run(
        protect_tenant_table(
            "transfer_jobs",
            "SELECT, INSERT, UPDATE (package_id, stage, done_bytes, total_bytes, state, updated_at)",
        )
    )
    run(PROJECTIONS)


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
