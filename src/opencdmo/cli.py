"""The ``opencdmo`` command. Exit codes: 0 success, 1 failure (e.g. a broken audit chain),
2 usage or input error."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from opencdmo.equipment import simulator_command as equipment_commands
from opencdmo.errors import AppError
from opencdmo.ops import command as ops_commands
from opencdmo.settings import Settings, SettingsError
from opencdmo.transfer import command as transfer_commands
from opencdmo.validation import command as validation

DEMO_PASSWORD = "opencdmo-demo-2026"  # noqa: S105 - the demo tenants' published password


def _print(message: str) -> None:
    print(message, flush=True)


async def _with_db(settings: Settings, work: Callable[[], Awaitable[int]]) -> int:
    from opencdmo.audit import keys
    from opencdmo.audit import service as audit
    from opencdmo.db.engine import bind_engine, close_pool, start_pool
    from opencdmo.db.setup import database_urls
    from opencdmo.identity import passwords
    from opencdmo.storage import blobs

    passwords.configure(settings)
    keys.configure(settings)
    blobs.configure(settings)
    engine = bind_engine(database_urls(settings))
    await start_pool(engine, 4)
    try:
        return await work()
    finally:
        await audit.drain()
        await close_pool(engine)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from opencdmo.webapp.server import serve

    workers = settings.workers if args.workers is None else args.workers
    if workers < 1:
        print("--workers must be at least 1", file=sys.stderr)
        return 2
    host, port = args.host or settings.host, args.port or settings.port
    if workers == 1:
        from opencdmo.app import create_app

        return serve(create_app(settings), host=host, port=port, workers=1, announce=_print)
    # Worker processes build the app from the environment: open the embedded server here,
    # once (it stops with this process if this process started it), and hand them its address.
    from opencdmo.db.setup import database_urls

    os.environ["OPENCDMO_DATABASE_URL"] = database_urls(settings).owner
    # Each worker's share of the API rate limits, and one metrics directory for all of them.
    from opencdmo.ops.metrics import share_between_workers

    os.environ["OPENCDMO_WORKERS"] = str(workers)
    share_between_workers(settings.data_dir / "run")
    return serve("opencdmo.app:create_app", host=host, port=port, workers=workers, announce=_print)


def cmd_db_start(settings: Settings, args: argparse.Namespace) -> int:
    from opencdmo.db.setup import database_urls

    urls = database_urls(settings, keep_running=True)
    _print(urls.owner)
    if not settings.database_url:
        print(
            f"embedded PostgreSQL running in {settings.data_dir / 'pg'}; "
            "it stays up until `opencdmo db stop`",
            file=sys.stderr,
        )
    return 0


def cmd_db_stop(settings: Settings, args: argparse.Namespace) -> int:
    from opencdmo.db.embedded import stop_embedded

    if settings.database_url:
        _print("OPENCDMO_DATABASE_URL is set: no embedded server to stop")
    elif stop_embedded(settings.data_dir):
        _print(f"embedded PostgreSQL in {settings.data_dir / 'pg'} stopped")
    else:
        _print("the embedded PostgreSQL is not running")
    return 0


def cmd_db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    from opencdmo.db import migrate
    from opencdmo.db.setup import database_urls

    urls = database_urls(settings)
    migrate.upgrade(urls)
    if settings.app_db_password:
        asyncio.run(migrate.set_app_password(urls, settings.app_db_password))
    _print("database is at the latest migration")
    return asyncio.run(_with_db(settings, _anchor_legacy))


async def _anchor_legacy() -> int:
    from opencdmo.audit.keeper import anchor_legacy

    for chain in await anchor_legacy():
        _print(f"audit chain of {chain} keyed: its earlier unkeyed events are anchored")
    return 0


def cmd_tenants_apply(settings: Settings, args: argparse.Namespace) -> int:
    from opencdmo.tenancy.provision import apply_path

    async def work() -> int:
        changes = await apply_path(Path(args.path), _print)
        _print(f"{changes} change(s) applied" if changes else "no changes: everything up to date")
        for email in await _without_password(Path(args.path)):
            _print(f"{email} has no password yet: opencdmo users set-password --email {email}")
        return 0

    return asyncio.run(_with_db(settings, work))


async def _without_password(root: Path) -> list[str]:
    """The people of the manifests under ``root`` who cannot sign in yet."""
    from opencdmo.identity import service as identity
    from opencdmo.tenancy.manifest import discover

    emails = sorted({person.email for m in discover(root) for person in m.people})
    users = [await identity.find_user(email) for email in emails]
    return [u.email for u in users if u is not None and await identity.has_no_password(u.id)]


def _read_password() -> str:
    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != first:
            raise AppError("The passwords differ.")
        return first
    return sys.stdin.readline().rstrip("\n")


def cmd_users_create(settings: Settings, args: argparse.Namespace) -> int:
    from opencdmo.identity import service as identity
    from opencdmo.scope import RequestMeta
    from opencdmo.tenancy import service as tenancy

    password = _read_password()

    async def work() -> int:
        meta = RequestMeta(request_id="cli:users-create")
        user = await identity.create_user(args.email, args.name, password, meta=meta)
        _print(f"user {user.email} created")
        if args.tenant:
            ctx = await _tenant(args.tenant, meta)
            await tenancy.add_member(ctx, user.id, args.role or [])
            _print(f"added to {args.tenant} with roles {', '.join(args.role or []) or '-'}")
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_users_set_password(settings: Settings, args: argparse.Namespace) -> int:
    from opencdmo.identity import service as identity
    from opencdmo.scope import SYSTEM, RequestMeta

    password = _read_password()

    async def work() -> int:
        await identity.set_password(
            args.email,
            password,
            actor=SYSTEM,
            meta=RequestMeta(request_id="cli:users-set-password"),
        )
        _print(f"password of {args.email} set; their sessions were ended")
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_users_disable(settings: Settings, args: argparse.Namespace) -> int:
    from opencdmo.errors import NotFound
    from opencdmo.identity import service as identity
    from opencdmo.scope import SYSTEM, RequestMeta

    async def work() -> int:
        user = await identity.find_user(args.email)
        if user is None:
            raise NotFound(f"No user has the email {args.email}.")
        await identity.set_user_active(
            user.id, args.enable, actor=SYSTEM, meta=RequestMeta(request_id="cli:users-disable")
        )
        _print(f"{user.email} {'enabled' if args.enable else 'disabled; all sessions ended'}")
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_members_invite(settings: Settings, args: argparse.Namespace) -> int:
    from opencdmo.scope import RequestMeta
    from opencdmo.tenancy import invitations

    async def work() -> int:
        ctx = await _tenant(args.tenant, RequestMeta(request_id="cli:members-invite"))
        invitation, token = await invitations.invite(
            ctx, args.email, args.role or [], hours=settings.invitation_hours, mail_with=settings
        )
        base = settings.public_url or f"http://{settings.host}:{settings.port}"
        _print(
            f"invitation for {invitation.email} to {args.tenant} ({', '.join(invitation.roles)})"
        )
        _print(f"expires {invitation.expires_at:%Y-%m-%d %H:%M} UTC; single use; link:")
        _print(base.rstrip("/") + invitations.accept_path(token))
        if invitation.mail_state:
            _print("the job worker e-mails it to the person invited")
        return 0

    return asyncio.run(_with_db(settings, work))


async def _tenant(slug: str, meta: Any) -> Any:
    from opencdmo.errors import NotFound
    from opencdmo.scope import SYSTEM
    from opencdmo.tenancy import service as tenancy

    row = await tenancy.tenant_by_slug(slug)
    ctx = await tenancy.internal_context(row.id, SYSTEM, meta) if row else None
    if ctx is None:
        raise NotFound(f"No tenant has the slug '{slug}'.")
    return ctx


def cmd_batchml_export(settings: Settings, args: argparse.Namespace) -> int:
    """A recipe's revision as BatchML, to --out or stdout; 1 when refused (no such recipe or
    revision, no effective revision)."""
    from uuid import UUID

    from opencdmo.recipes.batchml_recipe import service as batchml
    from opencdmo.scope import RequestMeta

    try:
        recipe_id = UUID(args.recipe)
    except ValueError:
        print(f"error: '{args.recipe}' is not a recipe id (a UUID).", file=sys.stderr)
        return 2

    async def work() -> int:
        ctx = await _tenant(args.tenant, RequestMeta(request_id="cli:batchml-export"))
        try:
            exported = await batchml.master_recipe_batchml(ctx, recipe_id, args.revision)
        except AppError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 1
        if args.out:
            await asyncio.to_thread(Path(args.out).write_bytes, exported.xml)
            print(f"revision {exported.revision} written to {args.out}", file=sys.stderr)
        else:
            sys.stdout.buffer.write(exported.xml)
            sys.stdout.flush()
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_batchml_import(settings: Settings, args: argparse.Namespace) -> int:
    """A BatchML master recipe as a draft, imported by the member with --email; prints the
    draft, then one line per gap. 1 when the document is refused, 2 when it cannot be read."""
    from opencdmo.errors import NotFound
    from opencdmo.identity import service as identity
    from opencdmo.recipes.batchml_recipe import service as batchml
    from opencdmo.scope import Actor, RequestMeta
    from opencdmo.tenancy import service as tenancy

    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2

    async def work() -> int:
        meta = RequestMeta(request_id="cli:batchml-import")
        tenant = (await _tenant(args.tenant, meta)).tenant_id
        user = await identity.find_user(args.email)
        actor = Actor(user.id, user.email, user.full_name) if user else None
        ctx = await tenancy.internal_context(tenant, actor, meta) if actor else None
        if ctx is None or user is None or await tenancy.membership_of(ctx, user.id) is None:
            raise NotFound(f"{args.email} is not a member of {args.tenant}.")
        try:
            imported = await batchml.import_batchml(ctx, data)
        except AppError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 1
        _print(f"draft master recipe {imported.recipe_id} (import {imported.import_id})")
        _print(f"{len(imported.gaps)} gap(s)")
        for gap in imported.gaps:
            _print(f"  {gap['kind']}: {gap['ref']} ({gap['name']}): {gap['reason']}")
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_equipment_capture(settings: Settings, args: argparse.Namespace) -> int:
    from opencdmo.scope import RequestMeta

    if args.once is not None and not 0 < args.once <= 86400:
        print("error: --once must be above 0 and at most 86400 seconds", file=sys.stderr)
        return 2

    async def work() -> int:
        import logging

        from opencdmo.batches import excursions
        from opencdmo.equipment import capture

        logging.basicConfig(level=logging.WARNING)
        ctx = await _tenant(args.tenant, RequestMeta(request_id="cli:equipment-capture"))
        loop = asyncio.get_running_loop()

        def on_start(worker: capture.Worker) -> None:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, worker.stop)
            _print(f"capturing the equipment of {args.tenant} as worker {worker.name}")

        report = await capture.capture(
            ctx.tenant_id,
            args.tenant,
            seconds=args.once,
            pki=settings.data_dir / "opcua",
            spool=settings.data_dir / "capture-spool" / args.tenant,
            on_start=on_start,
            evaluate=excursions.evaluate_quietly,
        )
        units = ", ".join(report.units) or "none"
        _print(f"stored {report.stored} new samples of {report.offered} received (units: {units})")
        for code, why in report.failed.items():
            print(f"error: {code}: {why}", file=sys.stderr)
        return 1 if report.failed else 0

    return asyncio.run(_with_db(settings, work))


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    """The background job worker, until SIGTERM or Ctrl-C (running jobs finish first)."""
    if args.once is not None and not 0 < args.once <= 86400:
        print("error: --once must be above 0 and at most 86400 seconds", file=sys.stderr)
        return 2

    async def work() -> int:
        import logging

        from opencdmo.jobs.worker import Worker

        logging.basicConfig(level=logging.WARNING)
        worker = Worker(settings)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, worker.stop)
        if args.once is not None:
            loop.call_later(args.once, worker.stop)
        _print(f"job worker {worker.name} running {settings.worker_concurrency} at once")
        await worker.run(until_idle=args.until_idle)
        _print(f"job worker {worker.name} stopped")
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_tokens_create(settings: Settings, args: argparse.Namespace) -> int:
    from dataclasses import replace

    from opencdmo.errors import NotFound
    from opencdmo.identity import service as identity
    from opencdmo.scope import Actor, RequestMeta
    from opencdmo.tenancy import service as tenancy

    async def work() -> int:
        meta = RequestMeta(request_id="cli:tokens-create")
        ctx = await _tenant(args.tenant, meta)
        user = await identity.find_user(args.email)
        if user is None or await tenancy.membership_of(ctx, user.id) is None:
            raise NotFound(f"{args.email} is not a member of {args.tenant}.")
        ctx = replace(ctx, actor=Actor(None, "system", f"OpenCDMO CLI for {user.full_name}"))
        token, row = await identity.create_token(ctx, user.id, args.name, args.days)
        _print(token)
        print(f"expires {row.expires_at:%Y-%m-%d %H:%M} UTC", file=sys.stderr)
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_tokens_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from uuid import UUID

    from opencdmo.identity import service as identity
    from opencdmo.scope import RequestMeta

    async def work() -> int:
        ctx = await _tenant(args.tenant, RequestMeta(request_id="cli:tokens-revoke"))
        try:
            token_id = UUID(args.id)
        except ValueError:
            raise AppError(f"'{args.id}' is not a token id (a UUID).") from None
        await identity.revoke_token(ctx, token_id, only_user=None)
        _print(f"token {token_id} revoked")
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_audit_verify(settings: Settings, args: argparse.Namespace) -> int:
    from opencdmo.app import register_audit_names
    from opencdmo.audit import verify

    register_audit_names()  # each context's records the chain covers
    from opencdmo.audit.checkpoints import store_for
    from opencdmo.audit.keeper import chains_for, write_checkpoint

    store = store_for(settings)

    async def work() -> int:
        chains = await chains_for(args.tenant)
        reports = [await verify.verify_chain(chain, store) for chain in chains]
        for report in reports:
            if report.intact:
                _print(f"ok      {report.chain}: {report.checked} events checked")
                continue
            where = report.broken_at
            _print(
                f"BROKEN  {report.chain}: "
                + (f"first broken sequence number {where}" if where else "see below")
            )
            for line in verify.describe(report):
                _print(f"        {line}")
        broken = [r for r in reports if not r.intact]
        total = sum(r.checked for r in reports)
        _print(
            f"{'audit trail intact' if not broken else 'audit trail BROKEN'}: "
            f"{total} events checked"
        )
        if broken:
            return 1
        written = [write_checkpoint(c, r, store) for c, r in zip(chains, reports, strict=True)]
        _print(f"{sum(1 for w in written if w)} checkpoint(s) written to {store.directory}")
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_audit_checkpoint(settings: Settings, args: argparse.Namespace) -> int:
    from opencdmo.app import register_audit_names
    from opencdmo.audit import verify

    register_audit_names()  # each context's records the chain covers
    from opencdmo.audit.checkpoints import store_for
    from opencdmo.audit.keeper import chains_for, checkpoint_chain

    store = store_for(settings)

    async def work() -> int:
        refused = 0
        for chain in await chains_for(args.tenant):
            result = await checkpoint_chain(chain, store)
            if not result.report.intact:
                refused += 1
                _print(f"REFUSED {chain.label}: the chain does not verify, no checkpoint")
                for line in verify.describe(result.report):
                    _print(f"        {line}")
            elif result.written is not None:
                _print(f"written {chain.label}: seq {result.written.seq}")
            else:
                _print(f"current {chain.label}: seq {result.report.last_seq}, no change")
        _print(f"checkpoints in {store.directory}")
        return 1 if refused else 0

    return asyncio.run(_with_db(settings, work))


def cmd_hub_sync(settings: Settings, args: argparse.Namespace) -> int:
    from opencdmo.hub.service import sync

    async def work() -> int:
        result = await sync(Path(args.path), _print)
        if result.published:
            _print(f"published {len(result.published)} version(s); {result.unchanged} unchanged")
        else:
            _print(f"no changes: all {result.unchanged} versions already published")
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    """Migrate, apply tenants/, give the demo users the demo password, print the logins."""
    from opencdmo.identity import service as identity
    from opencdmo.scope import SYSTEM, RequestMeta
    from opencdmo.tenancy.manifest import discover
    from opencdmo.tenancy.provision import apply_path

    cmd_db_upgrade(settings, args)
    root = Path(args.path)

    async def work() -> int:
        from opencdmo.hub.content import ROOT as HUB_ROOT
        from opencdmo.hub.service import sync

        # The HUB first: the manifests' equipment units are of its equipment classes.
        if HUB_ROOT.is_dir():
            result = await sync(HUB_ROOT, lambda line: None)
            _print(f"HUB: {len(result.published)} published, {result.unchanged} already there")
        await apply_path(root, _print)
        meta = RequestMeta(request_id="cli:demo")
        for manifest in discover(root):
            await _example_recipe(manifest, meta)
        newcomers = await _without_password(root)
        for email in newcomers:
            await identity.set_password(email, DEMO_PASSWORD, actor=SYSTEM, meta=meta)
        if newcomers:
            _print(f"demo password given to {len(newcomers)} people who had none")
        await _demo_partners(discover(root), meta)
        for manifest in discover(root):
            if manifest.kind == "cdmo":
                await _demo_batches(settings, manifest, meta)
                await _demo_equipment(settings, manifest, meta)
            elif manifest.kind == "sponsor":
                await _sponsor_recipe(settings, manifest, meta)
        _print(f"\nDemo logins (password for all: {DEMO_PASSWORD}, unless changed since)")
        for manifest in discover(root):
            _print(f"  {manifest.name} ({manifest.kind}) - /t/{manifest.slug}/")
            for person in manifest.people:
                _print(f"    {person.email:34} {', '.join(person.roles)}")
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_demo_serve(settings: Settings, args: argparse.Namespace) -> int:
    """The web server, the equipment simulator and a capture worker, stopped together."""
    from opencdmo.db.setup import database_urls
    from opencdmo.webapp import demo_serve

    if args.once is not None and not 0 < args.once <= 86400:
        print("error: --once must be above 0 and at most 86400 seconds", file=sys.stderr)
        return 2
    plan = demo_serve.Plan(
        args.tenant,
        args.host or settings.host,
        args.port or settings.port,
        args.simulator_port,
        args.once,
    )
    # Open the database here, once, and hand its address to the four processes.
    url = database_urls(settings).owner
    return asyncio.run(demo_serve.run(plan, url, _print))


async def _demo_batches(settings: Settings, manifest: Any, meta: Any) -> None:
    from opencdmo.batches.demo import demo_batches
    from opencdmo.errors import AppError

    try:
        await demo_batches(settings, manifest, meta, DEMO_PASSWORD, _print)
    except AppError as exc:  # a demo user changed their password, or the recipe changed
        _print(f"  {manifest.slug}: demo batches not made: {exc.message}")


async def _sponsor_recipe(settings: Settings, manifest: Any, meta: Any) -> None:
    from opencdmo.batches.demo import sponsor_recipe

    try:
        made = await sponsor_recipe(settings, manifest, meta, DEMO_PASSWORD)
    except AppError as exc:  # a demo user changed their password, or the recipe changed
        _print(f"  {manifest.slug}: the example recipe not made effective: {exc.message}")
        return
    if made is not None:
        _print(f"  {manifest.slug}: example master recipe effective, ready for tech transfer")


async def _demo_partners(manifests: Any, meta: Any) -> None:
    from opencdmo.errors import AppError
    from opencdmo.partners.demo import demo_relationships

    try:
        await demo_relationships(manifests, meta, _print)
    except AppError as exc:  # a demo admin lost the role
        _print(f"  demo partner relationships not made: {exc.message}")


async def _demo_equipment(settings: Settings, manifest: Any, meta: Any) -> None:
    from opencdmo.batches.demo import equipment_in_use
    from opencdmo.equipment.demo import clean_equipment
    from opencdmo.errors import AppError

    try:
        await clean_equipment(settings, manifest, meta, DEMO_PASSWORD, _print)
        await equipment_in_use(manifest, meta, _print)
    except AppError as exc:  # the demo operator changed their password
        _print(f"  {manifest.slug}: demo equipment not made ready: {exc.message}")


async def _example_recipe(manifest: Any, meta: Any) -> None:
    """A tenant with no master recipe gets a draft one from the HUB's autologous CAR-T recipe,
    created by its first process engineer: a CDMO's to walk through the designer and the
    approvals, a sponsor's to make effective and send for tech transfer."""
    from opencdmo.hub.service import PLATFORM_SLUG
    from opencdmo.identity import service as identity
    from opencdmo.recipes import service as recipes
    from opencdmo.scope import Actor
    from opencdmo.tenancy import service as tenancy

    engineer = next((p for p in manifest.people if "process_engineer" in p.roles), None)
    tenant = await tenancy.tenant_by_slug(manifest.slug)
    user = await identity.find_user(engineer.email) if engineer else None
    if tenant is None or user is None:
        return
    ctx = await tenancy.internal_context(
        tenant.id, Actor(user.id, user.email, user.full_name), meta
    )
    if ctx is None or await recipes.list_recipes(ctx):
        return
    platform = await tenancy.tenant_by_slug(PLATFORM_SLUG)
    item = await recipes.hub_item_id(ctx, platform.id if platform else None, "autologous-car-t")
    if item is not None:
        await recipes.create_from_hub(ctx, item)
        _print(f"  {manifest.slug}: example master recipe drafted from the HUB by {user.email}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="opencdmo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="serve the web app and API")
    serve.add_argument("--host", help="address to bind (default OPENCDMO_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default OPENCDMO_PORT or 8000)")
    serve.add_argument(
        "--workers", type=int, help="worker processes (default OPENCDMO_WORKERS or 1)"
    )
    serve.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="database: start or stop the embedded server, migrate")
    dbsub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    dbsub.add_parser(
        "start",
        help="start the embedded server (if used) until `db stop`; print the owner URL",
    ).set_defaults(func=cmd_db_start)
    dbsub.add_parser(
        "stop", help="stop the embedded server (started by `db start` or still running)"
    ).set_defaults(func=cmd_db_stop)
    dbsub.add_parser("upgrade", help="run the migrations to the latest").set_defaults(
        func=cmd_db_upgrade
    )

    tenants = sub.add_parser("tenants", help="tenant manifests")
    tsub = tenants.add_subparsers(dest="tenants_command", required=True, metavar="ACTION")
    apply = tsub.add_parser("apply", help="apply tenants/<slug>/tenant.yaml manifests (idempotent)")
    apply.add_argument("path", help="a tenants/ folder or one tenant.yaml")
    apply.set_defaults(func=cmd_tenants_apply)

    users = sub.add_parser("users", help="user accounts")
    usub = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    create = usub.add_parser("create", help="create a user (password read from stdin)")
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True, help="printed full name (shown on signatures)")
    create.add_argument("--tenant", help="also add to this tenant (slug)")
    create.add_argument("--role", action="append", help="role in --tenant (repeatable)")
    create.set_defaults(func=cmd_users_create)
    setpw = usub.add_parser("set-password", help="set a user's password (read from stdin)")
    setpw.add_argument("--email", required=True)
    setpw.set_defaults(func=cmd_users_set_password)
    disable = usub.add_parser("disable", help="disable a user and end all their sessions")
    disable.add_argument("--email", required=True)
    disable.set_defaults(func=cmd_users_disable, enable=False)
    enable = usub.add_parser("enable", help="re-enable a disabled user")
    enable.add_argument("--email", required=True)
    enable.set_defaults(func=cmd_users_disable, enable=True)

    members = sub.add_parser("members", help="tenant members")
    msub = members.add_subparsers(dest="members_command", required=True, metavar="ACTION")
    invite = msub.add_parser("invite", help="invite a person into a tenant; prints the link once")
    invite.add_argument("--tenant", required=True, help="tenant slug")
    invite.add_argument("--email", required=True)
    invite.add_argument("--role", action="append", help="role offered (repeatable)")
    invite.set_defaults(func=cmd_members_invite)

    tokens = sub.add_parser("tokens", help="API tokens")
    ksub = tokens.add_subparsers(dest="tokens_command", required=True, metavar="ACTION")
    tcreate = ksub.add_parser("create", help="create a token for a member; prints it once")
    tcreate.add_argument("--tenant", required=True)
    tcreate.add_argument("--email", required=True)
    tcreate.add_argument("--name", default="CLI token")
    tcreate.add_argument(
        "--days", type=int, default=None, help="days the token is valid (default: the tenant's)"
    )
    tcreate.set_defaults(func=cmd_tokens_create)
    trevoke = ksub.add_parser("revoke", help="revoke a token by id")
    trevoke.add_argument("--tenant", required=True)
    trevoke.add_argument("--id", required=True)
    trevoke.set_defaults(func=cmd_tokens_revoke)

    audit = sub.add_parser("audit", help="audit trail")
    asub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = asub.add_parser(
        "verify",
        help="check the chains against the key and the latest checkpoints; exit 1 on any finding",
    )
    verify.add_argument("--tenant", help="only this tenant (slug)")
    verify.set_defaults(func=cmd_audit_verify)
    checkpoint = asub.add_parser(
        "checkpoint", help="verify what is new and write signed checkpoints of the chain heads"
    )
    checkpoint.add_argument("--tenant", help="only this tenant (slug)")
    checkpoint.set_defaults(func=cmd_audit_checkpoint)

    hub = sub.add_parser("hub", help="the HUB catalogue")
    hsub = hub.add_subparsers(dest="hub_command", required=True, metavar="ACTION")
    hsync = hsub.add_parser("sync", help="publish hub_content/ as the platform (idempotent)")
    hsync.add_argument("path", help="the hub_content/ folder")
    hsync.set_defaults(func=cmd_hub_sync)

    demo = sub.add_parser("demo", help="migrate, apply the demo tenants, print the demo logins")
    demo.add_argument("path", nargs="?", default="tenants")
    demo.set_defaults(func=cmd_demo)

    demo_serve = sub.add_parser(
        "demo-serve",
        help="serve the demo: the web app, the equipment simulator, a capture worker for "
        "the demo tenant and the job worker, all stopped by Ctrl-C",
    )
    demo_serve.add_argument("--tenant", default="larkspur-cdmo", help="whose equipment to capture")
    demo_serve.add_argument("--host")
    demo_serve.add_argument("--port", type=int)
    demo_serve.add_argument(
        "--simulator-port",
        type=int,
        default=equipment_commands.DEFAULT_PORT,
        help="the simulator's port (default 4840, as the demo manifest's equipment says)",
    )
    demo_serve.add_argument(
        "--once", type=float, metavar="SECONDS", help="stop all four SECONDS after they run"
    )
    demo_serve.set_defaults(func=cmd_demo_serve)

    worker = sub.add_parser(
        "worker", help="run background jobs (SIGTERM: running jobs finish, then it stops)"
    )
    worker.add_argument("--once", type=float, metavar="SECONDS", help="stop after SECONDS")
    worker.add_argument(
        "--until-idle", action="store_true", help="stop once no job is due and none is running"
    )
    worker.set_defaults(func=cmd_worker)
    equipment = sub.add_parser("equipment", help="equipment and OPC UA capture")
    esub = equipment.add_subparsers(dest="equipment_command", required=True, metavar="ACTION")
    equipment_commands.add_simulate(esub)
    capture = esub.add_parser(
        "capture", help="capture the OPC UA signals of a tenant's equipment into the database"
    )
    capture.add_argument("--tenant", required=True, help="tenant slug")
    capture.add_argument(
        "--once", type=float, metavar="SECONDS", help="capture for SECONDS, then stop"
    )
    capture.set_defaults(func=cmd_equipment_capture)

    transfer_commands.add_commands(sub, _with_db, _read_password)
    batchml = sub.add_parser("batchml", help="master recipes as ISA-88 BatchML")
    bsub = batchml.add_subparsers(dest="batchml_command", required=True, metavar="ACTION")
    bexport = bsub.add_parser("export", help="write a recipe's revision as BatchML")
    bexport.add_argument("--tenant", required=True, help="tenant slug")
    bexport.add_argument("--recipe", required=True, help="master recipe id")
    bexport.add_argument(
        "--revision", type=int, help="revision number (default: the effective revision)"
    )
    bexport.add_argument("--out", help="file to write (default: standard output)")
    bexport.set_defaults(func=cmd_batchml_export)
    bimport = bsub.add_parser(
        "import", help="import a BatchML master recipe as a draft; prints its gap report"
    )
    bimport.add_argument("--tenant", required=True, help="tenant slug")
    bimport.add_argument("--email", required=True, help="the member who imports it")
    bimport.add_argument("file", help="the BatchML document")
    bimport.set_defaults(func=cmd_batchml_import)

    validation.add_commands(sub)
    ops_commands.add_commands(sub)
    return parser


def _terminated(signum: int, _frame: Any) -> None:
    """SIGTERM ends a command like Ctrl+C does: through its exit hooks (an embedded server
    this command started stops), not by the default handler's immediate kill."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminated)
    try:
        settings = Settings.from_env()
        return int(args.func(settings, args))
    except (AppError, SettingsError) as exc:
        print(f"error: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
