"""Transactions: one owner per transaction, the tenant set first (ARCHITECTURE.md section 4).

- ``unit_of_work(ctx)``: a command's one transaction. It must be the outermost: opening one
  inside another is a programming error. Everything the command calls joins it, and its
  signatures, state changes and audit events commit together or not at all.
- ``joined(ctx)``: what inner services that write use: the open unit of work, never a new one.
- ``tenant_transaction(ctx)``: reads, which join an open transaction (a page opens one with
  ``read_view`` and every read inside shares it) or run in one of their own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any
from uuid import UUID

from piccolo.engine.postgres import PostgresEngine, PostgresTransaction

from opencdmo.db.engine import get_engine

if TYPE_CHECKING:
    from opencdmo.scope import TenantContext

SET_TENANT = "SELECT set_config('app.tenant_id', $1, true)"

# The tenant scope of the transaction open in this context (Piccolo's transaction has slots).
_scope: ContextVar[UUID | None] = ContextVar("opencdmo_tenant_scope", default=None)
# Work to run once the transaction open in this context has committed, by key (run once each).
_after: ContextVar[dict[str, Callable[[], Awaitable[None]]] | None] = ContextVar(
    "opencdmo_after_commit", default=None
)


def after_commit(key: str, callback: Callable[[], Awaitable[None]]) -> bool:
    """Run ``callback`` after the open transaction commits (False: none is open here)."""
    hooks = _after.get()
    if hooks is None:
        return False
    hooks.setdefault(key, callback)
    return True


@asynccontextmanager
async def _scoped(
    tenant_id: UUID | None, *, own: bool = False, join: bool = False, read_only: bool = False
) -> AsyncIterator[Any]:
    engine = get_engine()
    current = engine.current_transaction.get()
    if current is not None and own:
        raise RuntimeError("a unit of work is already open: inner services join it")
    if current is None and join:
        raise RuntimeError("no unit of work is open: a command must open one")
    if current is not None:
        # A service called from inside another action joins its transaction, same scope only;
        # global tables (users, tenants) read the same in any tenant's transaction.
        if tenant_id is not None and _scope.get() != tenant_id:
            raise RuntimeError("a transaction for another tenant scope is already open")
        yield current.connection
        return
    hooks: dict[str, Callable[[], Awaitable[None]]] = {}
    async with _ScopedTransaction(engine, tenant_id, read_only) as tx:
        token, after = _scope.set(tenant_id), _after.set(hooks)
        try:
            yield tx.connection
        finally:
            _scope.reset(token)
            _after.reset(after)
    for callback in hooks.values() if tx._committed else ():
        await callback()


class _ScopedTransaction(PostgresTransaction):
    """Piccolo's transaction (ORM queries inside use its connection) that sets the tenant in
    the same round trip as BEGIN: ``BEGIN; SELECT set_config(...)`` as one simple query.

    The tenant id is a UUID object rendered by ``UUID.__str__`` (hex digits and dashes only),
    so inlining it is safe.
    """

    def __init__(self, engine: PostgresEngine, tenant_id: UUID | None, read_only: bool) -> None:
        super().__init__(engine, allow_nested=False)
        self.tenant_id = tenant_id
        self.begin_sql = "BEGIN READ ONLY" if read_only else "BEGIN"

    async def begin(self) -> None:
        if self.tenant_id is None:
            await self.connection.execute(self.begin_sql)
            return
        tenant = str(UUID(str(self.tenant_id)))
        await self.connection.execute(
            f"{self.begin_sql}; SELECT set_config('app.tenant_id', '{tenant}', true)"
        )

    async def commit(self) -> None:
        await self.connection.execute("COMMIT")
        self._committed = True

    async def rollback(self) -> None:
        await self.connection.execute("ROLLBACK")
        self._rolled_back = True


def unit_of_work(ctx: TenantContext) -> Any:
    """``async with unit_of_work(ctx) as conn:`` - a command's one transaction (outermost)."""
    return _scoped(ctx.tenant_id, own=True)


def joined(ctx: TenantContext) -> Any:
    """The command's open unit of work, for inner services that write (never a new one)."""
    return _scoped(ctx.tenant_id, join=True)


def read_view(ctx: TenantContext) -> Any:
    """One read-only transaction for a page's reads: every read inside joins it (and it joins
    the transaction already open, if any: a page re-rendered after a refused command)."""
    return _scoped(ctx.tenant_id, read_only=True)


def tenant_transaction(ctx: TenantContext) -> Any:
    """``async with tenant_transaction(ctx) as conn:`` - reads: join the open transaction or
    run in one of their own; everything inside sees one tenant."""
    return _scoped(ctx.tenant_id)


def tenant_id_transaction(tenant_id: UUID) -> Any:
    """For provisioning and verification code that acts for a tenant with no request behind it."""
    return _scoped(tenant_id)


def global_transaction() -> Any:
    """For global tables only (users, sessions, tenants): tenant tables show zero rows."""
    return _scoped(None)


@asynccontextmanager
async def autonomous(tenant_id: UUID | None) -> AsyncIterator[Any]:
    """A separate connection and transaction that commits even if the caller's rolls back."""
    engine = get_engine()
    assert engine.pool is not None, "the pool is not started"
    async with engine.pool.acquire() as connection, connection.transaction():
        if tenant_id is not None:
            await connection.execute(SET_TENANT, str(tenant_id))
        yield connection
