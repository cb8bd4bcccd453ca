"""Ingest: Kafka records to the ``raw_logs``, ``events`` and ``rejects`` Delta tables, exactly once.

One streaming query reads the host topics, parses every record once
(:func:`logad.parse.headers.parse_records`) and writes three tables from the same micro-batch:
``raw_logs`` (every record, decoded), ``events`` (records whose header parsed) and ``rejects``
(the rest, with the reason and the raw bytes). Every record lands in exactly one of ``events``
and ``rejects``. Rows keep their Kafka coordinates (topic, partition, offset), so every later
stage can lead back to the raw line.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from logad.config import KafkaSource, Warehouse
from logad.io.kafka import read_kafka
from logad.parse.headers import Parser

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)

RAW_LOGS, EVENTS, REJECTS = "raw_logs", "events", "rejects"


def raw_logs_from_parsed(parsed: DataFrame) -> DataFrame:
    """``raw_logs`` rows from :func:`parse_records` output (Filebeat events unwrapped)."""
    from pyspark.sql import functions as F

    return parsed.select("topic", "partition", "offset", "kafka_ts",
                         F.col("key").cast("string").alias("key"), "host", "source", "line",
                         F.current_timestamp().alias("ingested_at"))


def start_ingest(spark: SparkSession, source: KafkaSource, warehouse: Warehouse,
                 parser: Parser | None = None, trigger: str = "5 seconds",
                 query_name: str = "ingest") -> StreamingQuery:
    """Start the streaming query Kafka -> ``raw_logs`` + ``events`` + ``rejects``.

    Example:
        >>> q = start_ingest(spark, KafkaSource("kafka1:9092", subscribe_pattern=r"logs\\..*"),
        ...                  Warehouse("/data/logad"))  # doctest: +SKIP
    """
    from logad.io.delta import write_stream_tables
    from logad.parse.headers import events, parse_records, rejects

    outputs = {
        RAW_LOGS: (warehouse.table(RAW_LOGS), raw_logs_from_parsed),
        EVENTS: (warehouse.table(EVENTS), events),
        REJECTS: (warehouse.table(REJECTS), rejects),
    }
    query = write_stream_tables(read_kafka(spark, source), outputs, warehouse.checkpoint(query_name),
                                query_name=query_name, trigger=trigger,
                                prepare=lambda df: parse_records(df, parser))
    log.info("query %s: %s -> %s", query_name, source.subscribe_pattern or source.subscribe,
             ", ".join(uri for uri, _ in outputs.values()))
    return query


def run(query: StreamingQuery, once: bool, timeout_s: int | None = None) -> None:
    """Drive a started query: ``once`` processes what is there now, then stops; otherwise it
    runs until stopped (Ctrl-C stops it between batches) or fails."""
    from logad.errors import explain

    try:
        if once:
            query.processAllAvailable()
            query.stop()
        else:
            query.awaitTermination(timeout_s)
    except KeyboardInterrupt:
        # stop() interrupts a micro-batch in flight; its writes are idempotent and Spark replays
        # it on restart, so nothing is lost or doubled.
        log.info("stopping %s", query.name)
        query.stop()
    except Exception as e:
        clear = explain(e)
        if clear is not None:
            raise clear from None
        raise
    failure = query.exception()
    if failure is not None:
        clear = explain(failure)
        raise clear if clear is not None else RuntimeError(str(failure))
