"""The Piccolo tables of identity, audit and signatures declare exactly the migrated columns:
every column of the table and no other, each with its type (array elements and the key a
foreign key refers to included) and nullability, and a primary key that is part of the
table's. A table added to one of these ``tables.py`` modules is covered automatically."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from piccolo.columns import (
    JSON,
    JSONB,
    UUID,
    Array,
    BigInt,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    Text,
    Timestamptz,
)
from piccolo.table import Table

from opencdmo.db.engine import discover_tables

MODULES = ("opencdmo.identity.tables", "opencdmo.audit.tables", "opencdmo.signatures.tables")
TABLES = [t for t in discover_tables() if t.__module__ in MODULES]

# PostgreSQL's name (information_schema.columns.udt_name) of each Piccolo column type.
UDT = {
    UUID: "uuid",
    Text: "text",
    Boolean: "bool",
    Timestamptz: "timestamptz",
    BigInt: "int8",
    Integer: "int4",
    JSON: "json",
    JSONB: "jsonb",
}

Shape = dict[str, tuple[str, bool]]  # column -> (type, nullable)


def _type(column: Column) -> str:
    if isinstance(column, ForeignKey):
        return _type(column._foreign_key_meta.resolved_target_column)
    if isinstance(column, Array):
        return "_" + _type(column.base_column)
    return UDT[type(column)]


def declared(table: type[Table]) -> Shape:
    return {c._meta.db_column_name: (_type(c), c._meta.null) for c in table._meta.columns}


async def migrated(owner: asyncpg.Connection, name: str) -> Shape:
    rows = await owner.fetch(
        "SELECT column_name, udt_name, is_nullable FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = $1",
        name,
    )
    return {r["column_name"]: (r["udt_name"], r["is_nullable"] == "YES") for r in rows}


def drift(model: Shape, schema: Shape) -> list[str]:
    """Every difference between the declared and the migrated columns, in words."""
    found = [f"{name}: not in the database" for name in sorted(model.keys() - schema.keys())]
    found += [f"{name}: not declared" for name in sorted(schema.keys() - model.keys())]
    for name in sorted(model.keys() & schema.keys()):
        (want_type, want_null), (has_type, has_null) = model[name], schema[name]
        if want_type != has_type:
            found.append(f"{name}: declared {want_type}, the database has {has_type}")
        if want_null != has_null:
            found.append(f"{name}: declared null={want_null}, the database has null={has_null}")
    return found


def test_the_contexts_declare_their_tables() -> None:
    assert {t._meta.tablename for t in TABLES} == {
        "users",
        "sessions",
        "login_failures",
        "api_tokens",
        "audit_heads",
        "audit_events",
        "security_head",
        "security_events",
        "signatures",
    }


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t._meta.tablename)
async def test_table_declares_the_migrated_columns(
    owner: asyncpg.Connection, table: type[Table]
) -> None:
    schema = await migrated(owner, table._meta.tablename)
    assert schema, f"{table._meta.tablename} is not in the migrated schema"
    assert drift(declared(table), schema) == []


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t._meta.tablename)
async def test_primary_key_is_part_of_the_tables(
    owner: asyncpg.Connection, table: type[Table]
) -> None:
    keys = await owner.fetchval(
        "SELECT array_agg(a.attname) FROM pg_constraint c "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey) "
        "WHERE c.conrelid = $1::regclass AND c.contype = 'p'",
        table._meta.tablename,
    )
    assert table._meta.primary_key._meta.db_column_name in keys


class _Drifted(Table, tablename="sessions"):
    """A declaration of sessions that drifted: a column gone, one renamed, one nullable, and
    an array of the wrong element type."""

    id = UUID(primary_key=True)
    token_hash = Text(unique=True, null=True)
    user = UUID()
    created_at = Timestamptz()
    last_seen_at = Timestamptz()
    expires_at = Timestamptz()
    address = Text(null=True)
    user_agent = Text(null=True)
    ended_at = Timestamptz(null=True)
    end_reason = Text(null=True)
    tenants_entered = Array(Text())


async def test_the_check_names_each_drift(owner: asyncpg.Connection) -> None:
    found: list[Any] = drift(declared(_Drifted), await migrated(owner, "sessions"))
    assert found == [
        "user: not in the database",
        "user_id: not declared",
        "tenants_entered: declared _text, the database has _uuid",
        "token_hash: declared null=True, the database has null=False",
    ]
