"""Produce the lines of log files into a Kafka topic (a simple loader for demos and benchmarks).

One record per line, keyed by the file's name so a file's lines stay in order in one partition.
The producer is idempotent (no duplicates from its own retries). The full shipper with tailing,
rotation and a resume registry is ``logad ship``.
"""

from __future__ import annotations

import gzip
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from logad.errors import LogadError
from logad.io.broker import create_topics

log = logging.getLogger(__name__)


def read_lines(path: str | Path) -> Iterator[bytes]:
    """The lines of a plain or gzip file, without their line ends (CRLF too)."""
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rb") as f:
        for line in f:
            yield line.rstrip(b"\r\n")


def producer_conf(bootstrap: str, client: dict[str, str] | None = None) -> dict[str, object]:
    """Idempotent, batched producer settings, with the client settings (security...) of
    ``client`` (Java names, see :func:`logad.io.kafka.librdkafka_conf`)."""
    from logad.io.kafka import librdkafka_conf

    return librdkafka_conf(bootstrap, client or {}, **{
        "enable.idempotence": True, "acks": "all", "linger.ms": 20, "batch.num.messages": 10_000,
        "compression.type": "lz4"})


def send(producer: Any, topic: str, value: bytes, **kw: Any) -> None:
    """``producer.produce``, waiting for deliveries to drain while the local queue is full."""
    while True:
        try:
            producer.produce(topic, value=value, **kw)
            return
        except BufferError:
            producer.poll(0.1)


def deliver(producer: Any, topic: str, records: Sequence[tuple[bytes, bytes]], what: str = "alerts",
            timeout_s: float = 30.0) -> None:
    """Send ``(key, value)`` records and wait until Kafka has them all; a clear error naming what
    was not delivered otherwise (a stream stage raises it so its batch is retried on restart)."""
    failed: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    for key, value in records:
        send(producer, topic, value, key=key, on_delivery=delivered)
    left = producer.flush(timeout_s)
    if left or failed:
        raise LogadError(f"{left or len(failed)} {what} not delivered to {topic} ({failed[:3]}); the batch is "
                         "retried on restart")


def produce_files(bootstrap: str, topic: str, files: Sequence[str | Path], partitions: int = 1,
                  limit: int | None = None, client: dict[str, str] | None = None) -> int:
    """Produce every line of ``files`` to ``topic`` (created with ``partitions`` if absent).

    Returns the number of lines produced and acknowledged.

    Example:
        >>> produce_files("127.0.0.1:9092", "logs.hdfs", ["HDFS.log.gz"])  # doctest: +SKIP
        20000
    """
    from confluent_kafka import Producer

    create_topics(bootstrap, {topic: partitions}, client=client)
    producer = Producer(producer_conf(bootstrap, client))
    failures: list[str] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    sent, started, last_report = 0, time.monotonic(), time.monotonic()
    for path in files:
        key = Path(path).name.encode()
        for line in read_lines(path):
            send(producer, topic, line, key=key, on_delivery=on_delivery)
            sent += 1
            if limit is not None and sent >= limit:
                break
            if sent % 10_000 == 0:
                producer.poll(0)
                if time.monotonic() - last_report > 5:
                    last_report = time.monotonic()
                    log.info("%s: %d lines (%.0f lines/s)", topic, sent,
                             sent / (last_report - started))
    remaining = producer.flush(60)
    if remaining or failures:
        raise LogadError(f"{remaining} of {sent} lines to {topic} not delivered: "
                         f"{failures[:3] or 'flush timed out'}; is the broker at {bootstrap} up?")
    return sent
