"""Writing values to OPC UA setpoint nodes and reading them back (asyncua).

Imported only when a write is made (asyncua takes most of a second to import; the web
workers start without it). ``write_and_read`` connects with the unit's security and user,
writes each value in the node's own numeric type, reads each node back and disconnects;
it never raises for what the server or the network does: each value's outcome says what
happened (written and read back, or why not).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from typing import Any, Final

from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.uaerrors import UaError

from opencdmo.equipment import opcua_security
from opencdmo.equipment.opcua_security import CaptureError, Security

APPLICATION_URI: Final = "urn:opencdmo:setpoints"
NUMERIC: Final = {
    ua.VariantType.Double,
    ua.VariantType.Float,
    ua.VariantType.Int16,
    ua.VariantType.Int32,
    ua.VariantType.Int64,
    ua.VariantType.UInt16,
    ua.VariantType.UInt32,
    ua.VariantType.UInt64,
}
INTEGER: Final = NUMERIC - {ua.VariantType.Double, ua.VariantType.Float}


@dataclass(frozen=True)
class Outcome:
    """One node: the value asked for, what was read back after the write, and what went
    wrong (None: written and read back)."""

    node: str
    value: float
    read_back: float | None
    problem: str | None


@dataclass(frozen=True)
class User:
    name: str
    password_env: str


async def write_and_read(
    endpoint: str,
    values: list[tuple[str, float]],
    security: Security,
    user: User | None = None,
    *,
    request_timeout: float = 4.0,
) -> list[Outcome]:
    """Write each (node, value) and read it back, in one session."""
    timeout = request_timeout
    client = Client(endpoint, timeout=timeout)
    client.application_uri = APPLICATION_URI
    client.name = client.description = "OpenCDMO setpoints"
    try:
        await _prepare(client, endpoint, security, user, timeout)
        await asyncio.wait_for(client.connect(), timeout * 2)
    except (CaptureError, OSError, TimeoutError, UaError, ConnectionError) as exc:
        why = f"could not connect to {endpoint}: {_said(exc)}"
        return [Outcome(node, value, None, why) for node, value in values]
    try:
        return [await _one(client, node, value) for node, value in values]
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(), timeout)


async def _prepare(
    client: Client, endpoint: str, security: Security, user: User | None, request_timeout: float
) -> None:
    if user is not None:
        password = os.environ.get(user.password_env)
        if password is None:
            raise CaptureError(
                f"the environment variable {user.password_env} (the password of "
                f"{user.name}) is not set"
            )
        client.set_user(user.name)
        client.set_password(password)
    if security.mode != "None":
        await opcua_security.secure(client, endpoint, security, APPLICATION_URI, request_timeout)


async def _one(client: Client, node_id: str, value: float) -> Outcome:
    try:
        node = client.get_node(ua.NodeId.from_string(node_id))
        kind = await node.read_data_type_as_variant_type()
        if kind not in NUMERIC:
            return Outcome(node_id, value, None, f"the node holds {kind.name}, not a number")
        given: Any = round(value) if kind in INTEGER else value
        await node.write_value(ua.DataValue(ua.Variant(given, kind)))
    except (UaError, ValueError) as exc:
        return Outcome(node_id, value, None, f"the server refused the write: {_said(exc)}")
    except (OSError, TimeoutError, ConnectionError) as exc:
        return Outcome(node_id, value, None, f"the connection failed: {_said(exc)}")
    try:
        read = await node.read_value()
    except (UaError, OSError, TimeoutError, ConnectionError) as exc:
        return Outcome(node_id, value, None, f"written, but reading it back failed: {_said(exc)}")
    if isinstance(read, bool) or not isinstance(read, int | float):
        return Outcome(node_id, value, None, f"read back {str(read)[:40]!r}, not a number")
    return Outcome(node_id, value, float(read), None)


def _said(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:300]
