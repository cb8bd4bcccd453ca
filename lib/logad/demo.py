"""``make demo``: the pipeline end to end on bundled real logs (local Kafka, Spark, Delta on disk).

1. A fresh local broker (Apache Kafka, KRaft, on 127.0.0.1).
2. The bundled samples shipped from files by ``logad ship``, one topic per host: HDFS (600
   whole blocks of LogHub's HDFS_v1 with their anomaly labels), LogHub's Spark, BGL, Thunderbird
   and Hadoop samples, and the Spark lab sample's executor logs (two workers, labelled per Task
   attempt).
3. The ingest query (Structured Streaming) into ``raw_logs``, ``events`` (a template id on every
   event), ``rejects`` and ``templates``; checked: every line shipped is in ``raw_logs`` exactly
   once and in exactly one of ``events`` and ``rejects``.
4. Sessions (HDFS blocks, Spark Task workflows) with their labels, into ``sessions``.
5. ATT-GRU trained on the labelled HDFS blocks (``logad train``, one TorchDistributor process),
   test P/R/F1 on unseen blocks, promoted.
6. The scoring query over ``sessions`` (the promoted model, pandas UDF): ``scores`` and alerts
   into the ``logad.alerts`` topic, read back from the broker and printed with their raw lines.
7. ``report.html`` in the work folder: the tables' counts, the training curve, the PR curve and
   confusion matrix on the test blocks, the attention over the top alert, and the alerts.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from logad.config import Broker, KafkaSource, Warehouse
from logad.errors import BrokerError, LogadError

log = logging.getLogger(__name__)

SAMPLES = {  # host -> bundled files, globs under data/samples (see data/samples/PROVENANCE.md)
    "hdfs": ("HDFS_blocks600.log.gz",),
    "spark": ("Spark_2k.log.gz",),
    "bgl": ("BGL_2k.log.gz",),
    "tbird": ("Thunderbird_2k.log.gz",),
    "hadoop": ("Hadoop_container_1445062781478_0011_01_000001.log.gz",),
    "worker-1": ("spark_lab/logs/worker-1/*.log.gz",),
    "worker-2": ("spark_lab/logs/worker-2/*.log.gz",),
}
LABELS = {"hdfs": "HDFS_blocks600.anomaly_label.csv.gz", "spark": "spark_lab/truth.csv.gz"}
ALERTS = "logad.alerts"


def samples_dir() -> Path:
    """The bundled samples: ``$LOGAD_SAMPLES``, else ``data/samples`` of this checkout."""
    root = os.environ.get("LOGAD_SAMPLES")
    path = Path(root) if root else Path(__file__).resolve().parents[2] / "data" / "samples"
    if not (path / SAMPLES["hdfs"][0]).exists() or not (path / LABELS["spark"]).exists():
        raise LogadError(f"the bundled samples are not at {path}: run from a logad checkout or "
                         "set LOGAD_SAMPLES to its data/samples folder")
    return path


def run_demo(workdir: str = ".logad/demo", port: int = Broker.port,
             say: Callable[[str], None] = log.info) -> dict[str, int]:
    """Run the demo in ``workdir`` (wiped first); return rows per table. ``say`` gets the report
    as it goes (``logad demo`` passes ``print``)."""
    import gzip

    from pyspark.sql import functions as F

    from logad.ingest import EVENTS, RAW_LOGS, REJECTS, run, start_ingest
    from logad.io import broker
    from logad.io.delta import read_table, table_summary
    from logad.ship import ShipConfig, Shipper
    from logad.spark_session import get_spark
    from logad.templates.stream import TEMPLATES

    started = time.monotonic()
    work = Path(workdir).absolute()
    cfg = Broker(port=port, state_dir=str(work / "broker"))
    broker.stop(cfg)
    shutil.rmtree(work, ignore_errors=True)
    samples = samples_dir()
    log.info("[1/7] starting the local broker on %s", cfg.bootstrap)
    try:
        broker.start(cfg)
    except BrokerError as e:
        raise BrokerError(f"{e}. The demo starts its own broker on the port every logad command "
                          f"defaults to; if `logad broker start` runs there, `logad broker stop` first, "
                          f"or run the demo beside it: logad demo --port {port + 100}") from None
    try:
        log.info("[2/7] shipping the bundled real logs from files, one topic per host (logs.<host>)")
        shipped: dict[str, int] = {}
        for host, globs in SAMPLES.items():
            folder = work / "hosts" / host
            folder.mkdir(parents=True)
            for src in sorted(p for g in globs for p in samples.glob(g)):
                text = gzip.decompress(src.read_bytes())
                # Some LogHub files lack a final newline; a tailer waits for it, so complete the file.
                (folder / src.name.removesuffix(".gz")).write_bytes(text if text.endswith(b"\n") else text + b"\n")
            ship = ShipConfig((str(folder / "*.log"),), cfg.bootstrap, host=host,
                              registry=str(work / "ship" / f"{host}.json"), progress_interval_s=60)
            shipped[f"logs.{host}"] = Shipper(ship).run(once=True).sent
        log.info("      shipped %s", shipped)
        log.info("[3/7] streaming Kafka -> Delta raw_logs, events (with template ids), rejects, "
                 "templates with Spark (local[2])")
        spark = get_spark("logad-demo", master="local[2]")
        spark.sparkContext.setLogLevel("ERROR")  # the demo narrates; Spark's WARNs are noise here
        warehouse = Warehouse(str(work / "warehouse"))
        source = KafkaSource(cfg.bootstrap, subscribe_pattern=r"logs\..*",
                             starting_offsets="earliest", max_offsets_per_trigger=20_000)
        run(start_ingest(spark, source, warehouse, trigger="1 second"), once=True)
        log.info("      checking the tables against what was shipped")
        raw = read_table(spark, warehouse.table(RAW_LOGS))
        ev = read_table(spark, warehouse.table(EVENTS))
        rej = read_table(spark, warehouse.table(REJECTS))

        def per_topic(df: Any) -> dict[str, int]:
            return {r["topic"]: r["n"] for r in df.groupBy("topic").agg(F.count("*").alias("n")).collect()}

        raw_n, ev_n, rej_n = per_topic(raw), per_topic(ev), per_topic(rej)
        systems = {r["topic"]: r["s"] for r in ev.groupBy("topic").agg(
            F.concat_ws(",", F.sort_array(F.collect_set("system"))).alias("s")).collect()}
        say("")
        say(f"Spark's Kafka source and delta-spark; tables under {warehouse.root}/tables")
        say(f"  {'topic':<12} {'shipped':>8} {'raw_logs':>9} {'events':>8} {'rejects':>8}  systems")
        for topic, n in shipped.items():
            say(f"  {topic:<12} {n:>8} {raw_n.get(topic, 0):>9} {ev_n.get(topic, 0):>8} "
                  f"{rej_n.get(topic, 0):>8}  {systems.get(topic, '')}")
        for name in (RAW_LOGS, EVENTS, REJECTS):
            summary = table_summary(warehouse.table(name))
            say(f"  {name:<9} {summary['rows']:>6} rows, Delta version {summary['version']}")
        ev.where("system = 'spark'").orderBy("offset").select(
            "host", "ts", "level", "component", "content").show(3, truncate=60)
        rej.groupBy("topic", "reason").count().orderBy("topic").show(truncate=False)
        templates = read_table(spark, warehouse.table(TEMPLATES))
        current = templates.where("merged_into IS NULL")
        say(f"  {current.count()} templates in use ({templates.count() - current.count()} generalized "
              "into others); the most frequent:")
        current.orderBy(F.desc("count")).select("template_id", "count", "text").show(8, truncate=70)
        untemplated = ev.where("template_id IS NULL").count()
        distinct = raw.select("topic", "partition", "offset").distinct().count()
        whole = all(raw_n.get(t) == n == ev_n.get(t, 0) + rej_n.get(t, 0) for t, n in shipped.items())
        if untemplated:
            raise LogadError(f"{untemplated} events have no template id")
        if not whole or distinct != sum(shipped.values()):
            raise LogadError(f"tables do not hold every shipped line exactly once: shipped "
                             f"{shipped}, raw_logs {raw_n}, events {ev_n}, rejects {rej_n}")
        say(f"  ingest checked: every shipped line once in raw_logs, once in events or rejects "
              f"({time.monotonic() - started:.0f}s so far)")
        counts = {RAW_LOGS: sum(raw_n.values()), EVENTS: sum(ev_n.values()), REJECTS: sum(rej_n.values())}
        counts.update(_model_stages(spark, warehouse, samples, cfg.bootstrap, work, shipped, raw_n, ev_n, rej_n, say))
        say(f"done in {time.monotonic() - started:.0f}s; report: {work / 'report.html'}")
        return counts
    finally:
        broker.stop(cfg)


def _model_stages(spark: Any, warehouse: Warehouse, samples: Path, bootstrap: str, work: Path,
                  shipped: dict[str, int], raw_n: dict[str, int], ev_n: dict[str, int],
                  rej_n: dict[str, int], say: Callable[[str], None]) -> dict[str, int]:
    """Sessions -> training -> streaming scores + alerts -> the HTML report."""
    from pyspark.sql import functions as F

    from logad import report
    from logad.ingest import run
    from logad.io.delta import read_table, write_table
    from logad.live_scoring import SCORES, ScoreStage, explain, start_scoring
    from logad.models.registry import promote
    from logad.models.retrain import held_out
    from logad.models.train_job import TrainJob, run_train
    from logad.sessions.labels import load_labels
    from logad.sessions.rules import rules_for
    from logad.sessions.spark import SESSIONS, read_labels, sessionize
    from logad.templates.stream import template_texts

    log.info("[4/7] sessions: HDFS blocks and Spark Task workflows, with their labels")
    for system, name in LABELS.items():
        load_labels(spark, warehouse, system, str(samples / name))
    # the default rules: an HDFS block is one session (it closes after a day without a line)
    sessions = sessionize(read_table(spark, warehouse.table("events")),
                          [rules_for("hdfs"), rules_for("spark")], read_labels(spark, warehouse))
    write_table(sessions, warehouse.table(SESSIONS))
    sess = read_table(spark, warehouse.table(SESSIONS))
    by = {(r["system"], r["label_source"]): (r["n"], r["bad"]) for r in sess.groupBy("system", "label_source").agg(
        F.count("*").alias("n"), F.sum("label").alias("bad")).collect()}
    for (system, source), (n, bad) in sorted(by.items()):
        say(f"  {system:<6} {n:>5} sessions, {bad or 0:>4} anomalous (labels: {source})")

    log.info("[5/7] training ATT-GRU on the labelled HDFS blocks (TorchDistributor, 1 process)")
    job = TrainJob(system="hdfs", unit="session", epochs=10, batch_size=64, patience=5, num_processes=1,
                   label_sources=(f"hdfs:{LABELS['hdfs']}",))
    summary = run_train(spark, warehouse, job)
    models = warehouse.models(job.models_dir)
    promote(models, "att_gru", summary["version"], "logad demo")
    m = summary["metrics"]
    say(f"  att_gru v{summary['version']} on unseen test blocks: P {m['test_precision']:.3f} "
          f"R {m['test_recall']:.3f} F1 {m['test_f1']:.3f} AUC {m['test_auc']:.3f} "
          f"(threshold {summary['threshold']:.3f}, chosen on validation blocks); promoted")

    log.info("[6/7] scoring the sessions stream with the promoted model: scores table + alerts topic %s", ALERTS)
    from logad.io.broker import create_topics

    create_topics(bootstrap, {ALERTS: 1})
    stage = ScoreStage(spark, warehouse, "att_gru", "promoted", bootstrap=bootstrap, alerts_topic=ALERTS)
    try:
        run(start_scoring(spark, warehouse, stage, trigger="1 second"), once=True)
    finally:
        stage.close()
    alerts = _read_alerts(bootstrap)
    scores = read_table(spark, warehouse.table(SCORES))
    n_scored, n_flagged = scores.count(), scores.where("is_anomaly").count()
    say(f"  {n_scored} hdfs sessions scored, {n_flagged} anomalies, {len(alerts)} alerts read back from {ALERTS}")
    vs = scores.join(sess.select("session_id", "label"), "session_id").where("label is not null")
    tp = vs.where("is_anomaly and label = 1").count()
    bad = vs.where("label = 1").count()
    say(f"  against the labels: {tp} of the {bad} anomalous blocks alerted, {n_flagged - tp} normal ones "
          "(training blocks included: the test figures above are the honest ones)")
    top = sorted(alerts, key=lambda a: -a["score"])[:3]
    explained = []
    for a in top:
        _, lines = explain(spark, warehouse, a["session_id"], models_dir=models, top_k=3)
        explained.append((a, lines))
        say(f"\n  ALERT {a['key']} score {a['score']:.3f} (threshold {a['threshold']:.3f}), "
              f"{len(lines)} lines, hosts {','.join(a['hosts'])}")
        for _, line, w in lines[:12]:
            say(f"    {'>>' if w is not None else '  '} {line[:130]}")
        if len(lines) > 12:
            say(f"       ... {len(lines) - 12} more (logad explain {a['session_id']})")

    log.info("[7/7] writing the HTML report")
    # the test blocks' scores are in the scores table already (same model, same UDF)
    test = held_out(spark, summary, None).select("session_id", "label")
    scored: Any = scores.join(test, "session_id").select("label", "score").toPandas()
    threshold = float(summary["threshold"])
    table = [{"topic": t, "shipped": n, "raw_logs": raw_n.get(t, 0), "events": ev_n.get(t, 0),
              "rejects": rej_n.get(t, 0)} for t, n in shipped.items()]
    sections: list[tuple[str, Any]] = [("Tables: every shipped line once", table),
                                       ("Training: loss and validation", report.loss_curves(summary["history"])),
                                       ("Test blocks: precision-recall", report.pr_curve(scored["label"], scored["score"], threshold)),
                                       ("Test blocks: confusion", report.confusion(scored["label"], scored["score"], threshold))]
    texts = template_texts(spark, warehouse) or {}
    for a, lines in explained:
        ev = a["top_events"]
        if ev:
            sections.append((f"Alert {a['key']}: attention over its top events", report.attention_heatmap(
                [e["weight"] for e in ev], [f"{e['index']:>3} {texts.get(e['template_id'], '?')}" for e in ev],
                f"{a['session_id']} score {a['score']:.3f}")))
        sections.append((f"Alert {a['key']}: raw lines (>> weighed most)",
                         "\n".join(f"{'>>' if w is not None else '  '} {line}" for _, line, w in lines)))
    (work / "report.html").write_text(report.html("logad demo", sections))
    return {SESSIONS: sess.count(), SCORES: n_scored, "alerts": len(alerts)}


def _read_alerts(bootstrap: str, idle_polls: int = 3) -> list[dict[str, Any]]:
    """Every alert in the alerts topic (one partition), read from its first offset."""
    import json

    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "logad-demo", "enable.auto.commit": False})
    c.assign([TopicPartition(ALERTS, 0, 0)])
    out: list[dict[str, Any]] = []
    idle = 0
    try:
        while idle < idle_polls:
            msgs = c.consume(1000, 1.0)
            idle = 0 if msgs else idle + 1
            out += [json.loads(m.value() or b"{}") for m in msgs if m.error() is None]
    finally:
        c.close()
    return out
