"""The live board: batches in progress (Running, Held, Paused), each with its current phase,
who is on it, its open exceptions and its time against plan."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from opencdmo.batches import entry_queries, plan, queries, states
from opencdmo.batches import execution_queries as xq
from opencdmo.batches.queries import BatchFilter, BatchRow
from opencdmo.batches.service import readable_sites
from opencdmo.db.sql import clock
from opencdmo.db.tx import tenant_transaction
from opencdmo.scope import TenantContext
from opencdmo.tenancy import service as tenancy

IN_PROGRESS = (states.RUNNING, states.HELD, states.PAUSED)
LIMIT = 200  # batches a board shows


@dataclass(frozen=True)
class BoardRow:
    batch: BatchRow
    recipe_name: str
    site_code: str
    current: str | None  # "Step: phase", or None when every phase is done
    current_status: str | None
    on_it: str | None  # who started the current phase, or recorded in it last
    done_phases: int
    phases: int
    open_exceptions: int
    late_start: timedelta | None  # started after its planned start by this much
    running_for: timedelta | None


async def in_progress(ctx: TenantContext) -> list[BoardRow]:
    sites = await readable_sites(ctx)
    async with tenant_transaction(ctx):
        rows: list[BatchRow] = []
        for status in IN_PROGRESS:
            flt = BatchFilter(status=status, site_ids=sites, limit=LIMIT)
            found, _ = await queries.batches(flt)
            rows += found
        ids = [r.id for r in rows]
        phase_rows = await xq.phases_of(ids)
        open_counts = await xq.open_counts(ids)
        documents = {r.id: (await queries.control_recipe(r.id)).document for r in rows}
        last_entry = await entry_queries.last_enterers(ids)
        now = await clock()
        codes = {s.id: s.code for s in await tenancy.list_sites(ctx)}
    names = await tenancy.people_names(
        ctx,
        {
            *(p.started_by for found in phase_rows.values() for p in found if p.started_by),
            *last_entry.values(),
        },
    )
    board = []
    for row in sorted(rows, key=lambda r: r.planned_start):
        phases = phase_rows.get(row.id, [])
        labels = {(p.step, p.phase): p.label for p in plan.phases(documents[row.id])}
        done = [p for p in phases if p.status == states.COMPLETE]
        current = next((p for p in phases if p.status == states.RUNNING), None) or next(
            (
                p
                for p in phases
                if p.status not in {states.COMPLETE, states.STOPPED, states.ABORTED}
            ),
            None,
        )
        who = None
        if current is not None:
            person = last_entry.get((row.id, current.step, current.phase)) or current.started_by
            who = names.get(person) if person else None
        board.append(
            BoardRow(
                row,
                str(documents[row.id]["recipe"]["name"]),
                codes.get(row.site_id, ""),
                labels.get((current.step, current.phase)) if current else None,
                current.status if current else None,
                who,
                len(done),
                len(phases),
                open_counts.get(row.id, 0),
                row.started_at - row.planned_start
                if row.started_at and row.started_at > row.planned_start
                else None,
                now - row.started_at if row.started_at else None,
            )
        )
    return board
