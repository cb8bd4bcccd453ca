"""Kafka for logad: Spark's own Kafka source, and the same client settings for the Python clients.

Client settings are given once, with the Java client's names, as Spark's Kafka connector takes
them (``--kafka-option security.protocol=SASL_SSL``, repeatable, or ``spark.logad.kafka.<name>``
in ``spark-defaults.conf``). Spark gets every one of them untouched as ``kafka.<name>``; nothing
in front of the native source checks or refuses a setting. The Python clients (the shipper, the
alerts reader, topic creation: librdkafka through confluent-kafka) get the ones librdkafka knows,
with ``sasl.jaas.config``'s user and password turned into ``sasl.username``/``sasl.password``;
Java-only settings (trust and key stores) are left to Spark, and librdkafka-only ones
(``ssl.ca.location``) to the Python clients.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from logad.config import KafkaSource
from logad.errors import ConfigError, KafkaSourceError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

SPARK_CONF_PREFIX = "spark.logad.kafka."
# Java-client settings librdkafka has no equivalent for (it takes PEM files: ssl.ca.location...).
_JAVA_ONLY = re.compile(r"^(ssl\.(truststore|keystore)\.|ssl\.key\.password$|ssl\.protocol$|"
                        r"ssl\.enabled\.protocols$|sasl\.jaas\.config$|sasl\.login\.|"
                        r"sasl\.client\.callback|ssl\.endpoint\.identification\.algorithm$)")
_LIBRDKAFKA_ONLY = re.compile(r"^ssl\.(ca|certificate|key)\.location$")
_JAAS = re.compile(r'(\w+)\s*=\s*"([^"]*)"')


def parse_options(pairs: list[str] | None) -> dict[str, str]:
    """``["key=value", ...]`` (the CLI's ``--kafka-option``) as a dict, ``kafka.`` prefix dropped.

    Example:
        >>> parse_options(["security.protocol=SASL_SSL", "kafka.sasl.mechanism=SCRAM-SHA-512"])
        {'security.protocol': 'SASL_SSL', 'sasl.mechanism': 'SCRAM-SHA-512'}
    """
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--kafka-option {pair!r}: give KEY=VALUE, e.g. security.protocol=SASL_SSL")
        out[key.removeprefix("kafka.")] = value
    return out


def conf_options(spark: SparkSession) -> dict[str, str]:
    """``spark.logad.kafka.<name>`` settings of the session (``spark-defaults.conf``), as options."""
    conf = spark.sparkContext.getConf().getAll()
    return {k[len(SPARK_CONF_PREFIX):]: v for k, v in conf if k.startswith(SPARK_CONF_PREFIX)}


def librdkafka_conf(bootstrap: str, options: Mapping[str, str], **extra: Any) -> dict[str, Any]:
    """Settings for a confluent-kafka client from the same options Spark gets.

    Example:
        >>> librdkafka_conf("b:9092", {"sasl.jaas.config": 'x required username="u" password="p";'})
        {'bootstrap.servers': 'b:9092', 'sasl.username': 'u', 'sasl.password': 'p'}
    """
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap}
    for key, value in options.items():
        name = key.removeprefix("kafka.")
        if name == "bootstrap.servers":
            continue
        if name == "sasl.jaas.config":
            fields = dict(_JAAS.findall(value))
            if "username" in fields:
                conf["sasl.username"] = fields["username"]
                conf["sasl.password"] = fields.get("password", "")
            continue
        if _JAVA_ONLY.match(name):
            continue
        conf[name] = value
    conf.update(extra)
    return conf


def spark_options(source: KafkaSource, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The Kafka source's options: ``source.to_options()`` plus every client setting as
    ``kafka.<name>``, librdkafka-only keys left out (the Java client would warn about them)."""
    # The Java consumer's default, 1 MB per partition and fetch, makes many small polls of a
    # backlog; 8 MB measured 1.4x faster into Delta (bench/kafka_to_delta.py). A setting wins.
    opts = {"kafka.max.partition.fetch.bytes": str(8 << 20), **source.to_options()}
    for key, value in (extra or {}).items():
        name = key.removeprefix("kafka.")
        if not _LIBRDKAFKA_ONLY.match(name):
            opts[f"kafka.{name}"] = value
    return opts


def check_reachable(bootstrap: str, timeout_s: float = 3.0) -> None:
    """Fail at once, with one line, when no bootstrap server accepts a TCP connection.

    Only the network is checked (no Kafka request, no settings): a query started against a
    broker that is not there would otherwise retry silently for minutes.
    """
    tried = []
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout_s):
                return
        except (OSError, ValueError) as e:
            tried.append(f"{server.strip()} ({e.__class__.__name__})")
    raise KafkaSourceError(f"no Kafka broker answers at {', '.join(tried)}: start one "
                           "(logad broker start) or give the right --bootstrap")


_KAFKA_FAILURES = (
    (re.compile(r"SaslAuthenticationException:?\s*([^\n]*)"),
     "Kafka refused the credentials ({0}): check sasl.jaas.config / --kafka-option"),
    (re.compile(r"(TopicAuthorizationException|GroupAuthorizationException):?\s*([^\n]*)"),
     "Kafka denied access ({0}): grant this user READ/DESCRIBE on the topics (ACLs)"),
    (re.compile(r"(?s)(Partition [^\n]*? gone|Some data may have been lost|[^\n]*were deleted[^\n]*|"
                r"[^\n]*offset was changed from [^\n]*)[^\n]*\n?.*?failOnDataLoss"),
     "Kafka data the checkpoint expects is gone ({0}): the topic was deleted or retention removed "
     "records before they were read. Spark's Kafka source stopped the query, as failOnDataLoss=true "
     "asks; restart with failOnDataLoss=false (KafkaSource.fail_on_data_loss, --fail-on-data-loss "
     "false) to go on from what is there, or with a new checkpoint"),
)


def explain_failure(error: BaseException) -> KafkaSourceError | None:
    """A one-line :class:`KafkaSourceError` for the Kafka source's failures an operator can act
    on (wrong credentials, missing ACLs, data lost under the checkpoint), else None."""
    text = str(error)
    for pattern, message in _KAFKA_FAILURES:
        m = pattern.search(text)
        if m:
            detail = " ".join(m.group(m.lastindex or 0).split())[:200]
            return KafkaSourceError(message.format(detail))
    return None


def read_kafka(spark: SparkSession, source: KafkaSource, stream: bool = True,
               validate: bool = True) -> DataFrame:
    """A (streaming) DataFrame of Kafka records from Spark's Kafka source (``format("kafka")``):
    ``key, value, topic, partition, offset, timestamp, timestampType``.

    ``source.client`` and the session's ``spark.logad.kafka.*`` settings reach the Java client
    as ``kafka.<name>``; ``validate`` first checks that a bootstrap server is reachable.

    Example:
        >>> df = read_kafka(spark, KafkaSource("127.0.0.1:9092", subscribe_pattern=r"logs\\..*"))  # doctest: +SKIP
    """
    if validate:
        check_reachable(source.bootstrap_servers)
    options = {**conf_options(spark), **source.client}
    reader = spark.readStream if stream else spark.read
    return reader.format("kafka").options(**spark_options(source, options)).load()
