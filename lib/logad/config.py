"""Typed configuration: one dataclass per concern, each checking itself.

What lives here is what a logad job needs to know (where the broker is, which topics, where the
tables go). Spark tuning does not: it belongs in ``conf/spark-defaults.conf`` so it can be changed at
submit time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from logad.errors import ConfigError

ENGINES = ("auto", "native", "embedded")


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


@dataclass(frozen=True)
class KafkaSource:
    """Where to read Kafka records from; the options of Spark's own Kafka source.

    Exactly one of ``subscribe`` (topic names), ``subscribe_pattern`` (a regex) or ``assign``
    (a JSON ``{"topic": [0, 1]}``) must be set.

    Example:
        >>> KafkaSource("127.0.0.1:9092", subscribe_pattern=r"logs\\..*").to_options()["subscribePattern"]
        'logs\\\\..*'
    """

    bootstrap_servers: str
    subscribe: str | None = None
    subscribe_pattern: str | None = None
    assign: str | None = None
    starting_offsets: str = "earliest"
    max_offsets_per_trigger: int | None = None
    fail_on_data_loss: bool = True
    poll_timeout_ms: int = 120_000
    client: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require(bool(self.bootstrap_servers and self.bootstrap_servers.strip()),
                 "KafkaSource.bootstrap_servers is empty: give host:port[,host:port]")
        chosen = [n for n, v in (("subscribe", self.subscribe),
                                 ("subscribe_pattern", self.subscribe_pattern),
                                 ("assign", self.assign)) if v]
        _require(len(chosen) == 1, "KafkaSource needs exactly one of subscribe, subscribe_pattern, "
                 f"assign; got {chosen or 'none'}")
        _require(self.max_offsets_per_trigger is None or self.max_offsets_per_trigger > 0,
                 f"KafkaSource.max_offsets_per_trigger must be > 0, got {self.max_offsets_per_trigger}")

    def to_options(self) -> dict[str, str]:
        """The option map understood by both Spark's Kafka source and logad's embedded one."""
        opts = {"kafka.bootstrap.servers": self.bootstrap_servers,
                "startingOffsets": self.starting_offsets,
                "failOnDataLoss": str(self.fail_on_data_loss).lower(),
                "kafkaConsumer.pollTimeoutMs": str(self.poll_timeout_ms)}
        if self.subscribe:
            opts["subscribe"] = self.subscribe
        if self.subscribe_pattern:
            opts["subscribePattern"] = self.subscribe_pattern
        if self.assign:
            opts["assign"] = self.assign
        if self.max_offsets_per_trigger:
            opts["maxOffsetsPerTrigger"] = str(self.max_offsets_per_trigger)
        opts.update({f"kafka.{k}": v for k, v in self.client.items()})
        return opts


@dataclass(frozen=True)
class Warehouse:
    """Where the Delta tables and the streaming checkpoints live (one folder each)."""

    root: str

    def __post_init__(self) -> None:
        _require(bool(self.root), "Warehouse.root is empty: give a folder or a URI (s3://, hdfs://)")

    def table(self, name: str) -> str:
        """The location of table ``name``."""
        return _join(self.root, "tables", name)

    def checkpoint(self, query: str) -> str:
        """The checkpoint location of streaming query ``query``."""
        return _join(self.root, "checkpoints", query)


def _join(root: str, *parts: str) -> str:
    if "://" in root:
        return "/".join([root.rstrip("/"), *parts])
    return str(Path(root).absolute().joinpath(*parts))


@dataclass(frozen=True)
class Broker:
    """The local Kafka-protocol broker (tansu) used by the demo and the tests."""

    host: str = "127.0.0.1"
    port: int = 9092
    state_dir: str = ".logad/broker"
    storage: str = "memory://tansu/"
    s3_endpoint: str | None = None

    def __post_init__(self) -> None:
        _require(self.host in ("127.0.0.1", "localhost", "::1"),
                 f"Broker.host={self.host!r}: the local broker only listens on loopback")
        _require(0 < self.port < 65536, f"Broker.port={self.port} is not a TCP port")
        _require(self.storage.startswith(("memory://", "s3://")),
                 f"Broker.storage={self.storage!r}: use memory://tansu/ or s3://bucket/")
        _require(self.s3_endpoint is None or self.storage.startswith("s3://"),
                 "Broker.s3_endpoint is set but Broker.storage is not s3://")

    @property
    def bootstrap(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"{self.host}:{self.port}"

    @property
    def state_path(self) -> Path:
        """The folder holding the pid file and the broker log."""
        return Path(os.path.expanduser(self.state_dir)).absolute()
