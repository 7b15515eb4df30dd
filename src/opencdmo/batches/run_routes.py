"""The operator's pages of a batch: the run page at the bench (touch-first), and one field of
it as a fragment, which the page's entry queue reads back after an entry was sent.

Entries are not posted here: the page's script (``static/js/entry-queue.js``) keeps each
entry in the browser until the JSON API (``POST /api/v1/t/{slug}/batches/{id}/entries``)
has it, sending the signed-in session's cookie and the page's CSRF token, as htmx does.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from uuid import UUID

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.response import Template

from opencdmo.batches import run_sheet
from opencdmo.labels import label
from opencdmo.scope import TenantContext
from opencdmo.web.guards import requires
from opencdmo.web.pages import page

RUN = "/batches/{batch_id:uuid}/run"
Key = Annotated[str, QueryParameter(max_length=64, required=False)]


def _context(view: run_sheet.RunView) -> dict[str, Any]:
    return {
        "run": view,
        "batch": view.batch.batch,
        "check_names": run_sheet.CHECK_NAMES,
        "check_tones": run_sheet.CHECK_TONES,
        "checks_json": json.dumps(
            {k: [run_sheet.CHECK_NAMES[k], t, label(k)] for k, t in run_sheet.CHECK_TONES.items()}
        ),
    }


@get(RUN, opt=requires("batches", "read", site_scoped=True), include_in_schema=False)
async def run_page(
    request: Request[Any, Any, Any], ctx: NamedDependency[TenantContext], batch_id: FromPath[UUID]
) -> Template:
    """The batch at the bench: every step's phases with their instructions, parameters and
    fields; inputs for a member who may record entries while the batch is Running."""
    view = await run_sheet.read(ctx, batch_id)
    return await page(request, "batches/run.html", **_context(view))


@get(RUN + "/field", opt=requires("batches", "read", site_scoped=True), include_in_schema=False)
async def run_field(
    request: Request[Any, Any, Any],
    ctx: NamedDependency[TenantContext],
    batch_id: FromPath[UUID],
    step: Key = "",
    phase: Key = "",
    field: Key = "",
) -> Template:
    """One field of the run page as it stands now (its current value, who, when, its check),
    the same markup the page has: the entry queue swaps it in after a send."""
    view = await run_sheet.read(ctx, batch_id)
    found = view.sheet.field(step, phase, field)
    return await page(request, "batches/_run_field.html", f=found, **_context(view))


pages = [run_page, run_field]
