"""Reading Kafka into Spark, native or embedded, one function.

``read_kafka`` returns the same columns either way (``key, value, topic, partition, offset,
timestamp, timestampType``). Before Spark sees the options they are checked on the driver, so an
unreachable broker, a missing topic or bad offsets fail at once with one clear error instead of a
Py4J stack from inside a running query.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from logad.config import KafkaSource
from logad.io.kafka_client import Probe, SourceOptions
from logad.session import engines

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


def check(source: KafkaSource) -> int:
    """Check the options against the broker; return how many partitions match now."""
    options = SourceOptions.parse(source.to_options())
    probe = Probe(options)
    try:
        parts = probe.partitions()
        if options.starting not in ("earliest", "latest"):
            from logad.io.kafka_source import _resolve

            _resolve(options.starting, parts, probe, "startingOffsets")
    finally:
        probe.close()
    if not parts:
        log.warning("no topic on %s matches %s yet; the query waits for one",
                    source.bootstrap_servers, source.subscribe_pattern or source.subscribe)
    return len(parts)


def read_kafka(spark: SparkSession, source: KafkaSource, stream: bool = True,
               validate: bool = True) -> DataFrame:
    """A (streaming) DataFrame of Kafka records, from the session's Kafka engine.

    Example:
        >>> df = read_kafka(spark, KafkaSource("127.0.0.1:9092", subscribe_pattern=r"logs\\..*"))  # doctest: +SKIP
    """
    if validate:
        check(source)
    if engines(spark).kafka == "native":
        fmt = "kafka"
    else:
        from logad.io.kafka_source import KafkaDataSource

        spark.dataSource.register(KafkaDataSource)
        fmt = KafkaDataSource.name()
    reader = spark.readStream if stream else spark.read
    return reader.format(fmt).options(**source.to_options()).load()
