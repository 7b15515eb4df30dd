"""infra/citus/distribute.sql against the live catalogue after the real migrations: every
table is named once (distributed by tenant_id, reference, or local-only with a reason), in an
order Citus accepts, and the keys Citus would refuse are a documented, reasoned list.

Citus itself is not on this machine: these tests check what its rules need of the schema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

SQL = Path(__file__).resolve().parents[2] / "infra" / "citus" / "distribute.sql"

# Unique keys (primary keys, unique constraints and unique indexes) of distributed tables
# that do not include tenant_id: Citus refuses them. Each needs a reason here; today none.
KEY_EXCEPTIONS: dict[str, str] = {}


@dataclass(frozen=True)
class Plan:
    distributed: list[tuple[str, str | None]]  # (table, colocate_with)
    reference: list[str]
    local: dict[str, str]  # table -> reason
    dropped: set[str]  # foreign keys dropped for the conversion (and added back)
    order: list[str]


def plan(text: str | None = None) -> Plan:
    text = SQL.read_text() if text is None else text
    distributed, reference, order = [], [], []
    pattern = re.compile(
        r"create_distributed_table\('(\w+)', 'tenant_id'(?:, colocate_with => '(\w+)')?\)"
        r"|create_reference_table\('(\w+)'\)"
    )
    for match in pattern.finditer(text):
        if match.group(1):
            distributed.append((match.group(1), match.group(2)))
            order.append(match.group(1))
        else:
            reference.append(match.group(3))
            order.append(match.group(3))
    local = dict(re.findall(r"^-- local-only: (\w+): (.+)$", text, re.MULTILINE))
    dropped = set(re.findall(r"DROP CONSTRAINT (\w+);", text))
    added = set(re.findall(r"ADD CONSTRAINT (\w+)", text))
    assert dropped == added, "every foreign key dropped for the conversion is added back"
    return Plan(distributed, reference, local, dropped, order)


async def _tables(owner: asyncpg.Connection) -> dict[str, bool]:
    """Every table of the app schema (not partitions): name -> has a tenant_id column."""
    rows = await owner.fetch(
        "SELECT c.relname, EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid "
        "AND a.attname = 'tenant_id' AND NOT a.attisdropped) AS tenant "
        "FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace "
        "AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
    )
    return {r["relname"]: r["tenant"] for r in rows}


async def _foreign_keys(owner: asyncpg.Connection) -> list[asyncpg.Record]:
    return await owner.fetch(
        "SELECT conname, conrelid::regclass::text AS source, confrelid::regclass::text AS target,"
        " confdeltype, confupdtype,"
        " (SELECT array_agg(a.attname ORDER BY k.ord) FROM unnest(conkey) WITH ORDINALITY"
        "  k(num, ord) JOIN pg_attribute a ON a.attrelid = conrelid AND a.attnum = k.num)"
        "  AS columns,"
        " (SELECT array_agg(a.attname ORDER BY k.ord) FROM unnest(confkey) WITH ORDINALITY"
        "  k(num, ord) JOIN pg_attribute a ON a.attrelid = confrelid AND a.attnum = k.num)"
        "  AS referenced "
        "FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace "
        "AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = conrelid AND c.relispartition)"
    )


def test_the_plan_reads_the_sql_forms() -> None:
    text = (
        "-- local-only: a: why\nSELECT create_reference_table('r');\n"
        "SELECT create_distributed_table('d', 'tenant_id');\n"
        "SELECT create_distributed_table('e', 'tenant_id', colocate_with => 'd');\n"
    )
    parsed = plan(text)
    assert parsed.distributed == [("d", None), ("e", "d")]
    assert parsed.reference == ["r"]
    assert parsed.local == {"a": "why"}
    assert parsed.order == ["r", "d", "e"]


async def test_every_table_is_named_once_by_its_kind(owner: asyncpg.Connection) -> None:
    tables = await _tables(owner)
    sql = plan()
    named = [t for t, _ in sql.distributed] + sql.reference + list(sql.local)
    problems = [f"{t}: named {named.count(t)} times" for t in set(named) if named.count(t) > 1]
    problems += [
        f"{t}: named in distribute.sql but no such table" for t in named if t not in tables
    ]
    distributed = {t for t, _ in sql.distributed}
    for table, tenant in sorted(tables.items()):
        if tenant and table not in distributed:
            problems.append(f"{table}: has tenant_id but is not distributed")
        if not tenant and table not in {*sql.reference, *sql.local}:
            problems.append(f"{table}: global but neither a reference table nor local-only")
        if not tenant and table in distributed:
            problems.append(f"{table}: distributed but has no tenant_id")
    problems += [f"{t}: local-only without a reason" for t, why in sql.local.items() if not why]
    assert not problems, "\n".join(problems)


async def test_partitions_follow_their_parent(owner: asyncpg.Connection) -> None:
    partitions = await owner.fetch(
        "SELECT c.relname, p.relname AS parent FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
        "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')"
    )
    assert partitions, "equipment_samples is partitioned"
    sql = plan()
    distributed = {t for t, _ in sql.distributed}
    for row in partitions:
        assert row["relname"] not in sql.order, f"{row['relname']}: a partition is not named"
        assert row["parent"] in distributed


def test_one_colocation_group_anchored_by_the_first_distributed_table() -> None:
    sql = plan()
    anchor, colocate = sql.distributed[0]
    assert colocate is None
    assert all(with_ == anchor for _, with_ in sql.distributed[1:])


async def test_each_table_comes_after_the_tables_it_points_at(owner: asyncpg.Connection) -> None:
    """Citus converts a table only when the tables its foreign keys reach are converted."""
    sql = plan()
    position = {t: i for i, t in enumerate(sql.order)}
    problems = []
    for fk in await _foreign_keys(owner):
        source, target = fk["source"], fk["target"]
        if source == target or fk["conname"] in sql.dropped:
            continue
        if source not in position or target not in position:
            problems.append(f"{fk['conname']}: {source} or {target} is not in distribute.sql")
        elif source in sql.local or target in sql.local:
            problems.append(f"{fk['conname']}: a foreign key involves local-only {source}/{target}")
        elif position[target] > position[source]:
            problems.append(f"{source} is converted before {target}, which {fk['conname']} needs")
    first_distributed = position[sql.distributed[0][0]]
    assert all(position[t] < first_distributed for t in sql.reference)
    assert not problems, "\n".join(problems)


async def test_foreign_keys_citus_would_refuse(owner: asyncpg.Connection) -> None:
    """Between distributed tables a key must match tenant_id to tenant_id; a reference table
    never points at a distributed one; SET NULL / SET DEFAULT never touch tenant_id."""
    sql = plan()
    distributed = {t for t, _ in sql.distributed}
    problems = []
    for fk in await _foreign_keys(owner):
        pairs = list(zip(fk["columns"], fk["referenced"], strict=True))
        name = f"{fk['source']}.{fk['conname']}"
        both = fk["source"] in distributed and fk["target"] in distributed
        if both and ("tenant_id", "tenant_id") not in pairs:
            problems.append(f"{name}: does not match tenant_id to tenant_id")
        if fk["source"] not in distributed and fk["target"] in distributed:
            problems.append(f"{name}: a table not distributed points at distributed {fk['target']}")
        nulling = {fk["confdeltype"], fk["confupdtype"]} & {"n", "d"}
        if fk["source"] in distributed and nulling and "tenant_id" in fk["columns"]:
            problems.append(f"{name}: SET NULL/SET DEFAULT on the distribution column")
    assert not problems, "\n".join(problems)


async def test_unique_keys_of_distributed_tables_include_tenant_id(
    owner: asyncpg.Connection,
) -> None:
    """Citus enforces uniqueness per shard: a unique key without tenant_id is refused. The
    ones that lack it must be exactly the documented exceptions, so the list cannot grow."""
    distributed = {t for t, _ in plan().distributed}
    rows = await owner.fetch(
        "SELECT i.indrelid::regclass::text AS tbl, i.indexrelid::regclass::text AS idx, "
        "EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = i.indrelid "
        "AND a.attname = 'tenant_id' AND a.attnum = ANY (i.indkey)) AS has_tenant "
        "FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
        "WHERE c.relnamespace = 'public'::regnamespace AND NOT c.relispartition "
        "AND (i.indisunique OR EXISTS (SELECT 1 FROM pg_constraint x "
        "     WHERE x.conindid = i.indexrelid AND x.contype = 'x'))"
    )
    lacking = {f"{r['tbl']}.{r['idx']}" for r in rows if r["tbl"] in distributed}
    lacking = {key for key in lacking if not _has_tenant(rows, key)}
    assert lacking == set(KEY_EXCEPTIONS), sorted(lacking ^ set(KEY_EXCEPTIONS))
    assert any(r["tbl"] in distributed for r in rows), "the check saw the distributed keys"


def _has_tenant(rows: list[asyncpg.Record], key: str) -> bool:
    return next(r["has_tenant"] for r in rows if f"{r['tbl']}.{r['idx']}" == key)
