"""A small load harness: a keep-alive HTTP/1.1 client on raw asyncio streams (so the client
costs little next to the server), a database, a server process, and the statistics."""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Result:
    name: str
    clients: int
    requests: int
    seconds: float
    latencies: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000

    def line(self) -> str:
        return (
            f"{self.name:<34} {self.clients:>3} clients  {self.rps:>8.0f} req/s  "
            f"p50 {self.pct(0.50):6.2f} ms  p95 {self.pct(0.95):6.2f} ms"
        )


async def run_load(
    name: str,
    clients: int,
    seconds: float,
    make_worker: Callable[[], Awaitable[Callable[[], Awaitable[None]]]],
) -> Result:
    """``clients`` workers call their operation back to back for ``seconds`` (after a warm-up)."""
    operations = [await make_worker() for _ in range(clients)]
    for op in operations:  # warm-up: connections open, caches filled
        await op()
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def loop(op: Callable[[], Awaitable[None]]) -> None:
        while time.perf_counter() < stop:
            started = time.perf_counter()
            await op()
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(loop(op) for op in operations))
    return Result(name, clients, len(latencies), time.perf_counter() - began, latencies)


class HttpConnection:
    """One keep-alive connection sending one fixed request at a time (``send``: any request)."""

    def __init__(self, host: str, port: int, request: bytes = b"", expect: int = 200) -> None:
        self.host, self.port, self.request, self.expect = host, port, request, expect
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __call__(self) -> None:
        await self.send(self.request)

    async def send(self, request: bytes) -> bytes:
        """Send one request and read its response; returns the body (any other status than
        the expected one raises)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        body = await self.reader.readexactly(length)
        if status != self.expect:
            raise RuntimeError(f"HTTP {status}: {body[:500].decode(errors='replace')}")
        return body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


def get_request(host: str, port: int, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def post_request(host: str, port: int, path: str, headers: dict[str, str], body: bytes) -> bytes:
    """A POST of a JSON body on a keep-alive connection."""
    more = {"Content-Type": "application/json", "Content-Length": str(len(body)), **headers}
    return get_request(host, port, path, more).replace(b"GET ", b"POST ", 1) + body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def fresh_database(prefix: str) -> tuple[str, str]:
    """A new database on OPENCDMO_BENCH_DATABASE_URL's server or the embedded one; returns
    (owner URL, data dir)."""
    from opencdmo.db.embedded import start_embedded

    data_dir = Path(tempfile.gettempdir()) / f"opencdmo-bench-{os.getuid()}"
    server = os.environ.get("OPENCDMO_BENCH_DATABASE_URL") or start_embedded(data_dir)
    name = f"{prefix}_{uuid.uuid4().hex[:6]}"
    base, _, query = server.partition("?")
    root = base.rsplit("/", 1)[0]
    admin = await asyncpg.connect(f"{root}/postgres" + (f"?{query}" if query else ""))
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    return f"{root}/{name}" + (f"?{query}" if query else ""), str(data_dir)


async def drop_database(owner_url: str) -> None:
    """Remove a benchmark database (they are large: never leave them behind)."""
    base, _, query = owner_url.partition("?")
    root, name = base.rsplit("/", 1)
    admin = await asyncpg.connect(f"{root}/postgres" + (f"?{query}" if query else ""))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def server_env(owner_url: str, data_dir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCDMO_")}
    env.update(
        {
            "OPENCDMO_DATABASE_URL": owner_url,
            "OPENCDMO_DATA_DIR": data_dir,
            "OPENCDMO_SECRET_KEY": "bench",
            "OPENCDMO_LOG_LEVEL": "WARNING",
            "OPENCDMO_DB_POOL_SIZE": "20",
            "OPENCDMO_COOKIE_SECURE": "false",
            # The rate limiter runs on every API request (its cost is measured) but never
            # refuses one: the benchmarks measure throughput, not the limits.
            "OPENCDMO_API_RATE_PER_TOKEN": "100000000",
            "OPENCDMO_API_RATE_PER_TENANT": "100000000",
        }
    )
    return env


async def start_server(env: dict[str, str], port: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "opencdmo.cli", "serve", "--port", str(port), env=env, cwd=ROOT
    )
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return process
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    process.terminate()
    raise RuntimeError("the server did not start")


def summary(results: list[Result]) -> None:
    for result in results:
        print(result.line())


def median(values: list[float]) -> float:
    return statistics.median(values)
