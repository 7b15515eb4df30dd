"""The OpenID provider as the app speaks to it: discovery (cached), the JWKS (refetched once
for an unknown key id: key rotation), the authorization URL with PKCE (S256), the code
exchange, and the ID token's checks. authlib's OAuth2 client makes the requests; joserfc
(authlib's JOSE library) verifies the token."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.integrations.httpx_client import AsyncOAuth2Client  # type: ignore[import-untyped]
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    DecodeError,
    ExpiredTokenError,
    InvalidKeyIdError,
    JoseError,
)
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from opencdmo.errors import AppError, NotAuthenticated
from opencdmo.identity.sso.config import SsoConfig
from opencdmo.settings import Settings

ALGORITHMS = ("RS256", "PS256", "ES256", "ES384", "RS384", "RS512", "Ed25519")


class ProviderUnavailable(AppError):
    status_code = 502


@dataclass
class _Cached:
    value: dict[str, Any]
    fetched: float


_DISCOVERY: dict[str, _Cached] = {}
_JWKS: dict[str, _Cached] = {}


def forget() -> None:
    """Drop every cached discovery document and key set (tests, a changed configuration)."""
    _DISCOVERY.clear()
    _JWKS.clear()


async def _get_json(settings: Settings, url: str) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient(timeout=settings.sso_http_timeout_seconds) as client:
            response = await client.get(url)
            response.raise_for_status()
            data = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ProviderUnavailable(f"The identity provider could not be reached ({url}).") from exc
    if not isinstance(data, dict):
        raise ProviderUnavailable(f"The identity provider answered {url} with no JSON object.")
    return data


async def discover(settings: Settings, config: SsoConfig) -> dict[str, Any]:
    """The provider's ``/.well-known/openid-configuration``, cached for a while."""
    cached = _DISCOVERY.get(config.issuer)
    if cached and time.monotonic() - cached.fetched < settings.sso_discovery_cache_seconds:
        return cached.value
    document = await _get_json(settings, f"{config.issuer}/.well-known/openid-configuration")
    if str(document.get("issuer", "")).rstrip("/") != config.issuer:
        raise ProviderUnavailable("The identity provider's discovery names another issuer.")
    _DISCOVERY[config.issuer] = _Cached(document, time.monotonic())
    return document


async def key_set(settings: Settings, config: SsoConfig, *, refetch: bool = False) -> KeySet:
    cached = _JWKS.get(config.issuer)
    if cached is None or refetch:
        document = await discover(settings, config)
        cached = _Cached(await _get_json(settings, str(document["jwks_uri"])), time.monotonic())
        _JWKS[config.issuer] = cached
    return KeySet.import_key_set(cached.value)  # type: ignore[arg-type]


def _client(config: SsoConfig, secret: str, redirect_uri: str) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=config.client_id,
        client_secret=secret,
        scope=" ".join(config.scopes),
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
    )


async def authorization_url(
    settings: Settings,
    config: SsoConfig,
    redirect_uri: str,
    *,
    state: str,
    nonce: str,
    code_verifier: str,
    fresh_login: bool = False,
) -> str:
    """Where to send the browser; ``fresh_login`` (a signature) asks the provider to
    authenticate the person again whatever session they have there."""
    document = await discover(settings, config)
    extra: dict[str, Any] = {"nonce": nonce}
    if fresh_login:
        extra.update(prompt="login", max_age=0)
    async with _client(config, "", redirect_uri) as client:
        url, _ = client.create_authorization_url(
            document["authorization_endpoint"], state=state, code_verifier=code_verifier, **extra
        )
    return str(url)


async def exchange_code(
    settings: Settings, config: SsoConfig, redirect_uri: str, code: str, code_verifier: str
) -> str:
    """The ID token the provider gives for the authorization code."""
    document = await discover(settings, config)
    try:
        async with _client(config, config.client_secret(), redirect_uri) as client:
            token = await client.fetch_token(
                document["token_endpoint"],
                grant_type="authorization_code",
                code=code,
                code_verifier=code_verifier,
                timeout=settings.sso_http_timeout_seconds,
            )
    except httpx.HTTPError as exc:
        raise ProviderUnavailable("The identity provider could not be reached.") from exc
    except Exception as exc:  # authlib's OAuthError and kin: the provider refused the code
        raise NotAuthenticated(f"The identity provider refused the sign-in ({exc}).") from exc
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise NotAuthenticated("The identity provider gave no ID token.")
    return id_token


async def verify_id_token(
    settings: Settings,
    config: SsoConfig,
    id_token: str,
    nonce: str,
    *,
    now: int | None = None,
) -> dict[str, Any]:
    """The ID token's claims once its signature (through the JWKS, refetched once for an
    unknown key id), issuer, audience, expiry, issue time and nonce are checked."""
    keys = await key_set(settings, config)
    try:
        try:
            token = jwt.decode(id_token, keys, algorithms=ALGORITHMS)
        except InvalidKeyIdError:
            keys = await key_set(settings, config, refetch=True)
            token = jwt.decode(id_token, keys, algorithms=ALGORITHMS)
    except (BadSignatureError, InvalidKeyIdError, DecodeError, ValueError) as exc:
        raise NotAuthenticated("The identity provider's ID token is not validly signed.") from exc
    except JoseError as exc:
        raise NotAuthenticated(f"The ID token cannot be read ({exc.error}).") from exc
    claims = dict(token.claims)
    _check_claims(settings, config, claims, nonce, now)
    return claims


def _check_claims(
    settings: Settings, config: SsoConfig, claims: dict[str, Any], nonce: str, now: int | None
) -> None:
    registry = JWTClaimsRegistry(
        now=now,
        leeway=settings.sso_clock_skew_seconds,
        iss={"essential": True, "value": config.issuer},
        aud={"essential": True, "value": config.client_id},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": nonce},
    )
    try:
        registry.validate(claims)
    except ExpiredTokenError as exc:
        raise NotAuthenticated("The identity provider's ID token has expired.") from exc
    except JoseError as exc:
        raise NotAuthenticated(
            f"The ID token was refused ({exc.description or exc.error})."
        ) from exc
    issued = claims["iat"]
    current = int(time.time()) if now is None else now
    if not isinstance(issued, int) or issued > current + settings.sso_clock_skew_seconds:
        raise NotAuthenticated("The ID token was refused (issued in the future).")
    audience = claims["aud"]
    if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != config.client_id:
        raise NotAuthenticated("The ID token was refused (issued to another party).")
