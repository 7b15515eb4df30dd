"""``opencdmo transfer export`` and ``opencdmo transfer verify``.

``export --tenant T --recipe ID --out FILE --email E [--reason R]``: QA's password on stdin;
signs the effective revision "approved for transfer" and writes the package to FILE.
``import --tenant T --email E (FILE | --package ID) [--mapping MAP] [--verify-only]``: receive
a package (``transfer:import``): upload and verify FILE (or take a package received before),
save the mapping choices MAP holds (a JSON list of the API's mapping bodies: ``gap_kind``,
``ref``, ``resolution``, ``target_id``, ``target``; each saved as it goes, like the page's),
then import it as a draft when no gap is left; progress bars on stderr. Exit 0 imported (or,
with ``--verify-only``, verified and kept), 1 refused (the findings or the refused choice
listed), 2 usage or unreadable input, 3 verified and kept but gaps remain (each listed, with
what resolves it): resume with ``--package ID --mapping MAP`` or on the package's page.
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

from opencdmo.errors import Conflict, NotFound, ValidationFailed

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
        help="receive, map and import a package: exit 0 imported, 1 refused, 3 gaps remain",
    )
    receive.add_argument("--tenant", required=True, help="tenant slug")
    receive.add_argument("--email", required=True, help="the member who receives it")
    given = receive.add_mutually_exclusive_group(required=True)
    given.add_argument("file", type=Path, nargs="?", help="the package archive")
    given.add_argument("--package", help="a package received before (its id), to map and import")
    receive.add_argument(
        "--mapping", type=Path, help="a JSON list of mapping choices to save before importing"
    )
    receive.add_argument(
        "--verify-only", action="store_true", help="stop once the package is verified and kept"
    )
    receive.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show progress bars on stderr (default: when stderr is a terminal)",
    )
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


GAPS_LEFT = 3
MAPPING_MAX = 1024 * 1024


def _mapping_file(path: Path | None) -> list[Any]:
    """The choices of ``--mapping`` decoded strictly (a 422 naming what is wrong)."""
    import msgspec

    from opencdmo.transfer.schemas import MappingIn

    if path is None:
        return []
    try:
        with path.open("rb") as handle:
            data = handle.read(MAPPING_MAX + 1)
    except OSError as exc:
        raise ValidationFailed(f"--mapping: cannot read {path}: {exc.strerror}.") from None
    if len(data) > MAPPING_MAX:
        raise ValidationFailed(f"--mapping: {path} is larger than 1 MiB.")
    try:
        return msgspec.json.decode(data, type=list[MappingIn])
    except msgspec.ValidationError as exc:
        raise ValidationFailed(f"--mapping: {path}: {exc}.") from None
    except msgspec.DecodeError:
        raise ValidationFailed(f"--mapping: {path} is not a JSON list of choices.") from None


def _refused(args: argparse.Namespace, exc: ValidationFailed, bar: ProgressBar) -> int:
    bar.end()
    findings = exc.details.get("findings") if isinstance(exc.details, dict) else None
    if not findings:
        raise exc
    _print(f"REFUSED: {args.file} failed {len(findings)} check(s); nothing was kept:")
    for f in findings:
        where = f" [{f['member']}]" if f.get("member") else ""
        _print(f"  {f['code']}: {f['message']}{where}")
    return 1


async def _received(settings: Any, ctx: Any, args: argparse.Namespace, bar: ProgressBar) -> Any:
    """The package FILE uploaded and verified (``receive.upload``), or the one ``--package``
    names; None when FILE was refused (the findings printed)."""
    from uuid import UUID, uuid4

    from opencdmo.transfer import receive

    if args.package is not None:
        try:
            return await receive.received(ctx, UUID(args.package))
        except ValueError:
            raise ValidationFailed(f"--package: '{args.package}' is not a package id.") from None
    try:
        source = args.file.open("rb")
    except OSError as exc:
        raise Unreadable(f"cannot read the package: {args.file}: {exc.strerror}") from None
    job_id = uuid4()
    try:
        path = await receive.spool_upload(settings, ctx, receive.file_chunks(source), job_id, None)
        row = await receive.upload(settings, ctx, path, job_id, bar.stage("verifying"))
    finally:
        await asyncio.to_thread(source.close)
    bar.end()
    _print(f"VERIFIED: package {row.id} from {row.sender_name} (key {row.sender_fingerprint})")
    _print(f"recipe {row.recipe_name} revision {row.revision}, {row.size_bytes} bytes, kept")
    return row


async def _mapped(settings: Any, ctx: Any, package_id: Any, choices: list[Any]) -> Any:
    """The gap report once each choice is saved (in order; a refused one stops here, the
    earlier ones kept, as on the page)."""
    from opencdmo.transfer import gaps, mapping

    for i, c in enumerate(choices, 1):
        given = mapping.Given(c.gap_kind, c.ref, c.resolution, c.target_id, c.target)
        try:
            await mapping.choose(settings, ctx, package_id, given)
        except ValidationFailed as exc:
            raise ValidationFailed(f"--mapping: choice {i} ({c.ref}): {exc.message}") from None
        _print(f"mapped {c.ref}: {c.resolution} {c.target or c.target_id or ''}".rstrip())
    return await gaps.analyse(settings, ctx, package_id)


def _gaps_left(report: Any, package_id: Any) -> int:
    left = [r for r in report.rows() if r["ref"] in set(report.unresolved)]
    _print(f"GAPS: {len(left)} gap(s) of package {package_id} are not resolved yet:")
    for r in left:
        _print(f"  {r['kind']} {r['ref']}: {r['reason']}")
    _print(f"Resolve them with --package {package_id} --mapping FILE, or on the package's page.")
    return GAPS_LEFT


def cmd_import(settings: Any, args: argparse.Namespace, *, with_db: Runner) -> int:
    from opencdmo.recipes import service as recipes
    from opencdmo.transfer import importing

    choices = _mapping_file(args.mapping)

    async def work() -> int:
        ctx = await _member(args.tenant, args.email, "cli:transfer-import")
        bar = ProgressBar(shown=sys.stderr.isatty() if args.progress is None else args.progress)
        try:
            row = await _received(settings, ctx, args, bar)
        except ValidationFailed as exc:
            return _refused(args, exc, bar)
        if args.verify_only:
            return 0
        try:
            report = await _mapped(settings, ctx, row.id, choices)
        except (ValidationFailed, Conflict) as exc:
            _print(f"REFUSED: {exc.message}")
            return 1
        if report.imported is not None:
            _print(f"IMPORTED already: recipe {report.imported.recipe_id}")
            return 0
        if report.unresolved:
            return _gaps_left(report, row.id)

        def told(stage: str, done: int, total: int) -> None:
            bar.stage("checking" if stage == "verify" else "importing")(done, total)

        made = await importing.import_package(settings, ctx, row.id, told)
        bar.end()
        recipe = await recipes.get(ctx, made.recipe_id)
        kind = "new draft recipe" if made.new_recipe else "new revision of recipe"
        _print(f"IMPORTED: {kind} {recipe.name} ({made.recipe_id}), revision {made.revision}")
        return 0

    try:
        return int(asyncio.run(with_db(settings, work)))
    except Unreadable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


class Unreadable(Exception):
    """The input cannot be read (exit 2)."""


class ProgressBar:
    """``verifying [#####.........]  35 %  350 of 1000 MiB`` on stderr, redrawn per percent;
    ``stage`` starts a new bar with another label (``checking``, ``importing``). A bar that
    is not ``shown`` draws nothing."""

    WIDTH = 30

    def __init__(self, label: str = "verifying", *, shown: bool = True) -> None:
        self.label = label
        self.shown = -1
        self.drawn = shown

    def stage(self, label: str) -> ProgressBar:
        if label != self.label:
            self.end()
            self.label, self.shown = label, -1
        return self

    def end(self) -> None:
        """End a bar's line that stopped before 100 %."""
        if self.shown not in (-1, 100):
            print(file=sys.stderr)
        self.shown = -1

    def __call__(self, done: int, total: int) -> None:
        percent = min(100, done * 100 // total) if total else 100
        if percent == self.shown or not self.drawn:
            return
        self.shown = percent
        filled = self.WIDTH * percent // 100
        bar = "#" * filled + "." * (self.WIDTH - filled)
        unit, scale = ("MiB", 2**20) if total >= 2**20 else ("KiB", 2**10)
        mib = f"{done / scale:.0f} of {total / scale:.0f} {unit}"
        end = "\n" if percent == 100 else ""
        line = f"\r{self.label} [{bar}] {percent:3d} %  {mib}"
        print(line, end=end, file=sys.stderr, flush=True)


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
