"""``logad ingest``: the streaming query Kafka -> ``raw_logs``, ``events``, ``rejects``, ``templates``."""

from __future__ import annotations

import argparse
from typing import Any

from logad.cli.common import default, kafka_args, pairs, reject_share_arg, spark_args, stream_args


def add(sub: Any) -> None:
    from logad.config import KafkaSource
    from logad.ingest import start_ingest
    from logad.parse.formats import FORMATS
    from logad.parse.headers import Parser

    i = sub.add_parser("ingest", help="stream Kafka records into raw_logs, events and rejects")
    kafka_args(i)
    group = i.add_mutually_exclusive_group()
    group.add_argument("--subscribe", help="comma-separated topics")
    group.add_argument("--subscribe-pattern", help=r"topic regex (default logs\..*, the shipper's topics)")
    first = default(KafkaSource, "starting_offsets")
    i.add_argument("--starting-offsets", default=first, help=f"earliest, latest or Spark's JSON (default {first})")
    i.add_argument("--max-offsets-per-trigger", type=int, default=default(KafkaSource, "max_offsets_per_trigger"))
    i.add_argument("--fail-on-data-loss", choices=["true", "false"],
                   default=str(default(KafkaSource, "fail_on_data_loss")).lower(),
                   help="stop when records the checkpoint expects are gone (Spark's failOnDataLoss)")
    spark_args(i)
    stream_args(i, start_ingest)
    i.add_argument("--format", action="append", default=[], metavar="TOPIC_REGEX=FORMAT",
                   help=f"pin topics to a header format ({', '.join(FORMATS)}); other topics are "
                        "detected (repeatable)")
    i.add_argument("--system", action="append", default=[], metavar="TOPIC_REGEX=SYSTEM",
                   help="name the system of a topic's lines (events.system: session rules, labels, "
                        "models), e.g. 'logs\\.etl.*=spark-etl' (repeatable; default the detected format)")
    i.add_argument("--host-system", action="append", default=[], metavar="HOST_REGEX=SYSTEM",
                   help="the same by the host that wrote the lines (after --system)")
    i.add_argument("--no-fallback", action="store_true",
                   help="reject lines no format matches instead of keeping them as generic")
    most = default(Parser, "max_line_bytes")
    i.add_argument("--max-line-bytes", type=int, default=most, help=f"longer records are rejected (default {most})")
    i.add_argument("--templates", choices=["drain", "swisslog"], default=default(start_ingest, "template_parser"),
                   help="template parser for events.template_id (a warehouse keeps the one it began with)")
    reject_share_arg(i, "undecodable, too long, no header with --no-fallback")
    i.set_defaults(func=cmd_ingest)


def cmd_ingest(a: argparse.Namespace) -> int:
    from logad.config import KafkaSource, Warehouse
    from logad.ingest import (
        EVENTS,
        RAW_LOGS,
        REJECTS,
        check_rejects,
        rejects_version,
        rejects_written,
        run,
        start_ingest,
    )
    from logad.io.delta import table_summary
    from logad.io.kafka import parse_options
    from logad.parse.headers import Parser
    from logad.spark_session import get_spark
    from logad.templates.stream import TEMPLATES

    parser = Parser(formats=pairs(a.format, "--format", "TOPIC_REGEX=FORMAT, e.g. 'logs\\.dn.*=hdfs'"),
                    systems=pairs(a.system, "--system", "TOPIC_REGEX=SYSTEM, e.g. 'logs\\.etl.*=spark-etl'"),
                    host_systems=pairs(a.host_system, "--host-system", "HOST_REGEX=SYSTEM, e.g. 'ml-.*=spark-ml'"),
                    fallback_generic=not a.no_fallback, max_line_bytes=a.max_line_bytes)
    spark = get_spark("logad-ingest", master=a.master)
    pattern = a.subscribe_pattern or (None if a.subscribe else r"logs\..*")
    source = KafkaSource(a.bootstrap, subscribe=a.subscribe, subscribe_pattern=pattern,
                         starting_offsets=a.starting_offsets,
                         max_offsets_per_trigger=a.max_offsets_per_trigger,
                         fail_on_data_loss=a.fail_on_data_loss == "true",
                         client=parse_options(a.kafka_option))
    warehouse = Warehouse(a.warehouse)
    query = start_ingest(spark, source, warehouse, parser=parser, trigger=a.trigger, query_name=a.query_name,
                         template_parser=a.templates)
    since = rejects_version(warehouse)
    ran = run(query, once=a.once)
    for name in (RAW_LOGS, EVENTS, REJECTS, TEMPLATES):
        print(table_summary(warehouse.table(name)))
    loud = check_rejects(rejects_written(warehouse, a.query_name, since), ran, "ingest",
                         a.max_reject_share) if a.once else None
    if loud:
        print(f"ERROR: {loud}")
        return 3
    return 0
