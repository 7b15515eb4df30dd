"""``opencdmo worker`` (the CLI's own entry) with one more job kind, ``test.sleep``, that
sleeps ``args["seconds"]``: a job the tests can stop mid-way (SIGKILL, SIGTERM)."""

from __future__ import annotations

import asyncio
import sys

from opencdmo.cli import main
from opencdmo.db.jobs import Job
from opencdmo.jobs.registry import handler


@handler("test.sleep")
async def sleep(job: Job) -> None:
    await asyncio.sleep(float(job.args["seconds"]))


if __name__ == "__main__":
    sys.exit(main(["worker", *sys.argv[1:]]))
