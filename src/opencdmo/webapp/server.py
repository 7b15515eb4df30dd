"""Serving the app with uvicorn: the socket bound first (so the address printed is the one
served), one process or several workers, and a stop by Ctrl+C or SIGTERM that exits cleanly."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
GRACE_SECONDS = 30


def serve(app: Any, *, host: str, port: int, workers: int, announce: Callable[[str], None]) -> int:
    """Serve ``app`` (an app, or with several workers an import string of a factory); returns
    0 after a stop by signal, 3 when the app failed to start."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        workers=workers,
        factory=isinstance(app, str),
        log_config=None,
        access_log=False,
        proxy_headers=False,
        # A stop waits this long for open responses: a trend chart's event stream would hold
        # it for minutes; cancelled, its browser reconnects to another process.
        timeout_graceful_shutdown=GRACE_SECONDS,
    )
    sock = config.bind_socket()
    announce(f"Serving {address(sock)} (Ctrl+C to stop)")
    server = uvicorn.Server(config)
    with _stop_signals_end_cleanly():
        try:
            if workers > 1:
                Multiprocess(config, sockets=[sock]).run()
                return 0
            server.run(sockets=[sock])
        finally:
            sock.close()
    return 0 if server.started else 3


def address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextmanager
def _stop_signals_end_cleanly() -> Iterator[None]:
    """uvicorn stops gracefully on SIGINT and SIGTERM, then raises the signal again once its
    handlers are gone: with these no-op handlers in place, that ends the process normally
    (exit hooks run, so an embedded server started here stops) instead of with 130 or 143."""
    previous = {sig: signal.signal(sig, _ignore) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ignore(_signum: int, _frame: Any) -> None:
    """A stop signal that arrives after the server has stopped: nothing left to stop."""
