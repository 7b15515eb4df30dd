"""One error handler: the same error as JSON (API), an htmx fragment, or a full page."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import asyncpg
from litestar import MediaType, Request, Response
from litestar.background_tasks import BackgroundTask
from litestar.exceptions import HTTPException, ValidationException
from litestar.response import Redirect, Template
from msgspec import Struct

from opencdmo.audit.service import record_security
from opencdmo.errors import AppError, NotAuthenticated, NotFound
from opencdmo.fields import humanise
from opencdmo.web.principal import principal_of

log = logging.getLogger("opencdmo.errors")

TITLES = {
    400: "Bad request",
    401: "Sign-in required",
    403: "Not permitted",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Invalid input",
    429: "Too many attempts",
    500: "Internal error",
    503: "Busy",
}
# What an HTTP error says when it came with no words of its own (Litestar's detail is its
# status phrase): an address that matches no route, a method the address does not take.
PLAIN_MESSAGES = {
    404: "There is nothing at this address: it may be mistyped, or the link may be out of date.",
    405: "This address does not take that kind of request.",
}
BUSY_RETRY_SECONDS = 5
LOST_RETRY_SECONDS = 1
# What asyncpg raises for a lost database connection: class 08 (connection exception: the
# connection was closed, broken or refused) and the server ending sessions (terminated by an
# administrator, crashed, starting up or shutting down).
CONNECTION_LOST = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
)


class ErrorDetail(Struct):
    status: int
    title: str
    message: str
    details: Any = None
    request_id: str | None = None


class ErrorBody(Struct):
    """Every API error response has this shape."""

    error: ErrorDetail


def wants_json(request: Request[Any, Any, Any]) -> bool:
    if request.url.path.startswith("/api/") or request.url.path.startswith("/schema"):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def connection_lost(exc: BaseException) -> bool:
    """Whether the error, or one it was raised from or while handling, is a lost database
    connection (the rollback after a killed backend fails on its own: the loss is its
    context)."""
    seen: set[int] = set()
    found: BaseException | None = exc
    while found is not None and id(found) not in seen:
        if isinstance(found, CONNECTION_LOST):
            return True
        seen.add(id(found))
        found = found.__cause__ or found.__context__
    return False


def _describe(exc: Exception) -> tuple[int, str, Any, dict[str, str]]:
    if isinstance(exc, AppError):
        return exc.status_code, exc.message, exc.details, exc.headers
    if isinstance(exc, asyncpg.exceptions.DataError):
        # Class 22 (data exception): a value from the request the database refuses, such as a
        # NUL character or an out-of-range number. Nothing was written (the transaction rolled
        # back).
        log.info("refused input value: %s", exc)
        return (
            422,
            "A value in the request cannot be stored (for example a NUL character).",
            None,
            {},
        )
    if isinstance(exc, asyncpg.exceptions.TooManyConnectionsError):
        # The database has no connection to spare: the request changed nothing and can be
        # sent again shortly.
        log.warning("database busy: %s", type(exc).__name__)
        return (
            503,
            "The database is busy; nothing was changed. Try again in a few seconds.",
            None,
            {"Retry-After": str(BUSY_RETRY_SECONDS)},
        )
    if connection_lost(exc):
        # The server rolled the open transaction back with the connection: the request can be
        # sent again (an entry's retry with its idempotency key is given the first if kept).
        log.warning("database connection lost: %s", type(exc).__name__)
        return (
            503,
            "The database connection was lost; retry the request.",
            None,
            {"Retry-After": str(LOST_RETRY_SECONDS)},
        )
    if isinstance(exc, ValidationException):
        problems = _validation_problems(exc.extra)
        sentences = [p["message"] for p in problems] or [str(exc.detail)]
        return 400, "The request is not acceptable: " + "; ".join(sentences) + ".", problems, {}
    if isinstance(exc, HTTPException):
        title = TITLES.get(exc.status_code, "Error")
        plain = not exc.detail or exc.detail.casefold() == title.casefold()
        message = PLAIN_MESSAGES.get(exc.status_code, title) if plain else exc.detail
        return exc.status_code, message, exc.extra or None, dict(exc.headers or {})
    return 500, "An unexpected error occurred. It has been logged with the request id.", None, {}


def _validation_problems(extra: Any) -> list[dict[str, str]]:
    """Litestar's validation details ({'message': 'Expected `int` >= 1', 'key': 'limit',
    'source': ParamType.QUERY}) as sentences naming the field and where it was sent."""
    problems = []
    for item in extra if isinstance(extra, list) else []:
        if not isinstance(item, dict):
            continue
        source = item.get("source")
        where = str(getattr(source, "value", source or "")) or None
        key = str(item.get("key") or "") or None
        label = f"{key} ({where})" if key and where and where != "body" else key
        sentence = humanise(str(item.get("message", "")), label)
        problems.append({"field": key or "", "source": where or "", "message": sentence})
    return problems


def sentences(details: Any) -> list[str]:
    """What a page shows of an error's details: only the sentences written for a person."""
    if isinstance(details, dict):
        details = details.get("problems")
    if not isinstance(details, list):
        return []
    found = [d.get("message") if isinstance(d, dict) else d for d in details]
    return [str(text) for text in found if isinstance(text, str) and text]


def handle(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Litestar calls exception handlers synchronously; side effects go to a background task."""
    response = _render(request, exc)
    principal = principal_of(request.scope)
    if isinstance(exc, NotFound) and principal.ctx is not None:
        # A missing or another tenant's object: a security event, written after the response.
        response.background = BackgroundTask(
            record_security,
            "access.not_found",
            actor=principal.ctx.actor,
            meta=principal.meta,
            tenant_id=principal.ctx.tenant_id,
            detail={"path": request.url.path, "method": request.method},
        )
    return response


def _render(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    status, message, details, headers = _describe(exc)
    principal = principal_of(request.scope)
    request_id = principal.meta.request_id
    if status >= 500:
        log.error(
            "unhandled error",
            exc_info=exc,
            extra={"request_id": request_id, "path": request.url.path},
        )
    title = TITLES.get(status, "Error")
    if wants_json(request):
        body = ErrorBody(ErrorDetail(status, title, message, details, request_id))
        return Response(body, status_code=status, headers=headers, media_type=MediaType.JSON)
    if status == 401 and isinstance(exc, NotAuthenticated | HTTPException):
        target = "/login?next=" + quote(
            request.url.path + (f"?{request.url.query}" if request.url.query else "")
        )
        if request.headers.get("hx-request"):
            return Response("", status_code=401, headers={"HX-Redirect": target})
        return Redirect(target, status_code=303)
    context = {
        "status": status,
        "title": title,
        "message": message,
        "problems": sentences(details),
        "request_id": request_id,
        "principal": principal,
        "actor": principal.actor,
        "ctx": principal.ctx,
        "tenants": [],
        "allowed": set(),
    }
    if request.headers.get("hx-request"):
        return Template("_error.html", context=context, status_code=status, headers=headers)
    return Template("error.html", context=context, status_code=status, headers=headers)
