"""``logad patterns run``: new-template and rate-surge alerts over the ``events`` table."""

from __future__ import annotations

import argparse
from typing import Any

from logad.cli.common import default, kafka_args, spark_args, stream_args


def add(sub: Any) -> None:
    from logad.patterns import PatternRules, PatternStage, start_patterns

    pa = sub.add_parser("patterns", help="the two alerts every log platform has: a template never seen before, "
                        "a template whose rate on a host jumps above its own history")
    ps = pa.add_subparsers(dest="patterns_command", required=True)
    pr = ps.add_parser("run", help="events -> anomalies table + alerts (kind new_template / rate_surge)")
    spark_args(pr)
    stream_args(pr, start_patterns, once_help="look at what is in events now, then stop")
    kafka_args(pr, help="Kafka for the alerts")
    topic = default(PatternStage, "alerts_topic")
    pr.add_argument("--alerts-topic", default=topic, help=f"(default {topic}, the scoring stage's)")
    pr.add_argument("--no-alerts", action="store_true", help="only the anomalies table")
    for name, what in (("learn_s", "event time per system that is history: its templates are known, its counts "
                                   "the baselines; nothing alerts"),
                       ("window_s", "the rate window (event time)"),
                       ("lateness_s", "a window closes when the system's event time passes its end by this"),
                       ("memory_s", "half-life of a host's baseline, the peak count of its windows"),
                       ("ratio", "a surge is at least this many times the baseline"),
                       ("min_count", "... and at least this many lines in a window")):
        value = default(PatternRules, name)
        pr.add_argument("--" + name.replace("_", "-"), type=type(value), default=value, help=f"{what} (default {value})")
    pr.set_defaults(func=cmd_patterns_run)


def cmd_patterns_run(a: argparse.Namespace) -> int:
    from logad.config import Warehouse
    from logad.ingest import run
    from logad.io.delta import table_exists, table_summary
    from logad.io.kafka import parse_options
    from logad.patterns import ANOMALIES, PatternRules, PatternStage, start_patterns
    from logad.spark_session import get_spark

    rules = PatternRules(learn_s=a.learn_s, window_s=a.window_s, lateness_s=a.lateness_s, memory_s=a.memory_s,
                         ratio=a.ratio, min_count=a.min_count)
    spark = get_spark("logad-patterns", master=a.master)
    warehouse = Warehouse(a.warehouse)
    stage = PatternStage(spark, warehouse, rules, None if a.no_alerts else a.bootstrap, a.alerts_topic,
                         kafka_options=parse_options(a.kafka_option), query_name=a.query_name)
    try:
        run(start_patterns(spark, warehouse, stage, trigger=a.trigger, query_name=a.query_name), once=a.once)
    finally:
        stage.close()
    if table_exists(warehouse.table(ANOMALIES)):
        print(table_summary(warehouse.table(ANOMALIES)))
    found = ", ".join(f"{k} {v}" for k, v in sorted(stage.found.items())) or "none"
    print(f"anomalies found: {found}; {stage.alerts_sent} alerts sent"
          + (f" to {stage.alerts_topic}" if stage.alerts_topic else ""))
    return 0
