"""The catalogue lint (ARCHITECTURE.md section 3) and the Piccolo tables against the schema.

Both read the live catalogue, so a table added by a later migration is covered automatically.
"""

from __future__ import annotations

import asyncpg
import pytest
from piccolo.columns import (
    JSON,
    JSONB,
    UUID,
    BigInt,
    Boolean,
    Integer,
    Text,
    Timestamptz,
)
from piccolo.table import Table

from opencdmo.db.engine import discover_tables

EXPECTED_EXPR = (
    "(tenant_id = (NULLIF(current_setting('app.tenant_id'::text, true), ''::text))::uuid)"
)


async def _tenant_tables(owner: asyncpg.Connection) -> list[str]:
    rows = await owner.fetch(
        "SELECT c.table_name FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_schema, table_name) "
        "WHERE c.table_schema = 'public' AND c.column_name = 'tenant_id' "
        "AND t.table_type = 'BASE TABLE' ORDER BY 1"
    )
    return [r["table_name"] for r in rows]


async def test_there_are_tenant_tables(owner: asyncpg.Connection) -> None:
    tables = await _tenant_tables(owner)
    assert {"memberships", "audit_events", "signatures", "api_tokens"} <= set(tables)


async def test_every_tenant_table_has_forced_rls_and_one_complete_policy(
    owner: asyncpg.Connection,
) -> None:
    problems = []
    for table in await _tenant_tables(owner):
        rls = await owner.fetchrow(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = $1::regclass",
            table,
        )
        if not (rls["relrowsecurity"] and rls["relforcerowsecurity"]):
            problems.append(f"{table}: RLS not enabled and forced")
        policies = await owner.fetch(
            "SELECT cmd, permissive, qual, with_check FROM pg_policies WHERE tablename = $1", table
        )
        if len(policies) != 1:
            problems.append(f"{table}: {len(policies)} policies, expected exactly one")
            continue
        policy = policies[0]
        if policy["cmd"] != "ALL" or policy["permissive"] != "PERMISSIVE":
            problems.append(f"{table}: policy must be a permissive policy FOR ALL")
        if policy["qual"] != EXPECTED_EXPR or policy["with_check"] != EXPECTED_EXPR:
            problems.append(f"{table}: policy USING/WITH CHECK is not the tenant expression")
    assert not problems, "\n".join(problems)


async def test_keys_and_foreign_keys_include_tenant_id(owner: asyncpg.Connection) -> None:
    tenant_tables = set(await _tenant_tables(owner))
    problems = []
    rows = await owner.fetch(
        "SELECT conrelid::regclass::text AS tbl, contype, conname, confrelid::regclass::text AS ref,"
        " (SELECT array_agg(a.attname ORDER BY k.ord) FROM unnest(conkey) WITH ORDINALITY k(num, ord)"
        "  JOIN pg_attribute a ON a.attrelid = conrelid AND a.attnum = k.num) AS cols "
        "FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND contype IN ('p','u','f')"
    )
    for row in rows:
        if row["tbl"] not in tenant_tables:
            continue
        cols = list(row["cols"])
        if row["contype"] == "p" and cols[0] != "tenant_id":
            problems.append(f"{row['tbl']}: primary key {cols} does not start with tenant_id")
        if (
            row["contype"] == "p"
            and "id" in await _columns(owner, row["tbl"])
            and cols != ["tenant_id", "id"]
        ):
            problems.append(f"{row['tbl']}: primary key must be (tenant_id, id), is {cols}")
        if row["contype"] == "u" and "tenant_id" not in cols:
            problems.append(f"{row['tbl']}: unique {row['conname']} {cols} lacks tenant_id")
        if row["contype"] == "f" and row["ref"] in tenant_tables and "tenant_id" not in cols:
            problems.append(f"{row['tbl']}: foreign key {row['conname']} lacks tenant_id")
    # Global tables never point at tenant tables.
    for row in rows:
        if (
            row["contype"] == "f"
            and row["tbl"] not in tenant_tables
            and row["ref"] in tenant_tables
        ):
            problems.append(f"global table {row['tbl']} points at tenant table {row['ref']}")
    assert not problems, "\n".join(problems)


