"""infra/citus/distribute.sql against the catalogue of the real migrations: every table is
named once and in the right list (a tenant table distributed by tenant_id, every other table a
reference table or kept on the coordinator), and nothing in the schema is what Citus refuses
of a distributed table (a primary key or unique index without the distribution column, a
foreign key to another distributed table without it)."""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg

SQL = Path(__file__).parents[2] / "infra" / "citus" / "distribute.sql"
CALL = re.compile(
    r"SELECT (create_distributed_table|create_reference_table|citus_add_local_table_to_metadata)"
    r"\('([a-z_0-9]+)'(?:, '([a-z_]+)')?"
)
PLAIN_LOCAL = {"alembic_version"}  # said in the file's comments, left as it is

TABLES = """
SELECT c.relname AS name,
       EXISTS (SELECT 1 FROM pg_attribute a
               WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
           AS tenant
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
"""
# Unique indexes (primary keys included) of the given tables without tenant_id.
UNIQUE_WITHOUT_TENANT = """
SELECT c.relname || ': ' || i.relname
FROM pg_index x
JOIN pg_class c ON c.oid = x.indrelid
JOIN pg_class i ON i.oid = x.indexrelid
WHERE c.relname = ANY($1::text[]) AND c.relnamespace = 'public'::regnamespace AND x.indisunique
  AND NOT EXISTS (SELECT 1 FROM pg_attribute a
                  WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
                    AND a.attnum = ANY(x.indkey::int2[]))
"""
# Foreign keys between distributed tables that do not carry tenant_id.
FOREIGN_WITHOUT_TENANT = """
SELECT c.relname || ': ' || con.conname
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_class r ON r.oid = con.confrelid
WHERE con.contype = 'f' AND c.relname = ANY($1::text[]) AND r.relname = ANY($1::text[])
  AND NOT EXISTS (SELECT 1 FROM pg_attribute a
                  WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
                    AND a.attnum = ANY(con.conkey))
"""


def _named() -> dict[str, list[tuple[str, str | None]]]:
    found: dict[str, list[tuple[str, str | None]]] = {}
    for call, table, column in CALL.findall(SQL.read_text()):
        found.setdefault(table, []).append((call, column or None))
    return found


async def test_every_table_is_distributed_referenced_or_kept_on_the_coordinator(
    owner: asyncpg.Connection,
) -> None:
    tables = {r["name"]: r["tenant"] for r in await owner.fetch(TABLES)}
    named = _named()
    twice = sorted(t for t, calls in named.items() if len(calls) > 1)
    assert twice == [], f"named more than once in distribute.sql: {twice}"
    unknown = sorted(set(named) - set(tables))
    assert unknown == [], f"distribute.sql names tables the schema does not have: {unknown}"
    missing = sorted(set(tables) - set(named) - PLAIN_LOCAL)
    assert missing == [], f"tables distribute.sql does not cover: {missing}"
    wrong = sorted(
        t
        for t, ((call, column),) in named.items()
        if tables[t] != (call == "create_distributed_table")
        or (tables[t] and column != "tenant_id")
    )
    assert wrong == [], (
        f"tenant tables must be distributed by tenant_id and no other table may be: {wrong}"
    )


async def test_distributed_tables_have_nothing_citus_refuses(owner: asyncpg.Connection) -> None:
    distributed = [t for t, ((call, _),) in _named().items() if call == "create_distributed_table"]
    assert "batch_entries" in distributed and "audit_events" in distributed
    assert await owner.fetch(UNIQUE_WITHOUT_TENANT, distributed) == []
    assert await owner.fetch(FOREIGN_WITHOUT_TENANT, distributed) == []
