"""HUB catalogue: items, immutable versions, dependencies, shares, full-text search.

The catalogue is global (no tenant_id): what a tenant may see is decided by each item's
visibility, enforced by row-level security on the current tenant setting.

Revision ID: 0002
Revises: 0001
"""

from opencdmo.db.script import run

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

CURRENT = "nullif(current_setting('app.tenant_id', true), '')::uuid"

TABLES = f"""
CREATE TABLE hub_items (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    publisher_id uuid NOT NULL REFERENCES tenants (id),
    kind text NOT NULL CHECK (kind IN ('unit_operation', 'recipe', 'method', 'material',
                                       'equipment_class')),
    slug text NOT NULL CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    visibility text NOT NULL DEFAULT 'public'
        CHECK (visibility IN ('public', 'shared', 'private')),
    name text NOT NULL,
    summary text NOT NULL,
    latest_version text,
    category text,
    modalities text[] NOT NULL DEFAULT '{{}}',
    equipment_classes text[] NOT NULL DEFAULT '{{}}',
    tags text[] NOT NULL DEFAULT '{{}}',
    search tsvector NOT NULL DEFAULT ''::tsvector,
    install_count bigint NOT NULL DEFAULT 0,
    forked_from_version_id uuid,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (publisher_id, kind, slug)
);
CREATE INDEX hub_items_search ON hub_items USING gin (search);
CREATE INDEX hub_items_modalities ON hub_items USING gin (modalities);
CREATE INDEX hub_items_equipment ON hub_items USING gin (equipment_classes);
CREATE INDEX hub_items_kind ON hub_items (kind, category);
CREATE INDEX hub_items_updated ON hub_items (updated_at DESC);

CREATE TABLE hub_versions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    item_id uuid NOT NULL REFERENCES hub_items (id),
    version text NOT NULL CHECK (version ~ '^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)$'),
    major integer NOT NULL,
    minor integer NOT NULL,
    patch integer NOT NULL,
    content jsonb NOT NULL,
    content_hash text NOT NULL CHECK (content_hash ~ '^[0-9a-f]{{64}}$'),
    changelog text NOT NULL,
    published_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    published_by uuid REFERENCES users (id),
    deprecated_message text,
    yanked_at timestamptz,
    UNIQUE (item_id, version),
    UNIQUE (item_id, major, minor, patch)
);

ALTER TABLE hub_items ADD FOREIGN KEY (forked_from_version_id) REFERENCES hub_versions (id);

CREATE TABLE hub_dependencies (
    version_id uuid NOT NULL REFERENCES hub_versions (id),
    depends_on_id uuid NOT NULL REFERENCES hub_versions (id),
    pinned boolean NOT NULL,
    PRIMARY KEY (version_id, depends_on_id)
);

CREATE TABLE hub_shares (
    item_id uuid NOT NULL REFERENCES hub_items (id),
    publisher_id uuid NOT NULL REFERENCES tenants (id),
    shared_with uuid NOT NULL REFERENCES tenants (id),
    PRIMARY KEY (item_id, shared_with)
);

-- A published version never changes: only its deprecation and yank marks may be set.
CREATE FUNCTION hub_version_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'published HUB versions are immutable: DELETE refused'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (NEW.item_id, NEW.version, NEW.content, NEW.content_hash, NEW.changelog,
        NEW.published_at, NEW.published_by)
       IS DISTINCT FROM
       (OLD.item_id, OLD.version, OLD.content, OLD.content_hash, OLD.changelog,
        OLD.published_at, OLD.published_by) THEN
        RAISE EXCEPTION 'published HUB version % is immutable', OLD.version
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER hub_versions_immutable BEFORE UPDATE OR DELETE ON hub_versions
    FOR EACH ROW EXECUTE FUNCTION hub_version_immutable();
CREATE TRIGGER hub_versions_no_truncate BEFORE TRUNCATE ON hub_versions
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER hub_dependencies_append_only BEFORE UPDATE OR DELETE ON hub_dependencies
    FOR EACH ROW EXECUTE FUNCTION refuse_change();

-- Visibility: public items to everyone; shared items to the named tenants; private items to
-- their publisher only. Writes only as the publishing tenant. RLS is enabled (not forced) on
-- these global tables: the app role is always subject to it; SECURITY DEFINER functions added
-- later (install counts) run as the owner.
ALTER TABLE hub_items ENABLE ROW LEVEL SECURITY;
CREATE POLICY hub_items_read ON hub_items FOR SELECT USING (
    visibility = 'public' OR publisher_id = {CURRENT}
    OR (visibility = 'shared' AND EXISTS (
        SELECT 1 FROM hub_shares s WHERE s.item_id = hub_items.id AND s.shared_with = {CURRENT})));
CREATE POLICY hub_items_insert ON hub_items FOR INSERT WITH CHECK (publisher_id = {CURRENT});
CREATE POLICY hub_items_update ON hub_items FOR UPDATE
    USING (publisher_id = {CURRENT}) WITH CHECK (publisher_id = {CURRENT});

ALTER TABLE hub_versions ENABLE ROW LEVEL SECURITY;
CREATE POLICY hub_versions_read ON hub_versions FOR SELECT USING (
    EXISTS (SELECT 1 FROM hub_items i WHERE i.id = item_id));
CREATE POLICY hub_versions_insert ON hub_versions FOR INSERT WITH CHECK (
    EXISTS (SELECT 1 FROM hub_items i WHERE i.id = item_id AND i.publisher_id = {CURRENT}));
CREATE POLICY hub_versions_mark ON hub_versions FOR UPDATE USING (
    EXISTS (SELECT 1 FROM hub_items i WHERE i.id = item_id AND i.publisher_id = {CURRENT}));

ALTER TABLE hub_dependencies ENABLE ROW LEVEL SECURITY;
CREATE POLICY hub_dependencies_read ON hub_dependencies FOR SELECT USING (
    EXISTS (SELECT 1 FROM hub_versions v WHERE v.id = version_id));
CREATE POLICY hub_dependencies_insert ON hub_dependencies FOR INSERT WITH CHECK (
    EXISTS (SELECT 1 FROM hub_versions v JOIN hub_items i ON i.id = v.item_id
            WHERE v.id = version_id AND i.publisher_id = {CURRENT}));

-- Shares name their publisher so that this policy need not read hub_items (whose policy
-- reads hub_shares).
ALTER TABLE hub_shares ENABLE ROW LEVEL SECURITY;
CREATE POLICY hub_shares_read ON hub_shares FOR SELECT
    USING (shared_with = {CURRENT} OR publisher_id = {CURRENT});
CREATE POLICY hub_shares_insert ON hub_shares FOR INSERT WITH CHECK (publisher_id = {CURRENT});
CREATE POLICY hub_shares_delete ON hub_shares FOR DELETE USING (publisher_id = {CURRENT});

GRANT SELECT, INSERT ON hub_items, hub_versions, hub_dependencies, hub_shares TO opencdmo_app;
GRANT UPDATE (name, summary, visibility, latest_version, category, modalities,
              equipment_classes, tags, search, updated_at)
    ON hub_items TO opencdmo_app;
GRANT UPDATE (deprecated_message, yanked_at) ON hub_versions TO opencdmo_app;
GRANT DELETE ON hub_shares TO opencdmo_app;
"""


def upgrade() -> None:
    run(TABLES)


def downgrade() -> None:
    raise NotImplementedError("published HUB content is never dropped by a downgrade")
