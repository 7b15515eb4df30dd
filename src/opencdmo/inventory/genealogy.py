"""Genealogy: everything that went into a batch or lot, through every level (backward), and
every batch and lot a lot went into (forward); and a recall's reach from a supplier lot.

The graph is ``genealogy_links``: a lot went into a batch (a consumption), or a batch made a
lot (an output), written with the consumption or the output in the same unit of work. A trace
is one recursive statement over the links' indexes (parent, child and child, parent), so it
reads the part of the graph it reaches, never the whole; UNION (not UNION ALL) keeps each
link once, so a batch that uses its own intermediate does not loop. Each node's depth is its
shortest distance from the start.
"""

from __future__ import annotations

import csv
import io
from collections import deque
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal
from uuid import UUID

from opencdmo.access.service import authorize
from opencdmo.db.tx import read_view
from opencdmo.errors import NotFound, ValidationFailed
from opencdmo.inventory import service as inventory
from opencdmo.scope import TenantContext

Direction = Literal["backward", "forward"]
DIRECTIONS = ("backward", "forward")
MAX_LINKS = 200_000  # a trace larger than this is refused (narrow it: start further down)

# Raw SQL: a recursive walk of the links, which Piccolo cannot say. {near}/{far}: the end of a
# link the walk arrives from and the end it goes on to (child/parent backward, parent/child
# forward). Each row is a link with the far node's details (a lot's or a batch's), each
# looked up by its key in a lateral subquery (LIMIT 1 keeps the planner from flattening it
# into a hash join that reads every batch of the tenant: 2x the time at 10x the graph).
_TRACE = """
WITH RECURSIVE walk (parent_id, parent_kind, child_id, child_kind) AS (
    SELECT parent_id, parent_kind, child_id, child_kind FROM genealogy_links
    WHERE {near}_id = $1
    UNION
    SELECT g.parent_id, g.parent_kind, g.child_id, g.child_kind
    FROM walk w JOIN genealogy_links g ON g.{near}_id = w.{far}_id
)
SELECT w.parent_id, w.parent_kind, w.child_id, w.child_kind,
       l.lot_number, l.material, l.material_name, l.lot_status, l.expiry_date,
       b.batch_number, b.batch_status, b.disposition
FROM (SELECT * FROM walk LIMIT $2) w
LEFT JOIN LATERAL (
    SELECT l.lot_number, m.code AS material, m.name AS material_name, l.status AS lot_status,
           l.expiry_date
    FROM lots l JOIN materials m ON m.tenant_id = l.tenant_id AND m.id = l.material_id
    WHERE w.{far}_kind = 'lot' AND l.id = w.{far}_id LIMIT 1
) l ON true
LEFT JOIN LATERAL (
    SELECT b.number AS batch_number, b.status AS batch_status, b.disposition FROM batches b
    WHERE w.{far}_kind = 'batch' AND b.id = w.{far}_id LIMIT 1
) b ON true
"""
TRACE_SQL = {
    "backward": _TRACE.format(near="child", far="parent"),
    "forward": _TRACE.format(near="parent", far="child"),
}
# Raw SQL (as the trace's, for the start node): the lot or batch of this id.
START_SQL = """
SELECT 'lot' AS kind, l.lot_number, m.code AS material, m.name AS material_name,
       l.status AS lot_status, l.expiry_date, NULL AS batch_number, NULL AS batch_status,
       NULL AS disposition
FROM lots l JOIN materials m ON m.tenant_id = l.tenant_id AND m.id = l.material_id
WHERE l.id = $1
UNION ALL
SELECT 'batch', NULL, NULL, NULL, NULL, NULL, b.number, b.status, b.disposition
FROM batches b WHERE b.id = $1
"""


@dataclass(frozen=True)
class Node:
    id: UUID
    kind: str  # "lot" or "batch"
    label: str  # the lot number or the batch number
    material: str | None  # a lot's material code
    material_name: str | None
    status: str  # a lot's status as shown, a batch's state
    disposition: str | None  # a batch's release or rejection
    depth: int


@dataclass(frozen=True)
class Edge:
    parent: UUID
    child: UUID


@dataclass(frozen=True)
class Trace:
    start: Node
    direction: str
    nodes: list[Node]  # the start first, then by depth and label
    edges: list[Edge]


