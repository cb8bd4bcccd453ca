"""Tier 3 (no Spark): logad ship against a real broker, with rotation, restarts and filters."""

from __future__ import annotations

import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import new_topic
from logad.errors import ConfigError
from logad.ship import ShipConfig, Shipper

JAVA_ERROR = [
    "17/06/09 20:11:11 ERROR executor.Executor: Exception in task 1.0 in stage 0.0 (TID 1)",
    "java.lang.RuntimeException: boom",
    "\tat org.apache.spark.rdd.RDD.iterator(RDD.scala:287)",
    "\tat org.apache.spark.scheduler.Task.run(Task.scala:99)",
    "Caused by: java.io.IOException: disk",
    "\t... 12 more",
]


def consume(bootstrap: str, topic: str) -> list[tuple[str, str]]:
    """Every (key, value) in the topic, in partition order."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "ship-test",
                  "enable.partition.eof": True})
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    out, eof, deadline = [], set(), time.monotonic() + 30
    while len(eof) < len(parts) and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            eof.add(m.partition())
            continue
        out.append((m.key().decode(), m.value().decode()))
    c.close()
    return out


def write(path: Path, lines: list[str], mode: str = "a") -> None:
    with path.open(mode) as f:
        f.writelines(line + "\n" for line in lines)


def lines(prefix: str, n: int, start: int = 0) -> list[str]:
    return [f"{prefix} line {i}" for i in range(start, start + n)]


@contextmanager
def shipping(c: ShipConfig):
    """A Shipper running in a thread (as `logad ship` runs), stopped and joined on exit."""
    stop = threading.Event()
    shipper = Shipper(c)
    runner = threading.Thread(target=shipper.run, kwargs={"stop": stop})
    runner.start()
    try:
        yield shipper
    finally:
        stop.set()
        runner.join(30)


def wait_sent(shipper: Shipper, n: int, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while shipper.stats.sent < n and time.monotonic() < deadline:
        time.sleep(0.2)


@pytest.fixture
def cfg(broker, tmp_path):
    def make(*paths: str, **kw):
        kw.setdefault("host", "node-1")
        kw.setdefault("single_topic", new_topic("ship"))
        kw.setdefault("registry", str(tmp_path / "registry.json"))
        return ShipConfig(paths=paths, bootstrap=broker.bootstrap, **kw)
    return make


def test_ships_files_and_globs_in_order_with_host_and_file_key(cfg, broker, tmp_path):
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    write(a, lines("a", 500))
    write(b, lines("b", 300))
    (tmp_path / "note.txt").write_text("not a log\n")
    c = cfg(str(tmp_path / "*.log"))
    stats = Shipper(c).run(once=True)
    got = consume(broker.bootstrap, c.topic)
    assert stats.sent == stats.lines == 800
    assert [v for k, v in got if k == f"node-1|{a}"] == lines("a", 500)
    assert [v for k, v in got if k == f"node-1|{b}"] == lines("b", 300)


def test_topic_per_host_is_the_default(broker, tmp_path):
    f = tmp_path / "x.log"
    write(f, ["hello"])
    host = new_topic("host").replace(".", "-")
    c = ShipConfig((str(f),), broker.bootstrap, host=host, registry=str(tmp_path / "r.json"))
    assert c.topic == f"logs.{host}"
    Shipper(c).run(once=True)
    assert consume(broker.bootstrap, c.topic) == [(f"{host}|{f}", "hello")]


def test_restart_resumes_without_resending_or_skipping(cfg, broker, tmp_path):
    f = tmp_path / "app.log"
    write(f, lines("x", 100))
    c = cfg(str(f))
    Shipper(c).run(once=True)
    write(f, lines("x", 50, start=100))
    with f.open("a") as h:
        h.write("a partial line without its newline yet")
    Shipper(c).run(once=True)  # a new process: only the registry is shared
    with f.open("a") as h:
        h.write(" ... now complete\n")
    Shipper(c).run(once=True)
    got = [v for _, v in consume(broker.bootstrap, c.topic)]
    assert got == lines("x", 150) + ["a partial line without its newline yet ... now complete"]


def test_rename_rotation_while_running_loses_nothing(cfg, broker, tmp_path):
    f = tmp_path / "app.log"
    write(f, lines("old", 100))
    c = cfg(str(f), poll_interval_s=0.1)
    with shipping(c) as shipper:
        time.sleep(1.0)
        write(f, lines("old", 20, start=100))  # written just before the rename
        f.rename(tmp_path / "app.log.1")       # logrotate: rename, then a new file
        write(tmp_path / "app.log.1", lines("old", 5, start=120))  # the app still writes the old fd
        write(f, lines("new", 30))
        wait_sent(shipper, 155)
    got = [v for _, v in consume(broker.bootstrap, c.topic)]
    assert sorted(got) == sorted(lines("old", 125) + lines("new", 30))
    assert [v for v in got if v.startswith("old")] == lines("old", 125)


def test_copytruncate_rotation_keeps_the_lines_written_before_the_truncate(cfg, broker, tmp_path):
    f = tmp_path / "app.log"
    write(f, [f"{'x' * 20} {i}" for i in range(100)])  # > 1 KiB: a full fingerprint
    c = cfg(str(tmp_path / "app.log*"))
    Shipper(c).run(once=True)
    write(f, lines("late", 10))                   # not shipped yet ...
    shutil.copy(f, tmp_path / "app.log.1")        # ... when logrotate copies
    with f.open("r+") as h:                       # and truncates
        h.truncate(0)
    write(f, lines("fresh", 5))
    Shipper(c).run(once=True)
    got = [v for _, v in consume(broker.bootstrap, c.topic)]
    assert got[:100] == [f"{'x' * 20} {i}" for i in range(100)]
    assert sorted(got[100:]) == sorted(lines("late", 10) + lines("fresh", 5))


def test_include_exclude_and_multiline_java_stack_traces(cfg, broker, tmp_path):
    f = tmp_path / "executor.log"
    info = "17/06/09 20:11:10 INFO executor.Executor: Running task 1.0 in stage 0.0 (TID 1)"
    debug = "17/06/09 20:11:10 DEBUG storage.BlockManager: noise"
    write(f, [info, debug, *JAVA_ERROR, info])
    c = cfg(str(f), exclude=(r" DEBUG ",), multiline_pattern=r"^(\s+(at|\.\.\.)\s|Caused by:|java\.)")
    stats = Shipper(c).run(once=True)
    got = [v for _, v in consume(broker.bootstrap, c.topic)]
    assert got == [info, "\n".join(JAVA_ERROR), info]
    assert (stats.lines, stats.records, stats.filtered, stats.sent) == (9, 4, 1, 3)

    only_errors = cfg(str(f), include=(r" ERROR ",), multiline_pattern=r"^(\s|Caused by:|java\.)",
                      registry=str(tmp_path / "r2.json"))
    Shipper(only_errors).run(once=True)
    assert [v for _, v in consume(broker.bootstrap, only_errors.topic)] == ["\n".join(JAVA_ERROR)]


def test_bad_settings_are_named(broker, tmp_path):
    with pytest.raises(ConfigError, match="--exclude-lines"):
        ShipConfig(("x",), broker.bootstrap, exclude=("(",))
    with pytest.raises(ConfigError, match="at least one"):
        ShipConfig((), broker.bootstrap)


def test_rotation_while_stopped_finds_the_renamed_file_by_its_identity(cfg, broker, tmp_path, caplog):
    f = tmp_path / "app.log"
    write(f, [f"{'y' * 20} {i}" for i in range(100)])
    c = cfg(str(tmp_path / "*.log"))
    Shipper(c).run(once=True)
    write(f, lines("tail", 40))               # written while the shipper is stopped ...
    f.rename(tmp_path / "app.log.1")          # ... then rotated out of the glob
    write(f, lines("new", 10))
    with caplog.at_level("WARNING", logger="logad.ship.shipper"):
        Shipper(c).run(once=True)
    got = [v for _, v in consume(broker.bootstrap, c.topic)]
    assert got[:100] == [f"{'y' * 20} {i}" for i in range(100)]
    assert sorted(got[100:]) == sorted(lines("tail", 40) + lines("new", 10))  # nothing lost, nothing twice
    assert "rotated to" in caplog.text and "app.log.1" in caplog.text

    (tmp_path / "app.log.1").unlink()   # fully shipped and done: no warning on the next start
    write(f, lines("new", 5, start=10))
    f.rename(tmp_path / "app.log.2")     # now with 5 unshipped lines, and deleted while stopped
    (tmp_path / "app.log.2").unlink()
    write(f, lines("newer", 3))
    caplog.clear()
    with caplog.at_level("WARNING", logger="logad.ship.shipper"):
        Shipper(c).run(once=True)
    assert "is gone from its directory" in caplog.text and "not shipped" in caplog.text
    assert [v for _, v in consume(broker.bootstrap, c.topic)][150:] == lines("newer", 3)


def test_an_oversized_line_is_cut_at_a_character_and_the_file_goes_on(cfg, broker, tmp_path):
    from logad.ship.shipper import MAX_RECORD_BYTES

    f = tmp_path / "big.log"
    huge = "é" * 500_019  # 1,000,038 bytes, one line: over the producer's and broker's 1 MB
    write(f, ["before", huge, "after"])
    c = cfg(str(f), registry=str(tmp_path / "r-big.json"))
    stats = Shipper(c).run(once=True)
    got = [v for _, v in consume(broker.bootstrap, c.topic)]
    assert got[0] == "before" and got[2] == "after"
    assert got[1] == "é" * (MAX_RECORD_BYTES // 2)  # whole characters, decodable
    assert (stats.truncated, stats.refused, stats.sent) == (1, 0, 3)

    # a limit above what Kafka accepts: the record is refused, counted, and the rest still goes
    c2 = cfg(str(f), registry=str(tmp_path / "r-big2.json"), max_record_bytes=2_000_000)
    stats = Shipper(c2).run(once=True)
    assert [v for _, v in consume(broker.bootstrap, c2.topic)] == ["before", "after"]
    assert (stats.refused, stats.confirmed) == (1, 2)
    assert Shipper(c2).run(once=True).sent == 0  # and the registry moved past it: no crash loop


def test_sigkill_mid_file_repeats_only_what_was_past_the_confirmed_offset(cfg, broker, tmp_path):
    import json
    import os
    import signal
    import subprocess
    import sys

    f = tmp_path / "app.log"
    n = 300_000
    write(f, [f"{i:07d} {'z' * 60}" for i in range(n)])
    topic, registry = new_topic("kill"), tmp_path / "kill.json"
    cmd = [str(Path(sys.executable).parent / "logad"), "ship", str(f), "--bootstrap", broker.bootstrap,
           "--topic", topic, "--registry", str(registry), "--once"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    saved = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if registry.exists():
            saved = next(iter(json.loads(registry.read_text())["files"].values()))["offset"]
            if saved > 0:
                break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    state = next(iter(json.loads(registry.read_text())["files"].values()))
    assert 0 < state["offset"] < os.path.getsize(f), "the kill must land mid-file"
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    got = [v for _, v in consume(broker.bootstrap, topic)]
    numbers = [int(v.split()[0]) for v in got]
    assert sorted(set(numbers)) == list(range(n))  # nothing lost
    first_unconfirmed = state["offset"] // 69  # each line is 69 bytes with its newline
    repeated = len(numbers) - n
    # only lines past the saved (confirmed) offset are sent twice: a fraction of the file
    from collections import Counter

    assert all(k >= first_unconfirmed for k, c in Counter(numbers).items() if c > 1)
    assert repeated < n // 2, repeated


def gzip_file(src: Path) -> Path:
    """What logrotate's compress does: write src.gz, then delete src."""
    import gzip

    dst = src.with_name(src.name + ".gz")
    dst.write_bytes(gzip.compress(src.read_bytes()))
    src.unlink()
    return dst


