"""Search that uses its indexes under row-level security, and vocabularies for typos.

Why the full-text index went unused: the HUB policy is a security qual, and PostgreSQL
evaluates a query's own conditions after it unless they are leakproof. ``@@`` (and ``@>``,
``&&``, ``LIKE``) are not, so they can never be index conditions of a scan under the
policy: every search read all items. Only equality (``=``, ``= ANY``) on text and uuid is
leakproof.

So the search reads each audience its own way (``hub.search``):

- public items through ``hub_public_items``: a view of the public rows only. A view reads
  its table with its owner's rights, so the policy does not filter it (it is not forced on
  the HUB tables); nothing is hidden from it either, since public items are visible to every
  tenant (the policy's first condition). The full-text and array indexes are used.
- the tenant's own private and shared items, and items shared with it, from ``hub_items``
  under the policy as before, reached by leakproof equality on indexed keys (publisher,
  ``hub_shares.shared_with``), so only the tenant's few rows are read.

Typo tolerance without pg_trgm (the embedded server ships none): vocabularies of words with
their trigrams. A query word that is not in the vocabulary is widened to the words that
share enough trigrams with it (similarity as pg_trgm computes it), then searched with the
full-text index. ``hub_search_terms`` holds the words of HUB items by audience (the nil
uuid for public items, else each tenant that may see the item), read under a policy of the
same shape; ``search_terms`` holds the words of a tenant's recipes and forks (a tenant
table). Triggers keep them; words are only added (a word that no longer occurs only widens
a query by a term that finds nothing, and it never shows). They have no unique key, so that
concurrent writers never wait for each other: duplicates are rare and read as one.

Revision ID: 0015
Revises: 0010
"""

from opencdmo.db.rls import protect_tenant_table
from opencdmo.db.script import run

revision = "0015"
down_revision = "0010"
branch_labels = None
depends_on = None

CURRENT = "nullif(current_setting('app.tenant_id', true), '')::uuid"
PUBLIC = "'00000000-0000-0000-0000-000000000000'::uuid"

FUNCTIONS = """
-- Words of a text: lower-cased runs of letters and digits, each once, in order.
CREATE FUNCTION search_words(t text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(w ORDER BY n), '{}') FROM (
        SELECT w, min(n) AS n
        FROM regexp_split_to_table(lower(coalesce(t, '')), '[^[:alnum:]]+') WITH ORDINALITY
            AS x(w, n)
        WHERE w <> '' GROUP BY w) words
$$;

-- The trigrams of a word as pg_trgm makes them: padded with two spaces before, one after.
CREATE FUNCTION search_grams(w text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_agg(DISTINCT substr('  ' || w || ' ', i, 3))
    FROM generate_series(1, length(w) + 1) AS i
$$;

-- What a text adds to a vocabulary: (gram, word, the word's number of trigrams) for words of
-- 3 to 40 characters that are not plain numbers.
CREATE FUNCTION search_vocabulary(t text)
RETURNS TABLE (gram text, word text, grams integer)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT g, w, cardinality(search_grams(w))
    FROM unnest(search_words(t)) AS w, unnest(search_grams(w)) AS g
    WHERE length(w) BETWEEN 3 AND 40 AND w !~ '^[0-9]+$'
$$;
"""

HUB = f"""
CREATE VIEW hub_public_items AS
    SELECT id, publisher_id, kind, slug, visibility, name, summary, latest_version, category,
           modalities, equipment_classes, tags, search, install_count, forked_from_version_id,
           created_at, updated_at
    FROM hub_items WHERE visibility = 'public';
GRANT SELECT ON hub_public_items TO opencdmo_app;

CREATE INDEX hub_items_restricted ON hub_items (publisher_id) WHERE visibility <> 'public';
CREATE INDEX hub_items_kind_slug ON hub_items (kind, slug);
CREATE INDEX hub_shares_with ON hub_shares (shared_with, item_id);

CREATE TABLE hub_search_terms (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    audience uuid NOT NULL,
    gram text NOT NULL,
    word text NOT NULL,
    grams integer NOT NULL
);
CREATE INDEX hub_search_terms_gram ON hub_search_terms (gram, audience, word) INCLUDE (grams);
ALTER TABLE hub_search_terms ENABLE ROW LEVEL SECURITY;
CREATE POLICY hub_search_terms_read ON hub_search_terms FOR SELECT
    USING (audience = {PUBLIC} OR audience = {CURRENT});
GRANT SELECT ON hub_search_terms TO opencdmo_app;

-- The words of an item's name, slug, summary and tags, for every audience that may see it.
CREATE FUNCTION hub_search_learn(p_item uuid) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public AS $$
    WITH item AS (
        SELECT * FROM hub_items WHERE id = p_item
    ), audiences AS (
        SELECT CASE WHEN visibility = 'public' THEN {PUBLIC} ELSE publisher_id END AS audience
        FROM item
        UNION
        SELECT s.shared_with FROM hub_shares s, item
        WHERE s.item_id = p_item AND item.visibility = 'shared'
    ), terms AS (
        SELECT DISTINCT a.audience, v.gram, v.word, v.grams
        FROM item, audiences a,
             search_vocabulary(item.name || ' ' || item.slug || ' ' || item.summary || ' '
                               || array_to_string(item.tags, ' ')) v
    )
    INSERT INTO hub_search_terms (audience, gram, word, grams)
    SELECT audience, gram, word, grams FROM terms t
    WHERE NOT EXISTS (SELECT 1 FROM hub_search_terms h WHERE h.gram = t.gram
                      AND h.audience = t.audience AND h.word = t.word)
$$;
REVOKE ALL ON FUNCTION hub_search_learn(uuid) FROM PUBLIC;

CREATE FUNCTION hub_items_learn() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
    PERFORM hub_search_learn(NEW.id);
    RETURN NULL;
END $$;
CREATE FUNCTION hub_shares_learn() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
    PERFORM hub_search_learn(NEW.item_id);
    RETURN NULL;
END $$;
CREATE TRIGGER hub_items_learn_new AFTER INSERT ON hub_items
    FOR EACH ROW EXECUTE FUNCTION hub_items_learn();
CREATE TRIGGER hub_items_learn_change AFTER UPDATE ON hub_items FOR EACH ROW
    WHEN ((OLD.name, OLD.slug, OLD.summary, OLD.tags, OLD.visibility)
          IS DISTINCT FROM (NEW.name, NEW.slug, NEW.summary, NEW.tags, NEW.visibility))
    EXECUTE FUNCTION hub_items_learn();
CREATE TRIGGER hub_shares_learn AFTER INSERT ON hub_shares
    FOR EACH ROW EXECUTE FUNCTION hub_shares_learn();

SELECT hub_search_learn(id) FROM hub_items;
"""

