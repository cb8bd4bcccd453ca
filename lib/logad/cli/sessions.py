"""``logad sessions``: cut events into sessions (stream and backfill), load labels, look at them."""

from __future__ import annotations

import argparse
from typing import Any

from logad.cli.common import reject_share_arg, rejects_exit, spark_args, stream_args


def add(sub: Any) -> None:
    from logad.cli.score import model_args
    from logad.sessions.labels import LABEL_COLUMNS
    from logad.sessions.spark import start_sessions

    ss = sub.add_parser("sessions", help="cut events into sessions: Spark Task workflows, HDFS blocks, "
                        "BGL windows, Hadoop applications").add_subparsers(dest="action", required=True)

    sr = ss.add_parser("run", help="stream events into the sessions table (stateful, event time)")
    rules_args(sr)
    sr.add_argument("--score", action="store_true",
                    help="also score the sessions each batch closes, in that batch (scores table + alerts; "
                         "the model options as for `logad score`): no second query between a session and its alert")
    sr.add_argument("--no-early", action="store_true",
                    help="with --score: score sessions only when they close, not also their prefixes as they grow")
    model_args(sr)
    stream_args(sr, start_sessions, once_help="process what is there (and apply the final watermark), then "
                "stop, reporting the sessions still open")
    reject_share_arg(sr, "late lines (--late reject)")
    sr.set_defaults(func=cmd_sessions_run)

    sb = ss.add_parser("backfill", help="batch sessions from an events snapshot (same cutting as run)")
    rules_args(sb)
    sb.add_argument("--version", type=int, default=None, help="events table version (default latest)")
    sb.add_argument("--table", default="sessions_backfill", help="table to (over)write")
    sb.add_argument("--closed-only", action="store_true",
                    help="leave out sessions still open at the end (what the stream would hold)")
    sb.set_defaults(func=cmd_sessions_backfill)

    sl = ss.add_parser("labels", help="label sessions: from Spark's own event logs (every Task workflow), or "
                       "from a data set's ground-truth label file")
    spark_args(sl)
    sl.add_argument("--spark-event-logs", metavar="DIR",
                    help="a directory of Spark event logs as the History Server keeps them (spark.eventLog.dir; "
                    "any Hadoop filesystem; plain, compressed and rolling eventlog_v2_* logs): every task attempt "
                    "labelled from Spark's account of how it ended")
    sl.add_argument("--system", choices=list(LABEL_COLUMNS), help="with FILE: the data set the file labels")
    sl.add_argument("file", nargs="?",
                    help="a label CSV: " + "; ".join(f"{s} ({k},{v})" for s, (k, v) in LABEL_COLUMNS.items()))
    sl.set_defaults(func=cmd_sessions_labels)

    sw = ss.add_parser("show", help="sessions by system, close reason and label")
    spark_args(sw)
    sw.add_argument("--table", default="sessions")
    sw.add_argument("--top", type=int, default=10)
    sw.set_defaults(func=cmd_sessions_show)


def rules_args(p: argparse.ArgumentParser) -> None:
    """The session-cutting overrides; unset ones keep each system's defaults (logad.parse.formats)."""
    from logad.sessions.rules import ATTACH, DEFAULTS, LATE

    spark_args(p)
    p.add_argument("--system", action="append", choices=list(DEFAULTS),
                   help="systems to cut (repeatable; default all)")
    p.add_argument("--idle-s", type=float, help="close after this long without an event (event time)")
    p.add_argument("--max-duration-s", type=float, help="close this long after the first event")
    p.add_argument("--max-events", type=int, help="close at this many events")
    p.add_argument("--window-s", type=float, help="window kinds (bgl, thunderbird, zookeeper): window length")
    p.add_argument("--window-lines", type=int, help="window kinds: also cut every N lines")
    p.add_argument("--attach", choices=list(ATTACH), help="spark: where a line naming no task goes (default hints)")
    p.add_argument("--watermark", help="how far behind the newest event time a line may come and still be "
                   "folded in exact time order, e.g. '1 minute'")
    p.add_argument("--late", choices=list(LATE),
                   help="a line later than that: join (default) its session anyway, counted in late_events; "
                        "reject it to the rejects table (late_event)")



def session_rules(a: argparse.Namespace) -> list[Any]:
    from logad.sessions.rules import DEFAULTS, rules_for

    overrides = {k: v for k, v in (("idle_s", a.idle_s), ("max_duration_s", a.max_duration_s),
                                   ("max_events", a.max_events), ("window_s", a.window_s),
                                   ("window_lines", a.window_lines), ("attach", a.attach),
                                   ("watermark", a.watermark), ("late", a.late)) if v is not None}
    return [rules_for(system, **overrides) for system in (a.system or DEFAULTS)]


