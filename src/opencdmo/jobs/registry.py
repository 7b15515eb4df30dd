"""Job kinds and the functions that do them (``handler``), and the scope a job runs in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from opencdmo.db.jobs import Job
from opencdmo.db.tx import global_transaction
from opencdmo.errors import NotFound
from opencdmo.identity.queries import user_by_id
from opencdmo.scope import SYSTEM, Actor, RequestMeta, TenantContext
from opencdmo.settings import Settings
from opencdmo.tenancy.service import internal_context

Handler = Callable[[Job], Awaitable[None]]
HANDLERS: dict[str, Handler] = {}
_settings: list[Settings] = []  # the running worker's (set by ``configure``)


def configure(settings: Settings) -> None:
    _settings[:] = [settings]


def settings() -> Settings:
    """The settings of the worker running the job (for handlers that need them)."""
    if not _settings:
        raise RuntimeError("no worker has configured the job settings")
    return _settings[0]


def handler(kind: str) -> Callable[[Handler], Handler]:
    """Register ``fn`` as what a job of ``kind`` does."""

    def register(fn: Handler) -> Handler:
        HANDLERS[kind] = fn
        return fn

    return register


def load() -> dict[str, Handler]:
    """Every job kind the project has (importing the modules registers them)."""
    from opencdmo.jobs import tasks  # noqa: F401

    return HANDLERS


async def context(job: Job) -> TenantContext:
    """The tenant scope a job runs in, as the person who asked (or the system actor)."""
    if job.for_tenant is None:
        raise NotFound("This job names no tenant.")
    actor = SYSTEM
    if job.actor_id is not None:
        async with global_transaction():
            user = await user_by_id(job.actor_id)
        if user is None or not user.is_active:
            raise NotFound("The person who asked for this job is not known or disabled.")
        actor = Actor(user.id, user.email, user.full_name)
    meta = RequestMeta(request_id=f"job:{job.id}")
    ctx = await internal_context(job.for_tenant, actor, meta)
    if ctx is None:
        raise NotFound("The tenant of this job is not known.")
    return ctx
