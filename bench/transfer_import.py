"""Tech-transfer import: a real package of the demo sponsor's effective recipe, mostly
attachments, received and imported at the demo CDMO through the CLI, against ``unzip`` plus
``sha256sum`` of the same archive, same run.

The demo tenants are made in a fresh database. The sponsor's process engineer attaches
random-byte PDFs to its effective recipe (16 of them, so they do not compress), and its QA
exports two signed packages: one of about ``BENCH_PACKAGE_MIB`` MiB (1024 by default) and one
of a tenth of it. The CDMO's administrator trusts the sponsor's key. Then each package goes
through two ``opencdmo transfer import`` processes, each measured with ``wait4``: the receipt
(``FILE --verify-only``: streamed in, every check of docs/transfer-package.md, stored) and the
import (``--package ID``: the gaps the demo CDMO has resolved by a mapping file made from the
gap report, the stored package checked again, its documents stored, the draft written). The
baseline: ``unzip -qq`` of the archive into a folder (every member inflated, its CRC-32
checked and written) then ``sha256sum`` of the archive.

Reported: each side's time on the large package and the throughput ratio baseline / import
(receipt plus import; target at least 0.5), and the import's peak memory (ru_maxrss, the
larger of its two processes) for the large package against the small one (target: within
1.2x).

``BENCH_PACKAGE_MIB=200 python -m bench.transfer_import`` is a quicker run.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any
from uuid import UUID

from bench.api_list import _cli
from bench.harness import drop_database, fresh_database, server_env
from bench.transfer_verify import measured
from opencdmo.audit import keys as audit_keys
from opencdmo.cli import DEMO_PASSWORD
from opencdmo.db import engine as db
from opencdmo.db.urls import resolve_urls
from opencdmo.identity import passwords
from opencdmo.identity import service as identity
from opencdmo.recipes import documents
from opencdmo.recipes import service as recipes
from opencdmo.scope import Actor, RequestMeta, TenantContext
from opencdmo.settings import Settings
from opencdmo.storage import blobs
from opencdmo.storage.uploads import Upload
from opencdmo.tenancy import service as tenancy
from opencdmo.transfer import export, gaps, keys

DOCUMENTS = 16
THROUGHPUT = 0.5  # baseline time / import time, at least
MEMORY = 1.2  # peak memory, large package / small one, at most
SPONSOR, CDMO = "quillon-tx", "larkspur-cdmo"
ENGINEER, QA = "dana@quillon.example", "qa@quillon.example"
ADMIN, RECEIVER = "admin@larkspur.example", "engineer@larkspur.example"
META = RequestMeta(request_id="bench:transfer-import")


async def _as(slug: str, email: str) -> TenantContext:
    tenant = await tenancy.tenant_by_slug(slug)
    user = await identity.find_user(email)
    assert tenant is not None, slug
    assert user is not None, email
    ctx = await tenancy.internal_context(
        tenant.id, Actor(user.id, user.email, user.full_name), META
    )
    assert ctx is not None
    return ctx


async def _attach(engineer: TenantContext, recipe: UUID, mib: int, seed: int) -> None:
    """``DOCUMENTS`` random-byte PDFs of ``mib`` MiB in all attached to the recipe."""
    each = mib * 1024 * 1024 // DOCUMENTS
    for i in range(DOCUMENTS):
        body = random.Random(seed + i).randbytes(each)
        upload = Upload(f"report-{seed + i}.pdf", "application/pdf", b"%PDF-1.7\n" + body)
        await documents.add_document(engineer, recipe, upload, f"Report {seed + i}", "other")


async def _packages(settings: Settings, folder: Path, large: int) -> tuple[Path, Path]:
    """The two packages written to ``folder`` (see the module), the sponsor's key trusted
    at the CDMO."""
    engineer, qa = await _as(SPONSOR, ENGINEER), await _as(SPONSOR, QA)
    (recipe,) = [r for r in await recipes.list_recipes(engineer) if r.effective_revision]
    paths = []
    for name, mib, seed in (("small", large // 10, 0), ("large", large - large // 10, 100)):
        await _attach(engineer, recipe.id, mib, seed)
        made = await export.export_package(settings, qa, recipe.id, DEMO_PASSWORD, "bench")
        path = folder / f"{name}.zip"
        await export.write_package(qa, made.package, path)
        paths.append(path)
    public = await keys.public_key(qa)
    assert public is not None
    admin = await _as(CDMO, ADMIN)
    await keys.trust(admin, public.pem, public.fingerprint, "Quillon Therapeutics")
    return paths[0], paths[1]


async def _mapping(settings: Settings, package: UUID) -> list[dict[str, Any]]:
    """A choice for each gap the CDMO has: an item installed from the HUB (or forked when the
    HUB does not offer it), an equipment class the tenant has, a material of its master."""
    ctx = await _as(CDMO, RECEIVER)
    report = await gaps.analyse(settings, ctx, package)
    offered = await gaps.choices(ctx)
    chosen: list[dict[str, Any]] = []
    for item in report.items:
        if not item.resolved:
            how = "install" if item.hub_item_id else "fork"
            chosen.append({"gap_kind": "item", "ref": item.ref, "resolution": how})
    for unit in report.equipment:
        if not unit.resolved:
            slug = next((s for s, _ in offered.classes if s == unit.slug), offered.classes[0][0])
            chosen.append(
                {
                    "gap_kind": "equipment_class",
                    "ref": unit.ref,
                    "resolution": "use",
                    "target": slug,
                }
            )
    for material in report.materials:
        if not material.resolved:
            target = str(offered.materials[0][0])
            chosen.append(
                {
                    "gap_kind": "material",
                    "ref": material.ref,
                    "resolution": "use",
                    "target_id": target,
                }
            )
    return chosen


def _package_id(said: str) -> UUID:
    line = next(x for x in said.splitlines() if x.startswith("VERIFIED: package "))
    return UUID(line.split()[2])


async def _import(
    settings: Settings, env: dict[str, str], path: Path, folder: Path
) -> tuple[float, int]:
    """(seconds, peak KiB) of the receipt and the import of the package at ``path``."""
    args = ("-m", "opencdmo.cli", "transfer", "import", "--tenant", CDMO, "--email", RECEIVER)
    out = folder / "said.txt"
    seconds, kib = measured(sys.executable, *args, "--verify-only", str(path), env=env, stdout=out)
    package = _package_id(out.read_text())
    chosen = folder / "mapping.json"
    chosen.write_text(json.dumps(await _mapping(settings, package)))
    more, peak = measured(
        sys.executable, *args, "--package", str(package), "--mapping", str(chosen), env=env
    )
    return seconds + more, max(kib, peak)


def _baseline(path: Path, folder: Path) -> float:
    target = folder / "unzipped"
    unzip_s, _ = measured("unzip", "-qq", "-o", str(path), "-d", str(target))
    shutil.rmtree(target)
    sha_s, _ = measured("sha256sum", str(path))
    return unzip_s + sha_s


async def main() -> dict[str, Any]:
    large = int(os.environ.get("BENCH_PACKAGE_MIB", "1024"))
    owner, _ = await fresh_database("bench_transfer_import")
    with tempfile.TemporaryDirectory(prefix="bench-transfer-import-") as name:
        folder = Path(name)
        data = folder / "data"
        env = server_env(owner, str(data))
        env["OPENCDMO_TRANSFER_UPLOAD_MAX_BYTES"] = str(4 * large * 1024 * 1024)
        try:
            await _cli(env, "demo", "tenants")
            settings = Settings.from_env(env)
            passwords.configure(settings)
            audit_keys.configure(settings)
            blobs.configure(settings)
            engine = db.bind_engine(resolve_urls(settings, owner))
            await db.start_pool(engine, 4)
            try:
                small, big = await _packages(settings, folder, large)
                small_s, small_kib = await _import(settings, env, small, folder)
                import_s, import_kib = await _import(settings, env, big, folder)
            finally:
                await db.close_pool(engine)
            baseline_s = _baseline(big, folder)
            size = big.stat().st_size
        finally:
            await drop_database(owner)
    return {
        "mib": large,
        "bytes": size,
        "small_bytes": small.stat().st_size if small.exists() else 0,
        "import_s": import_s,
        "small_s": small_s,
        "baseline_s": baseline_s,
        "import_kib": import_kib,
        "small_kib": small_kib,
    }


def report(results: dict[str, Any]) -> bool:
    print(__doc__.strip().splitlines()[0])
    ratio = results["baseline_s"] / results["import_s"]
    memory = results["import_kib"] / results["small_kib"]
    mib = results["bytes"] / 1024 / 1024
    print(f"  package                        {mib:.0f} MiB ({results['bytes']:,} bytes)")
    print(
        f"  receipt + import (CLI)         {results['import_s']:8.2f} s  "
        f"({mib / results['import_s']:.0f} MiB/s)"
    )
    print(f"  unzip + sha256sum              {results['baseline_s']:8.2f} s")
    met = "met" if ratio >= THROUGHPUT else "NOT met"
    print(f"  throughput ratio {ratio:.2f} (target >= {THROUGHPUT}: {met})")
    print(
        f"  peak memory {results['import_kib'] / 1024:.1f} MiB for {mib:.0f} MiB, "
        f"{results['small_kib'] / 1024:.1f} MiB for a tenth: {memory:.2f}x "
        f"(target <= {MEMORY}: {'met' if memory <= MEMORY else 'NOT met'})"
    )
    return ratio >= THROUGHPUT and memory <= MEMORY


if __name__ == "__main__":
    sys.exit(0 if report(asyncio.run(main())) else 1)
