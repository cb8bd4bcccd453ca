"""Tier 3: ``logad run``, one query from Kafka to alerts, against the separate queries.

Real Spark executor and HDFS DataNode lines (LogHub samples) and a few broken records go through
a real broker. On the same input, the one query writes the same rows to every table as ingest +
sessions + score, and the same alerts; a Task workflow is cut and scored in the micro-batch that
reads its terminal line; SIGKILLed mid-stream and restarted, it leaves no duplicate and loses no
alert.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import SAMPLES, consume_all, new_topic

pytestmark = pytest.mark.slow

SPARK_KEY, HDFS_KEY = b"exec1|stderr", b"dn1|hdfs.log"
RULES = ["--system", "spark", "--system", "hdfs", "--watermark", "1 minute", "--idle-s", "600"]


def lines() -> tuple[list[str], list[str]]:
    """1,000 Spark executor lines and 3,000 HDFS lines, the HDFS ones moved to the Spark log's day."""
    spark = gzip.decompress((SAMPLES / "Spark_2k.log.gz").read_bytes()).decode().splitlines()[:1000]
    hdfs = gzip.decompress((SAMPLES / "HDFS_blocks600.log.gz").read_bytes()).decode().splitlines()[:3000]
    return spark, ["170609 " + line[7:] for line in hdfs]


def produce_logs(bootstrap: str, topics: tuple[str, str], spark_lines: list[str], hdfs_lines: list[str],
                 broken: bool = True) -> None:
    from confluent_kafka import Producer

    from logad.io.broker import create_topics
    from logad.produce import producer_conf, send

    create_topics(bootstrap, {topics[0]: 1, topics[1]: 1})
    p = Producer(producer_conf(bootstrap))
    for line in spark_lines:
        send(p, topics[0], line.encode(), key=SPARK_KEY)
    for line in hdfs_lines:
        send(p, topics[1], line.encode(), key=HDFS_KEY)
    if broken:  # an undecodable record and one too long: rejects, not a crash
        send(p, topics[1], b"\xff\xfe not utf-8", key=HDFS_KEY)
        send(p, topics[1], b"170609 203518 1 INFO dfs.DataNode: " + b"x" * 300_000, key=HDFS_KEY)
    assert p.flush(30) == 0


def model_into(models: Path) -> None:
    """A small ATT-GRU on HDFS_blocks600 windows, its validation threshold, promoted as att_gru v1
    (it scores every system's sessions: what matters here is that both paths score alike)."""
    import torch

    from logad.models.evaluate import _windows, hdfs_block_sessions
    from logad.models.fit import Example, TrainConfig, fit, save_artifact
    from logad.models.registry import promote
    from logad.models.sequence import ModelConfig
    from logad.models.vectors import train_vectors

    seqs, texts, labels = hdfs_block_sessions(SAMPLES / "HDFS_blocks600.log.gz",
                                              SAMPLES / "HDFS_blocks600.anomaly_label.csv.gz")
    tv = train_vectors(texts, dim=16)
    wins = [Example(w, y) for w, y in _windows([([tv.index(t) for t in seqs[b]], labels[b])
                                                for b in sorted(seqs) if b in labels], 10)[0]]
    torch.manual_seed(0)
    result = fit(ModelConfig(vocab_size=tv.size, embed_dim=16), TrainConfig(epochs=3, batch_size=512),
                 wins, wins[:500], torch.from_numpy(tv.matrix))
    save_artifact(models / "att_gru" / "v1" / "model.pt", result, template_ids=tv.ids, vectors=tv.matrix,
                  metrics_={}, word_vectors=tv.word_vectors)
    (models / "att_gru" / "v1" / "model.json").write_text(json.dumps({"job": {"unit": "window", "window": 10}}))
    promote(models, "att_gru", 1)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pipeline-models")
    model_into(root)
    return root


def run_cli(args: list[str]) -> None:
    from logad.cli import main

    assert main(args) == 0


def rows(spark, uri: str, drop: tuple[str, ...] = ()) -> list[tuple]:
    """A table's rows as sorted tuples, without the columns that say when, not what."""
    from logad.io.delta import read_table

    df = read_table(spark, uri)
    df = df.select(*[c for c in sorted(df.columns) if c not in drop])
    return sorted(tuple(json.dumps(v, default=str, sort_keys=True) for v in r) for r in df.collect())


