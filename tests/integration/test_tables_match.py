"""Each Piccolo table against the migrated schema, so that the tables cannot drift from the
migrations: the same columns, each of the same type (array element types included) and
nullability, and the table's primary key among the key columns of the database's.

Every table Piccolo knows (``discover_tables``) is checked; ``table_mismatches`` is the check.
"""

from __future__ import annotations

import asyncpg
import pytest
from piccolo.columns import UUID, Array, Column, ForeignKey, Integer, Text
from piccolo.table import Table

from opencdmo.db.engine import discover_tables

# Columns a Piccolo table cannot declare, and why (every other column must be declared).
UNDECLARED = {
    ("hub_items", "search"): "tsvector: Piccolo has no such column type; maintained in SQL",
}


# Piccolo's column classes -> PostgreSQL's name for the type (information_schema udt_name).
UDT_NAMES = {
    "UUID": "uuid",
    "Text": "text",
    "Varchar": "varchar",
    "Boolean": "bool",
    "SmallInt": "int2",
    "Integer": "int4",
    "BigInt": "int8",
    "Serial": "int4",
    "BigSerial": "int8",
    "Real": "float4",
    "DoublePrecision": "float8",
    "Numeric": "numeric",
    "Date": "date",
    "Time": "time",
    "Timestamp": "timestamp",
    "Timestamptz": "timestamptz",
    "Interval": "interval",
    "JSON": "json",
    "JSONB": "jsonb",
    "Bytea": "bytea",
}


def udt_name(column: Column) -> str:
    """The type PostgreSQL reports for a column declared like this one."""
    if isinstance(column, Array):
        return "_" + udt_name(column.base_column)
    if isinstance(column, ForeignKey):
        return udt_name(column._foreign_key_meta.resolved_target_column)
    # The nearest Piccolo class (JSONB is a JSON, BigInt an Integer: the subclass decides).
    declared = next(c.__name__ for c in type(column).__mro__ if c.__name__ in UDT_NAMES)
    return UDT_NAMES[declared]


async def table_mismatches(owner: asyncpg.Connection, table: type[Table]) -> list[str]:
    """How the Piccolo table differs from the migrated table of its name (none: it matches)."""
    name = table._meta.tablename
    rows = await owner.fetch(
        "SELECT column_name, udt_name, is_nullable = 'YES' AS nullable "
        "FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1",
        name,
    )
    if not rows:
        return [f"{name}: no such table in the migrated schema"]
    database = {
        r["column_name"]: (r["udt_name"], r["nullable"])
        for r in rows
        if (name, r["column_name"]) not in UNDECLARED
    }
    model = {c._meta.db_column_name: (udt_name(c), c._meta.null) for c in table._meta.columns}
    problems = [f"{name}.{c}: in the database, not in the table" for c in database.keys() - model]
    problems += [f"{name}.{c}: in the table, not in the database" for c in model.keys() - database]
    for column in sorted(model.keys() & database.keys()):
        (model_type, model_null), (db_type, db_null) = model[column], database[column]
        if model_type != db_type:
            problems.append(f"{name}.{column}: type {model_type} in the table, {db_type} in it")
        if model_null != db_null:
            problems.append(
                f"{name}.{column}: {'nullable' if model_null else 'not null'} in the table, "
                f"{'nullable' if db_null else 'not null'} in the database"
            )
    key = await owner.fetchval(
        "SELECT array_agg(a.attname::text) FROM pg_index i JOIN pg_attribute a "
        "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "WHERE i.indrelid = $1::regclass AND i.indisprimary",
        f'public."{name}"',
    )
    primary = table._meta.primary_key._meta.db_column_name
    if primary not in (key or []):
        problems.append(f"{name}: primary key {primary} is not in the database's {key}")
    return sorted(problems)


@pytest.mark.parametrize("table", discover_tables(), ids=lambda t: t._meta.tablename)
async def test_table_matches_the_migrations(owner: asyncpg.Connection, table: type[Table]) -> None:
    assert await table_mismatches(owner, table) == []


class _DriftedSite(Table, tablename="sites"):
    """``sites`` as a table that drifted: a column gone, one added, one of another type, one
    nullable that is not, and a primary key the database does not have."""

    tenant_id = UUID(null=True)
    id = UUID()
    code = Integer(primary_key=True)
    name = Text()
    created_at = Text()
    region = Text()


async def test_the_check_sees_every_kind_of_drift(owner: asyncpg.Connection) -> None:
    assert await table_mismatches(owner, _DriftedSite) == [
        "sites.code: type int4 in the table, text in it",
        "sites.created_at: type text in the table, timestamptz in it",
        "sites.region: in the table, not in the database",
        "sites.tenant_id: nullable in the table, not null in the database",
        "sites.time_zone: in the database, not in the table",
        "sites: primary key code is not in the database's ['tenant_id', 'id']",
    ]
