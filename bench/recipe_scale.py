"""A 200-step master recipe against a 20-step one: rendering the designer, saving a
revision, diffing two revisions, through a real server. Cost should grow at most linearly:
10x the steps within 12x the time."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from bench.api_list import _cli
from bench.harness import (
    ROOT,
    drop_database,
    free_port,
    fresh_database,
    server_env,
    start_server,
)

SLUG = "larkspur-cdmo"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "15"))
TARGET = 12.0


def design(library_id: str, steps: int, density: float) -> dict[str, Any]:
    procedures = []
    per = 10
    for p in range(steps // per):
        procedures.append(
            {
                "key": f"up-{p}",
                "name": f"Unit procedure {p}",
                "operations": [
                    {
                        "key": f"step-{p}-{i}",
                        "library_item_id": library_id,
                        "parameters": {"seeding_density": density},
                        "equipment_class": None,
                        "notes": "",
                    }
                    for i in range(per)
                ],
            }
        )
    return {"unit_procedures": procedures, "formulas": []}


async def timed(work: Callable[[], Awaitable[None]]) -> float:
    samples = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        await work()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


async def measure(client: httpx.AsyncClient, library_id: str, steps: int) -> dict[str, float]:
    created = await client.post(f"/api/v1/t/{SLUG}/recipes", json={"name": f"{steps} steps"})
    created.raise_for_status()
    recipes = (await client.get(f"/api/v1/t/{SLUG}/recipes")).json()
    recipe = next(r["id"] for r in recipes if r["name"] == f"{steps} steps")
    url = f"/api/v1/t/{SLUG}/recipes/{recipe}"
    state = {"revision": 1, "density": 1.0}

    async def save() -> None:
        state["density"] = 1.1 if state["density"] == 1.0 else 1.0
        response = await client.put(
            url + "/content",
            json={
                "base_revision": state["revision"],
                "content": design(library_id, steps, state["density"]),
            },
        )
        response.raise_for_status()
        state["revision"] = response.json()["revision"]

    await save()
    await save()

    async def render() -> None:
        (await client.get(f"/t/{SLUG}/recipes/{recipe}/design")).raise_for_status()

    async def compare() -> None:
        response = await client.get(url + "/diff", params={"left": 2, "right": 3})
        response.raise_for_status()
        assert len(response.json()) == steps

    return {
        "render designer": await timed(render),
        "save revision": await timed(save),
        "diff revisions": await timed(compare),
    }


async def main() -> dict[int, dict[str, float]]:
    owner_url, data_dir = await fresh_database("bench_recipe")
    env = server_env(owner_url, data_dir)
    env.update({"OPENCDMO_ARGON2_TIME_COST": "1", "OPENCDMO_ARGON2_MEMORY_KIB": "1024"})
    await _cli(env, "demo", str(ROOT / "tenants"))
    token = (
        await _cli(
            env, "tokens", "create", "--tenant", SLUG, "--email", "engineer@larkspur.example"
        )
    ).strip()
    port = free_port()
    server = await start_server(env, port)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            timeout=60,
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            hits = (
                await client.get(f"/api/v1/t/{SLUG}/hub/items", params={"q": "t-cell-activation"})
            ).json()["items"]
            item = next(i["id"] for i in hits if i["slug"] == "t-cell-activation")
            installed = await client.post(f"/api/v1/t/{SLUG}/hub/items/{item}/install", json={})
            if installed.status_code != 409:  # 409: the demo's example recipe installed it
                installed.raise_for_status()
            entries = (await client.get(f"/api/v1/t/{SLUG}/library")).json()
            library_id = next(e["id"] for e in entries if e["slug"] == "t-cell-activation")
            return {steps: await measure(client, library_id, steps) for steps in (20, 200)}
    finally:
        server.terminate()
        await server.wait()
        await drop_database(owner_url)


def report(results: dict[int, dict[str, float]]) -> bool:
    print(__doc__.strip().splitlines()[0])
    ok = True
    for operation in results[20]:
        small, large = results[20][operation], results[200][operation]
        ratio = large / small
        ok = ok and ratio <= TARGET
        print(
            f"{operation:<18} 20 steps {small:7.1f} ms   200 steps {large:7.1f} ms   "
            f"{ratio:4.1f}x (target <= {TARGET:.0f}x: {'met' if ratio <= TARGET else 'NOT met'})"
        )
    return ok


if __name__ == "__main__":
    report(asyncio.run(main()))