def test_one_query_writes_what_the_separate_queries_write(spark, broker, models, tmp_path):
    from logad.config import Warehouse

    spark_lines, hdfs_lines = lines()
    topics = (new_topic("logs"), new_topic("logs"))
    produce_logs(broker.bootstrap, topics, spark_lines, hdfs_lines)
    one, sep = Warehouse(str(tmp_path / "one")), Warehouse(str(tmp_path / "sep"))
    alerts_one, alerts_sep = new_topic("alerts"), new_topic("alerts")
    from logad.io.broker import create_topics

    create_topics(broker.bootstrap, {alerts_one: 1, alerts_sep: 1})
    source = ["--bootstrap", broker.bootstrap, "--subscribe", ",".join(topics), "--trigger", "1 second"]
    model = ["--models-dir", str(models)]
    run_cli(["run", *source, "--warehouse", one.root, *RULES, *model, "--alerts-topic", alerts_one,
             "--no-early", "--once"])
    run_cli(["ingest", *source, "--warehouse", sep.root, "--once"])
    run_cli(["sessions", "run", "--warehouse", sep.root, *RULES, "--trigger", "1 second", "--once"])
    run_cli(["score", "--warehouse", sep.root, *model, "--bootstrap", broker.bootstrap, "--alerts-topic",
             alerts_sep, "--trigger", "1 second", "--once"])

    for table, drop in (("raw_logs", ("ingested_at",)), ("events", ()), ("rejects", ()),
                        ("sessions", ("sessionized_at",)), ("scores", ("scored_at", "score")),
                        ("templates", ("app_id", "batch_id", "first_batch"))):
        got, want = rows(spark, one.table(table), drop), rows(spark, sep.table(table), drop)
        assert got == want, (table, len(got), len(want))
    from logad.io.delta import read_table

    # the model's score, up to float noise of batching the windows differently
    a = {r.session_id: r.score for r in read_table(spark, one.table("scores")).collect()}
    b = {r.session_id: r.score for r in read_table(spark, sep.table("scores")).collect()}
    assert a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-5 for k in a)
    sessions = rows(spark, one.table("sessions"))
    assert len(sessions) > 100

    cut = read_table(spark, one.table("sessions"))
    reasons = {r.close_reason for r in cut.select("close_reason").distinct().collect()}
    assert {"finished", "idle"} <= reasons  # Spark workflows at their terminal line, HDFS blocks on idle
    assert read_table(spark, one.table("rejects")).count() == 2
    scores = read_table(spark, one.table("scores"))
    flagged = {r.session_id for r in scores.where("is_anomaly").collect()}
    assert flagged and scores.count() == len(sessions)
    sent_one, sent_sep = consume_all(broker.bootstrap, alerts_one), consume_all(broker.bootstrap, alerts_sep)
    assert sorted(a["alert_id"] for a in sent_one) == sorted(a["alert_id"] for a in sent_sep)
    assert {a["session_id"] for a in sent_one} == flagged
    # the alert of the one query found its raw lines though raw_logs was written after it was sent
    assert all(e["line"] for a in sent_one for e in a["top_events"])


def commit_batches(uri: str) -> dict[str, int]:
    """Data file -> the micro-batch (``txnVersion``) whose commit added it, from the Delta log."""
    out = {}
    for f in sorted(Path(uri, "_delta_log").glob("*.json")):
        actions = [json.loads(line) for line in f.read_text().splitlines() if line]
        txn = next((a["txn"]["version"] for a in actions if "txn" in a), None)
        for a in actions:
            if "add" in a and txn is not None:
                out[a["add"]["path"]] = int(txn)
    return out


def batch_of(spark, uri: str, key: list[str]) -> dict[tuple, int]:
    """Each row's ``key`` columns -> the micro-batch that wrote it."""
    from pyspark.sql import functions as F

    from logad.io.delta import read_table

    files = commit_batches(uri)
    df = read_table(spark, uri).select(*key, F.col("_metadata.file_path").alias("f"))
    return {tuple(r[k] for k in key): files[Path(r["f"]).name] for r in df.collect()}


