"""The container image's recipe, rehearsed without a container engine (none runs here).

``infra/docker/Dockerfile`` is read instruction by instruction: each ``COPY`` of the project's
files is done into a directory standing for the image's ``/app``, each ``uv`` command of the
build stage is run there as written (with the stage's ``ENV``), and the image's entry point,
``opencdmo`` from that directory's own virtual environment with the image's ``ENV``, then runs
the roles compose runs first: ``db upgrade`` on an empty database, ``hub sync`` of the copied
content, and ``serve``, whose pages must answer. This proves what a build would: the lock
installs without the dev dependencies, the app imports nothing it does not install, and the
files the image copies are all the app needs. What it cannot prove: the base image itself
and the Debian packages its ``RUN apt-get`` adds.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from opencdmo.db.urls import DatabaseUrls
from tests.conftest import AUDIT_KEY
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "infra" / "docker" / "Dockerfile"


@dataclass
class Stage:
    copies: list[tuple[list[str], str]] = field(default_factory=list)  # (sources, destination)
    steps: list[tuple[str, object]] = field(default_factory=list)  # ("copy"|"run", ...)
    env: dict[str, str] = field(default_factory=dict)
    entrypoint: list[str] = field(default_factory=list)


def _instructions(text: str) -> list[tuple[str, str]]:
    """(instruction, arguments), continuation lines joined, comments left out."""
    found: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
            pending = ""
    return found


def _env(arguments: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in shlex.split(arguments))


def stages() -> list[Stage]:
    result: list[Stage] = []
    for word, arguments in _instructions(DOCKERFILE.read_text()):
        if word == "FROM":
            result.append(Stage())
            continue
        stage = result[-1]
        if word == "COPY":
            parts = [p for p in shlex.split(arguments) if not p.startswith("--chown")]
            if parts[0].startswith("--from="):
                continue  # the build stage's /app: the same directory here
            stage.steps.append(("copy", (parts[:-1], parts[-1])))
            stage.copies.append((parts[:-1], parts[-1]))
        elif word == "RUN":
            stage.steps.append(("run", arguments))
        elif word == "ENV":
            stage.env.update(_env(arguments))
        elif word == "ENTRYPOINT":
            stage.entrypoint = [str(x) for x in json.loads(arguments)]
    return result


def test_every_file_the_image_copies_is_in_the_repository() -> None:
    sources = [s for stage in stages() for sources, _ in stage.copies for s in sources]
    assert sources, "the Dockerfile copies nothing?"
    missing = [s for s in sources if not (ROOT / s).exists()]
    assert not missing, f"the Dockerfile copies what the repository does not have: {missing}"


def _copy(app: Path, sources: list[str], destination: str) -> None:
    """As COPY does: a directory's contents into the destination, a file into it (a
    destination ending in /) or as it."""
    target = app / destination
    for source in sources:
        path = ROOT / source
        if path.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "node_modules")
            shutil.copytree(path, target, ignore=ignore, dirs_exist_ok=True)
        elif destination.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / path.name)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def _uv() -> list[str]:
    found = shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


async def _run(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")[-4000:]


def _database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


async def test_the_image_recipe_installs_migrates_and_serves(
    database: DatabaseUrls, tmp_path: Path
) -> None:
    build, final = stages()
    app = tmp_path / "app"
    app.mkdir()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCDMO_", "VIRTUAL_ENV"))}
    # The image's Python is the base image's; here, the interpreter this venv was made from.
    # Byte-compiling (UV_COMPILE_BYTECODE) only makes the image start faster: left out here.
    uv_env = {**base, **build.env, "UV_PYTHON": sys._base_executable, "UV_COMPILE_BYTECODE": "0"}
    ran = 0
    for kind, step in build.steps:
        if kind == "copy":
            sources, destination = step  # type: ignore[misc]
            _copy(app, sources, destination)
            continue
        argv = shlex.split(str(step))
        if argv[:1] != ["uv"]:
            continue  # `pip install uv`: uv is here already
        code, out = await _run([*_uv(), *argv[1:]], uv_env, app)
        assert code == 0, f"{step}: {out}"
        ran += 1
    assert ran >= 1, "the build stage runs no uv command?"
    for kind, step in final.steps:
        if kind == "copy":
            sources, destination = step  # type: ignore[misc]
            _copy(app, sources, destination)
    assert (app / ".venv" / "bin" / "opencdmo").exists()
    assert not (
        app
        / ".venv"
        / "lib"
        / f"python{sys.version_info.major}.{sys.version_info.minor}"
        / "site-packages"
        / "pytest"
    ).exists(), "the image would carry the dev dependencies"

    name = f"opencdmo_image_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(_database(database.owner, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    port = free_port()
    env = {
        **base,
        **{k: v for k, v in final.env.items() if k != "PATH"},
        "PATH": f"{app / '.venv' / 'bin'}:{base.get('PATH', '')}",
        "OPENCDMO_DATABASE_URL": _database(database.owner, name),
        "OPENCDMO_DATA_DIR": str(tmp_path / "data"),
        "OPENCDMO_HOST": "127.0.0.1",
        "OPENCDMO_PORT": str(port),
        "OPENCDMO_SECRET_KEY": "image-rehearsal",
        "OPENCDMO_AUDIT_KEY": AUDIT_KEY,
        "OPENCDMO_AUDIT_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
        "OPENCDMO_COOKIE_SECURE": "false",
    }
    entry = [str(app / ".venv" / "bin" / final.entrypoint[0]), *final.entrypoint[1:]]
    server = None
    try:
        code, out = await _run([*entry, "db", "upgrade"], env, app)
        assert code == 0, out
        code, out = await _run([*entry, "hub", "sync", str(app / "hub_content")], env, app)
        assert code == 0, out
        server = await asyncio.create_subprocess_exec(*entry, "serve", env=env, cwd=app)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            ready = None
            for _ in range(300):
                try:
                    ready = await client.get("/readyz")
                    if ready.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            assert ready is not None and ready.status_code == 200
            login = await client.get("/login")
            assert login.status_code == 200 and "<form" in login.text  # templates were copied
            styles = re.findall(r'href="(/static/[^"]+\.css[^"]*)"', login.text)
            assert styles, "the sign-in page links no stylesheet"
            for href in styles:
                assert (await client.get(href)).status_code == 200, href  # static files too
    finally:
        if server is not None and server.returncode is None:
            server.terminate()
            await asyncio.wait_for(server.wait(), 60)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
