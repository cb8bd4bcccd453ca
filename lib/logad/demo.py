"""``make demo``: the pipeline end to end on bundled real logs, on the embedded default.

Today: a fresh local broker, the bundled HDFS, Spark, BGL, Thunderbird and Hadoop samples shipped
from files into one topic per host by ``logad ship``, a Structured Streaming query into the
``raw_logs``, ``events`` and ``rejects`` Delta tables with a template id on every event (and the
``templates`` table), and a check that every line shipped is in ``raw_logs`` exactly once, in
exactly one of ``events`` and ``rejects``, and that no event lacks a template. Later stages
(sessions, training, scoring) join as they land.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from logad.config import Broker, KafkaSource, Warehouse
from logad.errors import LogadError

log = logging.getLogger(__name__)

SAMPLES = {  # host -> bundled file (see data/samples/PROVENANCE.md)
    "hdfs": "HDFS_first20000.log.gz",
    "spark": "Spark_2k.log.gz",
    "bgl": "BGL_2k.log.gz",
    "tbird": "Thunderbird_2k.log.gz",
    "hadoop": "Hadoop_container_1445062781478_0011_01_000001.log.gz",
}


def samples_dir() -> Path:
    """The bundled samples: ``$LOGAD_SAMPLES``, else ``data/samples`` of this checkout."""
    root = os.environ.get("LOGAD_SAMPLES")
    path = Path(root) if root else Path(__file__).resolve().parents[2] / "data" / "samples"
    if not (path / SAMPLES["hdfs"]).exists():
        raise LogadError(f"the bundled samples are not at {path}: run from a logad checkout or "
                         "set LOGAD_SAMPLES to its data/samples folder")
    return path


def run_demo(workdir: str = ".logad/demo", port: int = 19092) -> dict[str, int]:
    """Run the demo in ``workdir`` (wiped first); return rows per table."""
    import gzip

    from pyspark.sql import functions as F

    from logad.ingest import EVENTS, RAW_LOGS, REJECTS, run, start_ingest
    from logad.io import broker
    from logad.io.delta import read_table, table_summary
    from logad.session import engines, get_spark
    from logad.ship import ShipConfig, Shipper
    from logad.templates.stream import TEMPLATES

    started = time.monotonic()
    work = Path(workdir).absolute()
    cfg = Broker(port=port, state_dir=str(work / "broker"))
    broker.stop(cfg)
    shutil.rmtree(work, ignore_errors=True)
    samples = samples_dir()
    log.info("[1/4] starting the local broker on %s", cfg.bootstrap)
    broker.start(cfg)
    try:
        log.info("[2/4] shipping the bundled real logs from files, one topic per host (logs.<host>)")
        shipped: dict[str, int] = {}
        for host, name in SAMPLES.items():
            folder = work / "hosts" / host
            folder.mkdir(parents=True)
            text = gzip.decompress((samples / name).read_bytes())
            # Some LogHub files lack a final newline; a tailer waits for it, so complete the file.
            (folder / name.removesuffix(".gz")).write_bytes(text if text.endswith(b"\n") else text + b"\n")
            ship = ShipConfig((str(folder / "*.log"),), cfg.bootstrap, host=host,
                              registry=str(work / "ship" / f"{host}.json"), progress_interval_s=60)
            shipped[f"logs.{host}"] = Shipper(ship).run(once=True).sent
        log.info("      shipped %s", shipped)
        log.info("[3/4] streaming Kafka -> Delta raw_logs, events (with template ids), rejects, "
                 "templates with Spark (local[2])")
        spark = get_spark("logad-demo", master="local[2]")
        spark.sparkContext.setLogLevel("ERROR")  # the demo narrates; Spark's WARNs are noise here
        warehouse = Warehouse(str(work / "warehouse"))
        source = KafkaSource(cfg.bootstrap, subscribe_pattern=r"logs\..*",
                             starting_offsets="earliest", max_offsets_per_trigger=20_000)
        run(start_ingest(spark, source, warehouse, trigger="1 second"), once=True)
        log.info("[4/4] checking the tables against what was shipped")
        raw = read_table(spark, warehouse.table(RAW_LOGS))
        ev = read_table(spark, warehouse.table(EVENTS))
        rej = read_table(spark, warehouse.table(REJECTS))

        def per_topic(df: Any) -> dict[str, int]:
            return {r["topic"]: r["n"] for r in df.groupBy("topic").agg(F.count("*").alias("n")).collect()}

        raw_n, ev_n, rej_n = per_topic(raw), per_topic(ev), per_topic(rej)
        systems = {r["topic"]: r["s"] for r in ev.groupBy("topic").agg(
            F.concat_ws(",", F.sort_array(F.collect_set("system"))).alias("s")).collect()}
        eng = engines(spark)
        print()
        print(f"engine kafka={eng.kafka} delta={eng.delta}; tables under {warehouse.root}/tables")
        print(f"  {'topic':<12} {'shipped':>8} {'raw_logs':>9} {'events':>8} {'rejects':>8}  systems")
        for topic, n in shipped.items():
            print(f"  {topic:<12} {n:>8} {raw_n.get(topic, 0):>9} {ev_n.get(topic, 0):>8} "
                  f"{rej_n.get(topic, 0):>8}  {systems.get(topic, '')}")
        for name in (RAW_LOGS, EVENTS, REJECTS):
            summary = table_summary(warehouse.table(name))
            print(f"  {name:<9} {summary['rows']:>6} rows, Delta version {summary['version']}")
        ev.where("system = 'spark'").orderBy("offset").select(
            "host", "ts", "level", "component", "content").show(3, truncate=60)
        rej.groupBy("topic", "reason").count().orderBy("topic").show(truncate=False)
        templates = read_table(spark, warehouse.table(TEMPLATES))
        current = templates.where("merged_into IS NULL")
        print(f"  {current.count()} templates in use ({templates.count() - current.count()} generalized "
              "into others); the most frequent:")
        current.orderBy(F.desc("count")).select("template_id", "count", "text").show(8, truncate=70)
        untemplated = ev.where("template_id IS NULL").count()
        print(f"done in {time.monotonic() - started:.0f}s")
        distinct = raw.select("topic", "partition", "offset").distinct().count()
        whole = all(raw_n.get(t) == n == ev_n.get(t, 0) + rej_n.get(t, 0) for t, n in shipped.items())
        if untemplated:
            raise LogadError(f"{untemplated} events have no template id")
        if not whole or distinct != sum(shipped.values()):
            raise LogadError(f"tables do not hold every shipped line exactly once: shipped "
                             f"{shipped}, raw_logs {raw_n}, events {ev_n}, rejects {rej_n}")
        return {RAW_LOGS: sum(raw_n.values()), EVENTS: sum(ev_n.values()), REJECTS: sum(rej_n.values())}
    finally:
        broker.stop(cfg)