def test_a_workflow_is_scored_in_the_batch_that_reads_its_terminal_line(spark, broker, models, tmp_path):
    from logad.config import Warehouse
    from logad.io.delta import read_table

    spark_lines, _ = lines()
    topics = (new_topic("logs"), new_topic("logs"))
    produce_logs(broker.bootstrap, topics, spark_lines, [], broken=False)
    wh = Warehouse(str(tmp_path / "wh"))
    run_cli(["run", "--bootstrap", broker.bootstrap, "--subscribe", topics[0], "--warehouse", wh.root,
             "--system", "spark", "--models-dir", str(models), "--no-alerts", "--trigger", "1 second",
             "--max-offsets-per-trigger", "60", "--once"])
    raw = batch_of(spark, wh.table("raw_logs"), ["offset"])
    assert len(set(raw.values())) >= 10  # many micro-batches
    sessions = read_table(spark, wh.table("sessions")).where("close_reason IN ('finished', 'exception')")
    closed = {r.session_id: r.offsets[-1] for r in sessions.select("session_id", "offsets").collect()}
    assert len(closed) > 50
    cut_in = batch_of(spark, wh.table("sessions"), ["session_id"])
    scored_in = batch_of(spark, wh.table("scores"), ["session_id"])
    for sid, last in closed.items():
        # the batch that read the terminal line (raw_logs) cut the workflow and scored it
        assert cut_in[(sid,)] == raw[(last,)] == scored_in[(sid,)], sid
    # the separate sessions query on the same events waits for no watermark either: same sessions
    run_cli(["sessions", "backfill", "--warehouse", wh.root, "--system", "spark", "--closed-only"])
    backfill = {r.session_id for r in read_table(spark, wh.table("sessions_backfill")).collect()}
    assert set(closed) <= backfill


def run_cmd(bootstrap: str, topics: tuple[str, str], warehouse: str, models: Path, alerts: str,
            once: bool) -> list[str]:
    cmd = [sys.executable, "-m", "logad.cli", "run", "--bootstrap", bootstrap, "--subscribe", ",".join(topics),
           "--warehouse", warehouse, *RULES, "--models-dir", str(models), "--alerts-topic", alerts,
           "--trigger", "1 second", "--master", "local[2]", "--max-offsets-per-trigger", "300"]
    return cmd + (["--once"] if once else [])


def test_killed_and_restarted_it_writes_each_session_once_and_loses_no_alert(spark, broker, models, tmp_path):
    from logad.config import Warehouse
    from logad.io.broker import create_topics
    from logad.io.delta import read_table

    spark_lines, hdfs_lines = lines()
    topics, alerts = (new_topic("logs"), new_topic("logs")), new_topic("alerts")
    create_topics(broker.bootstrap, {alerts: 1})
    wh = Warehouse(str(tmp_path / "wh"))
    chunks = 8

    def keep_producing() -> None:  # each file's lines in file order, a chunk at a time
        s, h = len(spark_lines) // chunks, len(hdfs_lines) // chunks
        for i in range(chunks):
            produce_logs(broker.bootstrap, topics, spark_lines[i * s:(i + 1) * s], hdfs_lines[i * h:(i + 1) * h],
                         broken=False)
            time.sleep(2)

    producer = threading.Thread(target=keep_producing, daemon=True)
    producer.start()
    rng = random.Random(11)
    for attempt in range(3):
        log = tmp_path / f"run-{attempt}.log"
        proc = subprocess.Popen(run_cmd(broker.bootstrap, topics, wh.root, models, alerts, once=False),
                                stdout=subprocess.DEVNULL, stderr=log.open("w"), start_new_session=True,
                                env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "lib")})
        raw = Path(wh.table("raw_logs"), "_delta_log")
        seen = len(list(raw.glob("*.json"))) if raw.exists() else 0
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None and \
                (len(list(raw.glob("*.json"))) if raw.exists() else 0) <= seen + 1:
            time.sleep(0.2)
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(rng.uniform(0.2, 3.0))  # inside a micro-batch, most of the time
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    producer.join()
    final = subprocess.run(run_cmd(broker.bootstrap, topics, wh.root, models, alerts, once=True),
                           capture_output=True, text=True, timeout=900,
                           env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "lib")})
    assert final.returncode == 0, final.stderr[-3000:]

    raw_rows = read_table(spark, wh.table("raw_logs"))
    assert raw_rows.count() == raw_rows.select("topic", "offset").distinct().count() == 1000 + 3000
    sessions = [r.session_id for r in read_table(spark, wh.table("sessions")).select("session_id").collect()]
    scores = read_table(spark, wh.table("scores"))
    scored = [r.session_id for r in scores.select("session_id").collect()]
    assert len(sessions) == len(set(sessions)) > 100
    assert sorted(scored) == sorted(sessions)  # every closed session scored, none twice
    sent = {a["alert_id"] for a in consume_all(broker.bootstrap, alerts)}
    from logad.live_scoring import alert_id

    flagged = {alert_id(r.session_id, r.model_version) for r in scores.where("is_anomaly").collect()}
    assert flagged and flagged <= sent  # at least once: none lost (a replayed batch may send again)
