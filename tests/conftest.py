"""Shared fixtures: one real local broker and one local SparkSession per test run."""

from __future__ import annotations

import csv
import functools
import gzip
import io
import json
import os
import socket
import uuid
from collections import defaultdict
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
    from logad.spark_session import get_spark

    session = get_spark("logad-tests", master="local[2]",
                        conf={"spark.sql.shuffle.partitions": "2"})
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def excerpt() -> dict[str, list[tuple[str, str]]]:
    text = gzip.decompress((SAMPLES / "loghub2k_templates_excerpt.csv.gz").read_bytes()).decode()
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for row in csv.DictReader(io.StringIO(text)):
        out[row["system"]].append((row["content"], row["template"]))
    return out


def events_of(spark, lines: list[str], host: str, source: str, topic: str = "logs.x"):
    """``events`` rows for ``lines`` as one host's file: Kafka-like records through parse_records."""
    from pyspark.sql import functions as F

    from logad.parse.headers import events, parse_records

    rows = [(topic, 0, i, f"{host}|{source}".encode(), line.encode()) for i, line in enumerate(lines)]
    records = (spark.createDataFrame(rows, "topic string, partition int, offset long, key binary, value binary")
               .withColumn("timestamp", F.timestamp_seconds(F.lit(1_700_000_000))))
    parsed = parse_records(records).persist()
    return events(parsed).withColumn("template_id", F.substring(F.sha2("content", 256), 1, 8))


def toy(n: int, seed: int = 0) -> list:  # type: ignore[type-arg]
    """Toy examples: label 1 iff template 7 appears in the sequence."""
    import torch

    from logad.models.fit import Example

    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        seq = torch.randint(2, 7, (int(torch.randint(3, 15, (1,), generator=g)),), generator=g).tolist()
        y = i % 2
        if y:
            seq[int(torch.randint(0, len(seq), (1,), generator=g))] = 7
        out.append(Example(seq, y))
    return out


SMALL = dict(vocab_size=8, embed_dim=8, hidden=16, fc=16, dropout=0.0, freeze_embeddings=False)


def cron_line() -> str:
    """The README's crontab line (the one that starts with five schedule fields): checked by
    tests/unit/test_deploy.py, run on YARN by tests/e2e/test_yarn.py."""
    import re

    readme = Path(__file__).resolve().parents[1] / "README.md"
    lines = [ln for ln in readme.read_text().splitlines()
             if re.match(r"^[\d*/,-]+ [\d*/,-]+ [\d*/,-]+ [\d*/,-]+ [\d*/,-]+\s+\S", ln)]
    assert len(lines) == 1, lines
    return lines[0]


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


def consume_all(bootstrap: str, topic: str) -> list[dict]:
    """Every JSON record of partition 0 of ``topic`` (the alerts), read until three polls in a row
    bring nothing."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "t", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    out, idle = [], 0
    while idle < 3:
        msgs = c.consume(1000, 1.0)
        idle = 0 if msgs else idle + 1
        out += [json.loads(m.value()) for m in msgs if m.error() is None]
    c.close()
    return out


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the tiers honest: tests/unit needs neither Spark nor the broker, tests/spark no broker."""
    forbidden = {"unit": {"spark", "broker"}, "spark": {"broker"}}
    for item in items:
        tier = Path(str(item.fspath)).parent.name
        wrong = forbidden.get(tier, set()) & set(getattr(item, "fixturenames", ()))
        if wrong:
            raise pytest.UsageError(f"{item.nodeid} is in tests/{tier} but uses {sorted(wrong)}: move it "
                                    "to the tier that provides it (tests/spark, tests/e2e)")


@functools.cache
def mask_corpus() -> list[str]:
    """Masking's test corpus: LogHub 2k's contents (16 systems, original and corrected ground truth), and every bundled
    sample's raw lines and their contents as the ingest parser cuts them."""
    from logad.parse.formats import content_of

    records = set(gzip.decompress((SAMPLES / "loghub2k_contents.bin.gz").read_bytes()).decode().split("\0"))
    formats = {"HDFS": "hdfs", "Spark": "spark", "BGL": "bgl", "Thunderbird": "thunderbird",
               "Hadoop": "hadoop", "Zookeeper": "zookeeper"}
    for path in SAMPLES.rglob("*.log.gz"):
        for line in gzip.decompress(path.read_bytes()).decode(errors="replace").splitlines():
            records.add(line)
            fmt = next((f for prefix, f in formats.items() if path.name.startswith(prefix)), None)
            content = content_of(fmt, line) if fmt else None
            if content is not None:
                records.add(content)
    return sorted(records)
