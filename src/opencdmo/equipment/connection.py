"""The OPC UA connection description of an equipment unit, as its manifest (or the API)
gives it: the endpoint, the security mode and policy, the user name and the NAME of the
environment variable holding its password (never a password), and each signal's node id and
UCUM unit, and each setpoint: a recipe parameter's key with the node its value is written to
and the node's UCUM unit (whether it measures what the parameter does is checked when a batch
writes it: the parameter's unit is the recipe's). Checked here and stored as JSON; the
capture worker and the setpoint writer read it.

Every problem is a ``ValidationFailed`` naming the path of what is wrong (``opcua.signals.
ph.node``), so that a manifest error points at its line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from opencdmo import quantities
from opencdmo.errors import ValidationFailed
from opencdmo.hub.model import EquipmentClass

MODES: Final = ("None", "Sign", "SignAndEncrypt")
POLICIES: Final = (
    "None",
    "Basic256Sha256",
    "Aes128_Sha256_RsaOaep",
    "Aes256_Sha256_RsaPss",
)
# An OPC UA node id in its string form: an optional namespace index or URI, then a numeric,
# string, GUID or opaque (base64) identifier.
NODE_ID: Final = re.compile(
    r"^(?:ns=\d{1,5};|nsu=[^;]{1,200};)?"
    r"(?:i=\d{1,10}|s=.{1,400}|g=[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}"
    r"|b=[A-Za-z0-9+/]{1,400}={0,2})$",
    re.DOTALL,
)
ENDPOINT: Final = re.compile(r"^opc\.tcp://[A-Za-z0-9.\-\[\]:]{1,255}(?::\d{1,5})?(?:/\S{0,400})?$")
ENV_NAME: Final = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
USER_NAME_MAX: Final = 200
SIGNALS_MAX: Final = 200
PARAMETER_KEY: Final = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def _fail(where: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{where}: {message}", details={"field": where})


def _mapping(value: object, where: str, keys: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(where, "must be a mapping")
    if "password" in value:
        raise _fail(
            f"{where}.password",
            "a password never goes in the description: name the environment variable that "
            "holds it (password_env)",
        )
    unknown = sorted(str(k) for k in value if k not in keys)
    if unknown:
        raise _fail(where, f"unknown key(s) {', '.join(unknown)}; the keys are {', '.join(keys)}")
    return value


def _string(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, "must be a non-empty string")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise _fail(where, "must not hold control characters")
    return value.strip()


def check(raw: object, of_class: EquipmentClass | None, where: str = "opcua") -> dict[str, Any]:
    """The description checked against the equipment class (its ``typical_signals``), in
    the form it is stored in; without a class, its form alone (a manifest read offline)."""
    data = _mapping(raw, where, ("endpoint", "security", "user", "signals", "setpoints"))
    endpoint = _string(data.get("endpoint"), f"{where}.endpoint")
    if not ENDPOINT.fullmatch(endpoint):
        raise _fail(f"{where}.endpoint", f"'{endpoint[:80]}' is not an opc.tcp:// address")
    found: dict[str, Any] = {"endpoint": endpoint, "security": _security(data, where)}
    if data.get("user") is not None:
        found["user"] = _user(data["user"], f"{where}.user")
        if found["security"]["mode"] == "None":
            raise _fail(
                f"{where}.user",
                "a password goes only over a secured channel: give security mode Sign or "
                "SignAndEncrypt with the user",
            )
    found["signals"] = _signals(data.get("signals"), of_class, f"{where}.signals")
    if data.get("setpoints") is not None:
        found["setpoints"] = _setpoints(data["setpoints"], f"{where}.setpoints")
    return found


def _security(data: Mapping[str, Any], where: str) -> dict[str, str]:
    where = f"{where}.security"
    given = _mapping(data.get("security", {"mode": "None"}), where, ("mode", "policy"))
    mode = given.get("mode", "None")
    if mode not in MODES:
        raise _fail(f"{where}.mode", f"must be one of {', '.join(MODES)}")
    policy = given.get("policy", "None" if mode == "None" else None)
    if policy not in POLICIES:
        raise _fail(f"{where}.policy", f"must be one of {', '.join(POLICIES)}")
    if (mode == "None") != (policy == "None"):
        raise _fail(
            f"{where}.policy",
            "mode None goes with policy None; Sign and SignAndEncrypt need a security policy",
        )
    return {"mode": mode, "policy": policy}


def _user(raw: object, where: str) -> dict[str, str]:
    data = _mapping(raw, where, ("name", "password_env"))
    name = _string(data.get("name"), f"{where}.name")
    if len(name) > USER_NAME_MAX:
        raise _fail(f"{where}.name", f"has at most {USER_NAME_MAX} characters")
    env = _string(data.get("password_env"), f"{where}.password_env")
    if not ENV_NAME.fullmatch(env):
        raise _fail(
            f"{where}.password_env",
            "must be the name of an environment variable (A-Z, 0-9 and _), not a password",
        )
    return {"name": name, "password_env": env}


def _signals(raw: object, of_class: EquipmentClass | None, where: str) -> dict[str, dict[str, str]]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _fail(where, "must be a mapping of signal key to {node, unit}")
    if len(raw) > SIGNALS_MAX:
        raise _fail(where, f"at most {SIGNALS_MAX} signals")
    typical = {s.key: s.unit for s in of_class.typical_signals} if of_class else None
    found: dict[str, dict[str, str]] = {}
    for key, value in raw.items():
        at = f"{where}.{str(key)[:64]}"
        if of_class is not None and typical is not None and key not in typical:
            listed = ", ".join(typical) or "none"
            raise _fail(
                at, f"'{str(key)[:64]}' is not a signal of {of_class.slug} (its signals: {listed})"
            )
        signal = _mapping(value, at, ("node", "unit"))
        node = _string(signal.get("node"), f"{at}.node")
        if not NODE_ID.fullmatch(node):
            raise _fail(
                f"{at}.node",
                f"'{node[:80]}' is not an OPC UA node id (like ns=2;s=BR01.Temperature or i=2258)",
            )
        expected = (typical or {}).get(key)
        if signal.get("unit") is None and expected is None:
            found[str(key)] = {"node": node}  # a state (a door open), not a quantity
        else:
            found[str(key)] = {"node": node, "unit": _unit(signal.get("unit"), expected, at)}
    return found


def _node(raw: object, where: str) -> str:
    node = _string(raw, where)
    if not NODE_ID.fullmatch(node):
        raise _fail(
            where,
            f"'{node[:80]}' is not an OPC UA node id (like ns=2;s=BR01.Temperature or i=2258)",
        )
    return node


def _setpoints(raw: object, where: str) -> dict[str, dict[str, str]]:
    """Recipe parameter key -> the node its value is written to and the node's unit."""
    if not isinstance(raw, Mapping):
        raise _fail(where, "must be a mapping of parameter key to {node, unit}")
    if len(raw) > SIGNALS_MAX:
        raise _fail(where, f"at most {SIGNALS_MAX} setpoints")
    found: dict[str, dict[str, str]] = {}
    for key, value in raw.items():
        at = f"{where}.{str(key)[:64]}"
        if not isinstance(key, str) or not PARAMETER_KEY.fullmatch(key):
            raise _fail(
                at, "a parameter key is 1 to 64 lower-case letters, digits or _, from a letter"
            )
        setpoint = _mapping(value, at, ("node", "unit"))
        if setpoint.get("unit") is None:
            raise _fail(f"{at}.unit", "the node's UCUM unit is required (like Cel)")
        found[key] = {
            "node": _node(setpoint.get("node"), f"{at}.node"),
            "unit": _unit(setpoint["unit"], None, at),
        }
    return found


def _unit(raw: object, expected: str | None, where: str) -> str:
    unit = _string(raw if raw is not None else expected, f"{where}.unit")
    try:
        quantities.unit(unit)
    except ValidationFailed as exc:
        raise _fail(f"{where}.unit", exc.message) from None
    if expected and not quantities.compatible(unit, expected):
        raise _fail(f"{where}.unit", f"{unit} does not measure what {expected} measures")
    return unit
