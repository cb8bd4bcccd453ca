"""Tier 3: Kafka -> Delta survives being killed (SIGKILL, not a polite stop) mid-stream, 5 times.

A producer keeps writing while the ingest process is killed several times at random moments and
restarted on the same checkpoint; in the end every record is in the table exactly once.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import new_topic, produce

pytestmark = pytest.mark.slow

TOTAL, CHUNK, PARTITIONS = 24_000, 1_000, 3


def version(table: str) -> int:
    from deltalake import DeltaTable

    return DeltaTable(table).version() if DeltaTable.is_deltatable(table) else -1


def ingest_cmd(bootstrap: str, topic: str, warehouse: str, once: bool) -> list[str]:
    cmd = [sys.executable, "-m", "logad.cli", "ingest", "--bootstrap", bootstrap, "--subscribe",
           topic, "--warehouse", warehouse, "--trigger", "1 second", "--master", "local[2]",
           "--max-offsets-per-trigger", "1500"]
    return cmd + (["--once"] if once else [])


def test_killed_and_restarted_ingest_lands_every_record_once(broker, spark, tmp_path):
    from logad.config import Warehouse
    from logad.io.delta import read_table

    topic = new_topic("kill")
    warehouse = Warehouse(str(tmp_path / "wh"))
    table = warehouse.table("raw_logs")
    produce(broker.bootstrap, topic, [(i % PARTITIONS, f"v{i}".encode()) for i in range(CHUNK)],
            partitions=PARTITIONS)

    def keep_producing() -> None:
        for start in range(CHUNK, TOTAL, CHUNK):
            produce(broker.bootstrap, topic, [(i % PARTITIONS, f"v{i}".encode())
                                              for i in range(start, start + CHUNK)], PARTITIONS)
            time.sleep(1.5)

    producer = threading.Thread(target=keep_producing, daemon=True)
    producer.start()
    rng = random.Random(7)
    kills = 0
    for run in range(5):
        log = tmp_path / f"ingest-{run}.log"
        proc = subprocess.Popen(ingest_cmd(broker.bootstrap, topic, warehouse.root, once=False),
                                stdout=subprocess.DEVNULL, stderr=log.open("w"),
                                start_new_session=True)
        seen = version(table)
        deadline = time.monotonic() + 180
        while version(table) <= seen + 1 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(rng.uniform(0.1, 2.0))  # land inside a micro-batch, most of the time
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
    producer.join()
    final = subprocess.run(ingest_cmd(broker.bootstrap, topic, warehouse.root, once=True),
                           capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-3000:]

    raw = read_table(spark, table)
    events = read_table(spark, warehouse.table("events"))
    rejects = read_table(spark, warehouse.table("rejects"))
    assert kills == 5
    assert events.count() + rejects.count() == TOTAL
    assert events.select("partition", "offset").distinct().count() == events.count()
    assert raw.count() == TOTAL
    assert raw.select("partition", "offset").distinct().count() == TOTAL
    assert sorted(r.line for r in raw.select("line").collect()) == sorted(f"v{i}" for i in range(TOTAL))
