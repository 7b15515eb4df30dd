"""Where the database is: the external server named by the settings, or the embedded one."""

from __future__ import annotations

from opencdmo.db.embedded import start_embedded
from opencdmo.db.urls import DatabaseUrls, resolve_urls
from opencdmo.settings import Settings


def database_urls(settings: Settings, *, keep_running: bool = False) -> DatabaseUrls:
    owner = settings.database_url or start_embedded(settings.data_dir, keep_running=keep_running)
    return resolve_urls(settings, owner)
