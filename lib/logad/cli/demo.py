"""``logad demo``: the pipeline end to end on the bundled real logs (what ``make demo`` runs)."""

from __future__ import annotations

import argparse
from typing import Any

from logad.cli.common import default


def add(sub: Any) -> None:
    from logad.demo import run_demo

    d = sub.add_parser("demo", help="run the pipeline end to end on bundled real logs")
    work = default(run_demo, "workdir")
    d.add_argument("--workdir", default=work, help=f"broker state, tables, checkpoints (default {work})")
    port = default(run_demo, "port")
    d.add_argument("--port", type=int, default=port, help=f"port of the demo's local broker (default {port})")
    d.set_defaults(func=cmd_demo)


def cmd_demo(a: argparse.Namespace) -> int:
    from logad.demo import run_demo

    run_demo(workdir=a.workdir, port=a.port, say=print)
    return 0
