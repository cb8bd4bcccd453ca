"""The local broker's life cycle, and one clear error per bad setting."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from conftest import free_port, new_topic, produce
from logad.config import Broker, KafkaSource, Warehouse
from logad.errors import BrokerError, CheckpointError, KafkaSourceError
from logad.io import broker as broker_io
from logad.io.kafka import read_kafka


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
    source = KafkaSource(f"127.0.0.1:{free_port()}", subscribe="x")
    with pytest.raises(KafkaSourceError, match="no Kafka broker answers at 127.0.0.1.*--bootstrap"):
        read_kafka(spark, source)


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