def _node(id: UUID, kind: str, row: Any, depth: int, on: date) -> Node:
    if kind == "lot":
        status = row["lot_status"]
        if status in inventory.EXPIRABLE and row["expiry_date"] and row["expiry_date"] < on:
            status = "expired"
        return Node(
            id, "lot", row["lot_number"], row["material"], row["material_name"], status, None, depth
        )
    return Node(
        id, "batch", row["batch_number"], None, None, row["batch_status"], row["disposition"], depth
    )


def _direction(direction: str) -> Direction:
    if direction not in DIRECTIONS:
        raise ValidationFailed(
            "direction must be backward or forward.", details={"field": "direction"}
        )
    return direction  # type: ignore[return-value]


async def trace(ctx: TenantContext, start_id: UUID, direction: str) -> Trace:
    """The trace from a lot or batch (another tenant's: the same 404 as a missing one)."""
    way = _direction(direction)
    await authorize(ctx, "materials", "read")
    on = inventory.today(ctx)
    async with read_view(ctx) as connection:
        start = await connection.fetchrow(START_SQL, start_id)
        if start is None:
            raise NotFound("No such lot or batch.")
        rows = await connection.fetch(TRACE_SQL[way], start_id, MAX_LINKS + 1)
    if len(rows) > MAX_LINKS:
        raise ValidationFailed(
            f"This trace reaches more than {MAX_LINKS} links: trace from a lot or batch "
            "further along instead.",
            details={"field": "direction"},
        )
    return build(start_id, start["kind"], start, way, rows, on)


def build(
    start_id: UUID, kind: str, start: Any, way: Direction, rows: list[Any], on: date
) -> Trace:
    """The trace's nodes with their depths (a breadth-first walk of the links found)."""
    far = "parent" if way == "backward" else "child"
    near = "child" if way == "backward" else "parent"
    onward: dict[UUID, list[UUID]] = {}
    details: dict[UUID, tuple[str, Any]] = {}
    edges = []
    for row in rows:
        a, b = row[f"{near}_id"], row[f"{far}_id"]
        onward.setdefault(a, []).append(b)
        details[b] = (row[f"{far}_kind"], row)
        edges.append(Edge(row["parent_id"], row["child_id"]))
    depth = {start_id: 0}
    queue = deque([start_id])
    while queue:
        here = queue.popleft()
        for there in onward.get(here, ()):
            if there not in depth:
                depth[there] = depth[here] + 1
                queue.append(there)
    first = _node(start_id, kind, start, 0, on)
    others = [_node(i, k, row, depth[i], on) for i, (k, row) in details.items() if i != start_id]
    others.sort(key=lambda n: (n.depth, n.kind, n.label))
    return Trace(first, way, [first, *others], edges)


CSV_COLUMNS = (
    "depth",
    "kind",
    "number",
    "material",
    "material_name",
    "status",
    "disposition",
    "id",
)


def as_csv(found: Trace) -> str:
    """The trace's nodes as CSV (the start first); cells a spreadsheet would run as a
    formula are quoted with a leading apostrophe."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for n in found.nodes:
        cells = (n.depth, n.kind, n.label, n.material, n.material_name, n.status, n.disposition)
        writer.writerow([_cell(c) for c in cells] + [str(n.id)])
    return out.getvalue()


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


# --- recall -----------------------------------------------------------------------------------

# Raw SQL: the lots received under a supplier's lot number, and every batch a forward walk from
# them reaches (the trace's recursion, from many starts); each node reached is looked up by its
# key (LATERAL ... LIMIT 1: a plain join may be planned as a scan of every batch).
RECALL_SQL = """
WITH RECURSIVE origin AS (
    SELECT l.id, l.lot_number, m.code AS material FROM lots l
    JOIN materials m ON m.tenant_id = l.tenant_id AND m.id = l.material_id
    WHERE l.supplier_lot = $1 AND ($2::text IS NULL OR l.supplier = $2)
), walk (child_id, child_kind) AS (
    SELECT g.child_id, g.child_kind FROM genealogy_links g JOIN origin o ON g.parent_id = o.id
    UNION
    SELECT g.child_id, g.child_kind FROM walk w JOIN genealogy_links g ON g.parent_id = w.child_id
)
SELECT 'origin' AS what, o.id, o.lot_number AS number, o.material, NULL AS status,
       NULL AS disposition, NULL::timestamptz AS dispositioned_at
