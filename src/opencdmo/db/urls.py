"""Owner and application connection URLs, for the embedded server or an external one."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from opencdmo.settings import Settings, SettingsError

APP_ROLE = "opencdmo_app"


@dataclass(frozen=True)
class DatabaseUrls:
    owner: str
    app: str

    def sqlalchemy_owner(self) -> str:
        """The owner URL in the form alembic (SQLAlchemy with asyncpg) expects."""
        scheme, rest = self.owner.split("://", 1)
        return f"postgresql+asyncpg://{rest}" if scheme.startswith("postgres") else self.owner


def with_user(url: str, user: str, password: str | None) -> str:
    """The same server and database reached as another role."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = quote(user, safe="")
    if password:
        netloc += ":" + quote(password, safe="")
    netloc += "@" + host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def resolve_urls(settings: Settings, owner_url: str) -> DatabaseUrls:
    if not owner_url.startswith(("postgresql://", "postgres://")):
        raise SettingsError("OPENCDMO_DATABASE_URL must start with postgresql://")
    app = settings.app_database_url or with_user(owner_url, APP_ROLE, settings.app_db_password)
    return DatabaseUrls(owner=owner_url, app=app)
