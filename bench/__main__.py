"""Run every benchmark: ``python -m bench`` (or ``make bench``)."""

from __future__ import annotations

import asyncio
import sys

from bench import api_list


def main() -> int:
    ok = api_list.report(asyncio.run(api_list.main()))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
