"""create_app(settings) -> Litestar: wiring only."""

from __future__ import annotations

import gc
import importlib
import importlib.util
import pkgutil
from typing import Any

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.static_files import create_static_files_router

import opencdmo
from opencdmo.audit import coverage, sentences
from opencdmo.audit import keys as audit_keys
from opencdmo.audit import service as audit
from opencdmo.audit.checkpoints import store_for
from opencdmo.audit.keeper import Keeper
from opencdmo.db.engine import bind_engine, close_pool, start_pool
from opencdmo.db.setup import database_urls
from opencdmo.db.urls import DatabaseUrls
from opencdmo.identity import passwords
from opencdmo.ops import ratelimit
from opencdmo.ops import routes as ops_routes
from opencdmo.ops.metrics import MetricsMiddleware
from opencdmo.ops.ratelimit import RateLimitMiddleware
from opencdmo.settings import Settings
from opencdmo.storage import blobs
from opencdmo.web.flash import FLASH_SIGNER, FlashSigner
from opencdmo.web.guards import PACKAGE_UPLOADS, UPLOADS
from opencdmo.web.pages import PAGE_CONTEXT
from opencdmo.web.templating import STATIC, template_config
from opencdmo.webapp import authcache, bodies, errors, health
from opencdmo.webapp.csrf import SessionCSRF
from opencdmo.webapp.errors import ErrorBody
from opencdmo.webapp.headers import security_headers
from opencdmo.webapp.logs import configure_logging
from opencdmo.webapp.middleware import PrincipalMiddleware
from opencdmo.webapp.page_context import page_context
from opencdmo.webapp.tenant_guard import (
    TENANT_API,
    TENANT_PAGES,
    handlers_of,
    protect_tenant_routes,
)


def discover_routes() -> list[Any]:
    """Every route module of the web glue and of each context (``routes`` and ``*_routes``):
    a new context's routes are mounted without a hand-kept list."""
    modules: list[Any] = [health]
    for package in pkgutil.iter_modules(opencdmo.__path__):
        if not package.ispkg or package.name in ("db", "web", "webapp"):
            continue
        path = importlib.import_module(f"opencdmo.{package.name}").__path__
        for module in pkgutil.iter_modules(path):
            if module.name == "routes" or module.name.endswith("_routes"):
                modules.append(importlib.import_module(f"opencdmo.{package.name}.{module.name}"))
    return modules


def context_routers(modules: list[Any]) -> list[Any]:
    """Each context's tenant routes grouped in one router for its pages (``/t/{slug}``) and
    one for its API (``/api/v1/t/{slug}``), which set the path prefix and the tenant guard
    once; then the routes outside a tenant."""
    by_context: dict[str, dict[str, list[Any]]] = {}
    outside: list[Any] = []
    for module in modules:
        context = module.__name__.split(".")[1]
        group = by_context.setdefault(context, {"pages": [], "api": []})
        group["pages"] += getattr(module, "pages", [])
        group["api"] += getattr(module, "api", [])
        outside += getattr(module, "route_handlers", [])
    routers: list[Any] = []
    for context, group in by_context.items():
        for kind, path in (("pages", TENANT_PAGES), ("api", TENANT_API)):
            if group[kind]:
                routers.append(
                    Router(path=path, route_handlers=group[kind], opt={"context": context})
                )
    return [*routers, *outside]


def register_audit_names() -> None:
    """Each context's names for the audit trail's sentences (its ``names`` module)."""
    for package in pkgutil.iter_modules(opencdmo.__path__):
        if package.ispkg and importlib.util.find_spec(f"opencdmo.{package.name}.names"):
            module = importlib.import_module(f"opencdmo.{package.name}.names")
            sentences.register(module.AUDIT_NAMES, getattr(module, "AUDIT_PEOPLE", None))
            coverage.register(getattr(module, "AUDIT_COVERAGE", ()))


CONTEXT_ROUTES = discover_routes()
register_audit_names()
# Room in a body for the form fields and part headers around an uploaded file.
UPLOAD_OVERHEAD = 256 * 1024
API_ERRORS = {
    400: "Malformed request (unparseable body or parameter, a body nested over 32 levels, "
    "a key twice)",
    401: "No valid session or API token",
    403: "The caller's roles do not allow this, or the CSRF check failed",
    404: "No such object in this tenant (another tenant's objects are not found either)",
    409: "The change conflicts with the current state",
    422: "The input is well-formed but not acceptable (a wrong type, a length or range, an "
    "unknown field, a rule); the message names the field",
    429: "Too many failed attempts, or too many requests for the API token or tenant; retry "
    "after the Retry-After seconds",
    503: "The database is busy; nothing was changed, retry after the Retry-After seconds",
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
    blobs.configure(settings)
    ratelimit.configure(ratelimit.Limiter.from_settings(settings))
    ops_routes.configure(settings.metrics_token)
    keeper = Keeper(store_for(settings), settings.audit_checkpoint_seconds)
    urls = urls or database_urls(settings)
    engine = bind_engine(urls)

    async def startup() -> None:
        await start_pool(engine, settings.db_pool_size)
        await authcache.tokens.start(urls.app, settings.auth_cache_seconds)
        await keeper.start()
        # What is made by now (modules, routes, the pool) lives as long as the process: out
        # of the cycle collector's full rounds, which would otherwise walk all of it each
        # time and make a large page (a batch record of thousands of entries) pay for it.
        gc.collect()
        gc.freeze()

    async def shutdown() -> None:
        await authcache.tokens.stop()
        await keeper.stop()
        await audit.drain()
        await close_pool(engine)

    handlers = context_routers(CONTEXT_ROUTES)
    protect_tenant_routes(handlers)
    for path, handler in (pair for item in handlers for pair in handlers_of(item)):
        if path.startswith("/api/"):
            handler.responses = {**error_responses(), **(handler.responses or {})}
        if handler.opt.get(UPLOADS):
            # A route that takes a file: its body may be as large as the upload limit allows.
            handler.request_max_body_size = settings.upload_max_bytes + UPLOAD_OVERHEAD
        if handler.opt.get(PACKAGE_UPLOADS):
            # A tech-transfer package: streamed to a file, as large as the package limit.
            handler.request_max_body_size = settings.transfer_upload_max_bytes + UPLOAD_OVERHEAD
    handlers.append(
        create_static_files_router(path="/static", directories=[STATIC], include_in_schema=False)
    )
    return Litestar(
        route_handlers=handlers,
        state=State(
            {
                PAGE_CONTEXT: page_context,
                FLASH_SIGNER: FlashSigner(
                    settings.resolved_secret_key().encode(), settings.cookie_secure
                ),
            }
        ),
        dependencies={"settings": Provide(lambda: settings, use_cache=True, sync_to_thread=False)},
        middleware=[
            MetricsMiddleware(),
            PrincipalMiddleware(settings),
            RateLimitMiddleware(),
            DefineMiddleware(SessionCSRF, settings=settings),
        ],
        before_send=[security_headers],
        template_config=template_config(),
        exception_handlers={Exception: errors.handle},
        before_request=bodies.check_request,
        on_startup=[startup],
        on_shutdown=[shutdown],
        openapi_config=OpenAPIConfig(
            title="OpenCDMO API",
            version="1",
            path="/schema",
            # The schema document only: the documentation viewers load their scripts and
            # fonts from CDNs, which an air-gapped network cannot reach (and the
            # Content-Security-Policy refuses). Any OpenAPI viewer can open this file.
            render_plugins=[JsonRenderPlugin()],
        ),
        debug=False,
        logging_config=None,
        request_max_body_size=2 * 1024 * 1024,
    )