def test_a_gzip_archive_is_shipped_decompressed(cfg, broker, tmp_path):
    import gzip

    archive = tmp_path / "old.log.gz"
    body = lines("gz", 3000)
    archive.write_bytes(gzip.compress(("\n".join(body)).encode()))  # no final newline, as LogHub's files
    c = cfg(str(tmp_path / "*.log*"))
    assert Shipper(c).run(once=True).sent == 3000
    assert Shipper(c).run(once=True).sent == 0  # a restart: nothing again
    assert [v for _, v in consume(broker.bootstrap, c.topic)] == body


def test_a_compressed_rotation_while_stopped_ships_only_the_unshipped_tail(cfg, broker, tmp_path):
    f = tmp_path / "app.log"
    write(f, [f"{'z' * 20} {i}" for i in range(100)])
    c = cfg(str(tmp_path / "app.log*"))
    Shipper(c).run(once=True)
    write(f, lines("tail", 10))                       # written while the shipper is stopped ...
    gzip_file(f.rename(tmp_path / "app.log.1"))       # ... then rotated and compressed
    write(f, lines("new", 5))
    stats = Shipper(c).run(once=True)
    got = [v for _, v in consume(broker.bootstrap, c.topic)]
    assert stats.sent == 15
    assert got[:100] == [f"{'z' * 20} {i}" for i in range(100)]
    assert sorted(got[100:]) == sorted(lines("tail", 10) + lines("new", 5))


