"""``opencdmo validation report``: run the evidence tests and write the OQ report. Exit 0
only when every referenced test ran and passed; 1 when any failed, errored, was skipped or
did not run; 2 for a usage or input error (a broken matrix)."""

from __future__ import annotations

import argparse
from pathlib import Path

BANNER = {
    "passed": "PASSED: every evidence test ran and passed",
    "failed": "FAILED: evidence tests failed",
    "incomplete": "INCOMPLETE: evidence tests were skipped or did not run",
}


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    validation = sub.add_parser("validation", help="validation evidence (OQ report)")
    vsub = validation.add_subparsers(dest="validation_command", required=True, metavar="ACTION")
    make = vsub.add_parser(
        "report",
        help="run the evidence tests and write the OQ report; exit 1 unless all passed",
    )
    make.add_argument("--output", default="build/validation", help="folder for the report")
    make.add_argument(
        "--matrix",
        default="docs/validation/requirements.yaml",
        help="the requirements matrix (default docs/validation/requirements.yaml)",
    )
    make.add_argument(
        "--pytest-args", default="", help="more pytest arguments, as one shell-quoted string"
    )
    make.set_defaults(func=cmd_report)


def cmd_report(settings: object, args: argparse.Namespace) -> int:
    """Run from the project root: the matrix's test ids are relative to it."""
    from opencdmo.validation import matrix as matrices
    from opencdmo.validation import output, report, run

    root = Path.cwd()
    matrix = matrices.load(Path(args.matrix))
    where = run.source(root)
    done = run.run_evidence(matrix, root, args.pytest_args)
    env = run.environment(done.results.get("postgresql"))
    built = report.build(matrix, root, run.product_version(), where, done, env)
    json_path, html_path = output.write(built, Path(args.output))
    print(BANNER[built.verdict], flush=True)
    for deviation in built.deviations:
        print(f"  {deviation.outcome:8} {deviation.nodeid}: {deviation.message}", flush=True)
    print(f"report: {html_path}\n        {json_path}", flush=True)
    return 0 if built.verdict == "passed" else 1
