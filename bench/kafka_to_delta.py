"""Records/s from the broker into a Delta table through logad's I/O, beside the ceiling.

The ceiling is a plain confluent-kafka consumer reading the same records in one process, in the
same run, against the same Apache Kafka broker. The native path is Spark's Kafka source ->
the records as they are -> delta-spark's streaming sink (what logad runs). The embedded path (a Python Kafka source, delta-rs commits) ran beside it
until it was removed; those figures are in docs/native-stack.md.

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

from _common import free_port, raw_consume, run_query_once


def produce(bootstrap: str, topic: str, n: int, partitions: int) -> None:
    from confluent_kafka import Producer

    from logad.demo import SAMPLES, samples_dir
    from logad.io.broker import create_topics
    from logad.produce import producer_conf, read_lines, send

    create_topics(bootstrap, {topic: partitions})
    lines = list(read_lines(samples_dir() / SAMPLES["hdfs"][0]))
    producer = Producer(producer_conf(bootstrap))
    for i, line in enumerate(itertools.islice(itertools.cycle(lines), n)):
        send(producer, topic, line, partition=i % partitions)
    assert producer.flush(120) == 0


def start_kafka_to_delta(spark, source, warehouse, trigger):  # type: ignore[no-untyped-def]
    """The measured path: Kafka records, as the source gives them, appended to one Delta table."""
    from logad.io.delta import write_stream
    from logad.io.kafka import read_kafka

    return write_stream(read_kafka(spark, source), warehouse.table("kafka_records"),
                        warehouse.checkpoint("kafka_records"), query_name="kafka_records",
                        trigger=trigger)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=400_000)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--max-per-trigger", type=int, default=100_000)
    args = ap.parse_args()

    from logad.config import Broker, KafkaSource, Warehouse
    from logad.io import broker
    from logad.io.delta import table_summary

    work = Path(tempfile.mkdtemp(prefix="logad-bench-"))
    cfg = Broker(port=free_port(), state_dir=str(work / "broker"))
    broker.start(cfg)
    try:
        topic = "logs.bench"
        t = time.perf_counter()
        produce(cfg.bootstrap, topic, args.records, args.partitions)
        produce_s = time.perf_counter() - t
        ceiling_s = raw_consume(cfg.bootstrap, {topic: args.partitions}, args.records)

        legs = {}
        for engine in ("native",):
            warehouse = Warehouse(str(work / f"wh-{engine}"))
            source = KafkaSource(cfg.bootstrap, subscribe=topic, starting_offsets="earliest",
                                 max_offsets_per_trigger=args.max_per_trigger)
            legs[engine] = run_query_once("logad-bench", start_kafka_to_delta, source, warehouse)
            if os.environ.get("BENCH_VERBOSE"):
                for p in legs[engine][3]:
                    print(engine, p["batchId"], p["numInputRows"], p["durationMs"], file=sys.stderr)
            rows = table_summary(warehouse.table("kafka_records"))["rows"]
            assert rows == args.records, f"{engine}: table has {rows} rows, produced {args.records}"
    finally:
        broker.stop(cfg)
        shutil.rmtree(work, ignore_errors=True)

    result: dict[str, object] = {
        "bench": "kafka_to_delta", "records": args.records, "partitions": args.partitions,
        "cores": os.cpu_count(), "max_offsets_per_trigger": args.max_per_trigger,
        "produce_rps": round(args.records / produce_s),
        "ceiling_rps": round(args.records / ceiling_s),
    }
    print(f"records                          {args.records:>10,}")
    print(f"produce (idempotent producer)    {result['produce_rps']:>10,} rec/s")
    print(f"ceiling: confluent-kafka consume {result['ceiling_rps']:>10,} rec/s")
    for engine, (secs, in_batches, warm, batches) in legs.items():
        result.update({f"{engine}_rps": round(args.records / secs), f"{engine}_rps_in_batches": in_batches,
                       f"{engine}_warm_rps": warm, f"{engine}_batches": len(batches),
                       f"ratio_{engine}_warm_to_ceiling": round((warm or 0) / result["ceiling_rps"], 3)})
        print(f"{engine:<8} Kafka -> Delta          {result[f'{engine}_rps']:>10,} rec/s  "
              f"({len(batches)} batches, query start included)")
        print(f"  inside micro-batches           {in_batches or 0:>10,} rec/s")
        print(f"  warm batches (first excluded)  {warm or 0:>10,} rec/s  "
              f"({result[f'ratio_{engine}_warm_to_ceiling']:.2f}x ceiling)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
