"""``logad ingest``: the streaming query Kafka -> ``raw_logs``, ``events``, ``rejects``, ``templates``."""

from __future__ import annotations

import argparse
from typing import Any

from logad.cli.common import (
    default,
    kafka_args,
    pairs,
    reject_share_arg,
    rejects_exit,
    spark_args,
    stream_args,
)


def add(sub: Any) -> None:
    from logad.ingest import start_ingest

    i = sub.add_parser("ingest", help="stream Kafka records into raw_logs, events and rejects")
    source_args(i)
    spark_args(i)
    stream_args(i, start_ingest)
    parser_args(i, default(start_ingest, "template_parser"))
    reject_share_arg(i, "undecodable, too long, no header with --no-fallback")
    i.set_defaults(func=cmd_ingest)


def source_args(p: argparse.ArgumentParser) -> None:
    """Which Kafka topics a query reads, and from where (``logad ingest``, ``logad run``)."""
    from logad.config import KafkaSource

    kafka_args(p)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--subscribe", help="comma-separated topics")
    group.add_argument("--subscribe-pattern", help=r"topic regex (default logs\..*, the shipper's topics)")
    first = default(KafkaSource, "starting_offsets")
    p.add_argument("--starting-offsets", default=first, help=f"earliest, latest or Spark's JSON (default {first})")
    p.add_argument("--max-offsets-per-trigger", type=int, default=default(KafkaSource, "max_offsets_per_trigger"))
    p.add_argument("--fail-on-data-loss", choices=["true", "false"],
                   default=str(default(KafkaSource, "fail_on_data_loss")).lower(),
                   help="stop when records the checkpoint expects are gone (Spark's failOnDataLoss)")


def parser_args(p: argparse.ArgumentParser, templates: str, system_flag: str = "--system") -> None:
    """How records are parsed and templated (``logad ingest``, ``logad run``, where ``--system``
    names the systems to cut and this one is ``--topic-system``)."""
    from logad.parse.formats import FORMATS
    from logad.parse.headers import Parser

    p.add_argument("--format", action="append", default=[], metavar="TOPIC_REGEX=FORMAT",
                   help=f"pin topics to a header format ({', '.join(FORMATS)}); other topics are "
                        "detected (repeatable)")
    p.add_argument(system_flag, dest="topic_system", action="append", default=[], metavar="TOPIC_REGEX=SYSTEM",
                   help="name the system of a topic's lines (events.system: session rules, labels, "
                        "models), e.g. 'logs\\.etl.*=spark-etl' (repeatable; default the detected format)")
    p.add_argument("--host-system", action="append", default=[], metavar="HOST_REGEX=SYSTEM",
                   help="the same by the host that wrote the lines (after --system)")
    p.add_argument("--no-fallback", action="store_true",
                   help="reject lines no format matches instead of keeping them as generic")
    most = default(Parser, "max_line_bytes")
    p.add_argument("--max-line-bytes", type=int, default=most, help=f"longer records are rejected (default {most})")
    p.add_argument("--templates", choices=["drain", "swisslog"], default=templates,
                   help="template parser for events.template_id (a warehouse keeps the one it began with)")


def source_of(a: argparse.Namespace) -> Any:
    """The :class:`logad.config.KafkaSource` of :func:`source_args`."""
    from logad.config import KafkaSource
    from logad.io.kafka import parse_options

    pattern = a.subscribe_pattern or (None if a.subscribe else r"logs\..*")
    return KafkaSource(a.bootstrap, subscribe=a.subscribe, subscribe_pattern=pattern,
                       starting_offsets=a.starting_offsets, max_offsets_per_trigger=a.max_offsets_per_trigger,
                       fail_on_data_loss=a.fail_on_data_loss == "true", client=parse_options(a.kafka_option))


def parser_of(a: argparse.Namespace) -> Any:
    """The :class:`logad.parse.headers.Parser` of :func:`parser_args`."""
    from logad.parse.headers import Parser

    return Parser(formats=pairs(a.format, "--format", "TOPIC_REGEX=FORMAT, e.g. 'logs\\.dn.*=hdfs'"),
                  systems=pairs(a.topic_system, "--system", "TOPIC_REGEX=SYSTEM, e.g. 'logs\\.etl.*=spark-etl'"),
                  host_systems=pairs(a.host_system, "--host-system", "HOST_REGEX=SYSTEM, e.g. 'ml-.*=spark-ml'"),
                  fallback_generic=not a.no_fallback, max_line_bytes=a.max_line_bytes)


def cmd_ingest(a: argparse.Namespace) -> int:
    from logad.config import Warehouse
    from logad.ingest import (
        EVENTS,
        RAW_LOGS,
        REJECTS,
        rejects_version,
        run,
        start_ingest,
    )
    from logad.io.delta import table_summary
    from logad.spark_session import get_spark
    from logad.templates.stream import TEMPLATES

    parser = parser_of(a)
    spark = get_spark("logad-ingest", master=a.master)
    source = source_of(a)
    warehouse = Warehouse(a.warehouse)
    query = start_ingest(spark, source, warehouse, parser=parser, trigger=a.trigger, query_name=a.query_name,
                         template_parser=a.templates)
    since = rejects_version(warehouse)
    ran = run(query, once=a.once)
    for name in (RAW_LOGS, EVENTS, REJECTS, TEMPLATES):
        print(table_summary(warehouse.table(name)))
    return rejects_exit(warehouse, a, ran, since, "ingest")
