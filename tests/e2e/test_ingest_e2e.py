"""Tier 3: real LogHub lines shipped from files through a real broker into events and rejects."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import pytest

from conftest import new_topic, produce
from logad.config import KafkaSource, Warehouse
from logad.ingest import EVENTS, RAW_LOGS, REJECTS, rejects_written, run, start_ingest
from logad.io.delta import batch_app_id, read_table, rows_added
from logad.ship import ShipConfig, Shipper

pytestmark = pytest.mark.slow
SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


def expected_hdfs(line: str) -> tuple:
    date, time, _pid, level, rest = line.split(" ", 4)
    component, content = rest.split(":", 1)
    ts = dt.datetime.strptime(date + time, "%y%m%d%H%M%S")
    return ts, level, component, content[1:] if content.startswith(" ") else content


def expected_spark(line: str) -> tuple:
    date, time, level, rest = line.split(" ", 3)
    component, content = rest.split(":", 1)
    ts = dt.datetime.strptime(f"{date} {time}", "%y/%m/%d %H:%M:%S")
    return ts, level, component, content[1:] if content.startswith(" ") else content


def expected_bgl(line: str) -> tuple:
    parts = line.split(" ", 9)
    micros = int(parts[4].rsplit(".", 1)[1])
    ts = dt.datetime.fromtimestamp(int(parts[1]), dt.UTC).replace(tzinfo=None)
    level = "WARN" if parts[8] == "WARNING" else parts[8]  # logad's one normalisation of levels
    return ts + dt.timedelta(microseconds=micros), level, parts[7], parts[9] if len(parts) > 9 else ""


def test_shipped_real_lines_arrive_parsed_and_garbage_is_rejected(spark, broker, tmp_path):
    prefix = new_topic("e2e")
    hosts = {"dn1": ("HDFS_first20000.log.gz", expected_hdfs), "exec7": ("Spark_2k.log.gz", expected_spark),
             "r02": ("BGL_2k.log.gz", expected_bgl)}
    shipped = {}
    for host, (name, _) in hosts.items():
        text = gzip.decompress((SAMPLES / name).read_bytes()).decode()
        path = tmp_path / host / name.removesuffix(".gz")
        path.parent.mkdir()
        path.write_text(text if text.endswith("\n") else text + "\n")
        cfg = ShipConfig((str(path),), broker.bootstrap, host=host, topic_prefix=prefix,
                         registry=str(tmp_path / f"{host}.json"))
        Shipper(cfg).run(once=True)
        shipped[f"{prefix}.{host}"] = (str(path), [ln.rstrip("\r") for ln in text.splitlines()])
    garbage = [b"\xff\xfe\xfd", b"", b"  ", b"z" * 70_000, b"081109 253518 143 INFO a.B: hour 25"]
    produce(broker.bootstrap, f"{prefix}.junk", [(0, g) for g in garbage])

    warehouse = Warehouse(str(tmp_path / "wh"))
    source = KafkaSource(broker.bootstrap, subscribe_pattern=rf"{prefix}\..*",
                         starting_offsets="earliest", max_offsets_per_trigger=15_000)
    run(start_ingest(spark, source, warehouse, trigger="1 second"), once=True)

    raw = read_table(spark, warehouse.table(RAW_LOGS))
    events = read_table(spark, warehouse.table(EVENTS))
    rejects = read_table(spark, warehouse.table(REJECTS))
    total = sum(len(lines) for _, lines in shipped.values()) + len(garbage)
    assert raw.count() == total
    assert events.count() + rejects.count() == total  # counts in = counts out
    assert sorted(r.reason for r in rejects.collect()) == sorted(
        ["undecodable", "empty", "empty", "too_long", "bad_timestamp"])
    # what --max-reject-share counts: the query's own commits in the Delta log, the table unread
    assert rejects_written(warehouse, "ingest", -1) == 5
    assert rows_added(warehouse.table(EVENTS), batch_app_id(warehouse.checkpoint("ingest"), "ingest"),
                      -1) == events.count()
    assert rejects_written(warehouse, "another_query", -1) == 0

    # every parsed line has a template id the templates table knows; the counts add up
    from logad.templates.stream import TEMPLATES

    templates = {r.template_id: r for r in read_table(spark, warehouse.table(TEMPLATES)).collect()}
    assert events.where("template_id IS NULL").count() == 0
    assert {r.template_id for r in events.select("template_id").distinct().collect()} <= set(templates)
    assert sum(r["count"] for r in templates.values()) == events.count()
    receiving = {r.template_id for r in events.where("content LIKE 'Receiving block %'")
                 .select("template_id").distinct().collect()}
    assert [templates[t].text for t in receiving] == ["Receiving block <*> src: <*>:<*> dest: <*>:<*>"]

    for topic, (path, lines) in shipped.items():
        host = topic.rsplit(".", 1)[1]
        expect = hosts[host][1]
        got = (events.where(f"topic = '{topic}'").orderBy("offset")
               .select("host", "source", "ts", "level", "component", "content").collect())
        assert len(got) == len(lines), topic
        for row, line in zip(got, lines, strict=True):
            assert (row.host, row.source) == (host, path)
            assert (row.ts, row.level, row.component, row.content) == expect(line), line


def _last_commit(checkpoint: Path) -> int:
    return max(int(p.name) for p in (checkpoint / "commits").iterdir() if p.name.isdigit())


def test_sigterm_stops_between_batches_and_the_restart_replays_nothing(spark, broker, tmp_path):
    """SIGTERM to ``logad ingest``: the batch in flight commits to every table before the query
    stops, so the tables and the checkpoint agree; the restart then loses and doubles nothing."""
    import json
    import signal
    import subprocess
    import sys
    import time

    from logad.io.delta import committed_version

    prefix = new_topic("stop")
    lines = gzip.decompress((SAMPLES / "HDFS_first20000.log.gz").read_bytes()).splitlines()
    produce(broker.bootstrap, f"{prefix}.dn1", [(0, ln) for ln in lines])
    wh = tmp_path / "wh"
    cmd = [str(Path(sys.executable).parent / "logad"), "ingest", "--bootstrap", broker.bootstrap,
           "--subscribe-pattern", rf"{prefix}\..*", "--warehouse", str(wh), "--master", "local[2]",
           "--max-offsets-per-trigger", "1500", "--trigger", "0 seconds"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    log_lines: list[str] = []
    assert proc.stderr is not None
    for line in proc.stderr:  # batches run back to back: the signal lands inside one
        log_lines.append(line)
        if "ingest batch 2:" in line:
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            break
    _, rest = proc.communicate(timeout=180)
    log_text = "".join(log_lines) + rest
    assert proc.returncode == 0, log_text[-3000:]
    assert "SIGTERM received" in log_text and "stopped between batches" in log_text, log_text[-3000:]

    checkpoint = wh / "checkpoints" / "ingest"
    app_id = "logad-" + json.loads((checkpoint / "metadata").read_text())["id"]
    last = _last_commit(checkpoint)
    assert last >= 2
    for table in (RAW_LOGS, EVENTS):  # no table is ahead of (or behind) the checkpoint
        assert committed_version(str(wh / "tables" / table), app_id) == last, table
    from deltalake import DeltaTable

    snapshot = DeltaTable(str(wh / "tables" / "templates")).to_pyarrow_table().to_pylist()
    assert {(r["app_id"], r["batch_id"]) for r in snapshot} == {(app_id, last)}

    subprocess.run([*cmd[:-4], "--once"], check=True, capture_output=True, timeout=300)
    events = read_table(spark, str(wh / "tables" / EVENTS))
    assert events.count() == len(lines)
    assert events.select("offset").distinct().count() == len(lines)
    snapshot = DeltaTable(str(wh / "tables" / "templates")).to_pyarrow_table().to_pylist()
    assert sum(r["count"] for r in snapshot) == len(lines), "no batch counted twice"
    assert events.where("template_id IS NULL").count() == 0
