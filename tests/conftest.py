"""Shared fixtures: one real local broker and one local SparkSession per test run."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")  # pyspark.pandas (assertDataFrameEqual) asks


SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real Apache Kafka broker (one KRaft node) on 127.0.0.1, stopped after the run."""
    from logad.config import Broker
    from logad.io import broker as broker_io

    cfg = Broker(port=free_port(), state_dir=str(tmp_path_factory.mktemp("broker")))
    broker_io.start(cfg)
    yield cfg
    broker_io.stop(cfg)


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    from logad.session import get_spark

    session = get_spark("logad-tests", master="local[2]",
                        conf={"spark.sql.shuffle.partitions": "2"})
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def new_topic(prefix: str = "t") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


def produce(bootstrap: str, topic: str, records: Sequence[tuple[int, bytes]],
            partitions: int = 1) -> None:
    """Produce ``(partition, value)`` records (key = value) and wait for every ack."""
    from confluent_kafka import Producer

    from logad.io.broker import create_topics
    from logad.produce import send

    create_topics(bootstrap, {topic: partitions})
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                         "linger.ms": 5})
    for part, value in records:
        send(producer, topic, value, key=value, partition=part)
    assert producer.flush(30) == 0
