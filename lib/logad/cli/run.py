"""``logad run``: the one streaming query from Kafka to alerts (:mod:`logad.pipeline`)."""

from __future__ import annotations

import argparse
from typing import Any

from logad.cli.common import default, reject_share_arg, rejects_exit, stream_args


def add(sub: Any) -> None:
    from logad.cli.ingest import parser_args, source_args
    from logad.cli.score import model_args
    from logad.cli.sessions import rules_args
    from logad.pipeline import start_pipeline

    r = sub.add_parser("run", help="run logad live, one query: Kafka -> raw_logs, events, templates -> sessions -> "
                       "scores + alerts, all in each micro-batch")
    source_args(r)
    rules_args(r)  # also --warehouse, --master
    parser_args(r, default(start_pipeline, "template_parser"), system_flag="--topic-system")
    model_args(r, kafka=False)  # the alerts go to the cluster the logs come from
    r.add_argument("--no-score", action="store_true",
                   help="stop at the sessions table (no model yet: ingest and cut sessions for training)")
    r.add_argument("--no-early", action="store_true",
                   help="score sessions only when they close, not also their prefixes as they grow")
    stream_args(r, start_pipeline, once_help="process what the topics hold now (and apply the final watermark), "
                "then stop")
    reject_share_arg(r, "undecodable, too long, no header with --no-fallback, late lines with --late reject")
    r.set_defaults(func=cmd_run)


def cmd_run(a: argparse.Namespace) -> int:
    from logad.cli.ingest import parser_of, source_of
    from logad.cli.score import score_stage
    from logad.cli.sessions import session_rules
    from logad.config import Warehouse
    from logad.ingest import rejects_version, run
    from logad.pipeline import start_pipeline, table_counts
    from logad.spark_session import get_spark

    spark = get_spark("logad-run", master=a.master)
    warehouse = Warehouse(a.warehouse)
    stage = None if a.no_score else score_stage(spark, warehouse, a)
    since = rejects_version(warehouse)
    try:
        query = start_pipeline(spark, source_of(a), warehouse, session_rules(a), stage, parser=parser_of(a),
                               trigger=a.trigger, query_name=a.query_name, template_parser=a.templates,
                               early=not a.no_early)
        ran = run(query, once=a.once)
    finally:
        if stage is not None:
            stage.close()
    for summary in table_counts(warehouse).values():
        print(summary)
    if stage is not None:
        print(f"{stage.alerts_sent} alerts sent" + (f" to {stage.alerts_topic}" if stage.alerts_topic else ""))
    return rejects_exit(warehouse, a, ran, since, "run")

