"""Tell the app's processes when what an API token lookup depends on changes.

Statement-level triggers send ``NOTIFY opencdmo_auth`` (delivered on commit) when a token is
revoked or deleted, a user is disabled or renamed, a membership or role assignment changes,
a tenant is renamed or its policy changes, or a site changes: the processes drop their
cached token lookups (``opencdmo.webapp.authcache``).

Revision ID: 0007
Revises: 0006
"""

from opencdmo.db.script import run

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

WATCHED = {
    "api_tokens": "UPDATE OF revoked_at, user_id, tenant_id OR DELETE",
    "users": "UPDATE OF is_active, email, full_name OR DELETE",
    "memberships": "INSERT OR UPDATE OF is_active, user_id OR DELETE",
    "role_assignments": "INSERT OR UPDATE OR DELETE",
    "tenants": "UPDATE OF slug, name, kind, policy_version OR DELETE",
    "sites": "INSERT OR UPDATE OR DELETE",
}


def upgrade() -> None:
    run("""
CREATE FUNCTION app_auth_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('opencdmo_auth', TG_TABLE_NAME);
    RETURN NULL;
END $$;
""")
    for table, events in WATCHED.items():
        run(
            f"CREATE TRIGGER {table}_auth_changed AFTER {events} ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION app_auth_changed()"
        )


def downgrade() -> None:
    for table in WATCHED:
        run(f"DROP TRIGGER {table}_auth_changed ON {table}")
    run("DROP FUNCTION app_auth_changed()")
