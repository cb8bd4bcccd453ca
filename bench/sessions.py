"""Sessions speed: the streaming stateful operator and the batch sessionizer, events/s.

Events: the bundled HDFS sample (20,000 lines, parsed by the real header parser), repeated to
--events with each copy's block ids renamed and its times shifted by 4 hours, so every copy is
new blocks later in event time. Written to an ``events`` table in --chunks appends.

- ceiling: the pure-Python :class:`Sessionizer` folding all events in one process (no Spark).
- batch: :func:`sessionize` over the table snapshot (``applyInPandas`` per block), Spark
  ``local[2]``, written to the ``noop`` sink.
- stream: :func:`start_sessions` kept running while the chunks are appended, one micro-batch per
  chunk (``applyInPandasWithState``, state in the checkpoint, sessions + rejects committed);
  events/s from the query's own progress, the first (cold) batch left out.

    .venv/bin/python bench/sessions.py [--events 200000] [--chunks 5]

Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from _common import ROOT, memory_line, peak_memory


def build_events(spark, reps: int):  # type: ignore[no-untyped-def]
    import gzip

    from pyspark.sql import functions as F

    from logad.parse.headers import events, parse_records

    lines = gzip.decompress((ROOT / "data/samples/HDFS_first20000.log.gz").read_bytes()).decode().splitlines()
    rows = [("logs.dn1", 0, i, b"dn1|hdfs.log", ln.encode()) for i, ln in enumerate(lines)]
    records = (spark.createDataFrame(rows, "topic string, partition int, offset long, key binary, value binary")
               .withColumn("timestamp", F.current_timestamp()))
    base = events(parse_records(records).persist()).withColumn("template_id", F.substring(F.sha2("content", 256), 1, 16))
    rep = spark.range(reps).withColumnRenamed("id", "rep")
    return (base.crossJoin(rep)
            .withColumn("ts", F.col("ts") + F.make_dt_interval(hours=F.col("rep") * 4))
            .withColumn("content", F.regexp_replace("content", F.lit(r"(blk_-?\d+)"),
                                                    F.concat(F.lit("$1"), F.col("rep").cast("string"))))
            .withColumn("offset", F.col("rep") * len(lines) + F.col("offset"))
            .drop("rep"), len(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=200_000, help="about this many HDFS events")
    ap.add_argument("--chunks", type=int, default=5, help="appends = stream micro-batches")
    a = ap.parse_args()

    from pyspark.sql import functions as F

    from logad.config import Warehouse
    from logad.io.delta import append_table, read_table
    from logad.sessions.rules import rules_for
    from logad.sessions.spark import _events, session_events, sessionize, start_sessions
    from logad.sessions.split import Sessionizer
    from logad.spark_session import get_spark

    spark = get_spark("bench-sessions", master="local[2]")
    spark.sparkContext.setLogLevel("ERROR")
    rules = [rules_for("hdfs", idle_s=600, watermark="1 minute")]
    reps = max(1, round(a.events / 20_000))
    events, per_rep = build_events(spark, reps)
    events = events.persist()
    n = events.count()
    wh = Warehouse(tempfile.mkdtemp(prefix="logad-bench-sessions-"))
    uri = wh.table("events")
    per_chunk = -(-reps // a.chunks)
    copy = F.floor(F.col("offset") / per_rep)

    def chunk(c: int):  # type: ignore[no-untyped-def]
        return events.where((copy >= c * per_chunk) & (copy < (c + 1) * per_chunk))

    for c in range(a.chunks):
        append_table(chunk(c), uri)

    # ceiling: the state machine alone, one process
    pdf = session_events(read_table(spark, uri), rules).toPandas()
    keyed = {k: evs for k, (evs, _) in _events(pdf).items()}
    n_keyed = len(pdf)
    t = time.perf_counter()
    for key, evs in keyed.items():
        z = Sessionizer(rules[0], key)
        z.advance(evs, max(e.ts for e in evs))
        z.close_all()
    ceiling = n_keyed / (time.perf_counter() - t)

    t = time.perf_counter()
    sessionize(read_table(spark, uri), rules).write.format("noop").mode("overwrite").save()
    batch_s = time.perf_counter() - t

    # stream: one query, the chunks arriving one by one
    stream_wh = Warehouse(tempfile.mkdtemp(prefix="logad-bench-sessions-stream-"))
    s_uri = stream_wh.table("events")
    append_table(chunk(0), s_uri)
    query = start_sessions(spark, stream_wh, rules, trigger="1 second")
    query.processAllAvailable()
    for c in range(1, a.chunks):
        append_table(chunk(c), s_uri)
        query.processAllAvailable()
    progress = [p for p in query.recentProgress if p["numInputRows"] > 0]
    query.stop()
    warm = progress[1:] or progress
    secs = sum(p["durationMs"]["triggerExecution"] for p in warm) / 1000
    stream_rate = sum(p["numInputRows"] for p in warm) / secs
    state_rows = max(o.get("numRowsTotal", 0) for p in progress for o in p["stateOperators"])
    memory = peak_memory()  # before the session ends: its processes are read while alive

    result = {"bench": "sessions", "events": n, "keyed_events": n_keyed, "blocks": len(keyed),
              "ceiling_python_events_per_s": round(ceiling), "batch_events_per_s": round(n_keyed / batch_s),
              "stream_events_per_s": round(stream_rate), "stream_batches": len(progress),
              "stream_state_rows_max": state_rows,
              "batch_vs_ceiling": round(n_keyed / batch_s / ceiling, 2),
              "stream_vs_ceiling": round(stream_rate / ceiling, 2), "cores": 2, **memory}
    print(f"{n:,} HDFS events ({n_keyed:,} keyed by {len(keyed):,} blocks), local[2]")
    print(f"{'path':<44}{'events/s':>12}{'vs ceiling':>12}")
    print(f"{'ceiling: Sessionizer in one Python process':<44}{ceiling:>12,.0f}{1:>12.2f}")
    print(f"{'batch: sessionize (applyInPandas)':<44}{n_keyed / batch_s:>12,.0f}{result['batch_vs_ceiling']:>12.2f}")
    print(f"{'stream: applyInPandasWithState, warm batches':<44}{stream_rate:>12,.0f}{result['stream_vs_ceiling']:>12.2f}")
    print(memory_line(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
