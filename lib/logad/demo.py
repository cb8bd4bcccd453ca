"""``make demo``: the pipeline end to end on bundled real logs, on the embedded default.

Today: a fresh local broker, the bundled HDFS, Spark and BGL samples produced into one topic per
source, a Structured Streaming query into the ``raw_logs`` Delta table, and a check that every
line produced is in the table exactly once. Later stages (templates, sessions, training, scoring)
join as they land.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from logad.config import Broker, KafkaSource, Warehouse
from logad.errors import LogadError

log = logging.getLogger(__name__)

SAMPLES = {  # topic -> bundled file (see data/samples/PROVENANCE.md)
    "logs.hdfs": "HDFS_first20000.log.gz",
    "logs.spark": "Spark_2k.log.gz",
    "logs.bgl": "BGL_2k.log.gz",
}


def samples_dir() -> Path:
    """The bundled samples: ``$LOGAD_SAMPLES``, else ``data/samples`` of this checkout."""
    root = os.environ.get("LOGAD_SAMPLES")
    path = Path(root) if root else Path(__file__).resolve().parents[2] / "data" / "samples"
    if not (path / SAMPLES["logs.hdfs"]).exists():
        raise LogadError(f"the bundled samples are not at {path}: run from a logad checkout or "
                         "set LOGAD_SAMPLES to its data/samples folder")
    return path


def run_demo(workdir: str = ".logad/demo", port: int = 19092) -> dict[str, int]:
    """Run the demo in ``workdir`` (wiped first); return rows per topic in ``raw_logs``."""
    from pyspark.sql import functions as F

    from logad.ingest import RAW_LOGS, run, start_raw_ingest
    from logad.io import broker
    from logad.io.delta import read_table, table_summary
    from logad.produce import produce_files
    from logad.session import engines, get_spark

    started = time.monotonic()
    work = Path(workdir).absolute()
    cfg = Broker(port=port, state_dir=str(work / "broker"))
    broker.stop(cfg)
    shutil.rmtree(work, ignore_errors=True)
    samples = samples_dir()
    log.info("[1/4] starting the local broker on %s", cfg.bootstrap)
    broker.start(cfg)
    try:
        log.info("[2/4] producing the bundled real logs (%s), one topic per source",
                 ", ".join(SAMPLES.values()))
        produced = {t: produce_files(cfg.bootstrap, t, [samples / f]) for t, f in SAMPLES.items()}
        log.info("      produced %s", produced)
        log.info("[3/4] streaming Kafka -> Delta raw_logs with Spark (local[2])")
        spark = get_spark("logad-demo", master="local[2]")
        spark.sparkContext.setLogLevel("ERROR")  # the demo narrates; Spark's WARNs are noise here
        warehouse = Warehouse(str(work / "warehouse"))
        source = KafkaSource(cfg.bootstrap, subscribe_pattern=r"logs\..*",
                             starting_offsets="earliest", max_offsets_per_trigger=10_000)
        query = start_raw_ingest(spark, source, warehouse, trigger="1 second")
        run(query, once=True)
        log.info("[4/4] checking the table against what was produced")
        table = warehouse.table(RAW_LOGS)
        raw = read_table(spark, table)
        landed = {r["topic"]: r["n"] for r in raw.groupBy("topic").agg(F.count("*").alias("n")).collect()}
        distinct = raw.select("topic", "partition", "offset").distinct().count()
        summary = table_summary(table)
        eng = engines(spark)
        print()
        print(f"raw_logs: {summary['rows']} rows, Delta version {summary['version']}, "
              f"{summary['files']} files, engine kafka={eng.kafka} delta={eng.delta}")
        print(f"  table:  {table}")
        for topic, n in produced.items():
            print(f"  {topic:<11} produced {n:>6}  in table {landed.get(topic, 0):>6}")
        raw.orderBy("topic", "offset").select("topic", "offset", "line").show(3, truncate=100)
        print(f"done in {time.monotonic() - started:.0f}s")
        if landed != produced or distinct != sum(produced.values()):
            raise LogadError(f"raw_logs does not hold every produced line exactly once: "
                             f"produced {produced}, landed {landed}, distinct {distinct}")
        return landed
    finally:
        broker.stop(cfg)
