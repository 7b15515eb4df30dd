"""The ``opencdmo equipment simulate`` command's arguments; the server is in ``simulator``
(imported only when the command runs: asyncua takes most of a second to import)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

DEFAULT_PORT = 4840


def add_simulate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``simulate`` under ``opencdmo equipment``."""
    simulate = sub.add_parser(
        "simulate", help="serve simulated equipment over OPC UA on 127.0.0.1 until stopped"
    )
    simulate.add_argument("--port", type=int, default=DEFAULT_PORT, help="default 4840")
    simulate.add_argument(
        "--rate", type=float, default=1.0, help="updates per second per signal (up to 100)"
    )
    simulate.add_argument(
        "--excursion",
        action="append",
        default=[],
        metavar="SIGNAL:VALUE:SECONDS[:AFTER]",
        help="hold a signal near VALUE for SECONDS, from AFTER seconds in (repeatable)",
    )
    simulate.add_argument("--signals", type=int, default=0, help="extra synthetic signals")
    simulate.add_argument("--seed", type=int, default=0, help="the curves' random seed")
    simulate.add_argument(
        "--pki",
        type=Path,
        help="directory of the server certificate (made there on first start): adds "
        "Basic256Sha256 Sign and SignAndEncrypt endpoints",
    )
    simulate.set_defaults(func=cmd_simulate)


def cmd_simulate(_settings: object, args: argparse.Namespace) -> int:
    from opencdmo.equipment import simulator
    from opencdmo.equipment.signals import SIGNALS, synthetic

    if args.signals < 0:
        print("error: --signals must not be negative", file=sys.stderr)
        return 2
    signals = SIGNALS + synthetic(args.signals)
    try:
        config = simulator.SimulatorConfig(
            port=args.port,
            rate=args.rate,
            extra_signals=args.signals,
            excursions=tuple(simulator.parse_excursion(text, signals) for text in args.excursion),
            seed=args.seed,
            pki=args.pki,
            record=False,
        )
        server = simulator.Simulator(config)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(simulator.serve(server))
    return 0
