"""``opencdmo transfer export`` and ``opencdmo transfer verify``.

``export --tenant T --recipe ID --out FILE --email E [--reason R]``: QA's password on stdin;
signs the effective revision "approved for transfer" and writes the package to FILE.
``import --tenant T --email E FILE``: stage 1 of receiving, the upload and the verification
(``transfer:import``); a progress line on stderr; exit 0 verified and kept, 1 refused (the
findings listed, nothing kept), 2 usage or unreadable input.
``verify FILE [--trust KEY]... [--tenant T]``: exit 0 valid, 1 a check failed (the findings
listed), 2 usage or unreadable input. KEY is a PEM file, a PEM or base64 Ed25519 public key,
or a fingerprint (64 hex digits); with ``--tenant`` the tenant's trusted keys count too.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import Any

from opencdmo.errors import NotFound, ValidationFailed

FINGERPRINT = re.compile(r"[0-9a-f]{64}")


Runner = Callable[[Any, Callable[[], Awaitable[int]]], Coroutine[Any, Any, int]]


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    with_db: Runner,
    read_password: Callable[[], str],
) -> None:
    """The ``transfer`` commands; ``with_db`` runs work with the database and storage set up
    as the CLI does, ``read_password`` reads the signer's password (both from ``cli``)."""
    transfer = sub.add_parser("transfer", help="tech-transfer packages: export and verify")
    tsub = transfer.add_subparsers(dest="transfer_command", required=True, metavar="ACTION")
    export = tsub.add_parser(
        "export", help="export a recipe's effective revision, signed by QA (password on stdin)"
    )
    export.add_argument("--tenant", required=True, help="tenant slug")
    export.add_argument("--recipe", required=True, help="master recipe id")
    export.add_argument("--out", required=True, type=Path, help="where to write the package")
    export.add_argument("--email", required=True, help="the QA approver who signs")
    export.add_argument(
        "--reason", default="Approved for tech transfer.", help="the signature's reason"
    )
    export.set_defaults(func=partial(cmd_export, with_db=with_db, read_password=read_password))
    verify = tsub.add_parser(
        "verify", help="verify a package; exit 0 valid, 1 a check failed, 2 unreadable input"
    )
    verify.add_argument("file", type=Path, help="the package archive")
    verify.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="PUBKEY",
        help="a sender key to accept: PEM file, PEM or base64 key, or fingerprint (repeatable)",
    )
    verify.add_argument("--tenant", help="also accept the keys this tenant trusts")
    verify.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar on stderr (default: when stderr is a terminal)",
    )
    verify.set_defaults(func=partial(cmd_verify, with_db=with_db))
    receive = tsub.add_parser(
        "import",
        help="receive a package into a tenant: upload and verify (exit 0 verified, 1 refused)",
    )
    receive.add_argument("--tenant", required=True, help="tenant slug")
    receive.add_argument("--email", required=True, help="the member who receives it")
    receive.add_argument("file", type=Path, help="the package archive")
    receive.set_defaults(func=partial(cmd_import, with_db=with_db))


def _print(message: str) -> None:
    print(message, flush=True)


def trust_fingerprint(given: str) -> str:
    """The fingerprint of a ``--trust`` value (a 422 when it is none of the accepted forms)."""
    from opencdmo.transfer.format import fingerprint
    from opencdmo.transfer.keys import parse_public_key

    text = given.strip()
    if FINGERPRINT.fullmatch(text.lower()):
        return text.lower()
    path = Path(text)
    if len(text) < 4096 and "\n" not in text and path.is_file():
        text = path.read_text(encoding="ascii", errors="replace")
    return fingerprint(parse_public_key(text))


async def _member(slug: str, email: str, request_id: str) -> Any:
    """The person's scope in the tenant, as the resolver mints it for a member."""
    from dataclasses import replace

    from opencdmo.identity import service as identity
    from opencdmo.scope import SYSTEM, Actor, RequestMeta
    from opencdmo.tenancy import service as tenancy

    row = await tenancy.tenant_by_slug(slug)
    meta = RequestMeta(request_id=request_id, address="cli")
    ctx = await tenancy.internal_context(row.id, SYSTEM, meta) if row else None
    user = await identity.find_user(email)
    if ctx is None or user is None:
        raise NotFound(f"No member {email} in a tenant '{slug}'.")
    membership = await tenancy.membership_of(ctx, user.id)
    if membership is None:
        raise NotFound(f"No member {email} in a tenant '{slug}'.")
    return replace(ctx, actor=Actor(user.id, user.email, user.full_name), membership_id=membership)


def cmd_export(
    settings: Any,
    args: argparse.Namespace,
    *,
    with_db: Runner,
    read_password: Callable[[], str],
) -> int:
    from uuid import UUID

    from opencdmo.transfer import export

    try:
        recipe_id = UUID(args.recipe)
    except ValueError:
        raise ValidationFailed(f"--recipe: '{args.recipe}' is not a recipe id.") from None
    password = read_password()

    async def work() -> int:
        ctx = await _member(args.tenant, args.email, "cli:transfer-export")
        made = await export.export_package(settings, ctx, recipe_id, password, args.reason)
        await export.write_package(ctx, made.package, args.out)
        row = made.package
        _print(f"package {row.id}: revision {row.revision} of {made.manifest.recipe.name}")
        _print(
            f"sha256 {made.package.sha256}, {made.package.size_bytes} bytes, written to {args.out}"
        )
        _print(f"signed by key {made.package.sender_fingerprint}")
        return 0

    return int(asyncio.run(with_db(settings, work)))


