"""The shipped role policy and the casbin model, read once."""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODEL_PATH = HERE / "model.conf"
POLICY_PATH = HERE / "policy.csv"
SYSTEM_PATH = HERE / "system.csv"


@cache
def default_policies() -> tuple[tuple[str, str, str, str], ...]:
    """(role, domain, object, action) rows of policy.csv."""
    rows: list[tuple[str, str, str, str]] = []
    with POLICY_PATH.open() as handle:
        for line in csv.reader(handle, skipinitialspace=True):
            if not line or line[0].startswith("#"):
                continue
            kind, role, domain, obj, act = (cell.strip() for cell in line)
            assert kind == "p", f"policy.csv: unexpected rule {line}"
            rows.append((role, domain, obj, act))
    return tuple(rows)


@cache
def roles() -> tuple[str, ...]:
    """The default roles, in the order policy.csv introduces them."""
    return tuple(dict.fromkeys(row[0] for row in default_policies()))


def roles_with(obj: str, act: str) -> frozenset[str]:
    return frozenset(role for role, _, o, a in default_policies() if (o, a) == (obj, act))


@cache
def system_permissions() -> frozenset[tuple[str, str]]:
    """(object, action) pairs the system actor may use: listed one by one in system.csv."""
    pairs: set[tuple[str, str]] = set()
    with SYSTEM_PATH.open() as handle:
        for line in csv.reader(handle, skipinitialspace=True):
            if not line or line[0].startswith("#"):
                continue
            obj, act = (cell.strip() for cell in line)
            pairs.add((obj, act))
    return frozenset(pairs)
