"""The embedded server's lifetime across `opencdmo` processes, in a temporary data directory:
`db start` keeps it until `db stop`; other commands use a running one and leave it running, and
start and stop it themselves only when none was running; `serve` stops on Ctrl+C or SIGTERM
with exit code 0, stopping the server it started."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.integration.test_cli import run
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One migrated cluster for the module (initdb once); each test starts with it stopped."""
    path = tmp_path_factory.mktemp("embedded")
    _cli_sync(_env(path), "db", "upgrade")
    yield path
    _cli_sync(_env(path), "db", "stop")


@pytest.fixture
async def env(data_dir: Path) -> AsyncIterator[dict[str, str]]:
    environment = _env(data_dir)
    assert not _running(data_dir)
    yield environment
    await run(environment, "db", "stop")


def _env(data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OPENCDMO_") and k not in ("XDG_RUNTIME_DIR", "TMPDIR")
    }
    env.update(
        {
            "OPENCDMO_DATA_DIR": str(data_dir),
            "OPENCDMO_SECRET_KEY": "lifetime-test",
            "OPENCDMO_LOG_LEVEL": "WARNING",
            "OPENCDMO_DB_POOL_SIZE": "2",
        }
    )
    return env


def _cli_sync(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "opencdmo.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def _running(data_dir: Path) -> bool:
    """Seen from outside: the postmaster's pid file names a live process."""
    pid_file = data_dir / "pg" / "postmaster.pid"
    if not pid_file.exists():
        return False
    try:
        os.kill(int(pid_file.read_text().split()[0]), 0)
    except ProcessLookupError:
        return False
    return True


async def _answers(url: str) -> bool:
    try:
        connection = await asyncpg.connect(url, timeout=5)
    except (OSError, asyncpg.PostgresError):
        return False
    await connection.close()
    return True


class Serving:
    """`opencdmo serve` as a real process on a port given by OPENCDMO_PORT."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.env = {**env, "OPENCDMO_HOST": "127.0.0.1", "OPENCDMO_PORT": str(self.port)}

    async def start(self) -> Serving:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "opencdmo.cli",
            "serve",
            env=self.env,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with httpx.AsyncClient() as client:
            for _ in range(600):
                try:
                    if (await client.get(f"http://127.0.0.1:{self.port}/readyz")).is_success:
                        return self
                except httpx.TransportError:
                    pass
                if self.process.returncode is not None:
                    break
                await asyncio.sleep(0.1)
        if self.process.returncode is None:
            self.process.kill()
        _, err = await self.process.communicate()
        raise AssertionError(f"serve did not start: {err.decode()[-2000:]}")

    async def stop(self, sig: signal.Signals) -> tuple[int, str]:
        self.process.send_signal(sig)
        out, err = await self.process.communicate()
        assert self.process.returncode is not None
        assert "Traceback" not in err.decode(), err.decode()
        return self.process.returncode, out.decode()


async def test_db_start_keeps_the_server_until_db_stop(env: dict[str, str], data_dir: Path) -> None:
    code, url, err = await run(env, "db", "start")
    assert code == 0, err
    assert "stays up until `opencdmo db stop`" in err
    url = url.strip()
    assert await _answers(url)
    code, out, err = await run(env, "db", "upgrade")
    assert code == 0, err
    assert _running(data_dir), "a command that found it running leaves it running"
    assert await _answers(url)
    code, out, _ = await run(env, "db", "stop")
    assert (code, out.strip()) == (0, f"embedded PostgreSQL in {data_dir / 'pg'} stopped")
    assert not _running(data_dir)
    assert not await _answers(url)
    code, out, _ = await run(env, "db", "stop")
    assert (code, out.strip()) == (0, "the embedded PostgreSQL is not running")


async def test_a_command_that_found_none_running_stops_the_one_it_started(
    env: dict[str, str], data_dir: Path
) -> None:
    code, out, err = await run(env, "db", "upgrade")
    assert code == 0, err
    assert "latest migration" in out
    assert not _running(data_dir)


async def test_serve_prints_its_address_and_ctrl_c_stops_it_and_its_server(
    env: dict[str, str], data_dir: Path
) -> None:
    serving = await Serving(env).start()
    assert _running(data_dir)
    code, out = await serving.stop(signal.SIGINT)
    assert code == 0, "a stop by Ctrl+C is a clean exit"
    assert f"Serving http://127.0.0.1:{serving.port} (Ctrl+C to stop)" in out.splitlines()
    assert not _running(data_dir), "serve stops the embedded server it started"


async def test_db_start_while_serving_keeps_the_server_after_serve_stops(
    env: dict[str, str], data_dir: Path
) -> None:
    serving = await Serving(env).start()
    code, _, err = await run(env, "db", "start")
    assert code == 0, err
    code, _ = await serving.stop(signal.SIGTERM)
    assert code == 0, "a stop by SIGTERM is a clean exit"
    assert _running(data_dir), "db start kept it: only db stop ends it"


async def test_the_last_process_using_a_started_server_stops_it(
    env: dict[str, str], data_dir: Path
) -> None:
    first = await Serving(env).start()
    second = await Serving(env).start()
    assert (await first.stop(signal.SIGTERM))[0] == 0
    assert _running(data_dir), "the second server still uses it"
    second.process.kill()  # gone without its exit hooks: its record stays behind
    await second.process.wait()
    assert _running(data_dir)
    code, _, err = await run(env, "db", "upgrade")
    assert code == 0, err
    assert not _running(data_dir), "the next command sees it unused and stops it"
