"""Keyed audit chain, sealed after commit: events are written unchained in the command's
transaction (carrying their own MAC) and chained per tenant in commit order right after, so
a tenant's writers never wait on the chain head for the length of their transactions.

Existing events keep their unkeyed algorithm (``sha256``) and still verify as the prefix of
each chain; ``opencdmo db upgrade`` anchors them with a keyed event.

Revision ID: 0010
Revises: 0011
"""

from opencdmo.db.script import run

revision = "0010"
down_revision = "0011"
branch_labels = None
depends_on = None

EVENTS = """
ALTER TABLE audit_events ADD COLUMN algorithm text NOT NULL DEFAULT 'sha256';
ALTER TABLE audit_events ALTER COLUMN algorithm SET DEFAULT 'hmac-sha256';
ALTER TABLE audit_events
    ADD COLUMN entry bigint GENERATED ALWAYS AS IDENTITY,
    ADD COLUMN key_id text,
    ADD COLUMN mac text,
    ALTER COLUMN seq DROP NOT NULL,
    ALTER COLUMN prev_hash DROP NOT NULL,
    ALTER COLUMN hash DROP NOT NULL,
    ADD CONSTRAINT audit_events_algorithm CHECK (algorithm IN ('sha256', 'hmac-sha256')),
    ADD CONSTRAINT audit_events_sealed_whole
        CHECK ((seq IS NULL) = (hash IS NULL) AND (seq IS NULL) = (prev_hash IS NULL)),
    ADD CONSTRAINT audit_events_keyed_whole
        CHECK (algorithm = 'sha256' OR (key_id IS NOT NULL AND mac IS NOT NULL));
CREATE INDEX audit_events_unsealed ON audit_events (tenant_id, entry) WHERE seq IS NULL;

-- Sealing sets seq, prev_hash and hash once, from NULL; every other change is refused, for
-- the owner too (as before: no UPDATE, DELETE or TRUNCATE).
CREATE FUNCTION audit_seal_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.seq IS NULL AND NEW.seq IS NOT NULL
       AND to_jsonb(NEW) - ARRAY['seq', 'prev_hash', 'hash']
           = to_jsonb(OLD) - ARRAY['seq', 'prev_hash', 'hash'] THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
DROP TRIGGER audit_events_append_only ON audit_events;
CREATE TRIGGER audit_events_append_only BEFORE DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER audit_events_seal_once BEFORE UPDATE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_seal_once();
GRANT UPDATE (seq, prev_hash, hash) ON audit_events TO opencdmo_app;

ALTER TABLE security_events ADD COLUMN algorithm text NOT NULL DEFAULT 'sha256';
ALTER TABLE security_events ALTER COLUMN algorithm SET DEFAULT 'hmac-sha256';
ALTER TABLE security_events
    ADD COLUMN key_id text,
    ADD CONSTRAINT security_events_algorithm CHECK (algorithm IN ('sha256', 'hmac-sha256')),
    ADD CONSTRAINT security_events_keyed_whole CHECK (algorithm = 'sha256' OR key_id IS NOT NULL);
"""

# Every tenant's chain head and unsealed events, read under each tenant's row-level security in
# one call (the sweep and the checkpoints); the function runs with the caller's rights.
HEADS = """
CREATE FUNCTION audit_chain_heads()
RETURNS TABLE (tenant_id uuid, slug text, last_seq bigint, last_hash text, unsealed bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    t record;
BEGIN
    FOR t IN SELECT tenants.id, tenants.slug FROM tenants ORDER BY tenants.slug LOOP
        PERFORM set_config('app.tenant_id', t.id::text, true);
        RETURN QUERY
            SELECT h.tenant_id, t.slug, h.last_seq, h.last_hash,
                   (SELECT count(*) FROM audit_events e
                     WHERE e.tenant_id = t.id AND e.seq IS NULL)
            FROM audit_heads h WHERE h.tenant_id = t.id;
    END LOOP;
    PERFORM set_config('app.tenant_id', '', true);
END $$;
GRANT EXECUTE ON FUNCTION audit_chain_heads() TO opencdmo_app;
"""


def upgrade() -> None:
    run(EVENTS)
    run(HEADS)


def downgrade() -> None:
    raise NotImplementedError("GMP data is never dropped by a downgrade")
