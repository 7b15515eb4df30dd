"""Writing the other tenant's side of a relationship, in the command's own transaction.

A relationship step changes a row and writes an audit event in both tenants. Rather than a
SECURITY DEFINER function that writes any tenant's audit chain (it would take the event's
MAC, computed here with the audit key, and so vouch for whatever it is given), the command
switches the transaction's tenant setting to the partner for exactly those statements and
back: the app role stays under row-level security, the partner's rows are written under the
partner's own policy (a statement that strays to a third tenant is refused by it), and the
events are chained in each tenant's chain by the sealer after commit. The switch is
``set_config(..., true)``: local to the transaction, undone by its rollback.

Only the partners service uses it, after it has locked and checked the relationship.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from uuid import UUID

import asyncpg

from opencdmo.db import sql
from opencdmo.scope import TenantContext

# Raw SQL: the transaction's tenant setting (Piccolo has no form for set_config).
_SET = "SELECT set_config('app.tenant_id', $1, true)"


@asynccontextmanager
async def partner_side(ctx: TenantContext, partner_tenant_id: UUID) -> AsyncIterator[None]:
    """Inside: statements of the open unit of work act in the partner tenant."""
    connection = sql.connection()
    await connection.execute(_SET, str(partner_tenant_id))
    try:
        yield
    except BaseException:
        # A failed statement aborted the transaction (it rolls back, the switch with it);
        # otherwise switch back before the error leaves the command.
        with suppress(asyncpg.PostgresError):
            await connection.execute(_SET, str(ctx.tenant_id))
        raise
    await connection.execute(_SET, str(ctx.tenant_id))
