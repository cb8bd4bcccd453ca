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
    with pytest.raises(CheckpointError, match="offsets/0.*--query-name"):
        start_ingest(spark, KafkaSource(broker.bootstrap, subscribe=topic), warehouse)


def _one_line_error(capsys, argv: list[str]) -> str:
    """Run the CLI in-process; it must exit 2 with one ``logad: error:`` line, no traceback."""
    from logad.cli import main

    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own usage errors
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith(("logad: error:", "logad ", "usage:"))]
    assert lines and lines[-1].startswith(("logad: error:", "logad ")), err
    return lines[-1]


def test_every_wrong_turn_of_an_operator_is_one_line(spark, broker, tmp_path, capsys):
    import glob

    dead = f"127.0.0.1:{free_port()}"
    log = tmp_path / "a.log"
    log.write_text("hello\n")
    wh = str(tmp_path / "wh")

    assert "not an interval" in _one_line_error(capsys, ["ingest", "--trigger", "banana", "--warehouse", wh])
    assert "cannot reach Kafka" in _one_line_error(capsys, ["produce", str(log), "--topic", "t", "--bootstrap", dead])
    assert "cannot reach Kafka" in _one_line_error(capsys, ["ship", str(log), "--bootstrap", dead, "--once",
                                                            "--registry", str(tmp_path / "r.json")])
    assert "no Kafka broker answers" in _one_line_error(capsys, ["ingest", "--bootstrap", dead, "--warehouse", wh,
                                                                 "--once"])

    # a checkpoint whose Kafka offset is not a number (hand-edited, or a bad disk)
    topic = new_topic()
    produce(broker.bootstrap, topic, [(0, b"a")])
    offsets = tmp_path / "wh" / "checkpoints" / "ingest" / "offsets"
    offsets.mkdir(parents=True)
    (offsets / "0").write_text('v1\n{"batchWatermarkMs":0,"batchTimestampMs":0,"conf":{}}\n'
                               f'{{"{topic}":{{"0":"abc"}}}}\n')
    line = _one_line_error(capsys, ["ingest", "--bootstrap", broker.bootstrap, "--subscribe", topic,
                                    "--warehouse", wh, "--once"])
    assert "offsets/0" in line and "not a whole number" in line and "--query-name" in line

    # a damaged Delta log
    spark.range(3).selectExpr("'s1' AS session_id", "'hdfs' AS system").write.format("delta").save(
        str(tmp_path / "wh" / "tables" / "sessions"))
    commit = sorted(glob.glob(str(tmp_path / "wh" / "tables" / "sessions" / "_delta_log" / "*.json")))[-1]
    with open(commit, "w") as f:
        f.write("{garbage")
    line = _one_line_error(capsys, ["sessions", "show", "--warehouse", wh])
    assert "00000000000000000000.json is damaged" in line and "restore it" in line


def test_an_unexpected_failure_is_one_line_and_its_traceback_is_behind_verbose(monkeypatch, capsys, tmp_path):
    from logad import cli
    from logad.cli import kafka

    def broken(_args):
        raise RuntimeError("the disk caught fire\n\tat somewhere deep")

    monkeypatch.setattr(kafka, "cmd_ship", broken)
    argv = ["ship", str(tmp_path / "a.log"), "--bootstrap", "127.0.0.1:1"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.strip() == ("logad: unexpected error: RuntimeError: the disk caught fire (run with -v for "
                           "the traceback, and please report it)")
    with pytest.raises(RuntimeError, match="caught fire"):
        cli.main(["-v", *argv])