def cmd_import(settings: Any, args: argparse.Namespace, *, with_db: Runner) -> int:
    from uuid import uuid4

    from opencdmo.transfer import receive

    try:
        source = args.file.open("rb")
    except OSError as exc:
        print(f"error: cannot read the package: {args.file}: {exc.strerror}", file=sys.stderr)
        return 2

    async def work() -> int:
        ctx = await _member(args.tenant, args.email, "cli:transfer-import")
        job_id = uuid4()
        bar = ProgressBar()
        try:
            chunks = receive.file_chunks(source)
            path = await receive.spool_upload(settings, ctx, chunks, job_id, None)
            row = await receive.upload(settings, ctx, path, job_id, bar)
        except ValidationFailed as exc:
            if bar.shown not in (-1, 100):
                print(file=sys.stderr)
            findings = exc.details.get("findings") if isinstance(exc.details, dict) else None
            if not findings:
                raise
            _print(f"REFUSED: {args.file} failed {len(findings)} check(s); nothing was kept:")
            for f in findings:
                where = f" [{f['member']}]" if f.get("member") else ""
                _print(f"  {f['code']}: {f['message']}{where}")
            return 1
        finally:
            await asyncio.to_thread(source.close)
        _print(f"VERIFIED: package {row.id} from {row.sender_name} (key {row.sender_fingerprint})")
        _print(f"recipe {row.recipe_name} revision {row.revision}, {row.size_bytes} bytes, kept")
        return 0

    return int(asyncio.run(with_db(settings, work)))


class ProgressBar:
    """``verifying [#####.........]  35 %  350 of 1000 MiB`` on stderr, redrawn per percent."""

    WIDTH = 30

    def __init__(self) -> None:
        self.shown = -1

    def __call__(self, done: int, total: int) -> None:
        percent = min(100, done * 100 // total) if total else 100
        if percent == self.shown:
            return
        self.shown = percent
        filled = self.WIDTH * percent // 100
        bar = "#" * filled + "." * (self.WIDTH - filled)
        mib = f"{done / 2**20:.0f} of {total / 2**20:.0f} MiB"
        end = "\n" if percent == 100 else ""
        print(f"\rverifying [{bar}] {percent:3d} %  {mib}", end=end, file=sys.stderr, flush=True)


def cmd_verify(settings: Any, args: argparse.Namespace, *, with_db: Runner) -> int:
    from opencdmo.transfer.verify import Unreadable, verify_file

    trusted = {trust_fingerprint(given) for given in args.trust}
    if args.tenant:
        trusted |= _tenant_trusted(settings, args.tenant, with_db)
    show = sys.stderr.isatty() if args.progress is None else args.progress
    bar = ProgressBar() if show else None
    try:
        result = verify_file(args.file, trusted, progress=bar)
    except Unreadable as exc:
        print(f"error: cannot read the package: {exc}", file=sys.stderr)
        return 2
    if bar is not None and bar.shown not in (-1, 100):
        print(file=sys.stderr)  # a check stopped the reading: end the bar's line
    if not result.valid:
        _print(f"INVALID: {args.file} failed {len(result.findings)} check(s):")
        for finding in result.findings:
            where = f" [{finding.member}]" if finding.member else ""
            _print(f"  {finding.code}: {finding.message}{where}")
        return 1
    manifest = result.manifest
    assert manifest is not None
    _print(
        f"VALID: package {manifest.package_id} from {manifest.sender.name} "
        f"(key {manifest.sender.key.fingerprint})"
    )
    _print(
        f"recipe {manifest.recipe.name} revision {manifest.recipe.revision}, "
        f"{len(manifest.files)} files, {result.verified_bytes} bytes verified"
    )
    return 0


async def _tenant_trusted_keys(slug: str) -> set[str]:
    from opencdmo.db.tx import tenant_transaction
    from opencdmo.scope import SYSTEM, RequestMeta
    from opencdmo.tenancy import service as tenancy
    from opencdmo.transfer import queries

    row = await tenancy.tenant_by_slug(slug)
    meta = RequestMeta(request_id="cli:transfer-verify")
    ctx = await tenancy.internal_context(row.id, SYSTEM, meta) if row else None
    if ctx is None:
        raise NotFound(f"No tenant has the slug '{slug}'.")
    async with tenant_transaction(ctx):
        return {r.fingerprint for r in await queries.trusted_keys() if r.current}


def _tenant_trusted(settings: Any, slug: str, with_db: Runner) -> set[str]:
    found: set[str] = set()

    async def work() -> int:
        found.update(await _tenant_trusted_keys(slug))
        return 0

    asyncio.run(with_db(settings, work))
    return found
