"""Run the benchmarks: ``python -m bench`` (``make bench``), or ``python -m bench NAME``."""

from __future__ import annotations

import asyncio
import sys

from bench import (
    api_list,
    audit_contention,
    batch_entries,
    batch_record,
    genealogy,
    hub_search,
    opcua_capture,
    recipe_scale,
    scale_tenants,
    transfer_import,
    transfer_verify,
    trend_history,
)

BENCHMARKS = {
    "api_list": api_list,
    "audit_contention": audit_contention,
    "batch_entries": batch_entries,
    "batch_record": batch_record,
    "genealogy": genealogy,
    "hub_search": hub_search,
    "opcua_capture": opcua_capture,
    "recipe_scale": recipe_scale,
    "scale_tenants": scale_tenants,
    "transfer_import": transfer_import,
    "transfer_verify": transfer_verify,
    "trend_history": trend_history,
}


def main(names: list[str]) -> int:
    ok = True
    for name in names or list(BENCHMARKS):
        module = BENCHMARKS[name]
        ok = module.report(asyncio.run(module.main())) and ok
        print()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
