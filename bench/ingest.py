"""Lines/s end to end: files -> logad ship -> broker -> Spark ingest -> Delta events.

Measured beside the raw confluent-kafka consume rate of the same records in the same run (the
ceiling of the Kafka side), against the same Apache Kafka broker. Real HDFS lines from the
bundled sample, repeated. The embedded path ran beside it until it was removed; those figures are
in docs/native-stack.md.

    .venv/bin/python bench/ingest.py [--lines 400000] [--max-per-trigger 100000]

Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from _common import ROOT, free_port, memory_line, peak_memory, raw_consume, run_query_once


def parse_only(sample: list[bytes], n: int) -> float:
    """Seconds for the header parser alone on ``n`` cached records (warm, best of two): no Kafka,
    no Delta, a no-op sink."""
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from logad.parse.headers import parse_records

    spark = SparkSession.getActiveSession()
    assert spark is not None
    records = (spark.createDataFrame([(b"host0|hdfs.log", sample[i % len(sample)], "logs.host0", 0, i)
                                      for i in range(n)],
                                     "key binary, value binary, topic string, partition int, offset long")
               .withColumn("timestamp", F.current_timestamp()).persist())
    records.count()
    best = float("inf")
    for _ in range(2):
        t = time.perf_counter()
        parse_records(records).write.format("noop").mode("overwrite").save()
        best = min(best, time.perf_counter() - t)
    records.unpersist()
    return best


def main() -> None:
    import logging

    # the query's own per-batch line: rows, prepare, template stage and each table's write time
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("logad.io.delta").setLevel(logging.INFO)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=400_000)
    ap.add_argument("--files", type=int, default=2, help="files (hosts) shipped in parallel topics")
    ap.add_argument("--max-per-trigger", type=int, default=100_000)
    ap.add_argument("--master", default="local[2]", help="the query's master (bench/scaleout.py)")
    args = ap.parse_args()

    from logad.config import Broker, KafkaSource, Warehouse
    from logad.ingest import EVENTS, start_ingest
    from logad.io import broker
    from logad.io.delta import table_summary
    from logad.ship import ShipConfig, Shipper

    sample = gzip.decompress((ROOT / "data/samples/HDFS_first20000.log.gz").read_bytes()).splitlines()
    work = Path(tempfile.mkdtemp(prefix="logad-bench-ingest-"))
    cfg = Broker(port=free_port(), state_dir=str(work / "broker"))
    broker.start(cfg)
    try:
        per_file = args.lines // args.files
        topics = {}
        ship_s = 0.0
        for i in range(args.files):
            path = work / f"host{i}" / "hdfs.log"
            path.parent.mkdir()
            with path.open("wb") as f:
                for n in range(per_file):
                    f.write(sample[n % len(sample)] + b"\n")
            ship = ShipConfig((str(path),), cfg.bootstrap, host=f"host{i}",
                              registry=str(work / f"r{i}.json"), progress_interval_s=3600)
            t = time.perf_counter()
            Shipper(ship).run(once=True)
            ship_s += time.perf_counter() - t
            topics[ship.topic] = 1
        total = per_file * args.files
        ceiling_s = raw_consume(cfg.bootstrap, topics, total)

        legs = {}
        for engine in ("native",):
            warehouse = Warehouse(str(work / f"wh-{engine}"))
            source = KafkaSource(cfg.bootstrap, subscribe_pattern=r"logs\..*",
                                 starting_offsets="earliest", max_offsets_per_trigger=args.max_per_trigger)
            legs[engine] = run_query_once("logad-bench-ingest", start_ingest, source, warehouse, args.master)
            rows = table_summary(warehouse.table(EVENTS))["rows"]
            assert rows == total, f"{engine}: events has {rows} rows, shipped {total}"
        parse_s = parse_only(sample, total)
        memory = peak_memory()  # before the session ends: its processes are read while alive
    finally:
        broker.stop(cfg)
        shutil.rmtree(work, ignore_errors=True)

    result: dict[str, object] = {
        "bench": "ingest", "master": args.master, "lines": total, "files": args.files, "cores": os.cpu_count(),
        "ship_lps": round(total / ship_s), "ceiling_rps": round(total / ceiling_s),
        "parse_only_lps": round(total / parse_s), **memory}
    print(f"lines                            {total:>10,}")
    print(f"logad ship (files -> broker)     {result['ship_lps']:>10,} lines/s")
    print(f"ceiling: confluent-kafka consume {result['ceiling_rps']:>10,} rec/s")
    for engine, (secs, in_batches, warm, batches) in legs.items():
        result.update({f"{engine}_lps": round(total / secs), f"{engine}_lps_in_batches": in_batches,
                       f"{engine}_warm_lps": warm, f"{engine}_batches": len(batches)})
        print(f"{engine:<8} ingest (raw_logs+events+rejects) {result[f'{engine}_lps']:>8,} lines/s "
              f"({len(batches)} batches, query start included)")
        print(f"  inside micro-batches           {in_batches or 0:>10,} lines/s")
        print(f"  warm batches (first excluded)  {warm or 0:>10,} lines/s")
    print(f"header parser alone (no Kafka/Delta){result['parse_only_lps']:>7,} lines/s")
    print(memory_line(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
