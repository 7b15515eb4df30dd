"""Verifying a package for a tenant: the checks of ``verify.verify_file`` run off the event
loop, and the sender's key trusted when the tenant trusts it (``keys.trusted``: its trusted
keys; the partner relationships are to count here too)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from opencdmo.scope import TenantContext
from opencdmo.transfer import keys
from opencdmo.transfer.format import SIGNATURE
from opencdmo.transfer.verify import Finding, Limits, Progress, Verification, verify_file

REFUSED_BEFORE_TRUST = frozenset({"bad_fingerprint", "bad_signature"})


async def verify_for(
    ctx: TenantContext,
    path: Path,
    limits: Limits | None = None,
    progress: Progress | None = None,
) -> Verification:
    """The package at ``path`` verified, its key trusted by this tenant or refused."""
    result = await asyncio.to_thread(verify_file, path, None, limits, progress)
    manifest = result.manifest
    if manifest is None or REFUSED_BEFORE_TRUST & {f.code for f in result.findings}:
        return result
    if await keys.trusted(ctx, manifest.sender.key.fingerprint):
        return result
    untrusted = Finding(
        "untrusted_key",
        f"The sender's key {manifest.sender.key.fingerprint} ({manifest.sender.name}) is not "
        "trusted here: trust it by its fingerprint first.",
        SIGNATURE,
    )
    return replace(result, findings=[untrusted, *result.findings], contents=None)
