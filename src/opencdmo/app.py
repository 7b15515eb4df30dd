"""create_app(settings) -> Litestar: wiring only."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from litestar import Litestar
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.static_files import create_static_files_router

import opencdmo
from opencdmo.audit import keys as audit_keys
from opencdmo.audit import service as audit
from opencdmo.audit.checkpoints import store_for
from opencdmo.audit.keeper import Keeper
from opencdmo.db.engine import bind_engine, close_pool, start_pool
from opencdmo.db.setup import database_urls
from opencdmo.db.urls import DatabaseUrls
from opencdmo.identity import passwords
from opencdmo.settings import Settings
from opencdmo.tenancy import authcache
from opencdmo.web import errors, health
from opencdmo.web.csrf import BearerAwareCSRF, csrf_config
from opencdmo.web.errors import ErrorBody
from opencdmo.web.guards import protect_tenant_routes
from opencdmo.web.logs import configure_logging
from opencdmo.web.principal import PrincipalMiddleware
from opencdmo.web.templating import STATIC, template_config


def discover_routes() -> list[Any]:
    """Every ``route_handlers`` list of the web glue and of each context's ``routes`` and
    ``*_routes`` modules: a new context's routes are mounted without a hand-kept list."""
    modules: list[Any] = [health]
    for package in pkgutil.iter_modules(opencdmo.__path__):
        if not package.ispkg or package.name in ("db", "web"):
            continue
        path = importlib.import_module(f"opencdmo.{package.name}").__path__
        for module in pkgutil.iter_modules(path):
            if module.name == "routes" or module.name.endswith("_routes"):
                modules.append(importlib.import_module(f"opencdmo.{package.name}.{module.name}"))
    return modules


CONTEXT_ROUTES = discover_routes()
API_ERRORS = {
    400: "Malformed request (unparseable body or parameter)",
    401: "No valid session or API token",
    403: "The caller's roles do not allow this, or the CSRF check failed",
    404: "No such object in this tenant (another tenant's objects are not found either)",
    409: "The change conflicts with the current state",
    422: "The input is well-formed but not acceptable; the message says why",
    429: "Too many failed attempts; retry after the Retry-After seconds",
}


def error_responses() -> dict[int, ResponseSpec]:
    return {
        code: ResponseSpec(data_container=ErrorBody, description=text)
        for code, text in API_ERRORS.items()
    }


def create_app(
    settings: Settings | None = None,
    *,
    urls: DatabaseUrls | None = None,
    configure_logs: bool = True,
) -> Litestar:
    settings = settings or Settings.from_env()
    if configure_logs:
        configure_logging(settings.log_level, settings.log_json)
    passwords.configure(settings)
    audit_keys.configure(settings)
    keeper = Keeper(store_for(settings), settings.audit_checkpoint_seconds)
    urls = urls or database_urls(settings)
    engine = bind_engine(urls)

    async def startup() -> None:
        await start_pool(engine, settings.db_pool_size)
        await authcache.tokens.start(urls.app, settings.auth_cache_seconds)
        await keeper.start()

    async def shutdown() -> None:
        await authcache.tokens.stop()
        await keeper.stop()
        await audit.drain()
        await close_pool(engine)

    handlers: list[Any] = [h for module in CONTEXT_ROUTES for h in module.route_handlers]
    protect_tenant_routes(handlers)
    for handler in handlers:
        if any(path.startswith("/api/") for path in handler.paths):
            handler.responses = {**error_responses(), **(handler.responses or {})}
    handlers.append(
        create_static_files_router(path="/static", directories=[STATIC], include_in_schema=False)
    )
    return Litestar(
        route_handlers=handlers,
        dependencies={"settings": Provide(lambda: settings, use_cache=True, sync_to_thread=False)},
        middleware=[
            PrincipalMiddleware(settings),
            DefineMiddleware(BearerAwareCSRF, config=csrf_config(settings)),
        ],
        template_config=template_config(),
        exception_handlers={Exception: errors.handle},
        on_startup=[startup],
        on_shutdown=[shutdown],
        openapi_config=OpenAPIConfig(
            title="OpenCDMO API",
            version="1",
            path="/schema",
            render_plugins=[],
        ),
        debug=False,
        logging_config=None,
        request_max_body_size=2 * 1024 * 1024,
    )
