"""``opencdmo demo-serve``: the simulator, a capture worker and the web server started
together, running, and all stopped together, cleanly (``--once``); one that fails to start
stops the others and the command fails."""

from __future__ import annotations

from typing import Any

from opencdmo.scope import TenantContext
from tests.integration.test_cli import cli_env, run
from tests.integration.test_opcua import free_port

__all__ = ["cli_env"]  # the fixture, imported for these tests


async def test_the_three_start_and_stop_together(
    own_tenant: TenantContext, cli_env: dict[str, str], synced: Any
) -> None:
    port, simulator = free_port(), free_port()
    # The job worker starts too; no lot expiry sweep over the other tests' tenants.
    env = {**cli_env, "OPENCDMO_LOT_EXPIRY_SECONDS": "0"}
    code, out, err = await run(
        env,
        "demo-serve",
        "--tenant",
        own_tenant.slug,
        "--port",
        str(port),
        "--simulator-port",
        str(simulator),
        "--once",
        "1",
    )
    assert code == 0, (out, err)
    for name in ("simulator", "capture", "job worker", "web"):
        assert f"started the {name} (process " in out, out
        assert f"stopped the {name} (exit code 0)" in out, out
    assert f"all four running: http://127.0.0.1:{port}/" in out
    assert f"simulating 7 signals on opc.tcp://127.0.0.1:{simulator}/opencdmo/sim" in out
    assert f"capturing the equipment of {own_tenant.slug}" in out
    assert f"Serving http://127.0.0.1:{port}" in out
    # Stopped once running, not before: --once counts from "all four running".
    assert out.index("all four running") < out.index("stopped the web")


async def test_one_that_cannot_start_stops_the_others(cli_env: dict[str, str]) -> None:
    code, out, err = await run(
        {**cli_env, "OPENCDMO_LOT_EXPIRY_SECONDS": "0"},
        "demo-serve",
        "--tenant",
        "no-such-tenant",
        "--port",
        str(free_port()),
        "--simulator-port",
        str(free_port()),
        "--once",
        "30",
    )
    assert code == 1, (out, err)
    assert "the capture ended" in out and "all four running" not in out
    assert "stopped the web" in out and "stopped the simulator" in out
    assert "No tenant has the slug 'no-such-tenant'" in err
