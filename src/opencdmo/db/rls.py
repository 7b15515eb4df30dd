"""SQL that every tenant table gets (ARCHITECTURE.md section 3). Used by migrations only.

Keep this stable: a migration that has run must produce the same SQL when read again.
"""

from __future__ import annotations

TENANT_SETTING = "nullif(current_setting('app.tenant_id', true), '')::uuid"


def protect_tenant_table(table: str, grants: str) -> str:
    """Enable and force RLS with the one tenant policy, and grant ``grants`` to the app role."""
    return f"""
ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON {table}
    USING (tenant_id = {TENANT_SETTING})
    WITH CHECK (tenant_id = {TENANT_SETTING});
GRANT {grants} ON {table} TO opencdmo_app;
"""


def append_only(table: str) -> str:
    """Refuse UPDATE, DELETE and TRUNCATE for every role, the owner and superusers included."""
    return f"""
CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
"""
