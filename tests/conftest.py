"""Test set-up: a fresh database on a real PostgreSQL (the embedded server by default, or the
server named by OPENCDMO_TEST_DATABASE_URL), the real migrations, the real app, two tenants and
named personas."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from litestar import Litestar

from opencdmo.app import create_app
from opencdmo.db import migrate
from opencdmo.db.embedded import start_embedded
from opencdmo.db.urls import DatabaseUrls, resolve_urls
from opencdmo.identity import service as identity
from opencdmo.scope import SYSTEM, Actor, RequestMeta, TenantContext
from opencdmo.settings import Settings
from opencdmo.tenancy import service as tenancy

PASSWORD = "correct-horse-battery-42"
AUDIT_KEY = "test-audit-key-" + "0123456789abcdef" * 2
# The embedded server's data directory, shared by the runs of one user (each run makes its own
# database); OPENCDMO_TEST_DATA_DIR gives a checkout a server of its own.
DATA_DIR = Path(
    os.environ.get("OPENCDMO_TEST_DATA_DIR")
    or Path(tempfile.gettempdir()) / f"opencdmo-test-{os.getuid()}"
)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


async def _recreate(server_url: str, name: str, *, drop_only: bool = False) -> None:
    connection = await asyncpg.connect(_with_database(server_url, "postgres"))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def database() -> Iterator[DatabaseUrls]:
    """A fresh database with the migrations applied; dropped at the end."""
    name = f"opencdmo_test_{uuid.uuid4().hex[:8]}"
    server = os.environ.get("OPENCDMO_TEST_DATABASE_URL") or start_embedded(DATA_DIR)
    asyncio.run(_recreate(server, name))
    owner = _with_database(server, name)
    urls = resolve_urls(Settings(data_dir=DATA_DIR), owner)
    migrate.upgrade(urls)
    yield urls
    asyncio.run(_recreate(server, name, drop_only=True))


@pytest.fixture(scope="session")
def settings(database: DatabaseUrls, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        database_url=database.owner,
        data_dir=DATA_DIR,
        secret_key="test-secret-key",
        # The data dir is shared by concurrent runs: this run's checkpoints stay its own.
        audit_key=AUDIT_KEY,
        audit_checkpoint_dir=tmp_path_factory.mktemp("audit-checkpoints"),
        cookie_secure=True,
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        db_pool_size=30,
        login_max_failures_account=5,
        login_max_failures_address=20,
        login_window_seconds=900,
        # The suite's many API calls are not limited; tests/integration/test_ops_http.py
        # swaps in a limiter of its own.
        api_rate_per_token=0,
        api_rate_per_tenant=0,
        log_json=True,
    )


@pytest.fixture(scope="session")
async def app(settings: Settings, database: DatabaseUrls) -> AsyncIterator[Litestar]:
    application = create_app(settings, urls=database, configure_logs=False)
    # The start and stop hooks directly: a lifespan task group cannot span pytest's fixture tasks.
    for hook in application.on_startup:
        await hook()
    yield application
    for hook in application.on_shutdown:
        await hook()


@pytest.fixture
async def owner(database: DatabaseUrls) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the owner role (a superuser here): for tampering and catalogue checks."""
    connection = await asyncpg.connect(database.owner)
    yield connection
    await connection.close()


