"""``logad templates``: the parsers' accuracy on LogHub's 2k benchmark, and a warehouse's templates."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from logad.cli.common import WAREHOUSE

log = logging.getLogger("logad")


def add(sub: Any) -> None:
    t = sub.add_parser("templates", help="log template parsers").add_subparsers(dest="action", required=True)
    e = t.add_parser("evaluate", help="GA, PA, FGA, FTA on the LogHub 2k benchmark, ours vs drain3")
    e.add_argument("--data", default=os.environ.get("LOGAD_LOGHUB_2K", "../shared/data/loghub_2k"),
                   help="the 2k benchmark folder (default $LOGAD_LOGHUB_2K or ../shared/data/loghub_2k)")
    e.add_argument("--parsers", default="drain3,drain,swisslog")
    e.add_argument("--systems", default=None, help="comma-separated (default: all 16)")
    e.set_defaults(func=cmd_templates_evaluate)
    w = t.add_parser("show", help="the templates table of a warehouse, most frequent first")
    w.add_argument("--warehouse", default=WAREHOUSE, help=f"root of tables and checkpoints (default {WAREHOUSE})")
    w.add_argument("--top", type=int, default=30, help="how many to print")
    w.add_argument("--width", type=int, default=100, help="characters of template text to print")
    w.add_argument("--all", action="store_true", help="include templates merged into others")
    w.set_defaults(func=cmd_templates_show)


def cmd_templates_show(a: argparse.Namespace) -> int:
    from logad.config import Warehouse
    from logad.templates.stream import TEMPLATES, read_templates

    rows = read_templates(Warehouse(a.warehouse).table(TEMPLATES))
    in_use = [r for r in rows if not r["merged_into"]]
    print(f"{len(in_use)} templates in use, {len(rows) - len(in_use)} merged into others "
          f"({rows[0]['parser'] if rows else '-'}); {sum(r['count'] for r in rows):,} events")
    print(f"{'template_id':<17} {'count':>9}  {'first seen':<20} text")
    for r in (rows if a.all else in_use)[: a.top]:
        first = r["first_seen"].strftime("%Y-%m-%d %H:%M:%S") if r["first_seen"] else "-"
        merged = f"  -> {r['merged_into']}" if r["merged_into"] else ""
        print(f"{r['template_id']:<17} {r['count']:>9,}  {first:<20} {r['text'][:a.width]}{merged}")
    return 0


def cmd_templates_evaluate(a: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from logad.errors import ConfigError
    from logad.templates.evaluate import SYSTEMS, averages, evaluate

    root = Path(a.data)
    if not root.is_dir():
        raise ConfigError(f"LogHub 2k data not found at {root}: pass --data DIR (a folder with "
                          "<System>/loghub2.0_corrected/ as in logpai/loghub-2.0's 2k_dataset)")
    systems = a.systems.split(",") if a.systems else SYSTEMS
    results = evaluate(root, a.parsers.split(","), systems, progress=log.info)
    metrics = ("ga", "pa", "fga", "fta")
    print(f"{'system':12s}" + "".join(f" {p + ' ' + m.upper():>15s}" for p in results for m in ("ga", "pa")))
    for system in systems:
        print(f"{system:12s}" + "".join(f" {results[p][system].ga:15.3f} {results[p][system].pa:15.3f}"
                                        for p in results))
    avg = {p: averages(r) for p, r in results.items()}
    print(f"{'average':12s}" + "".join(f" {avg[p]['ga']:15.3f} {avg[p]['pa']:15.3f}" for p in results))
    for p in results:
        print(f"{p:9s} average " + "  ".join(f"{m.upper()} {avg[p][m]:.3f}" for m in metrics))
    print(json.dumps({"bench": "templates_evaluate", "systems": list(systems), "average": avg,
                      "per_system": {p: {s: {m: round(getattr(v, m), 4) for m in metrics}
                                         for s, v in r.items()} for p, r in results.items()}}))
    return 0
