"""Security headers on every response, errors and unmatched paths included.

A ``before_send`` hook of the app (it sees every response start, also those Litestar's own
exception handling sends outside the route middleware):

- a Content-Security-Policy that allows only the app's own scripts, styles, images, fonts
  and requests: no inline script, no inline style (templates carry neither: behaviour is in
  ``/static/js``, presentation in ``/static/css``; htmx is told not to inject its indicator
  style and not to evaluate attributes, see ``base.html``), no framing, no foreign form target;
- ``X-Frame-Options: DENY`` for browsers that predate ``frame-ancestors``;
- ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: same-origin``;
- ``Cache-Control: no-store`` on everything but ``/static``: pages, fragments and API answers
  carry tenant data, tokens or CSRF tokens and must not stay in a shared or browser cache.
"""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)
ALWAYS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
}
STATIC_PREFIX = "/static/"


async def security_headers(message: Message, scope: Scope) -> None:
    if message["type"] != "http.response.start":
        return
    headers = MutableScopeHeaders.from_message(message)
    for name, value in ALWAYS.items():
        headers[name] = value
    if not scope.get("path", "").startswith(STATIC_PREFIX):
        headers["cache-control"] = "no-store"