@pytest.fixture
async def app_role(database: DatabaseUrls) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the application role, exactly as the app connects."""
    connection = await asyncpg.connect(database.app)
    yield connection
    await connection.close()


@dataclass(frozen=True)
class Persona:
    key: str
    email: str
    full_name: str
    user_id: uuid.UUID


@dataclass(frozen=True)
class World:
    alpha: TenantContext
    beta: TenantContext
    people: dict[str, Persona]

    def __getitem__(self, key: str) -> Persona:
        return self.people[key]


# persona -> (tenant, roles). "bare" is a member with no role; "outsider" belongs to beta only.
PERSONAS = {
    "admin": ("alpha", ["tenant_admin"]),
    "author": ("alpha", ["process_engineer"]),
    "approver": ("alpha", ["qa_approver"]),
    "operator": ("alpha", ["production_operator"]),
    "supervisor": ("alpha", ["production_supervisor"]),
    "viewer": ("alpha", ["viewer"]),
    "handler": ("alpha", ["materials_handler"]),
    "bare": ("alpha", []),
    "outsider": ("beta", ["tenant_admin"]),
}


# Alpha's name is long and has an ampersand: every page must escape it and make room for it
# (the browser tests check that the top bar's parts never overlap).
ALPHA_NAME = "Alpha Cell & Gene Therapy Manufacturing"


@pytest.fixture(scope="session")
async def world(app: Litestar) -> World:
    meta = RequestMeta(request_id="test-setup")
    alpha = await tenancy.create_tenant("alpha", ALPHA_NAME, "cdmo", SYSTEM, meta)
    beta = await tenancy.create_tenant("beta", "Beta Therapeutics", "sponsor", SYSTEM, meta)
    await tenancy.upsert_site(alpha, "A1", "Alpha main site", "Europe/Berlin")
    await tenancy.upsert_site(beta, "B1", "Beta lab", "America/Los_Angeles")
    scopes = {"alpha": alpha, "beta": beta}
    people = {}
    for key, (tenant, roles) in PERSONAS.items():
        user = await identity.create_user(f"{key}@{tenant}.test", f"{key.title()} Person", PASSWORD)
        await tenancy.add_member(scopes[tenant], user.id, roles)
        people[key] = Persona(key, user.email, user.full_name, user.id)
    return World(await _fresh(alpha), await _fresh(beta), people)


@pytest.fixture(scope="session")
async def synced(world: World) -> Any:
    """The shipped HUB library, published once per session."""
    from opencdmo.hub import service as hub
    from opencdmo.hub.content import ROOT

    lines: list[str] = []
    report = await hub.sync(ROOT, lines.append)
    assert lines[0].endswith("to publish")
    return report


@pytest.fixture
async def own_tenant(world: World) -> TenantContext:
    """A tenant of this test's own, with alpha's personas in their roles and a site: for tests
    that change what other tests read (installs, forks, settings), so no test depends on
    what another left."""
    slug = f"own-{uuid.uuid4().hex[:8]}"
    ctx = await tenancy.create_tenant(slug, "Own Test Tenant", "cdmo", SYSTEM, RequestMeta())
    await tenancy.upsert_site(ctx, "A1", "Own main site", "Europe/Berlin")
    for key, (tenant, roles) in PERSONAS.items():
        if tenant == "alpha":
            await tenancy.add_member(ctx, world[key].user_id, roles)
    return await _fresh(ctx)


async def _fresh(ctx: TenantContext) -> TenantContext:
    found = await tenancy.internal_context(ctx.tenant_id, SYSTEM, ctx.meta)
    assert found is not None
    return found


def as_actor(ctx: TenantContext, persona: Persona, roles: tuple[str, ...] = ()) -> TenantContext:
    """The persona's scope in a tenant, as the resolver would mint it (for service-level tests)."""
    from dataclasses import replace

    return replace(ctx, actor=Actor(persona.user_id, persona.email, persona.full_name), roles=roles)


async def member_as(ctx: TenantContext, persona: Persona) -> TenantContext:
    """The persona's scope as the resolver mints it for a request now: the tenant's current
    policy version, so that roles granted since count."""
    return as_actor(await _fresh(ctx), persona)


class Browser:
    """An HTTP client with its own cookie jar and client address, speaking to the app
    in-process (or, with ``base_url``, to a server process: ``tests.servers.served``)."""

    def __init__(
        self, app: Litestar | None, address: str = "127.0.0.1", base_url: str | None = None
    ) -> None:
        if base_url is not None:
            self.http = httpx.AsyncClient(base_url=base_url, follow_redirects=False)
        else:
            assert app is not None
            transport = httpx.ASGITransport(app=app, client=(address, 40000))
            self.http = httpx.AsyncClient(
                transport=transport, base_url="https://testserver", follow_redirects=False
            )
        self.csrf = ""

    async def prime(self) -> None:
        """Read the CSRF token a page gives this client (it is bound to the session)."""
        if not self.csrf:
            await self.refresh_csrf()

    async def refresh_csrf(self) -> None:
        page = (await self.http.get("/login")).text
        found = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page)
        assert found, "no CSRF token on the sign-in page"
        self.csrf = found.group(1)

    async def login(self, email: str, password: str = PASSWORD) -> httpx.Response:
        await self.prime()
        response = await self.http.post(
            "/login", data={"email": email, "password": password, "_csrf_token": self.csrf}
        )
        if response.status_code == 303:
            await self.refresh_csrf()  # signed in: tokens are bound to the new session
        return response

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.http.get(url, **kwargs)

    async def send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """An unsafe request with the CSRF header, as the app's htmx and fetch calls send it."""
        await self.prime()
        headers = {"x-csrftoken": self.csrf, **kwargs.pop("headers", {})}
        return await self.http.request(method, url, headers=headers, **kwargs)

    async def close(self) -> None:
        await self.http.aclose()


@pytest.fixture
async def browser(app: Litestar, world: World) -> AsyncIterator[Any]:
    """``await browser("admin")``: a client signed in as that persona (fresh cookies each)."""
    opened: list[Browser] = []

    async def open_as(persona: str | None = None, address: str = "127.0.0.1") -> Browser:
        client = Browser(app, address)
        opened.append(client)
        if persona is not None:
            tenant = PERSONAS[persona][0]
            response = await client.login(f"{persona}@{tenant}.test")
            assert response.status_code == 303, response.text
        return client

    yield open_as
    for client in opened:
        await client.close()


async def recorded(
    ctx: TenantContext, action: str, entity_type: str, entity_id: object, **kw: Any
) -> int:
    """One audit event as a command writes it: in a unit of work of its own."""
    from opencdmo.audit import service as audit
    from opencdmo.db.tx import unit_of_work

    async with unit_of_work(ctx):
        return await audit.record(ctx, action, entity_type, entity_id, **kw)


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    """Bytes parameters are named by their length, not their content: some are random, and
    every process of a parallel run must collect the same test ids."""
    if isinstance(val, bytes | bytearray):
        return f"{argname}{len(val)}"
    return None
