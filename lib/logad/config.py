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

SECURITY = ("plaintext", "sasl", "sasl_ssl")


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
        """Spark's Kafka source options, without the client settings (see
        :func:`logad.io.kafka.spark_options`, which adds ``client`` as ``kafka.<name>``)."""
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
        """The checkpoint location of streaming query ``query`` (with the filesystem's authority
        filled in, ``hdfs:///x`` -> ``hdfs://nn:8020/x``: Spark's checkpoint manager needs one)."""
        location = _join(self.root, "checkpoints", query)
        if "://" in location and not location.startswith("file:"):
            from logad.io import fs

            return fs.qualified(location)
        return location

    def models(self, explicit: str | None = None) -> str:
        """The model registry (:mod:`logad.models.registry`): ``explicit``, else ``<root>/models``."""
        return explicit or _join(self.root, "models")


def _join(root: str, *parts: str) -> str:
    if "://" in root:
        return "/".join([root.rstrip("/"), *parts])
    return str(Path(root).absolute().joinpath(*parts))


@dataclass(frozen=True)
class Broker:
    """The local Apache Kafka cluster (:mod:`logad.io.broker`) for the demo, the tests, a laptop.

    ``nodes`` 1 or 3 (3: replication factor 3, ``min.insync.replicas=2``); ``security``
    ``plaintext``, ``sasl`` (SCRAM-SHA-512) or ``sasl_ssl``, with ``users`` as
    ``(name, password)`` pairs; ``heap`` per node JVM.
    """

    host: str = "127.0.0.1"
    port: int = 9092
    nodes: int = 1
    state_dir: str = ".logad/broker"
    security: str = "plaintext"
    users: tuple[tuple[str, str], ...] = ()
    heap: str = "512m"
    tls_password: str = "logad-local"
    max_message_bytes: int = 1_100_000

    def __post_init__(self) -> None:
        _require(self.host in ("127.0.0.1", "localhost", "::1"),
                 f"Broker.host={self.host!r}: the local broker only listens on loopback")
        _require(self.nodes in (1, 3), f"Broker.nodes={self.nodes}: use 1 or 3")
        _require(0 < self.port and self.port + 3 * self.nodes < 65536,
                 f"Broker.port={self.port} leaves no room for {self.nodes} node(s)' ports")
        _require(self.security in SECURITY,
                 f"Broker.security={self.security!r}: use one of {', '.join(SECURITY)}")
        _require(self.security == "plaintext" or bool(self.users),
                 f"Broker.security={self.security!r} needs at least one user (--user NAME:PASSWORD)")
        for name, password in self.users:
            _require(bool(name) and bool(password) and not set(name + password) & set(",=[]"),
                     f"Broker.users: {name!r} needs a name and a password without , = [ ]")

    @property
    def bootstrap(self) -> str:
        """``host:port[,host:port]`` of every node, for Kafka clients."""
        return ",".join(f"{self.host}:{self.port + i}" for i in range(self.nodes))

    @property
    def state_path(self) -> Path:
        """The folder holding each node's log, data, pid and settings."""
        return Path(os.path.expanduser(self.state_dir)).absolute()
