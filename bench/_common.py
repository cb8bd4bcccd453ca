"""Helpers shared by the benchmarks: a private broker, the raw consume ceiling, repo paths."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raw_consume(bootstrap: str, topics: dict[str, int], n: int) -> float:
    """Seconds for one confluent-kafka consumer to read n records of ``{topic: partitions}``."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False,
                  "enable.partition.eof": False})
    c.assign([TopicPartition(t, p, 0) for t, parts in topics.items() for p in range(parts)])
    got, start = 0, time.perf_counter()
    while got < n:
        for m in c.consume(10_000, 1.0):
            if m.error() is None:
                got += 1
    elapsed = time.perf_counter() - start
    c.close()
    return elapsed


def batch_rates(query) -> tuple[float | None, float | None, list]:  # type: ignore[no-untyped-def]
    """Rows/s inside the query's micro-batches, and the same without the first (cold) batch."""
    batches = [p for p in query.recentProgress if p["numInputRows"] > 0]

    def rate(ps: list) -> float | None:
        secs = sum(p["durationMs"].get("triggerExecution", 0) for p in ps) / 1000
        return round(sum(p["numInputRows"] for p in ps) / secs) if secs else None

    return rate(batches), rate(batches[1:]), batches


def run_query_once(app: str, start, source, warehouse):  # type: ignore[no-untyped-def]
    """Start a logad streaming query on a local[2] session, run it until caught up.

    Returns (seconds including query start, rows/s in batches, rows/s in warm batches, batches).
    """
    from logad.ingest import run
    from logad.spark_session import get_spark

    spark = get_spark(app, master="local[2]")
    spark.sparkContext.setLogLevel("ERROR")
    started = time.perf_counter()
    query = start(spark, source, warehouse, trigger="0 seconds")
    run(query, once=True)
    return (time.perf_counter() - started, *batch_rates(query))