TENANT = """
CREATE TABLE search_terms (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    id bigint GENERATED ALWAYS AS IDENTITY,
    gram text NOT NULL,
    word text NOT NULL,
    grams integer NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX search_terms_gram ON search_terms (tenant_id, gram, word) INCLUDE (grams);

-- Runs as the writer, under the tenant policy: a tenant adds words to its own vocabulary only.
CREATE FUNCTION search_learn(p_tenant uuid, p_text text) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO search_terms (tenant_id, gram, word, grams)
    SELECT DISTINCT p_tenant, v.gram, v.word, v.grams FROM search_vocabulary(p_text) v
    WHERE NOT EXISTS (SELECT 1 FROM search_terms s WHERE s.tenant_id = p_tenant
                      AND s.gram = v.gram AND s.word = v.word)
$$;

CREATE FUNCTION master_recipes_learn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM search_learn(NEW.tenant_id, NEW.name || ' ' || NEW.product);
    RETURN NULL;
END $$;
CREATE TRIGGER master_recipes_learn_new AFTER INSERT ON master_recipes
    FOR EACH ROW EXECUTE FUNCTION master_recipes_learn();
CREATE TRIGGER master_recipes_learn_change AFTER UPDATE OF name, product ON master_recipes
    FOR EACH ROW WHEN ((OLD.name, OLD.product) IS DISTINCT FROM (NEW.name, NEW.product))
    EXECUTE FUNCTION master_recipes_learn();

-- Installed copies carry their HUB item's name (already in the HUB vocabulary); forks can be
-- renamed.
CREATE FUNCTION library_items_learn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM search_learn(NEW.tenant_id, NEW.name || ' ' || NEW.slug);
    RETURN NULL;
END $$;
CREATE TRIGGER library_items_learn_new AFTER INSERT ON library_items
    FOR EACH ROW WHEN (NEW.source = 'forked') EXECUTE FUNCTION library_items_learn();
CREATE TRIGGER library_items_learn_change AFTER UPDATE OF name, slug ON library_items
    FOR EACH ROW WHEN ((OLD.name, OLD.slug) IS DISTINCT FROM (NEW.name, NEW.slug))
    EXECUTE FUNCTION library_items_learn();
"""

# Every tenant's existing recipes and forks, each in its tenant's setting (the tables' policy
# is forced, for the owner too).
BACKFILL = """
DO $$
DECLARE t uuid;
BEGIN
    FOR t IN SELECT id FROM tenants LOOP
        PERFORM set_config('app.tenant_id', t::text, true);
        PERFORM search_learn(t, r.name || ' ' || r.product) FROM master_recipes r;
        PERFORM search_learn(t, l.name || ' ' || l.slug) FROM library_items l
            WHERE l.source = 'forked';
    END LOOP;
    PERFORM set_config('app.tenant_id', '', true);
END $$;
"""


def upgrade() -> None:
    run(FUNCTIONS)
    run(HUB)
    run(TENANT)
    run(protect_tenant_table("search_terms", "SELECT, INSERT"))
    run(BACKFILL)


def downgrade() -> None:
    run("""
DROP TRIGGER library_items_learn_new ON library_items;
DROP TRIGGER library_items_learn_change ON library_items;
DROP TRIGGER master_recipes_learn_new ON master_recipes;
DROP TRIGGER master_recipes_learn_change ON master_recipes;
DROP TRIGGER hub_items_learn_new ON hub_items;
DROP TRIGGER hub_items_learn_change ON hub_items;
DROP TRIGGER hub_shares_learn ON hub_shares;
DROP FUNCTION library_items_learn(), master_recipes_learn(), search_learn(uuid, text),
    hub_items_learn(), hub_shares_learn(), hub_search_learn(uuid);
DROP TABLE search_terms, hub_search_terms;
DROP VIEW hub_public_items;
DROP INDEX hub_items_restricted, hub_items_kind_slug, hub_shares_with;
DROP FUNCTION search_vocabulary(text), search_grams(text), search_words(text);
""")