async def _columns(owner: asyncpg.Connection, table: str) -> set[str]:
    rows = await owner.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = $1", table
    )
    return {r["column_name"] for r in rows}


async def test_app_role_is_unprivileged_and_owns_nothing(owner: asyncpg.Connection) -> None:
    role = await owner.fetchrow(
        "SELECT rolsuper, rolbypassrls, rolcreatedb, rolcreaterole FROM pg_roles "
        "WHERE rolname = 'opencdmo_app'"
    )
    assert role is not None
    assert not any(role.values())
    owned = await owner.fetchval(
        "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
        "WHERE r.rolname = 'opencdmo_app'"
    )
    assert owned == 0
    truncatable = await owner.fetch(
        "SELECT table_name FROM information_schema.table_privileges "
        "WHERE grantee = 'opencdmo_app' AND privilege_type IN ('TRUNCATE', 'REFERENCES', 'TRIGGER')"
    )
    assert truncatable == []
    for table in await _tenant_tables(owner):
        owner_name = await owner.fetchval(
            "SELECT r.rolname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
            "WHERE c.oid = $1::regclass",
            table,
        )
        assert owner_name != "opencdmo_app"


async def test_audit_tables_grant_no_update_or_delete(owner: asyncpg.Connection) -> None:
    for table in ("audit_events", "signatures", "security_events"):
        privileges = {
            r["privilege_type"]
            for r in await owner.fetch(
                "SELECT privilege_type FROM information_schema.table_privileges "
                "WHERE grantee = 'opencdmo_app' AND table_name = $1",
                table,
            )
        }
        assert privileges == {"SELECT", "INSERT"}, table
    # Sealing gives an event its place in the chain once (a trigger refuses any other change).
    updatable = await owner.fetch(
        "SELECT column_name FROM information_schema.column_privileges WHERE grantee = "
        "'opencdmo_app' AND table_name = 'audit_events' AND privilege_type = 'UPDATE' ORDER BY 1"
    )
    assert [r["column_name"] for r in updatable] == ["hash", "prev_hash", "seq"]


PG_TYPES = {
    UUID: "uuid",
    Text: "text",
    Boolean: "boolean",
    Timestamptz: "timestamp with time zone",
    BigInt: "bigint",
    Integer: "integer",
    JSON: "json",
    JSONB: "jsonb",
}


@pytest.mark.parametrize("table", discover_tables(), ids=lambda t: t._meta.tablename)
async def test_piccolo_foreign_keys_are_foreign_keys_in_the_schema(
    owner: asyncpg.Connection, table: type[Table]
) -> None:
    """A join Piccolo makes along a foreign key follows a constraint of the schema: directly,
    or through the table a composite key refers to (api_tokens (tenant_id, user_id) refers to
    memberships, whose user_id refers to users)."""
    rows = await owner.fetch(
        "SELECT conrelid::regclass::text AS source, a.attname AS column_name, "
        "confrelid::regclass::text AS target, t.attname AS target_column "
        "FROM pg_constraint, unnest(conkey, confkey) AS k(col, ref) "
        "JOIN pg_attribute a ON true JOIN pg_attribute t ON true "
        "WHERE contype = 'f' AND a.attrelid = conrelid AND a.attnum = k.col "
        "AND t.attrelid = confrelid AND t.attnum = k.ref"
    )
    edges = {(r["source"], r["column_name"]): set() for r in rows}
    for r in rows:
        edges[(r["source"], r["column_name"])].add((r["target"], r["target_column"]))
    name = table._meta.tablename
    for column in table._meta.foreign_key_columns:
        meta = column._foreign_key_meta
        target = (
            meta.resolved_references._meta.tablename,
            meta.resolved_target_column._meta.db_column_name,
        )
        direct = edges.get((name, column._meta.db_column_name), set())
        through = set().union(*(edges.get(hop, set()) for hop in direct)) if direct else set()
        assert target in direct | through, (
            f"{name}: no foreign key {column._meta.db_column_name} -> {target}"
        )
