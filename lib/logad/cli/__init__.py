"""The ``logad`` command line: one module per command group, each with ``add(subparsers)`` and
its handlers, which parse, call the library and print.

Logging is configured here (and so for the jobs in ``jobs/``, which call :func:`main`), never in
the library. A :class:`logad.errors.LogadError` ends the command with its one-line message and
its exit code (2: a setting to fix; 3: training lost its executors, rerun to resume); anything
else is a bug: one line and exit 1, the stack with ``-v``.

``docs/cli.md`` is generated from this parser (``python -m logad.cli.reference``); a test fails
when it is out of date.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from logad.cli import (
    demo,
    hadoop,
    ingest,
    kafka,
    lab,
    models,
    patterns,
    run,
    score,
    sessions,
    templates,
)
from logad.cli.common import trigger
from logad.errors import LogadError, explain

__all__ = ["build_parser", "main", "trigger"]

# the order of the commands in --help and in the reference
GROUPS = (kafka, run, ingest, templates, sessions, models, score, patterns, lab, hadoop, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logad", description="Log anomaly detection on Apache Spark: ship logs into Kafka, ingest them "
        "into Delta tables, cut sessions, train ATT-GRU across Spark, score the live stream.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging; tracebacks of unexpected errors")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from logad.entry import configure_logging

    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    try:
        return int(args.func(args))
    except LogadError as e:
        print(f"logad: error: {e}", file=sys.stderr)
        return e.exit_code
    except Exception as e:
        clear = explain(e)
        if clear is None:
            if args.verbose:
                raise
            first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), "")
            print(f"logad: unexpected error: {type(e).__name__}: {first[:300]} (run with -v for the "
                  "traceback, and please report it)", file=sys.stderr)
            return 1
        print(f"logad: error: {clear}", file=sys.stderr)
        return clear.exit_code
