"""The engine choice, the local broker's life cycle, and one clear error per bad setting."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys

import pytest

from conftest import free_port, new_topic, produce
from logad.config import Broker, KafkaSource, Warehouse
from logad.errors import BrokerError, CheckpointError, ConfigError, KafkaSourceError
from logad.io import broker as broker_io
from logad.io.kafka import read_kafka
from logad.session import ENGINE_KEY, engines


@pytest.fixture
def fresh_engine(spark):
    """Forget the session's engine decision for one test, and restore it after."""
    keys = [ENGINE_KEY, "spark.logad.resolved.kafka", "spark.logad.resolved.delta"]
    saved = {k: spark.conf.get(k, None) for k in keys}
    for k in keys:
        spark.conf.unset(k)
    yield spark
    for k, v in saved.items():
        spark.conf.unset(k) if v is None else spark.conf.set(k, v)


def test_auto_picks_embedded_without_the_jars_and_logs_why(fresh_engine, caplog):
    with caplog.at_level(logging.INFO, logger="logad.session"):
        choice = engines(fresh_engine)
    assert (choice.kafka, choice.delta) == ("embedded", "embedded")
    assert "KafkaSourceProvider absent" in caplog.text and "DeltaDataSource absent" in caplog.text
    assert engines(fresh_engine) is not None  # decided once: no second log line
    assert caplog.text.count("logad engine") == 1


def test_native_can_be_forced_and_says_what_is_missing(fresh_engine):
    fresh_engine.conf.set(ENGINE_KEY, "native")
    with pytest.raises(ConfigError, match="spark.jars.packages"):
        engines(fresh_engine)
    fresh_engine.conf.set(ENGINE_KEY, "turbo")
    with pytest.raises(ConfigError, match="auto, native, embedded"):
        engines(fresh_engine)
    fresh_engine.conf.set(ENGINE_KEY, "embedded")
    assert engines(fresh_engine).kafka == "embedded"


def test_broker_start_status_stop_and_a_taken_port(tmp_path):
    cfg = Broker(port=free_port(), state_dir=str(tmp_path))
    assert not broker_io.status(cfg).running
    started = broker_io.start(cfg)
    try:
        assert started.running and started.pid
        assert broker_io.start(cfg).pid == started.pid  # idempotent
        other = Broker(port=cfg.port, state_dir=str(tmp_path / "other"))
        with pytest.raises(BrokerError, match=f"port {cfg.port}.*in use"):
            broker_io.start(other)
    finally:
        assert broker_io.stop(cfg)
    assert not broker_io.status(cfg).running
    assert not broker_io.stop(cfg)


def test_missing_broker_binary_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LOGAD_TANSU_BIN", str(tmp_path / "no-such-tansu"))
    with pytest.raises(BrokerError, match="LOGAD_TANSU_BIN"):
        broker_io.start(Broker(port=free_port(), state_dir=str(tmp_path)))


def test_cli_reports_a_taken_port_in_one_line(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "logad.cli", "broker", "start", "--port",
                              str(port), "--state-dir", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith(f"logad: error: port {port}")
    assert "Traceback" not in out.stderr


def test_unreachable_broker_fails_at_once_naming_the_setting(spark):
    source = KafkaSource(f"127.0.0.1:{free_port()}", subscribe="x", poll_timeout_ms=2_000)
    with pytest.raises(KafkaSourceError, match="kafka.bootstrap.servers=127.0.0.1"):
        read_kafka(spark, source)


def test_missing_topic_and_bad_starting_offsets(spark, broker):
    with pytest.raises(KafkaSourceError, match="do not exist.*subscribePattern"):
        read_kafka(spark, KafkaSource(broker.bootstrap, subscribe=new_topic("missing")))
    topic = new_topic()
    produce(broker.bootstrap, topic, [(0, b"a"), (0, b"b")])
    with pytest.raises(ConfigError, match="startingOffsets"):
        read_kafka(spark, KafkaSource(broker.bootstrap, subscribe=topic, starting_offsets="soon"))
    with pytest.raises(KafkaSourceError, match="outside the available range"):
        read_kafka(spark, KafkaSource(broker.bootstrap, subscribe=topic,
                                      starting_offsets=f'{{"{topic}": {{"0": 99}}}}'))


def test_corrupt_checkpoint_is_named_before_the_query_starts(spark, broker, tmp_path):
    from logad.ingest import start_ingest

    topic = new_topic()
    produce(broker.bootstrap, topic, [(0, b"a")])
    warehouse = Warehouse(str(tmp_path))
    offsets = tmp_path / "checkpoints" / "ingest" / "offsets"
    offsets.mkdir(parents=True)
    (offsets / "0").write_text("v1\n{not json\n")
    with pytest.raises(CheckpointError, match="offsets/0.*--checkpoint"):
        start_ingest(spark, KafkaSource(broker.bootstrap, subscribe=topic), warehouse)


def test_broker_data_loss_stops_the_query_with_a_clear_error(spark, tmp_path):
    """The in-memory broker restarts empty: offsets in the checkpoint are gone."""
    from logad.ingest import run, start_ingest

    cfg = Broker(port=free_port(), state_dir=str(tmp_path / "b"))
    warehouse = Warehouse(str(tmp_path / "w"))
    broker_io.start(cfg)
    try:
        produce(cfg.bootstrap, "logs.lossy", [(0, f"{i}".encode()) for i in range(50)])
        source = KafkaSource(cfg.bootstrap, subscribe="logs.lossy", starting_offsets="earliest")
        run(start_ingest(spark, source, warehouse, trigger="1 second"), once=True)
        broker_io.stop(cfg)
        broker_io.start(cfg)
        produce(cfg.bootstrap, "logs.lossy", [(0, b"new")])
        with pytest.raises(KafkaSourceError, match="failOnDataLoss=false"):
            run(start_ingest(spark, source, warehouse, trigger="1 second"), once=True)
    finally:
        broker_io.stop(cfg)


def test_broker_on_s3_storage_keeps_records_across_a_restart(tmp_path, monkeypatch):
    """tansu's s3:// storage against a local S3-compatible store (moto) survives a restart."""
    import time

    import boto3
    from confluent_kafka import Consumer, TopicPartition

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "logad")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "logad-secret")
    s3_port = free_port()
    store = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                              str(s3_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{s3_port}"
    cfg = Broker(port=free_port(), state_dir=str(tmp_path), storage="s3://tansu/",
                 s3_endpoint=endpoint)
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        for _ in range(50):
            try:
                s3.create_bucket(Bucket="tansu")
                break
            except Exception:
                time.sleep(0.2)
        broker_io.start(cfg)
        produce(cfg.bootstrap, "logs.kept", [(0, f"line {i}".encode()) for i in range(100)])
        broker_io.stop(cfg)
        broker_io.start(cfg)
        consumer = Consumer({"bootstrap.servers": cfg.bootstrap, "group.id": "kept",
                             "enable.partition.eof": True})
        consumer.assign([TopicPartition("logs.kept", 0, 0)])
        values = []
        deadline = time.monotonic() + 30
        while len(values) < 100 and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is not None and m.error() is None:
                values.append(m.value().decode())
        consumer.close()
        assert values == [f"line {i}" for i in range(100)]
    finally:
        broker_io.stop(cfg)
        store.terminate()
        store.wait()
