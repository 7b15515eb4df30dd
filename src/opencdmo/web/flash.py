"""Messages shown once, as a toast, on the page a command leads to ("Installed X v1.0.0",
"Submitted revision 3 for review").

A command's handler answers with ``see_other(request, url, flash="...")``: a 303 to the page
(or, for an htmx request, ``HX-Redirect``, so that the browser loads it) carrying the message
in a signed cookie; the next page rendered by ``pages.page`` shows it and deletes the cookie.
A handler that renders a page itself passes ``flash="..."`` to ``page``. The cookie is signed
(HMAC-SHA256 with the app's secret), so that nothing but the app can put words on its pages.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.datastructures import Cookie
from litestar.response import Redirect, Response

FLASH_COOKIE = "opencdmo_flash"
FLASH_SIGNER = "flash_signer"  # app.state key
MESSAGE_MAX = 300  # characters of one message; a cookie holds at most MESSAGES_MAX of them
MESSAGES_MAX = 3
KINDS = frozenset({"success", "info", "warning", "danger"})


@dataclass(frozen=True)
class Flash:
    message: str
    kind: str = "success"


@dataclass(frozen=True)
class FlashSigner:
    """Signs and reads the flash cookie; the app puts one in its state (``FLASH_SIGNER``)."""

    key: bytes
    secure: bool = True

    def dump(self, flashes: list[Flash]) -> str:
        payload = [{"m": f.message[:MESSAGE_MAX], "k": f.kind} for f in flashes[-MESSAGES_MAX:]]
        data = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
        return f"{data}.{self._mac(data)}"

    def load(self, value: str | None) -> list[Flash]:
        """The messages of a cookie value; none for a missing, malformed or forged one."""
        if not value or "." not in value:
            return []
        data, mac = value.rsplit(".", 1)
        if not hmac.compare_digest(mac, self._mac(data)):
            return []
        try:
            payload = json.loads(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
            return [
                Flash(str(item["m"])[:MESSAGE_MAX], item["k"] if item["k"] in KINDS else "info")
                for item in payload[:MESSAGES_MAX]
            ]
        except (ValueError, TypeError, KeyError):
            return []

    def cookie(self, flashes: list[Flash]) -> Cookie:
        return Cookie(
            key=FLASH_COOKIE,
            value=self.dump(flashes),
            httponly=True,
            samesite="lax",
            secure=self.secure,
            path="/",
            max_age=300,
        )

    def expired(self) -> Cookie:
        return Cookie(
            key=FLASH_COOKIE,
            value="",
            httponly=True,
            samesite="lax",
            secure=self.secure,
            path="/",
            max_age=0,
        )

    def _mac(self, data: str) -> str:
        return hmac.new(self.key, f"flash|{data}".encode(), hashlib.sha256).hexdigest()[:32]


def signer_of(request: Request[Any, Any, Any]) -> FlashSigner | None:
    signer = request.app.state.get(FLASH_SIGNER)
    return signer if isinstance(signer, FlashSigner) else None


def pending(request: Request[Any, Any, Any]) -> list[Flash]:
    """The messages the request's cookie carries (the page that shows them deletes it)."""
    signer = signer_of(request)
    if signer is None:
        return []
    return signer.load(request.cookies.get(FLASH_COOKIE))


def is_htmx(request: Request[Any, Any, Any]) -> bool:
    return bool(request.headers.get("hx-request")) and not request.headers.get("hx-boosted")


def see_other(
    request: Request[Any, Any, Any], url: str, *, flash: str | None = None, kind: str = "success"
) -> Response[Any]:
    """Go to ``url`` after a command: a 303, or ``HX-Redirect`` for an htmx request (a whole
    page load, not a swap of the next page into the form), with ``flash`` shown there once."""
    response: Response[Any]
    if is_htmx(request):
        response = Response(content=b"", status_code=200, headers={"HX-Redirect": url})
    else:
        response = Redirect(url, status_code=303)
    signer = signer_of(request)
    if flash and signer is not None:
        response.set_cookie(signer.cookie([*pending(request), Flash(flash, kind)]))
    return response


def trigger_header(flashes: list[Flash]) -> str:
    """The ``HX-Trigger`` header that shows the messages as toasts after an htmx swap (ASCII
    only: JSON escapes the rest, the browser's JSON.parse restores it)."""
    toasts = [{"message": f.message, "kind": f.kind} for f in flashes]
    return json.dumps({"opencdmo:toast": {"toasts": toasts}}, ensure_ascii=True)
