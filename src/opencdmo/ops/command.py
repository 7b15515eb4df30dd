"""``opencdmo backup`` and ``opencdmo restore``: exit 0 when done and verified, 1 when the
result has problems (a damaged blob, a count that differs), 2 when refused (a non-empty
database, a damaged backup, a missing pg_dump)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from opencdmo.settings import Settings


def _say(line: str) -> None:
    print(line, flush=True)


def cmd_backup(settings: Settings, args: argparse.Namespace) -> int:
    from opencdmo.db.setup import database_urls
    from opencdmo.ops import backup
    from opencdmo.storage.blobs import store_for

    report = asyncio.run(
        backup.backup(settings, database_urls(settings), store_for(settings), Path(args.out), _say)
    )
    _say(f"backup written to {report.directory}: {report.files} files in the manifest")
    if report.problems:
        print(f"error: {len(report.problems)} problem(s), see above", file=sys.stderr)
        return 1
    return 0


def cmd_restore(settings: Settings, args: argparse.Namespace) -> int:
    from opencdmo.db.setup import database_urls
    from opencdmo.ops import backup
    from opencdmo.storage.blobs import store_for

    report = asyncio.run(
        backup.restore(
            settings, database_urls(settings), store_for(settings), Path(args.source), _say
        )
    )
    if report.problems:
        print(f"error: restored, but {len(report.problems)} problem(s), see above", file=sys.stderr)
        return 1
    _say(
        f"restored and verified: {len(report.tables)} tables' row counts match, "
        f"{report.files} stored files hash to their keys; "
        "run `opencdmo audit verify` (with the same OPENCDMO_AUDIT_KEY) next"
    )
    return 0


def add_commands(sub: Any) -> None:
    take = sub.add_parser(
        "backup", help="dump the database and copy the blob store, with a SHA-256 manifest"
    )
    take.add_argument("--out", required=True, help="a new directory, or a file ending in .tar")
    take.set_defaults(func=cmd_backup)
    back = sub.add_parser(
        "restore", help="restore a backup into an EMPTY database and the blob store, then verify"
    )
    back.add_argument("source", metavar="FROM", help="a backup directory or .tar file")
    back.set_defaults(func=cmd_restore)
