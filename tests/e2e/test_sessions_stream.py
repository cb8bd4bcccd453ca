"""Tier 3: real HDFS and Spark lines through the broker, ingest and the streaming sessions operator,
restarted between chunks, against the batch sessionizer and the HDFS ground truth."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from conftest import new_topic
from logad.config import KafkaSource, Warehouse
from logad.ingest import REJECTS, run, start_ingest
from logad.io.delta import read_table
from logad.sessions.labels import load_labels
from logad.sessions.rules import rules_for
from logad.sessions.spark import SESSIONS, read_labels, sessionize, start_sessions
from logad.ship import ShipConfig, Shipper

pytestmark = pytest.mark.slow
SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


def lines(name: str) -> list[str]:
    return gzip.decompress((SAMPLES / name).read_bytes()).decode().splitlines()


def by_id(rows) -> dict[str, tuple]:
    return {r.session_id: (r.key, r.name, tuple(r.offsets), r.close_reason, r.label, r.label_source)
            for r in rows}


@pytest.fixture(scope="module")
def streamed(spark, broker, tmp_path_factory):
    """Ship HDFS (dn1) and Spark (exec7) logs in three chunks; after each, ingest once and run the
    sessions queries once (a restart from their checkpoints every time)."""
    tmp = tmp_path_factory.mktemp("sessions")
    prefix = new_topic("sess")
    wh = Warehouse(str(tmp / "wh"))
    load_labels(spark, wh, "hdfs", str(SAMPLES / "HDFS_first20000.anomaly_label.csv.gz"))
    hdfs_rules = [rules_for("hdfs", idle_s=60, watermark="30 seconds")]
    spark_rules = [rules_for("spark", idle_s=120, watermark="10 seconds")]
    files = {"dn1": lines("HDFS_first20000.log.gz"), "exec7": lines("Spark_2k.log.gz")}
    for chunk in range(3):
        for host, all_lines in files.items():
            n = len(all_lines) // 3
            part = all_lines[chunk * n:(chunk + 1) * n] if chunk < 2 else all_lines[2 * n:]
            path = tmp / host / "app.log"
            path.parent.mkdir(exist_ok=True)
            with open(path, "a") as f:
                f.write("\n".join(part) + "\n")
            Shipper(ShipConfig((str(path),), broker.bootstrap, host=host, topic_prefix=prefix,
                               registry=str(tmp / f"{host}.json"))).run(once=True)
        run(start_ingest(spark, KafkaSource(broker.bootstrap, subscribe_pattern=rf"{prefix}\..*"), wh,
                         trigger="1 second"), once=True, settle_s=0)
        run(start_sessions(spark, wh, hdfs_rules, trigger="1 second", query_name="sessions_hdfs"),
            once=True, settle_s=30)
        run(start_sessions(spark, wh, spark_rules, trigger="1 second", query_name="sessions_spark"),
            once=True, settle_s=30)
    return wh, hdfs_rules, spark_rules, files


def test_the_stream_writes_what_the_batch_sessionizer_computes(spark, streamed):
    wh, hdfs_rules, spark_rules, _ = streamed
    stream = read_table(spark, wh.table(SESSIONS))
    events = read_table(spark, wh.table("events"))
    labels = read_labels(spark, wh)
    for system, rules in (("hdfs", hdfs_rules), ("spark", spark_rules)):
        got = by_id(stream.where(f"system = '{system}'").collect())
        want = by_id(sessionize(events.where(f"system = '{system}'"), rules, labels, close_open=False).collect())
        assert len(got) > 20, system
        assert got == want, system
    assert stream.count() == stream.select("session_id").distinct().count()  # no duplicates after restarts
    reasons = {r.close_reason for r in stream.collect()}
    assert {"idle", "finished"} <= reasons


def test_hdfs_sessions_are_the_labelled_blocks_with_their_labels(spark, streamed):
    wh, _, _, files = streamed
    events = read_table(spark, wh.table("events")).where("system = 'hdfs'")
    # a backfill with the default rules (a block closes after a day idle): one session per block,
    # as LogHub labels them
    rows = sessionize(events, [rules_for("hdfs")], read_labels(spark, wh)).collect()
    truth = dict(line.split(",") for line in lines("HDFS_first20000.anomaly_label.csv.gz")[1:])
    assert sorted(r.key for r in rows) == sorted(truth)
    assert {r.key: r.label for r in rows} == {k: int(v == "Anomaly") for k, v in truth.items()}
    assert {r.label_source for r in rows} == {"hdfs:HDFS_first20000.anomaly_label.csv.gz"}
    # every HDFS event that names a block is in its block's session, once
    assert sum(r.n_events for r in rows) == sum(
        len(set(re.findall(r"blk_-?\d+", ln))) for ln in files["dn1"])


def test_a_late_line_goes_to_rejects_under_late_reject_and_a_restart_keeps_state(spark, streamed):
    from pyspark.sql import functions as F

    from logad.io.delta import append_table

    wh, hdfs_rules, _, _ = streamed
    events = read_table(spark, wh.table("events")).where("system = 'hdfs'")
    before = read_table(spark, wh.table(SESSIONS)).count()
    newest = events.agg(F.max("ts")).first()[0]
    late = (events.orderBy("offset").limit(1).withColumn("offset", F.lit(10**9).cast("long")))
    append_table(late, wh.table("events"))
    strict = [rules_for("hdfs", idle_s=60, watermark="30 seconds", late="reject")]  # the fixture's, strict
    run(start_sessions(spark, wh, strict, trigger="1 second", query_name="sessions_hdfs"), once=True,
        settle_s=30)
    rejected = read_table(spark, wh.table(REJECTS)).where("reason = 'late_event'").collect()
    assert [(r.offset, r.stage) for r in rejected] == [(10**9, "sessions")]
    assert read_table(spark, wh.table(SESSIONS)).count() == before
    assert newest is not None


def test_the_cli_backfills_and_shows_sessions(spark, streamed, capsys):
    from logad.cli import main
    from logad.io.delta import read_table

    wh, _, _, _ = streamed
    argv = ["sessions", "backfill", "--warehouse", wh.root, "--system", "hdfs", "--idle-s", "60",
            "--watermark", "30 seconds", "--closed-only", "--table", "hdfs_backfill"]
    assert main(argv) == 0
    assert main(argv) == 0  # a second backfill replaces the table, it does not append
    backfill = read_table(spark, wh.table("hdfs_backfill"))
    stream = read_table(spark, wh.table(SESSIONS)).where("system = 'hdfs'")
    assert sorted(r.session_id for r in backfill.collect()) == sorted(r.session_id for r in stream.collect())
    assert main(["sessions", "show", "--warehouse", wh.root, "--table", "hdfs_backfill"]) == 0
    out = capsys.readouterr().out
    assert f"{backfill.count():,} sessions" in out and "hdfs:HDFS_first20000.anomaly_label.csv.gz" in out
    assert main(["sessions", "labels", "--warehouse", wh.root, "--system", "hdfs", "/nope.csv"]) == 2
