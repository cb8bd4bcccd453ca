"""Records/s from the broker into a Delta table through the embedded path, beside the ceiling.

The ceiling is a plain confluent-kafka consumer reading the same records in one process, in the
same run, against the same broker. The embedded path is the real ingest query: logad's Kafka
source -> raw_logs rows -> executors write Parquet -> delta-rs commit per micro-batch.

    .venv/bin/python bench/kafka_to_delta.py [--records 400000] [--max-per-trigger 100000]

Prints a table and one JSON line. Uses the bundled HDFS sample (real lines), repeated.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def produce(bootstrap: str, topic: str, n: int, partitions: int) -> None:
    from confluent_kafka import Producer

    from logad.demo import SAMPLES, samples_dir
    from logad.io.broker import create_topics
    from logad.produce import producer_conf, read_lines

    create_topics(bootstrap, {topic: partitions})
    lines = list(read_lines(samples_dir() / SAMPLES["hdfs"]))
    producer = Producer(producer_conf(bootstrap))
    for i, line in enumerate(itertools.islice(itertools.cycle(lines), n)):
        while True:
            try:
                producer.produce(topic, value=line, partition=i % partitions)
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(120) == 0


def raw_consume(bootstrap: str, topic: str, partitions: int, n: int) -> float:
    """Seconds for one confluent-kafka consumer to read all n records (the ceiling)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False,
                  "enable.partition.eof": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got, start = 0, time.perf_counter()
    while got < n:
        for m in c.consume(10_000, 1.0):
            if m.error() is None:
                got += 1
    elapsed = time.perf_counter() - start
    c.close()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=400_000)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--max-per-trigger", type=int, default=100_000)
    args = ap.parse_args()

    from logad.config import Broker, KafkaSource, Warehouse
    from logad.ingest import run, start_raw_ingest
    from logad.io import broker
    from logad.io.delta import table_summary
    from logad.session import get_spark

    work = Path(tempfile.mkdtemp(prefix="logad-bench-"))
    cfg = Broker(port=free_port(), state_dir=str(work / "broker"))
    broker.start(cfg)
    try:
        topic = "logs.bench"
        t = time.perf_counter()
        produce(cfg.bootstrap, topic, args.records, args.partitions)
        produce_s = time.perf_counter() - t
        ceiling_s = raw_consume(cfg.bootstrap, topic, args.partitions, args.records)

        spark = get_spark("logad-bench", master="local[2]")
        spark.sparkContext.setLogLevel("ERROR")
        warehouse = Warehouse(str(work / "wh"))
        source = KafkaSource(cfg.bootstrap, subscribe=topic, starting_offsets="earliest",
                             max_offsets_per_trigger=args.max_per_trigger)
        t = time.perf_counter()
        query = start_raw_ingest(spark, source, warehouse, trigger="0 seconds")
        run(query, once=True)
        embedded_s = time.perf_counter() - t
        batches = [p for p in query.recentProgress if p["numInputRows"] > 0]
        if os.environ.get("BENCH_VERBOSE"):
            for p in batches:
                print(p["batchId"], p["numInputRows"], p["durationMs"], file=sys.stderr)
        busy_s = sum(p["durationMs"].get("triggerExecution", 0) for p in batches) / 1000
        warm = batches[1:]  # the first batch pays for Python worker start-up and JIT warm-up
        warm_s = sum(p["durationMs"].get("triggerExecution", 0) for p in warm) / 1000
        warm_rows = sum(p["numInputRows"] for p in warm)
        rows = table_summary(warehouse.table("raw_logs"))["rows"]
        assert rows == args.records, f"table has {rows} rows, produced {args.records}"
    finally:
        broker.stop(cfg)
        shutil.rmtree(work, ignore_errors=True)

    result = {
        "bench": "kafka_to_delta", "records": args.records, "partitions": args.partitions,
        "cores": os.cpu_count(), "max_offsets_per_trigger": args.max_per_trigger,
        "produce_rps": round(args.records / produce_s),
        "ceiling_confluent_kafka_rps": round(args.records / ceiling_s),
        "embedded_rps": round(args.records / embedded_s),
        "embedded_rps_in_batches": round(args.records / busy_s) if busy_s else None,
        "embedded_rps_warm_batches": round(warm_rows / warm_s) if warm_s else None,
        "batches": len(batches),
        "ratio_embedded_to_ceiling": round(ceiling_s / embedded_s, 3),
    }
    print(f"records                          {args.records:>10,}")
    print(f"produce (idempotent producer)    {result['produce_rps']:>10,} rec/s")
    print(f"ceiling: confluent-kafka consume {result['ceiling_confluent_kafka_rps']:>10,} rec/s")
    print(f"embedded Kafka -> Delta          {result['embedded_rps']:>10,} rec/s  "
          f"({result['ratio_embedded_to_ceiling']:.2f}x ceiling, {len(batches)} batches, "
          "query start included)")
    print(f"  inside micro-batches           {result['embedded_rps_in_batches'] or 0:>10,} rec/s")
    print(f"  warm batches (first excluded)  {result['embedded_rps_warm_batches'] or 0:>10,} rec/s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
