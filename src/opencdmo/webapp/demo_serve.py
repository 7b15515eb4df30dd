"""``opencdmo demo-serve``: the demo as four processes, started together and stopped
together: the equipment simulator (OPC UA on 127.0.0.1), a capture worker for the demo
tenant's equipment, the job worker (``opencdmo worker``) and the web server.

The database is opened here, once (the embedded server, when no OPENCDMO_DATABASE_URL is
set, runs as long as this process), and its address handed to the four. "all four running"
is printed once the web server answers its health check and the simulator takes
connections; Ctrl-C (SIGINT) or SIGTERM, ``--once SECONDS`` after that, or any of the four
ending stops the others (SIGTERM, then SIGKILL after ``STOP_WAIT`` seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import httpx

READY_WAIT: Final = 60.0  # seconds the four have to start
STOP_WAIT: Final = 10.0


@dataclass(frozen=True)
class Plan:
    tenant: str
    host: str
    port: int
    simulator_port: int
    once: float | None = None


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process


def commands(plan: Plan) -> dict[str, list[str]]:
    cli = [sys.executable, "-m", "opencdmo.cli"]
    return {
        "simulator": [*cli, "equipment", "simulate", "--port", str(plan.simulator_port)],
        "capture": [*cli, "equipment", "capture", "--tenant", plan.tenant],
        "job worker": [*cli, "worker"],
        "web": [*cli, "serve", "--host", plan.host, "--port", str(plan.port)],
    }


async def run(plan: Plan, database_url: str, say: Callable[[str], None]) -> int:
    """Start the four, wait, stop them all; 0 when stopped as asked, 1 when one failed."""
    env = {**os.environ, "OPENCDMO_DATABASE_URL": database_url}
    children = []
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    try:
        for name, command in commands(plan).items():
            process = await asyncio.create_subprocess_exec(*command, env=env)
            children.append(Child(name, process))
            say(f"started the {name} (process {process.pid})")
        failed = await _supervise(plan, children, stopping, say)
    finally:
        await _stop(children, say)
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return 1 if failed else 0


async def _supervise(
    plan: Plan, children: list[Child], stopping: asyncio.Event, say: Callable[[str], None]
) -> bool:
    """Until asked to stop (or ``once`` after all four run); True when one ended first."""
    ended = [asyncio.create_task(c.process.wait()) for c in children]
    stop = asyncio.create_task(stopping.wait())
    try:
        ready = asyncio.create_task(_ready(plan))
        done, _ = await asyncio.wait(
            [ready, stop, *ended], timeout=READY_WAIT, return_when=asyncio.FIRST_COMPLETED
        )
        if ready not in done:
            ready.cancel()
            return _why(children, say, stopping, "did not start in time")
        say(f"all four running: http://{plan.host}:{plan.port}/ (Ctrl-C stops them)")
        done, _ = await asyncio.wait(
            [stop, *ended], timeout=plan.once, return_when=asyncio.FIRST_COMPLETED
        )
        return any(task in done for task in ended)
    finally:
        stop.cancel()
        for task in ended:
            task.cancel()


def _why(
    children: list[Child], say: Callable[[str], None], stopping: asyncio.Event, what: str
) -> bool:
    if stopping.is_set():
        return False
    gone = [c.name for c in children if c.process.returncode is not None]
    say(f"the {', '.join(gone)} ended" if gone else f"the demo {what}")
    return True


async def _ready(plan: Plan) -> None:
    """Until the web server answers /healthz and the simulator accepts a connection."""
    url = f"http://{plan.host}:{plan.port}/healthz"
    async with httpx.AsyncClient(timeout=2.0) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200 and await _listening(
                    plan.simulator_port
                ):
                    return
            await asyncio.sleep(0.2)


async def _listening(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _stop(children: list[Child], say: Callable[[str], None]) -> None:
    """SIGTERM to each still running (the web server last asked, first stopped), then wait."""
    for child in reversed(children):
        if child.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
    for child in reversed(children):
        try:
            code = await asyncio.wait_for(child.process.wait(), STOP_WAIT)
        except TimeoutError:
            child.process.kill()
            code = await child.process.wait()
        say(f"stopped the {child.name} (exit code {code})")