def cmd_sessions_run(a: argparse.Namespace) -> int:
    from logad.cli.score import print_scored, score_stage
    from logad.config import Warehouse
    from logad.ingest import REJECTS, rejects_version, run
    from logad.io.delta import table_summary
    from logad.sessions.spark import SESSIONS, open_sessions, start_sessions
    from logad.spark_session import get_spark

    spark = get_spark("logad-sessions", master=a.master)
    warehouse = Warehouse(a.warehouse)
    stage = score_stage(spark, warehouse, a) if a.score else None
    since = rejects_version(warehouse)
    try:
        ran = run(start_sessions(spark, warehouse, session_rules(a), trigger=a.trigger, query_name=a.query_name,
                                 score=stage, early=not a.no_early), once=a.once)
    finally:
        if stage is not None:
            stage.close()
    for name in (SESSIONS, REJECTS):
        print(table_summary(warehouse.table(name)))
    if stage is not None:
        print_scored(warehouse, stage)
    if not a.once:
        return 0
    still = open_sessions(spark, warehouse.checkpoint(a.query_name))
    for system, o in sorted(still.items()):
        print(f"still open in {a.query_name}'s state: {system}: {o['open']:,} sessions (oldest from {o['oldest']}), "
              f"{o['pending']:,} lines waiting for the watermark; they close when later events or their "
              "deadlines pass")
    if not any(o["open"] or o["pending"] for o in still.values()):
        print(f"nothing left open in {a.query_name}'s state")
    return rejects_exit(warehouse, a, ran, since, "sessions run")


def cmd_sessions_backfill(a: argparse.Namespace) -> int:
    from logad.config import Warehouse
    from logad.io.delta import read_table, table_summary, write_table
    from logad.sessions.spark import read_labels, sessionize
    from logad.spark_session import get_spark

    spark = get_spark("logad-sessions-backfill", master=a.master)
    warehouse = Warehouse(a.warehouse)
    events = read_table(spark, warehouse.table("events"), a.version)
    out = sessionize(events, session_rules(a), read_labels(spark, warehouse), close_open=not a.closed_only)
    uri = warehouse.table(a.table)
    write_table(out, uri)
    print(table_summary(uri))
    return 0


def cmd_sessions_labels(a: argparse.Namespace) -> int:
    from logad.config import Warehouse
    from logad.errors import ConfigError
    from logad.sessions.eventlogs import load_event_log_labels
    from logad.sessions.labels import load_labels
    from logad.spark_session import get_spark

    if bool(a.spark_event_logs) == bool(a.file) or bool(a.file) != bool(a.system):
        raise ConfigError("give --spark-event-logs DIR, or --system SYSTEM FILE")
    spark = get_spark("logad-labels", master=a.master)
    warehouse = Warehouse(a.warehouse)
    if a.file:
        n = load_labels(spark, warehouse, a.system, a.file)
        print(f"{n} {a.system} labels loaded into {warehouse.table('labels')}")
        return 0
    r = load_event_log_labels(spark, warehouse, a.spark_event_logs)
    print(f"{r.attempts} task attempts of {r.applications} applications ({r.logs} event logs) labelled into "
          f"{warehouse.table('labels')}: {r.anomalous} anomalous")
    print("  Spark's end reasons: " + ", ".join(f"{k} {v}" for k, v in sorted(r.status.items())))
    if r.rejects:
        print(f"  {r.rejects} rejects (no label) in {warehouse.table('rejects')}: "
              + ", ".join(f"{k} {v}" for k, v in sorted(r.reject_reasons.items())))
    print("  sessions cut before now keep their labels: 'logad sessions backfill' cuts them again with these")
    return 0


def cmd_sessions_show(a: argparse.Namespace) -> int:
    from logad.config import Warehouse
    from logad.errors import DeltaError
    from logad.io.delta import read_small
    from logad.spark_session import get_spark

    spark = get_spark("logad-show", master=a.master)
    table = read_small(spark, Warehouse(a.warehouse).table(a.table))
    if table is None:
        raise DeltaError(f"no {a.table} table under {a.warehouse}: run 'logad sessions run' first")
    df = table.select(["system", "key", "name", "task", "start_ts", "end_ts", "n_events",
                       "close_reason", "label", "label_source", "label_event"]).to_pandas()
    print(f"{len(df):,} sessions; by system and close reason:")
    print(df.groupby(["system", "close_reason"]).size().to_string())
    print("labels:")
    print(df.groupby(["system", "label_source", "label"]).size().to_string())
    print(df.sort_values("start_ts").head(a.top).to_string(index=False))
    return 0
