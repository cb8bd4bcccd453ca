"""Tier 3: the native stack as users run it: jars from the cache, Apache Kafka from its jars,
SCRAM over TLS, and the broker faults of the first paper's layout (a leader lost, a restart, a
deleted topic), with Spark's Kafka source and delta-spark doing the work."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import free_port, new_topic, produce
from logad.config import Broker, KafkaSource, Warehouse
from logad.errors import JarsError, KafkaSourceError
from logad.io import broker as broker_io

pytestmark = pytest.mark.slow


def _port_block(n: int) -> int:
    """A base port whose next ``n`` ports are free now."""
    import socket

    for _ in range(50):
        base = free_port()
        if base + n >= 65535:
            continue
        ok = True
        for p in range(base, base + n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port block")


def test_connector_jars_resolve_once_and_are_reused_without_the_network(spark, caplog):
    from logad import jars

    first = jars.resolve(jars.connectors(), purpose="spark-connectors")  # the session's, cached
    with caplog.at_level(logging.WARNING, logger="logad.jars"):
        again = jars.resolve(jars.connectors(), purpose="spark-connectors")
    assert again == first and "downloading" not in caplog.text
    names = {Path(j).name.split("__", 1)[-1] for j in first}
    assert any(n.startswith("spark-sql-kafka-0-10_2.13-4.0.0") for n in names)
    assert any(n.startswith("delta-spark_2.13-4.0.0") for n in names)
    assert not any(n.startswith(("scala-library", "hadoop-client")) for n in names)  # pyspark's
    from logad import jvm

    # the connectors, then logad's own JVM module (built by Maven from jvm/)
    assert spark.conf.get("spark.jars").split(",") == [*first, str(jvm.jar(build_missing=False))]


def test_unreachable_maven_is_one_line_that_names_what_to_set(tmp_path, monkeypatch):
    from logad import jars

    settings = tmp_path / "ivysettings.xml"
    settings.write_text(jars._settings_xml([f"http://127.0.0.1:{free_port()}/maven2/"]))
    monkeypatch.setenv("LOGAD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LOGAD_IVY_SETTINGS", str(settings))
    env = dict(os.environ)
    with pytest.raises(JarsError) as err:
        jars.resolve(jars.connectors(), purpose="spark-connectors")
    message = str(err.value)
    assert "\n" not in message
    assert all(s in message for s in ("spark.jars.repositories", "spark.jars.ivySettings", "spark.jars"))
    out = subprocess.run([sys.executable, "-m", "logad.cli", "ingest", "--once", "--warehouse",
                          str(tmp_path / "wh")], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("logad: error: cannot download the spark-connectors jars"), out.stderr[-2000:]
    assert "Traceback" not in out.stderr


def test_a_restarted_broker_keeps_every_record_on_disk(tmp_path):
    from confluent_kafka import Consumer, TopicPartition

    cfg = Broker(port=_port_block(2), state_dir=str(tmp_path))
    broker_io.start(cfg)
    try:
        produce(cfg.bootstrap, "logs.kept", [(0, f"line {i}".encode()) for i in range(500)])
        broker_io.stop(cfg)
        assert not broker_io.status(cfg).running
        broker_io.start(cfg)
        consumer = Consumer({"bootstrap.servers": cfg.bootstrap, "group.id": "kept"})
        consumer.assign([TopicPartition("logs.kept", 0, 0)])
        values: list[str] = []
        deadline = time.monotonic() + 30
        while len(values) < 500 and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is not None and m.error() is None:
                values.append(m.value().decode())
        consumer.close()
        assert values == [f"line {i}" for i in range(500)]
    finally:
        broker_io.stop(cfg)


def _ingest_until(spark, source, warehouse, n, timeout_s=240):
    """Run ingest until raw_logs holds ``n`` rows (or the timeout), then stop between batches."""
    from logad.ingest import start_ingest
    from logad.io.delta import stop_between_batches, table_exists, table_summary

    query = start_ingest(spark, source, warehouse, trigger="1 second")
    deadline = time.monotonic() + timeout_s
    table = warehouse.table("raw_logs")
    while time.monotonic() < deadline and query.isActive:
        if table_exists(table) and table_summary(table)["rows"] >= n:
            break
        time.sleep(1)
    error = query.exception()
    stop_between_batches(query, 60)
    return error


def _assert_exactly_once(spark, warehouse, lines):
    from logad.io.delta import read_table

    raw = read_table(spark, warehouse.table("raw_logs"))
    events = read_table(spark, warehouse.table("events")).count()
    rejects = read_table(spark, warehouse.table("rejects")).count()
    got = sorted(r.line for r in raw.select("line").collect())
    assert got == sorted(lines), (len(got), len(lines))
    assert events + rejects == len(lines)


def _hdfs_lines(n: int, tag: str) -> list[str]:
    import gzip

    from conftest import SAMPLES

    sample = gzip.decompress((SAMPLES / "HDFS_first20000.log.gz").read_bytes()).decode().splitlines()
    return [f"{sample[i % len(sample)]} {tag}-{i}" for i in range(n)]


def test_leader_lost_and_back_on_three_nodes_loses_and_repeats_nothing(spark, tmp_path):
    """The first paper's layout: acks=all into replication 3 / min ISR 2; the partition leader
    is killed (SIGKILL) while the shipper and ingest run, and brought back."""
    from confluent_kafka.admin import AdminClient

    from logad.ship import ShipConfig, Shipper

    cfg = Broker(port=_port_block(6), nodes=3, state_dir=str(tmp_path / "kafka"))
    broker_io.start(cfg)
    try:
        lines = _hdfs_lines(6000, "leader")
        log_file = tmp_path / "dn" / "hdfs.log"
        log_file.parent.mkdir()
        ship = ShipConfig((str(log_file),), cfg.bootstrap, host="dn1", registry=str(tmp_path / "reg.json"),
                          poll_interval_s=0.2, progress_interval_s=3600)
        stop = threading.Event()
        shipper = threading.Thread(target=Shipper(ship).run, kwargs={"stop": stop}, daemon=True)

        def write_slowly() -> None:
            with log_file.open("a") as f:
                for i in range(0, len(lines), 200):
                    f.write("\n".join(lines[i:i + 200]) + "\n")
                    f.flush()
                    time.sleep(0.25)

        log_file.write_text("")
        writer = threading.Thread(target=write_slowly, daemon=True)
        writer.start()
        shipper.start()
        time.sleep(3)
        meta = AdminClient({"bootstrap.servers": cfg.bootstrap}).list_topics(ship.topic, timeout=10)
        leader = meta.topics[ship.topic].partitions[0].leader
        assert len(meta.topics[ship.topic].partitions[0].replicas) == 3
        broker_io.stop_node(cfg, leader, kill=True)
        warehouse = Warehouse(str(tmp_path / "wh"))
        source = KafkaSource(cfg.bootstrap, subscribe=ship.topic, starting_offsets="earliest")
        ingest = threading.Thread(target=_ingest_until, args=(spark, source, warehouse, len(lines)))
        ingest.start()
        time.sleep(8)
        broker_io.start(cfg)  # the killed node rejoins and catches up
        writer.join()
        ingest.join()
        stop.set()
        shipper.join(60)
        _assert_exactly_once(spark, warehouse, lines)
    finally:
        broker_io.stop(cfg)


def test_single_broker_restarted_under_a_running_ingest_resumes_and_loses_nothing(spark, tmp_path):
    cfg = Broker(port=_port_block(2), state_dir=str(tmp_path / "kafka"))
    broker_io.start(cfg)
    try:
        topic = new_topic("logs")
        first = _hdfs_lines(3000, "before")
        produce(cfg.bootstrap, topic, [(0, ln.encode()) for ln in first])
        warehouse = Warehouse(str(tmp_path / "wh"))
        source = KafkaSource(cfg.bootstrap, subscribe=topic, starting_offsets="earliest")
        second = _hdfs_lines(2000, "after")

        def bounce() -> None:
            time.sleep(6)
            broker_io.stop(cfg)
            time.sleep(3)
            broker_io.start(cfg)
            produce(cfg.bootstrap, topic, [(0, ln.encode()) for ln in second])

        t = threading.Thread(target=bounce)
        t.start()
        error = _ingest_until(spark, source, warehouse, len(first) + len(second))
        t.join()
        assert error is None, error
        _assert_exactly_once(spark, warehouse, first + second)
    finally:
        broker_io.stop(cfg)


def test_a_topic_deleted_under_a_running_query_is_a_clear_error(spark, broker, tmp_path):
    from confluent_kafka.admin import AdminClient

    from logad.ingest import run, start_ingest

    topic = new_topic("logs")
    produce(broker.bootstrap, topic, [(0, ln.encode()) for ln in _hdfs_lines(200, "gone")])
    warehouse = Warehouse(str(tmp_path / "wh"))
    source = KafkaSource(broker.bootstrap, subscribe=topic, starting_offsets="earliest")
    run(start_ingest(spark, source, warehouse, trigger="1 second"), once=True)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.delete_topics([topic])[topic].result(30)
    deadline = time.monotonic() + 30
    while topic in admin.list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(2)  # the deletion reaches every broker's metadata cache
    produce(broker.bootstrap, topic, [(0, b"recreated")])  # a new topic, offsets from 0 again
    with pytest.raises(KafkaSourceError, match="gone.*failOnDataLoss=false"):
        run(start_ingest(spark, source, warehouse, trigger="1 second"), once=True)


def test_scram_over_tls_ship_and_ingest_with_credentials_and_refuse_a_wrong_password(spark, tmp_path):
    from logad.io.delta import table_exists, table_summary
    from logad.ship import ShipConfig, Shipper

    cfg = Broker(port=_port_block(3), state_dir=str(tmp_path / "kafka"), security="sasl_ssl",
                 users=(("alice", "s3cret"),))
    broker_io.start(cfg)
    try:
        good = broker_io.client_options(cfg)
        lines = _hdfs_lines(500, "tls")
        log_file = tmp_path / "dn" / "hdfs.log"
        log_file.parent.mkdir()
        log_file.write_text("\n".join(lines) + "\n")
        ship = ShipConfig((str(log_file),), cfg.bootstrap, host="dn1", client=good,
                          registry=str(tmp_path / "reg.json"))
        assert Shipper(ship).run(once=True).sent == len(lines)
        warehouse = Warehouse(str(tmp_path / "wh"))
        source = KafkaSource(cfg.bootstrap, subscribe=ship.topic, starting_offsets="earliest",
                             client=good)
        from logad.ingest import run, start_ingest

        run(start_ingest(spark, source, warehouse, trigger="1 second"), once=True)
        _assert_exactly_once(spark, warehouse, lines)

        bad = broker_io.client_options(cfg, "alice", "wrong")
        other = Warehouse(str(tmp_path / "wh-bad"))
        wrong = KafkaSource(cfg.bootstrap, subscribe=ship.topic, starting_offsets="earliest", client=bad)
        with pytest.raises(KafkaSourceError, match="refused the credentials"):
            run(start_ingest(spark, wrong, other, trigger="1 second"), once=True)
        assert not table_exists(other.table("raw_logs")) or table_summary(other.table("raw_logs"))["rows"] == 0
        out = subprocess.run(
            [sys.executable, "-m", "logad.cli", "ship", str(log_file), "--once", "--bootstrap", cfg.bootstrap,
             "--registry", str(tmp_path / "reg-bad.json"),
             *[a for k, v in bad.items() for a in ("--kafka-option", f"{k}={v}")]],
            capture_output=True, text=True, timeout=120)
        assert out.returncode == 2, out.stderr[-2000:]
        assert "Traceback" not in out.stderr and "logad: error:" in out.stderr.strip().splitlines()[-1]
    finally:
        broker_io.stop(cfg)


def test_records_deleted_under_the_checkpoint_stop_the_query_with_the_data_loss_error(spark, broker, tmp_path):
    """Retention (here ``deleteRecords``) removed records the checkpoint had not read yet: Spark's
    Kafka source notices (failOnDataLoss, the default) and the user gets the one-line error;
    with --fail-on-data-loss false the query goes on from the earliest record left."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient

    from logad.ingest import EVENTS, run, start_ingest
    from logad.io.delta import read_table

    topic = new_topic("logs")
    produce(broker.bootstrap, topic, [(0, ln.encode()) for ln in _hdfs_lines(200, "kept")])
    warehouse = Warehouse(str(tmp_path / "wh"))
    source = KafkaSource(broker.bootstrap, subscribe=topic, starting_offsets="earliest")
    run(start_ingest(spark, source, warehouse, trigger="1 second"), once=True)
    produce(broker.bootstrap, topic, [(0, ln.encode()) for ln in _hdfs_lines(100, "later")])
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    done = admin.delete_records([TopicPartition(topic, 0, 250)])  # 200..249 never read: lost
    for f in done.values():
        f.result(30)
    with pytest.raises(KafkaSourceError, match="failOnDataLoss=false"):
        run(start_ingest(spark, source, warehouse, trigger="1 second"), once=True)
    assert read_table(spark, warehouse.table(EVENTS)).count() == 200  # nothing skipped silently

    lenient = KafkaSource(broker.bootstrap, subscribe=topic, starting_offsets="earliest",
                          fail_on_data_loss=False)
    run(start_ingest(spark, lenient, warehouse, trigger="1 second"), once=True)
    assert read_table(spark, warehouse.table(EVENTS)).count() == 250  # 250..299 after the gap