def test_a_compressed_rotation_while_running_is_not_shipped_twice(cfg, broker, tmp_path):
    f = tmp_path / "app.log"
    write(f, [f"{'w' * 20} {i}" for i in range(200)])
    c = cfg(str(tmp_path / "app.log*"), poll_interval_s=0.1, close_inactive_s=0.5)
    with shipping(c) as shipper:
        time.sleep(1.0)
        rotated = f.rename(tmp_path / "app.log.1")  # logrotate with delaycompress: rename now ...
        write(f, lines("new", 30))
        time.sleep(1.5)
        gzip_file(rotated)                          # ... compress at the next rotation
        write(f, lines("new", 20, start=30))
        wait_sent(shipper, 250)
        time.sleep(1.5)  # a few more cycles: the .gz is seen and must add nothing
    got = [v for _, v in consume(broker.bootstrap, c.topic)]
    assert len(got) == 250 and sorted(got) == sorted([f"{'w' * 20} {i}" for i in range(200)] + lines("new", 50))


def test_a_gz_seen_empty_or_half_written_waits_for_its_bytes(cfg, broker, tmp_path):
    """The interleaving CI once hit by chance, step by step. logrotate's compress creates
    app.log.1.gz empty, writes it, and only then deletes app.log.1. A shipper that looks in
    between sees an empty file, or a gzip stream without its end. It must wait until it can tell
    that the .gz is the copy of app.log.1. If it took the empty file for a plain log, it shipped the
    whole copy again (480 records for 250)."""
    import gzip

    f = tmp_path / "app.log"
    write(f, [f"{'w' * 20} {i}" for i in range(200)])
    c = cfg(str(tmp_path / "app.log*"))
    shipper = Shipper(c)
    shipper.run(once=True)
    rotated = f.rename(tmp_path / "app.log.1")
    write(f, lines("new", 30))
    shipper.run(once=True)
    assert shipper.stats.sent == 230
    body = gzip.compress(rotated.read_bytes())
    gz = tmp_path / "app.log.1.gz"
    for part in (b"", body[:12], body[: len(body) // 2], body):  # created, being written, written
        gz.write_bytes(part)
        shipper.run(once=True)
        assert shipper.stats.sent == 230
    rotated.unlink()
    write(f, lines("new", 20, start=30))
    shipper.run(once=True)
    shipper.run(once=True)
    got = [v for _, v in consume(broker.bootstrap, c.topic)]
    assert sorted(got) == sorted([f"{'w' * 20} {i}" for i in range(200)] + lines("new", 50))
    copy = next(s for s in shipper.registry.files.values() if s.path == str(gz))
    assert copy.compressed and copy.offset == len(gzip.decompress(body))
