"""The real OpenID provider of the tests (``server.mjs``: panva's oidc-provider on Node),
started on a free port of 127.0.0.1, and a person's trip through its sign-in pages."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.servers import free_port

HERE = Path(__file__).parent
CALLBACK = "https://testserver/sso/callback"
CLIENTS = [
    {
        "client_id": "opencdmo",
        "client_secret": "opencdmo-test-secret",
        "redirect_uris": [CALLBACK],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
    },
    {  # another relying party of the same provider: its tokens are for another audience
        "client_id": "other-app",
        "client_secret": "other-test-secret",
        "redirect_uris": [CALLBACK],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
    },
]


class OidcProvider:
    """``callbacks``: more redirect URIs the app's client may use (a served app's own)."""

    def __init__(self, workdir: Path, callbacks: tuple[str, ...] = ()) -> None:
        if not (HERE / "node_modules" / "oidc-provider").is_dir():
            raise RuntimeError("run `npm ci --prefix tests/oidc` (make test does) first")
        self.workdir = workdir
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.accounts_file = workdir / "accounts.json"
        self.accounts: dict[str, dict[str, Any]] = {}
        self.write_accounts()
        self.process: subprocess.Popen[str] | None = None
        self.kid = ""
        self.callbacks = callbacks

    def write_accounts(self) -> None:
        self.accounts_file.write_text(json.dumps(self.accounts))

    def add(self, login: str, email: str, groups: list[str], password: str = "pw") -> None:
        self.accounts[login] = {
            "password": password,
            "email": email,
            "name": login.title(),
            "groups": groups,
        }
        self.write_accounts()

    def start(self, kid: str = "key-1") -> None:
        self.kid = kid
        config = self.workdir / "provider.json"
        config.write_text(
            json.dumps(
                {
                    "port": self.port,
                    "kid": kid,
                    "clients": [
                        {**CLIENTS[0], "redirect_uris": [CALLBACK, *self.callbacks]},
                        *CLIENTS[1:],
                    ],
                    "accounts_file": str(self.accounts_file),
                }
            )
        )
        self.process = subprocess.Popen(
            ["node", str(HERE / "server.mjs")],
            env={**os.environ, "OIDC_CONFIG": str(config)},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.startswith("listening"), line
        for _ in range(100):  # discovery answers: the provider is ready
            try:
                if httpx.get(f"{self.issuer}/.well-known/openid-configuration").is_success:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("the OpenID provider did not answer discovery")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            if self.process.stdout is not None:
                self.process.stdout.close()
            self.process = None

    def restart(self, kid: str) -> None:
        """A new signing key (the key set changes, as in a rotation)."""
        self.stop()
        self.start(kid)


async def lot_in_quarantine(ctx: Any, handler: Any) -> Any:
    """A lot of a new material received into quarantine by ``handler`` (a materials handler
    of ``ctx``): what a QA person of a single sign-on tenant then releases with a signature."""
    from datetime import date, timedelta
    from decimal import Decimal

    from opencdmo.inventory import receipt
    from opencdmo.inventory import service as inventory

    material = await inventory.create_material(
        handler, "PBS", "Phosphate-buffered saline", "reagent", "mL", "15-25 °C", 365, None
    )
    delivery = receipt.Receipt(
        material.id,
        "PBS-2612",
        "Gibco",
        "2612-01",
        Decimal("1"),
        "L",
        date.today() + timedelta(days=200),
        1,
    )
    return await receipt.receive(handler, delivery)


async def sign_in_at_provider(
    session: httpx.AsyncClient, authorize_url: str, login: str, password: str = "pw"
) -> str:
    """Follow the provider's pages as a browser would, sign in on its form, and return the
    URL it sends the browser back to (the app's callback)."""
    url = authorize_url
    for _ in range(10):
        if url.startswith(CALLBACK):
            return url
        response = await session.get(url)
        if response.status_code == 200 and "<form" in response.text:
            action = re.search(r'action="([^"]+)"', response.text)
            assert action, response.text
            response = await session.post(
                str(response.url.join(action.group(1))),
                data={"login": login, "password": password},
            )
        assert response.status_code in (302, 303), (response.status_code, response.text)
        url = str(httpx.URL(str(response.url)).join(response.headers["location"]))
    raise AssertionError("the provider never sent the browser back")
