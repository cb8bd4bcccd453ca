"""End-to-end latency: a line produced -> its session's alert, under a steady load.

Load: the bundled Spark executor log (Spark_2k, real lines), its TIDs renumbered on every pass
and its timestamps set to the wall clock as each line is produced, at --rate lines/s for
--seconds into one topic (one executor log: key ``exec1|stderr``). Three streaming queries run in
one Spark application (``local[2]``, trigger 1 s each): ingest -> sessions (Spark Task workflows,
watermark --watermark) -> score (+ alerts); with ``--chain``, two: ingest -> sessions scored in
the batch that closes them (``logad sessions run --score``). A Task workflow closes at its
``Finished task`` line, so the latency of a workflow is: its alert received by a consumer - its ``Finished task`` line
produced. The model is a small ATT-GRU trained for a few epochs on HDFS windows (the speed does
not depend on it) with its threshold set to 0 so that every workflow raises an alert: the
measurement covers the alert path for every session.

    .venv/bin/python bench/latency.py [--rate 5000] [--seconds 60] [--watermark '2 seconds'] [--chain]

Prints p50/p95/p99 and one JSON line; workflows whose alert had not come 60 s after the load
stopped count as missing.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import tempfile
import threading
import time
from pathlib import Path

from _common import ROOT, free_port


def model_into(models: Path) -> None:
    """A small trained model registered as att_gru v1 (threshold 0) and promoted."""
    import torch

    from logad.models.evaluate import _windows, hdfs_block_sessions
    from logad.models.fit import Example, TrainConfig, fit, save_artifact
    from logad.models.registry import promote
    from logad.models.sequence import ModelConfig
    from logad.models.vectors import train_vectors

    raw = ROOT / "data" / "samples"
    seqs, texts, labels = hdfs_block_sessions(raw / "HDFS_blocks600.log.gz",
                                              raw / "HDFS_blocks600.anomaly_label.csv.gz")
    tv = train_vectors(texts, dim=32)
    wins = [Example(w, y) for w, y in _windows([([tv.index(t) for t in seqs[b]], labels[b])
                                                for b in sorted(seqs) if b in labels], 10)[0]]
    result = fit(ModelConfig(vocab_size=tv.size), TrainConfig(epochs=1, batch_size=512), wins, wins[:200],
                 torch.from_numpy(tv.matrix))
    result.threshold = 0.0
    save_artifact(models / "att_gru" / "v1" / "model.pt", result, template_ids=tv.ids, vectors=tv.matrix,
                  metrics_={}, word_vectors=tv.word_vectors)
    (models / "att_gru" / "v1" / "model.json").write_text(json.dumps({"job": {"unit": "window", "window": 10}}))
    promote(models, "att_gru", 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=20, help="seconds of load before measuring")
    ap.add_argument("--watermark", default="2 seconds")
    ap.add_argument("--scheduler", choices=["fifo", "fair"], default="fifo",
                    help="fair: spark.scheduler.mode=FAIR, each query in its own pool")
    ap.add_argument("--verbose", action="store_true", help="log every micro-batch's timings (logad at INFO)")
    ap.add_argument("--chain", action="store_true",
                    help="score in the sessions query's batches (two queries) instead of a third query")
    a = ap.parse_args()

    import logging

    import numpy as np
    from confluent_kafka import Consumer, Producer, TopicPartition

    from logad.config import Broker, KafkaSource, Warehouse
    from logad.ingest import start_ingest
    from logad.io import broker as broker_io
    from logad.io.broker import create_topics
    from logad.io.delta import stop_between_batches
    from logad.live_scoring import ScoreStage, start_scoring
    from logad.produce import producer_conf, send
    from logad.sessions.rules import rules_for
    from logad.sessions.spark import start_sessions
    from logad.spark_session import get_spark

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    if a.verbose:
        logging.getLogger("logad").setLevel(logging.INFO)
    tmp = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    cfg = Broker(port=free_port(), state_dir=str(tmp / "broker"))
    broker_io.start(cfg)
    wh = Warehouse(str(tmp / "wh"))
    model_into(tmp / "wh" / "models")
    topic, alerts = "logs.exec1", "logad.alerts"
    create_topics(cfg.bootstrap, {topic: 1, alerts: 1})
    conf = {"spark.sql.shuffle.partitions": "2"}
    if a.scheduler == "fair":
        conf["spark.scheduler.mode"] = "FAIR"
    spark = get_spark("bench-latency", master="local[2]", conf=conf)
    sc = spark.sparkContext

    def pool(name: str) -> None:  # a query's jobs go to the pool set in the thread that starts it
        if a.scheduler == "fair":
            sc.setLocalProperty("spark.scheduler.pool", name)
    spark.sparkContext.setLogLevel("ERROR")

    lines = gzip.decompress((ROOT / "data/samples/Spark_2k.log.gz").read_bytes()).decode().splitlines()
    tid = re.compile(r"\(TID (\d+)\)")
    finished: dict[str, float] = {}  # "TID n" -> when its Finished line was produced
    received: dict[str, float] = {}
    stop = threading.Event()
    produced = [0]
    measuring = [0.0, 0.0]  # window of Finished lines measured

    def load() -> None:
        p = Producer(producer_conf(cfg.bootstrap))
        start = time.time()
        end = start + a.warmup + a.seconds
        n, rep = 0, 0
        measuring[0], measuring[1] = start + a.warmup, end
        while time.time() < end:
            for line in lines:
                due = start + n / a.rate
                now = time.time()
                if due > now:
                    time.sleep(due - now)
                if now >= end:
                    break
                stamp = time.strftime("%y/%m/%d %H:%M:%S", time.gmtime())
                shift = rep * 100_000
                text = tid.sub(lambda m, k=shift: f"(TID {int(m.group(1)) + k})", stamp + line[17:])
                send(p, topic, text.encode(), key=b"exec1|stderr")
                if "Finished task" in text:
                    finished[tid.search(text).group(0)[1:-1]] = time.time()
                n += 1
            rep += 1
        p.flush(30)
        produced[0] = n

    def consume() -> None:
        c = Consumer({"bootstrap.servers": cfg.bootstrap, "group.id": "bench", "enable.auto.commit": False})
        c.assign([TopicPartition(alerts, 0, 0)])
        while not stop.is_set():
            for m in c.consume(1000, 0.5):
                if m.error() is None:
                    received.setdefault(json.loads(m.value())["name"] or "", time.time())
        c.close()

    pool("ingest")
    queries = [start_ingest(spark, KafkaSource(cfg.bootstrap, subscribe=topic), wh, trigger="1 second")]
    stage = ScoreStage(spark, wh, "att_gru", "promoted", None, cfg.bootstrap, alerts)
    pool("sessions")
    queries.append(start_sessions(spark, wh, [rules_for("spark", watermark=a.watermark, idle_s=60.0)],
                                  trigger="1 second", score=stage if a.chain else None))
    if not a.chain:
        time.sleep(15)  # the sessions table must exist before the scoring query reads it
        pool("score")
        queries.append(start_scoring(spark, wh, stage, trigger="1 second"))
    threads = [threading.Thread(target=load), threading.Thread(target=consume, daemon=True)]
    for t in threads:
        t.start()
    threads[0].join()
    deadline = time.time() + 60
    while time.time() < deadline and any(k not in received for k, v in finished.items()
                                         if measuring[0] <= v <= measuring[1]):
        time.sleep(1)
    stop.set()
    failed = [f"{q.name}: {q.exception()}" for q in queries if q.exception() is not None]
    if failed:
        raise SystemExit("a query failed, no figures: " + "; ".join(failed)[:2000])
    batches = {}
    for q in queries:  # where the time goes: each query's micro-batch durations
        ds = [b["durationMs"].get("triggerExecution", 0) / 1000 for b in q.recentProgress if b["numInputRows"]]
        batches[q.name] = {"batches": len(ds), "mean_s": round(float(np.mean(ds)), 1) if ds else None,
                           "max_s": round(max(ds), 1) if ds else None}
    for q in queries:
        stop_between_batches(q, 30)
    stage.close()
    broker_io.stop(cfg)

    window = {k: v for k, v in finished.items() if measuring[0] <= v <= measuring[1]}
    lat = np.array([received[k] - v for k, v in window.items() if k in received])
    out = {"bench": "latency", "queries": "chained" if a.chain else "three", "scheduler": a.scheduler,
           "rate_target": a.rate, "rate_produced": round(produced[0] / (a.warmup + a.seconds)),
           "seconds": a.seconds, "watermark": a.watermark, "workflows": len(window),
           "alerted": int(len(lat)), "missing": len(window) - int(len(lat)),
           "alerts_sent": stage.alerts_sent, "alerts_received": len(received), "batches": batches}
    if len(lat):
        out.update({f"p{q}_s": round(float(np.percentile(lat, q)), 2) for q in (50, 95, 99)})
        out["max_s"] = round(float(lat.max()), 2)
    print(f"{out['rate_produced']:,} lines/s produced for {a.warmup}+{a.seconds} s; {out['workflows']} workflows "
          f"finished in the measured {a.seconds} s, {out['alerted']} alerted, {out['missing']} missing")
    if len(lat):
        print(f"line produced -> alert: p50 {out['p50_s']} s, p95 {out['p95_s']} s, p99 {out['p99_s']} s, "
              f"max {out['max_s']} s")
    for name, b in batches.items():
        print(f"  {name:<9} {b['batches']} micro-batches with data, mean {b['mean_s']} s, max {b['max_s']} s")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
