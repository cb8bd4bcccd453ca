"""End-to-end latency: the line that closes a session -> its alert on the alerts topic, under a steady load.

Load, at --rate lines/s for --warmup + --seconds, into two topics (one per host, as the shipper
sends them), timestamps set to the wall clock as each line is produced:

- Spark executor logs (LogHub Spark_2k, real, one executor log: key ``exec1|stderr``): TIDs
  renumbered on every pass; --anomalous of the workflows end on an injected ``ERROR
  executor.Executor: Exception in task ...`` line instead of their ``Finished task`` line. A
  workflow is closed by its terminal line: latency = alert received - that line produced.
- HDFS DataNode logs (LogHub HDFS_blocks600, real, --hdfs-share of the lines, key
  ``dn1|hdfs.log``): block ids renumbered on every pass. A block closes when it has been idle
  --hdfs-idle-s of event time: latency = alert received - (its last line produced + idle).

The model is an ATT-GRU trained (--epochs) on a history of the same hosts, pass 0 of both logs,
cut into sessions by the product; the load replays passes 1, 2, ... Its threshold is an alarm
budget: the score --alert-share of the held-out history sessions reach, so the alert load is one an
operator could have (the failed workflows and the blocks LogHub labels anomalous, 2.4% of
HDFS_first20000's, among them, and false alarms); this bench measures speed, not detection. Every
alert of a session closed in the measured window counts. Early scoring of open sessions is off
in both modes, so that an alert is the one on its session's close (--early: on; then a session's
first alert may come on a prefix, before the line its latency is counted from). ``--query one`` runs ``logad run``'s single query (logad.pipeline);
``--query separate`` runs ingest, sessions and score as three queries in the same application.
Both: ``local[2]``, trigger --trigger.

    .venv/bin/python bench/latency.py [--query one|separate] [--rate 5000] [--seconds 60] [--warmup 20]

Prints p50/p95/p99/max per kind of close, where the batches' time went, the query's lag at the end
(records of the topics it had not read) and one JSON line (``rate_lps``, ``alerts``, ``p50_s``,
``p95_s``, ``p99_s``, ``lag_end_records``, ``query`` and more). Sessions whose alert had not come
--drain-s after the load stopped are not counted.
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

SPARK_KEY, HDFS_KEY = b"exec1|stderr", b"dn1|hdfs.log"


def history_model(tmp: Path, load: Load, epochs: int, alert_share: float) -> dict[str, float]:
    """The model the stream scores with, trained on a history of the same hosts: one pass of the
    Spark log (its injected failures labelled by the papers' rule: the ERROR line) and the HDFS
    log (LogHub's labels), cut into sessions by the product (``ingest_files``, the batch
    sessionizer); an ATT-GRU over windows of both, its threshold the score --alert-share of the held-out sessions reach.
    Registered as att_gru v1 and promoted."""
    import torch

    from logad.models.evaluate import _windows, pipeline_sessions
    from logad.models.fit import Example, TrainConfig, fit, save_artifact
    from logad.models.registry import promote
    from logad.models.sequence import ModelConfig
    from logad.models.vectors import train_vectors
    from logad.sessions.rules import rules_for

    spark_file = tmp / "history-exec1.log"
    spark_file.write_text("".join(f"17/06/09 20:10:{i % 60:02d}{text}\n" for i, (text, _) in enumerate(load.spark(0))))
    seqs, texts = [], {}
    for files, rules, labels, fmt in (({str(spark_file): "exec1"}, rules_for("spark"), None, "spark"),
                                      ({str(load.hdfs_file): "dn1"}, rules_for("hdfs"), ("hdfs", str(load.hdfs_labels)), "hdfs")):
        sessions, t = pipeline_sessions(files, [rules], labels, fmt=fmt)
        texts.update(t)
        seqs += [(list(ids), int(y)) for ids, y in zip(sessions["template_ids"], sessions["label"], strict=True)]
    tv = train_vectors(texts, dim=32)
    import random

    random.Random(0).shuffle(seqs)
    cut = int(len(seqs) * 0.8)
    train, valid = ([Example(w, y) for w, y in _windows([([tv.index(t) for t in ids], y) for ids, y in part], 10)[0]]
                    for part in (seqs[:cut], seqs[cut:]))
    result = fit(ModelConfig(vocab_size=tv.size), TrainConfig(epochs=epochs, batch_size=512), train, valid,
                 torch.from_numpy(tv.matrix))
    # the alarm budget: the threshold that alert_share of the held-out sessions reach (a bench
    # needs a realistic alert load more than a good model; the product picks the F1 optimum)
    import numpy as np

    from logad.models.inference import infer
    from logad.models.windows import pad

    held = [([tv.index(t) for t in ids], y) for ids, y in seqs[cut:]]
    wins, owner = _windows(held, 10)
    x, n = pad([w for w, _ in wins])
    per_window = infer(result.model, x, n)
    best = np.zeros(len(held))
    np.maximum.at(best, np.asarray(owner), per_window)
    result.threshold = float(np.quantile(best, 1.0 - alert_share))
    models = tmp / "wh" / "models"
    save_artifact(models / "att_gru" / "v1" / "model.pt", result, template_ids=tv.ids, vectors=tv.matrix,
                  metrics_={}, word_vectors=tv.word_vectors)
    (models / "att_gru" / "v1" / "model.json").write_text(json.dumps({"job": {"unit": "window", "window": 10}}))
    promote(models, "att_gru", 1)
    return {"sessions": len(seqs), "anomalous": sum(y for _, y in seqs), "threshold": round(result.threshold, 4),
            "held_out_alerted": round(float((best >= result.threshold).mean()), 3),
            "held_out_recall": round(float(np.mean([b >= result.threshold for b, (_, y) in zip(best, held, strict=True)
                                                    if y])), 3)}


class Load:
    """The two hosts' lines, produced at a steady rate; remembers when each session's closing
    line (Spark) or last line (HDFS) was produced."""

    TID = re.compile(r"\(TID (\d+)\)|\bTID (\d+)\b")
    BLK = re.compile(r"blk_(-?\d+)")

    def __init__(self, rate: int, hdfs_share: float, anomalous: float) -> None:
        import random

        samples = ROOT / "data" / "samples"
        self.hdfs_file, self.hdfs_labels = samples / "HDFS_first20000.log.gz", samples / "HDFS_first20000.anomaly_label.csv.gz"
        self.spark_lines = gzip.decompress((samples / "Spark_2k.log.gz").read_bytes()).decode().splitlines()
        self.hdfs_lines = gzip.decompress(self.hdfs_file.read_bytes()).decode().splitlines()
        self.anomalous_blocks = {line.split(",")[0] for line in gzip.decompress(self.hdfs_labels.read_bytes())
                                 .decode().splitlines() if line.endswith(",Anomaly")}
        self.failed: set[str] = set()  # "TID n" of the workflows made to fail
        self.bad_blocks: set[str] = set()  # renumbered ids of blocks LogHub labels anomalous
        self.rate, self.hdfs_share, self.anomalous = rate, hdfs_share, anomalous
        self.rng = random.Random(0)
        self.anomalous_rng = random.Random(1)
        self.closed_at: dict[str, float] = {}  # "TID n" -> its terminal line produced (wall clock)
        self.block_last: dict[str, float] = {}  # block id -> its last line produced
        self.produced = 0
        self.window = (0.0, 0.0)

    def spark(self, rep: int):  # type: ignore[no-untyped-def]
        """Spark lines of pass ``rep``: (key, text without the time stamp, TID if it ends one)."""
        shift = rep * 100_000
        failing: set[int] = set()
        for line in self.spark_lines:
            text = self.TID.sub(lambda m: f"(TID {int(m.group(1)) + shift})" if m.group(1)
                                else f"TID {int(m.group(2)) + shift}", line[17:])
            m = self.TID.search(text)
            tid = int(m.group(1) or m.group(2)) if m else None
            if " Running task " in text and tid is not None and self.anomalous_rng.random() < self.anomalous:
                failing.add(tid)
                self.failed.add(f"TID {tid}")
            if " Finished task " in text and tid in failing:  # the injected failure ends it instead
                text = text.replace(" INFO ", " ERROR ", 1).replace("Finished task", "Exception in task", 1)
                text = re.sub(r"\)\..*$", ")", text)
            ends = tid if (" Finished task " in text or " Exception in task " in text) else None
            yield text, ends

    def hdfs(self, rep: int):  # type: ignore[no-untyped-def]
        for line in self.hdfs_lines:
            blocks = re.findall(r"blk_-?\d+", line)
            self.bad_blocks.update(f"{b}{rep:04d}" for b in blocks if b in self.anomalous_blocks)
            yield self.BLK.sub(lambda m: f"blk_{m.group(1)}{rep:04d}", line[13:]), [f"{b}{rep:04d}" for b in blocks]

    def run(self, bootstrap: str, topics: tuple[str, str], seconds: float, warmup: float) -> None:
        from confluent_kafka import Producer

        from logad.produce import producer_conf, send

        p = Producer({**producer_conf(bootstrap), "linger.ms": 5})
        start = time.time()
        end = start + warmup + seconds
        self.window = (start + warmup, end)
        n, srep, hrep = 0, 1, 1  # pass 0 is the history the model learnt from
        spark, hdfs = self.spark(1), self.hdfs(1)
        acc = 0.0
        while True:
            due = start + n / self.rate
            now = time.time()
            if due > now:
                time.sleep(due - now)
            if time.time() >= end:
                break
            acc += self.hdfs_share
            if acc >= 1.0:  # an HDFS line
                acc -= 1.0
                item = next(hdfs, None)
                if item is None:
                    hrep += 1
                    hdfs = self.hdfs(hrep)
                    item = next(hdfs)
                text, blocks = item
                send(p, topics[1], (time.strftime("%y%m%d %H%M%S", time.gmtime()) + text).encode(), key=HDFS_KEY)
                for b in blocks:
                    self.block_last[b] = time.time()
            else:
                item = next(spark, None)
                if item is None:
                    srep += 1
                    spark = self.spark(srep)
                    item = next(spark)
                text, ends = item
                send(p, topics[0], (time.strftime("%y/%m/%d %H:%M:%S", time.gmtime()) + text).encode(), key=SPARK_KEY)
                if ends is not None:
                    self.closed_at[f"TID {ends}"] = time.time()
            n += 1
            if n % 1000 == 0:
                p.poll(0)
        p.flush(30)
        self.produced = n


def lag(query, bootstrap: str, topics: tuple[str, str]) -> int:  # type: ignore[no-untyped-def]
    """Records on the topics that ``query`` (a Kafka-reading query) has not read: end offsets
    minus the offsets of its last batch."""
    from confluent_kafka import Consumer, TopicPartition

    progress = query.lastProgress or {}
    done: dict[tuple[str, int], int] = {}
    for s in progress.get("sources", []):
        end = s.get("endOffset")
        if isinstance(end, str):
            try:
                end = json.loads(end)
            except ValueError:
                end = None
        if isinstance(end, dict):
            for t, parts in end.items():
                if isinstance(parts, dict):
                    for p, o in parts.items():
                        done[(t, int(p))] = int(o)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-lag"})
    behind = 0
    for t in topics:
        lo, hi = c.get_watermark_offsets(TopicPartition(t, 0), timeout=10)
        behind += hi - done.get((t, 0), lo)
    c.close()
    return behind


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--query", choices=["one", "separate"], default="one")
    ap.add_argument("--rate", type=int, default=5000, help="lines/s offered (both hosts together)")
    ap.add_argument("--seconds", type=int, default=60, help="seconds measured")
    ap.add_argument("--warmup", type=int, default=20, help="seconds of load before measuring")
    ap.add_argument("--hdfs-share", type=float, default=0.3, help="share of the lines from the HDFS host")
    ap.add_argument("--hdfs-idle-s", type=float, default=5.0, help="an HDFS block closes after this long idle")
    ap.add_argument("--anomalous", type=float, default=0.03, help="share of Spark workflows that fail")
    ap.add_argument("--epochs", type=int, default=20, help="of the model's training")
    ap.add_argument("--alert-share", type=float, default=0.05,
                    help="the model's threshold: the score this share of held-out history sessions reach")
    ap.add_argument("--early", action="store_true", help="score open sessions' prefixes too (logad run's default)")
    ap.add_argument("--watermark", default="2 seconds")
    ap.add_argument("--trigger", default="1 second")
    ap.add_argument("--drain-s", type=int, default=60, help="wait this long after the load for late alerts")
    ap.add_argument("--verbose", action="store_true", help="log every micro-batch's timings (logad at INFO)")
    a = ap.parse_args()

    import logging

    import numpy as np
    from confluent_kafka import Consumer, TopicPartition

    from logad.config import Broker, KafkaSource, Warehouse
    from logad.ingest import start_ingest
    from logad.io import broker as broker_io
    from logad.io.broker import create_topics
    from logad.io.delta import stop_between_batches
    from logad.live_scoring import ScoreStage, start_scoring
    from logad.pipeline import start_pipeline
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
    topics, alerts = ("logs.exec1", "logs.dn1"), "logad.alerts"
    create_topics(cfg.bootstrap, {topics[0]: 1, topics[1]: 1, alerts: 1})
    spark = get_spark("bench-latency", master="local[2]", conf={"spark.sql.shuffle.partitions": "2"})
    spark.sparkContext.setLogLevel("ERROR")
    rules = [rules_for("spark", watermark=a.watermark, idle_s=60.0),
             rules_for("hdfs", watermark=a.watermark, idle_s=a.hdfs_idle_s)]
    source = KafkaSource(cfg.bootstrap, subscribe=",".join(topics))
    load = Load(a.rate, a.hdfs_share, a.anomalous)
    trained = history_model(tmp, load, a.epochs, a.alert_share)
    stage = ScoreStage(spark, wh, "att_gru", "promoted", None, cfg.bootstrap, alerts)
    received: dict[str, float] = {}  # session key|name -> first alert received
    stop = threading.Event()

    def consume() -> None:
        c = Consumer({"bootstrap.servers": cfg.bootstrap, "group.id": "bench", "enable.auto.commit": False})
        c.assign([TopicPartition(alerts, 0, 0)])
        while not stop.is_set():
            for m in c.consume(1000, 0.2):
                if m.error() is None:
                    alert = json.loads(m.value())
                    if alert.get("decision", "anomaly") == "anomaly":
                        received.setdefault(f"{alert['system']}|{alert['name'] or alert['key']}", time.time())
        c.close()

    if a.query == "one":
        queries = [start_pipeline(spark, source, wh, rules, stage, trigger=a.trigger, early=a.early)]
    else:
        queries = [start_ingest(spark, source, wh, trigger=a.trigger)]
    threads = [threading.Thread(target=load.run, args=(cfg.bootstrap, topics, a.seconds, a.warmup)),
               threading.Thread(target=consume, daemon=True)]
    for t in threads:
        t.start()
    if a.query == "separate":  # the next query reads the table the previous one writes: wait for it
        first_commit = Path("_delta_log") / f"{0:020d}.json"
        while not (tmp / "wh" / "tables" / "events" / first_commit).exists():
            time.sleep(0.5)
        queries.append(start_sessions(spark, wh, rules, trigger=a.trigger, score=stage if a.early else None))
        while not (tmp / "wh" / "tables" / "sessions" / first_commit).exists():
            time.sleep(0.5)
        if not a.early:
            queries.append(start_scoring(spark, wh, stage, trigger=a.trigger))
    threads[0].join()
    lag_end = lag(queries[0], cfg.bootstrap, topics)
    lo, hi = load.window
    spark_due = {f"spark|{k}": v for k, v in load.closed_at.items() if lo <= v <= hi}
    hdfs_due = {f"hdfs|{k}": v + a.hdfs_idle_s for k, v in load.block_last.items() if lo <= v + a.hdfs_idle_s <= hi}
    due = {**spark_due, **hdfs_due}
    deadline = time.time() + a.drain_s
    expected = {k for k in due if k.split("|", 1)[1] in load.failed | load.bad_blocks}
    while time.time() < deadline and any(k not in received for k in expected):
        time.sleep(1)
    time.sleep(min(5, a.drain_s))  # the last batches' other alerts
    stop.set()
    failed = [f"{q.name}: {q.exception()}" for q in queries if q.exception() is not None]
    if failed:
        raise SystemExit("a query failed, no figures: " + "; ".join(failed)[:2000])
    batches = {}
    for q in queries:
        ds = [b["durationMs"].get("triggerExecution", 0) / 1000 for b in q.recentProgress if b["numInputRows"]]
        batches[q.name] = {"batches": len(ds), "mean_s": round(float(np.mean(ds)), 2) if ds else None,
                           "p95_s": round(float(np.percentile(ds, 95)), 2) if ds else None}
    for q in queries:
        stop_between_batches(q, 30)
    stage.close()
    broker_io.stop(cfg)

    def figures(d: dict[str, float]) -> dict[str, float | int]:
        lat = np.array([received[k] - v for k, v in d.items() if k in received])
        bad = {k for k in d if k.split("|", 1)[1] in load.failed | load.bad_blocks}
        out: dict[str, float | int] = {"sessions": len(d), "anomalous": len(bad), "alerts": int(len(lat)),
                                       "anomalous_alerted": sum(k in received for k in bad)}
        if len(lat):
            out.update({f"p{q}_s": round(float(np.percentile(lat, q)), 2) for q in (50, 95, 99)})
            out["max_s"] = round(float(lat.max()), 2)
        return out

    every, by_terminal, by_timeout = figures(due), figures(spark_due), figures(hdfs_due)
    out = {"bench": "latency", "query": a.query, "rate_lps": a.rate, "early": a.early, "model": trained,
           "rate_produced": round(load.produced / (a.warmup + a.seconds)), "seconds": a.seconds,
           "trigger": a.trigger, "watermark": a.watermark, **every, "lag_end_records": lag_end,
           "terminal_line": by_terminal, "timeout": by_timeout, "alerts_sent": stage.alerts_sent,
           "batches": batches}
    print(f"{out['rate_produced']:,} lines/s produced for {a.warmup}+{a.seconds} s ({a.query} query); "
          f"{every['sessions']} sessions closed in the measured {a.seconds} s, {every['anomalous']} of them "
          f"anomalous; {every['alerts']} alerts, {every['anomalous_alerted']} on the anomalous ones; "
          f"lag at the end {lag_end:,} records")
    for name, f in (("closed by their terminal line (Spark workflows)", by_terminal),
                    ("closed by their idle timeout (HDFS blocks)", by_timeout)):
        if f["alerts"]:
            print(f"  {name}: {f['alerts']} alerts, p50 {f['p50_s']} s, p95 {f['p95_s']} s, "
                  f"p99 {f['p99_s']} s, max {f['max_s']} s")
    for name, b in batches.items():
        print(f"  {name:<9} {b['batches']} micro-batches with data, mean {b['mean_s']} s, p95 {b['p95_s']} s")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
