"""``logad score`` and ``logad explain``: closed sessions scored live into ``scores`` and alerts,
and one session's lines with the ones that weighed most."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from logad.cli.common import default, kafka_args, spark_args, stream_args

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from logad.config import Warehouse
    from logad.live_scoring import ScoreStage


def add(sub: Any) -> None:
    from logad.live_scoring import explain, start_scoring

    sc = sub.add_parser("score", help="score closed sessions as they arrive: scores table + alerts topic")
    spark_args(sc)
    model_args(sc)
    stream_args(sc, start_scoring, once_help="score what is there now, then stop")
    sc.set_defaults(func=cmd_score)

    ex = sub.add_parser("explain", help="a scored session's raw lines, the ones that weighed most highlighted; "
                        "or a pattern anomaly's (logad patterns) first lines")
    spark_args(ex)
    ex.add_argument("session_id", help="a session id (scores, alerts) or an anomaly id (anomalies, pattern alerts)")
    ex.add_argument("--models-dir", help="default <warehouse>/models")
    ex.add_argument("--top-k", type=int, default=default(explain, "top_k"))
    ex.set_defaults(func=cmd_explain)


def model_args(p: argparse.ArgumentParser, kafka: bool = True) -> None:
    """Which model scores, and where its alerts go (``logad score``, ``logad sessions run --score``;
    ``kafka`` False: the command already has the Kafka options, the alerts go to that cluster)."""
    from logad.live_scoring import ScoreStage

    p.add_argument("--model", default=default(ScoreStage, "model"))
    p.add_argument("--model-version", default=default(ScoreStage, "which"),
                   help="promoted (default, swapped live), latest or N")
    p.add_argument("--models-dir", help="default <warehouse>/models")
    if kafka:
        kafka_args(p, help="Kafka for the alerts")
    topic = default(ScoreStage, "alerts_topic")
    p.add_argument("--alerts-topic", default=topic, help=f"(default {topic})")
    p.add_argument("--no-alerts", action="store_true", help="only the scores table")
    p.add_argument("--top-k", type=int, default=default(ScoreStage, "top_k"), help="events per alert, by attention weight")


def score_stage(spark: SparkSession, warehouse: Warehouse, a: argparse.Namespace) -> ScoreStage:
    """The ScoreStage of ``logad score`` and ``logad sessions run --score``."""
    from logad.io.kafka import parse_options
    from logad.live_scoring import ScoreStage

    which = a.model_version if a.model_version in ("promoted", "latest") else int(a.model_version)
    return ScoreStage(spark, warehouse, a.model, which, a.models_dir,
                      None if a.no_alerts else a.bootstrap, a.alerts_topic, a.top_k,
                      kafka_options=parse_options(a.kafka_option))


def print_scored(warehouse: Warehouse, stage: ScoreStage) -> None:
    from logad.io.delta import table_exists, table_summary
    from logad.live_scoring import EARLY_SCORES, SCORES

    print(table_summary(warehouse.table(SCORES)))
    if table_exists(warehouse.table(EARLY_SCORES)):
        print(table_summary(warehouse.table(EARLY_SCORES)))
    print(f"{stage.alerts_sent} alerts sent" + (f" to {stage.alerts_topic}" if stage.alerts_topic else ""))


def cmd_score(a: argparse.Namespace) -> int:
    from logad.config import Warehouse
    from logad.ingest import run
    from logad.live_scoring import start_scoring
    from logad.spark_session import get_spark

    spark = get_spark("logad-score", master=a.master)
    warehouse = Warehouse(a.warehouse)
    stage = score_stage(spark, warehouse, a)
    try:
        run(start_scoring(spark, warehouse, stage, trigger=a.trigger, query_name=a.query_name), once=a.once)
    finally:
        stage.close()
    print_scored(warehouse, stage)
    return 0


def cmd_explain(a: argparse.Namespace) -> int:
    from logad.config import Warehouse
    from logad.live_scoring import explain
    from logad.patterns import explain_anomaly
    from logad.spark_session import get_spark

    spark = get_spark("logad-explain", master=a.master)
    color = sys.stdout.isatty()
    found = explain_anomaly(spark, Warehouse(a.warehouse), a.session_id)
    if found is not None:
        r, raw = found
        where = f"on {r['host']}" if r["kind"] == "rate_surge" else f"first on {r['host']} (hosts {', '.join(r['hosts'])})"
        print(f"{r['kind']} {r['anomaly_id']} ({r['system']}) {where}: template {r['template_id']} {r['template']!r}")
        if r["kind"] == "rate_surge":
            print(f"{r['count']} lines in {r['window_start']} .. {r['window_end']}, its baseline peak "
                  f"{r['baseline']:.1f}")
        else:
            print(f"{r['count']} lines in the batch that first saw it, the first at {r['first_ts']}")
        for x in raw:
            line = x.get("line") or f"(not in raw_logs: {x['topic']}/{x['partition']}@{x['offset']})"
            print(f">> {x.get('host') or '':<10} {chr(27) + '[1;31m' + line + chr(27) + '[0m' if color else line}")
        return 0
    s, lines = explain(spark, Warehouse(a.warehouse), a.session_id, a.models_dir, a.top_k)
    print(f"session {s['session_id']} ({s['system']} {s['key']}, hosts {', '.join(s['hosts'] or [])}) "
          f"{s['start_ts']} .. {s['end_ts']}")
    print(f"score {s['score']:.4f} (threshold {s['threshold']:.4f}) by {s['model']} v{s['model_version']}: "
          f"{'ANOMALY' if s['is_anomaly'] else 'normal'}; {s['unseen_templates']} templates unseen in training"
          + (f"; still open, scored on its first {s['n_events']} events" if s.get("open") else ""))
    for i, line, weight in lines:
        if weight is not None:
            mark = f">> {weight:5.3f} "
            text = f"\033[1;31m{line}\033[0m" if color else line
        else:
            mark, text = " " * 9, line
        print(f"{mark}{i:>4}  {text}")
    return 0
