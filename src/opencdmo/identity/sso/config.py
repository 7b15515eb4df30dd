"""A tenant's single sign-on configuration: the manifest's ``sso:`` section, as stored in
``tenants.sso`` (no secret: only the NAME of the environment variable that holds it)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from opencdmo.errors import ValidationFailed

SIGNING = ("reauthenticate", "password")
ENV_NAME = r"^[A-Z_][A-Z0-9_]{0,127}$"

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["issuer", "client_id", "client_secret_env", "roles"],
    "properties": {
        "issuer": {"type": "string", "pattern": "^https?://[^\\s]+$", "maxLength": 2000},
        "client_id": {"type": "string", "minLength": 1, "maxLength": 400},
        "client_secret_env": {"type": "string", "pattern": ENV_NAME},
        "scopes": {"type": "array", "items": {"type": "string", "pattern": "^[!-~]+$"}},
        "email_domains": {
            "type": "array",
            "items": {"type": "string", "pattern": "^[A-Za-z0-9.-]+$"},
        },
        "groups_claim": {"type": "string", "minLength": 1, "maxLength": 200},
        "roles": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
        "password_sign_in": {"type": "boolean"},
        "signing": {"enum": list(SIGNING)},
        "label": {"type": "string", "minLength": 1, "maxLength": 200},
    },
}


@dataclass(frozen=True)
class SsoConfig:
    issuer: str
    client_id: str
    client_secret_env: str
    roles: dict[str, list[str]]
    scopes: list[str] = field(default_factory=lambda: ["openid", "email", "profile"])
    email_domains: list[str] = field(default_factory=list)
    groups_claim: str = "groups"
    password_sign_in: bool = True
    signing: str = "reauthenticate"
    label: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SsoConfig:
        scopes = list(data.get("scopes") or ["openid", "email", "profile"])
        if "openid" not in scopes:
            scopes.insert(0, "openid")
        return cls(
            issuer=str(data["issuer"]).rstrip("/"),
            client_id=str(data["client_id"]),
            client_secret_env=str(data["client_secret_env"]),
            roles={str(k): sorted(set(v)) for k, v in (data.get("roles") or {}).items()},
            scopes=scopes,
            email_domains=sorted({d.lower() for d in data.get("email_domains") or []}),
            groups_claim=str(data.get("groups_claim") or "groups"),
            password_sign_in=bool(data.get("password_sign_in", True)),
            signing=str(data.get("signing") or "reauthenticate"),
            label=str(data.get("label") or ""),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def client_secret(self) -> str:
        """The client secret, read from its environment variable when it is needed."""
        secret = os.environ.get(self.client_secret_env, "")
        if not secret:
            raise ValidationFailed(
                "Single sign-on is not available: its client secret is not configured "
                f"(environment variable {self.client_secret_env})."
            )
        return secret

    def roles_for(self, groups: list[str]) -> list[str]:
        """The OpenCDMO roles the provider's group (or role) values map to."""
        return sorted({role for group in groups for role in self.roles.get(group, [])})

    def allows_email(self, email: str) -> bool:
        if not self.email_domains:
            return True
        return email.rsplit("@", 1)[-1].lower() in self.email_domains
