"""Tech-transfer package verification: a generated package (mostly attachment bytes) verified,
against ``unzip -t`` plus ``sha256sum`` of the same archive, same run.

Two packages are written to a temporary folder: one of ``BENCH_PACKAGE_MIB`` MiB (1024 by
default), one a tenth of it (100 MiB by default), each a real signed package (``build``:
the revision, an item, the QA approval, BatchML) whose documents are random bytes (16 of
them, so they do not compress). Each side runs in its own process, measured with
``wait4``: the verification (``verify_file``: every structural check, the signature, each
member read and hashed while streaming) and, for the baseline, ``unzip -tqq`` (every member
inflated and its CRC-32 checked) then ``sha256sum`` of the archive.

Reported: each side's time on the large package and the throughput ratio baseline /
verification (target: at least 0.5), and the verification's peak memory (ru_maxrss) for the
large package against the small one (target: within 1.2x).

``BENCH_PACKAGE_MIB=200 python -m bench.transfer_verify`` is a quicker run.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from opencdmo.canonical import content_hash
from opencdmo.transfer import build
from opencdmo.transfer.format import (
    Approval,
    Key,
    RecipeRef,
    Sender,
    b64,
    fingerprint,
    package_digest,
)

DOCUMENTS = 16
CHUNK = 1024 * 1024
THROUGHPUT = 0.5  # baseline time / verification time, at least
MEMORY = 1.2  # peak memory, large package / small one, at most
VERIFY = (
    "import sys; from pathlib import Path; from opencdmo.transfer.verify import verify_file; "
    "r = verify_file(Path(sys.argv[1]), {sys.argv[2]}); "
    "sys.exit(0 if r.valid else print(r.findings) or 1)"
)


def _random(seed: int, size: int) -> Callable[[], Iterator[bytes]]:
    """The same random bytes each time it is called (hashed once, then written)."""

    def chunks() -> Iterator[bytes]:
        made, left = random.Random(seed), size
        while left > 0:
            step = min(CHUNK, left)
            yield made.randbytes(step)
            left -= step

    return chunks


def write_package(path: Path, mib: int, key: Ed25519PrivateKey) -> None:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    sender = Sender(
        str(uuid.uuid4()),
        "bench",
        "Bench Sponsor",
        "sponsor",
        Key("Ed25519", b64(raw), fingerprint(raw)),
    )
    content = {"unit_procedures": [{"key": "p", "operations": []}]}
    item = {"kind": "unit_operation", "slug": "u", "version": "1.0.0", "content": content}
    item["content_hash"] = content_hash(content)
    recipe = RecipeRef(str(uuid.uuid4()), "Bench", "Bench product", 1, content_hash(content))
    each = mib * CHUNK // DOCUMENTS
    documents = [
        build.Document(f"attachment-{i}.pdf", "application/pdf", _random(i, each))
        for i in range(DOCUMENTS)
    ]
    batchml = b"<BatchInformation><MasterRecipe/></BatchInformation>"
    src = build.Source(sender, recipe, content, [item], documents, batchml)
    members = build.members_of(src)
    now = datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    manifest = build.unsigned(src, str(uuid.uuid4()), stamp, members)
    approval = Approval(
        "Bench QA",
        "approved for transfer",
        "bench",
        stamp,
        str(uuid.uuid4()),
        package_digest(manifest),
    )
    with path.open("wb") as out:
        build.write(out, manifest, members, approval, key, now)


def measured(
    *command: str, env: dict[str, str] | None = None, stdout: Path | None = None
) -> tuple[float, int]:
    """(seconds, peak resident KiB) of one process run to its end; it must succeed (its
    standard output goes to ``stdout`` when given)."""
    out = stdout.open("wb") if stdout is not None else subprocess.DEVNULL
    started = time.perf_counter()
    try:
        process = subprocess.Popen(command, stdout=out, env=env)  # noqa: S603 - fixed commands
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        if stdout is not None:
            out.close()  # type: ignore[union-attr]
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed with {process.returncode}")
    return seconds, usage.ru_maxrss


def _verify(path: Path, printed: str) -> tuple[float, int]:
    return measured(sys.executable, "-c", VERIFY, str(path), printed)


async def main() -> dict[str, Any]:
    large = int(os.environ.get("BENCH_PACKAGE_MIB", "1024"))
    small = max(1, large // 10)
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    printed = fingerprint(raw)
    with tempfile.TemporaryDirectory(prefix="bench-transfer-") as folder:
        big, little = Path(folder) / "large.zip", Path(folder) / "small.zip"
        write_package(big, large, key)
        write_package(little, small, key)
        _verify(little, printed)  # warm-up: imports compiled, file in the page cache
        small_s, small_kib = _verify(little, printed)
        verify_s, verify_kib = _verify(big, printed)
        unzip_s, _ = measured("unzip", "-tqq", str(big))
        sha_s, _ = measured("sha256sum", str(big))
        size = big.stat().st_size
    return {
        "mib": large,
        "small_mib": small,
        "bytes": size,
        "verify_s": verify_s,
        "small_s": small_s,
        "unzip_s": unzip_s,
        "sha_s": sha_s,
        "verify_kib": verify_kib,
        "small_kib": small_kib,
    }


def report(results: dict[str, Any]) -> bool:
    print(__doc__.strip().splitlines()[0])
    baseline = results["unzip_s"] + results["sha_s"]
    ratio = baseline / results["verify_s"]
    memory = results["verify_kib"] / results["small_kib"]
    mib_s = results["bytes"] / 1024 / 1024 / results["verify_s"]
    print(f"  package                        {results['mib']} MiB ({results['bytes']:,} bytes)")
    print(f"  verify_file                    {results['verify_s']:8.2f} s  ({mib_s:.0f} MiB/s)")
    parts = f"{results['unzip_s']:.2f} + {results['sha_s']:.2f}"
    print(f"  unzip -tqq + sha256sum         {baseline:8.2f} s  ({parts})")
    met = "met" if ratio >= THROUGHPUT else "NOT met"
    print(f"  throughput ratio {ratio:.2f} (target >= {THROUGHPUT}: {met})")
    print(
        f"  peak memory {results['verify_kib'] / 1024:.1f} MiB for {results['mib']} MiB, "
        f"{results['small_kib'] / 1024:.1f} MiB for {results['small_mib']} MiB: {memory:.2f}x "
        f"(target <= {MEMORY}: {'met' if memory <= MEMORY else 'NOT met'})"
    )
    return ratio >= THROUGHPUT and memory <= MEMORY


if __name__ == "__main__":
    import asyncio

    sys.exit(0 if report(asyncio.run(main())) else 1)