FROM origin o
UNION ALL
SELECT 'batch', b.id, b.number, NULL, b.status, b.disposition, b.dispositioned_at
FROM walk w CROSS JOIN LATERAL (
    SELECT id, number, status, disposition, dispositioned_at FROM batches
    WHERE id = w.child_id LIMIT 1
) b WHERE w.child_kind = 'batch'
UNION ALL
SELECT 'lot', l.id, l.lot_number, l.material, l.status, NULL, NULL
FROM walk w CROSS JOIN LATERAL (
    SELECT l.id, l.lot_number, m.code AS material, l.status
    FROM lots l JOIN materials m ON m.tenant_id = l.tenant_id AND m.id = l.material_id
    WHERE l.id = w.child_id LIMIT 1
) l WHERE w.child_kind = 'lot'
"""


@dataclass(frozen=True)
class Affected:
    id: UUID
    number: str
    material: str | None
    status: str | None
    disposition: str | None


@dataclass(frozen=True)
class Recall:
    supplier_lot: str
    supplier: str | None
    lots: list[Affected]  # the lots received under it
    batches: list[Affected]  # every batch they reached, at any depth
    made: list[Affected]  # the lots those batches made


async def recall(ctx: TenantContext, supplier_lot: str, supplier: str | None = None) -> Recall:
    """What a supplier's lot reached: its lots here, every batch they went into at any depth
    (with its state and release) and every lot those batches made."""
    text = supplier_lot.strip()
    if not 1 <= len(text) <= 120:
        raise ValidationFailed(
            "Give the supplier's lot number (1 to 120 characters).",
            details={"field": "supplier_lot"},
        )
    await authorize(ctx, "materials", "read")
    async with read_view(ctx) as connection:
        rows = await connection.fetch(RECALL_SQL, text, (supplier or "").strip() or None)
    groups: dict[str, list[Affected]] = {"origin": [], "batch": [], "lot": []}
    for r in rows:
        groups[r["what"]].append(
            Affected(r["id"], r["number"], r["material"], r["status"], r["disposition"])
        )
    for found in groups.values():
        found.sort(key=lambda a: a.number)
    return Recall(text, supplier, groups["origin"], groups["batch"], groups["lot"])


# --- the picture ------------------------------------------------------------------------------

BOX_W, BOX_H, GAP_X, GAP_Y = 170, 44, 60, 14
DRAWN_MAX = 300  # nodes drawn at most; the table lists them all


@dataclass(frozen=True)
class Box:
    node: Node
    x: int
    y: int


@dataclass(frozen=True)
class Line:
    x1: int
    y1: int
    x2: int
    y2: int


@dataclass(frozen=True)
class Picture:
    width: int
    height: int
    boxes: list[Box]
    lines: list[Line]
    left_out: int  # nodes not drawn (the table has them)


def picture(found: Trace) -> Picture:
    """A layered drawing: one column per depth (the start at the left), links between
    columns; the deepest nodes past ``DRAWN_MAX`` are left to the table."""
    drawn = found.nodes[:DRAWN_MAX]
    columns: dict[int, list[Node]] = {}
    for n in drawn:
        columns.setdefault(n.depth, []).append(n)
    where: dict[UUID, Box] = {}
    tallest = max((len(c) for c in columns.values()), default=1)
    for depth, column in columns.items():
        for row, n in enumerate(column):
            where[n.id] = Box(n, depth * (BOX_W + GAP_X), row * (BOX_H + GAP_Y))
    lines = []
    for e in found.edges:
        a, b = where.get(e.parent), where.get(e.child)
        if a is None or b is None:
            continue
        left, right = (a, b) if a.x < b.x else (b, a)
        if left.x == right.x:
            continue
        lines.append(Line(left.x + BOX_W, left.y + BOX_H // 2, right.x, right.y + BOX_H // 2))
    width = (max(columns, default=0) + 1) * (BOX_W + GAP_X) - GAP_X
    height = tallest * (BOX_H + GAP_Y) - GAP_Y
    return Picture(width, height, list(where.values()), lines, len(found.nodes) - len(drawn))
