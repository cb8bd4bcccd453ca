"""Tier 3: the two pattern alerts on a replay of real HDFS logs (600 blocks over 38 hours of
event time; the first day is history) with two known changes after it: a burst of one template on
one host, and an error template no line ever had on another host. ``logad patterns run --once``
finds both, writes them once to ``anomalies``, sends them to the alerts topic with their raw
lines, and ``logad explain`` shows them; the only other alerts are the new exception templates of
the real incident in these logs (LogHub labels their blocks anomalous). A replayed batch gives the
same anomalies and does not count twice."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest
from test_ship import consume

from conftest import new_topic

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
BURST = [f"081111 0300{s:02d} 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block "
         f"blk_{9000 + i} terminating" for i, s in enumerate(list(range(60)) * 20)]  # 1,200 lines in a minute
NEW = [f"081111 04000{i} 99 ERROR dfs.DataNode: Disk failure on /mnt/hadoop/dfs/data{i}: No space left on device"
       for i in range(3)]


BLOCK = re.compile(r"blk_-?\d+")


def _labels() -> dict[str, str]:
    with gzip.open(SAMPLES / "HDFS_blocks600.anomaly_label.csv.gz", "rt") as f:
        return dict(line.strip().split(",") for line in f if line.startswith("blk_"))


@pytest.fixture(scope="module")
def replay(spark, tmp_path_factory):
    from logad.config import Warehouse
    from logad.ingest import ingest_files

    root = tmp_path_factory.mktemp("patterns")
    dn1, dn3 = root / "dn1.log", root / "dn3.log"
    with gzip.open(SAMPLES / "HDFS_blocks600.log.gz", "rt") as f:
        lines = f.read().splitlines()
    dn1.write_text("\n".join(sorted(lines + BURST)) + "\n")
    dn3.write_text("\n".join(NEW) + "\n")
    wh = Warehouse(str(root / "wh"))
    ingest_files(spark, wh, {str(dn1): "dn1", str(dn3): "dn3"})
    return wh, len(lines)


@pytest.mark.slow
def test_a_burst_and_a_new_error_are_found_sent_and_explained(spark, broker, replay, capsys):
    from logad.cli import main
    from logad.io.delta import read_table

    wh, _ = replay
    from logad.io.broker import create_topics

    topic = new_topic("alerts")
    create_topics(broker.bootstrap, {topic: 1})
    argv = ["patterns", "run", "--warehouse", wh.root, "--once", "--bootstrap", broker.bootstrap,
            "--alerts-topic", topic]
    assert main(argv) == 0
    out = capsys.readouterr().out
    found = read_table(spark, wh.table("anomalies")).toPandas()
    surge = found[found["kind"] == "rate_surge"]
    news = found[found["kind"] == "new_template"]
    new = news[news["template"].str.contains("Disk failure")]
    assert list(new["host"]) == ["dn3"] and list(new["hosts"].iloc[0]) == ["dn3"], found
    assert new["count"].iloc[0] == 3 and len(new["offsets"].iloc[0]) == 3
    ours = surge[(surge["host"] == "dn1") & (surge["window_start"].astype(str).str.startswith("2008-11-11 03:00"))]
    assert len(ours) == 1 and ours["count"].iloc[0] == 1200 and ours["baseline"].iloc[0] < 240, surge
    assert f"anomalies found: new_template {len(news)}, rate_surge {len(surge)}" in out, out

    alerts = {k: json.loads(v) for k, v in consume(broker.bootstrap, topic)}
    assert set(alerts) == set(found["anomaly_id"])
    a = alerts[new["anomaly_id"].iloc[0]]
    assert a["kind"] == "new_template" and a["alert_id"] == a["anomaly_id"]
    assert [x["line"] for x in a["lines"]] == NEW and {x["host"] for x in a["lines"]} == {"dn3"}
    b = alerts[ours["anomaly_id"].iloc[0]]
    assert b["kind"] == "rate_surge" and "lines in 60 s on dn1" in b["what"] and b["lines"][0]["line"] in BURST
    # the rest of the replay is LogHub's: what else alerted is the incident its labels know of
    labels = _labels()
    others = [x for i, x in alerts.items() if i not in (a["alert_id"], b["alert_id"])]
    assert others and all(x["kind"] == "new_template" and "Exception" in str(x["template"]) or
                          any(labels.get(blk) == "Anomaly" for line in x["lines"] for blk in BLOCK.findall(line["line"]))
                          for x in others), [(x["template"], [y["line"] for y in x["lines"]]) for x in others]

    assert main(["explain", new["anomaly_id"].iloc[0], "--warehouse", wh.root]) == 0
    shown = capsys.readouterr().out
    assert "new_template" in shown and all(">> dn3" in shown and line in shown for line in NEW), shown

    assert main(argv) == 0  # nothing new in events: nothing written, nothing sent
    assert read_table(spark, wh.table("anomalies")).count() == len(found)
    assert len(consume(broker.bootstrap, topic)) == len(alerts)


@pytest.mark.slow
def test_a_replayed_batch_gives_the_same_anomalies_and_counts_once(spark, replay, tmp_path):
    from logad.config import Warehouse
    from logad.io.delta import read_table
    from logad.patterns import PatternStage

    wh, _ = replay
    events = read_table(spark, wh.table("events"))
    fresh = Warehouse(str(tmp_path / "state"))  # the stage's own state, beside the replay's tables
    first = PatternStage(spark, fresh)
    rows = first.apply(events, 0, "app-1").collect()
    again = PatternStage(spark, fresh)  # a restart: the state is read back
    assert again.apply(events, 0, "app-1").collect() == rows and again.state.to_json() == first.state.to_json()
    assert {r["kind"] for r in rows} == {"new_template", "rate_surge"}
    assert again.apply(events.limit(0), 1, "app-1").collect() == []  # the next batch goes on from there


def test_no_events_table_is_a_clear_error(spark, tmp_path, capsys):
    from logad.cli import main

    assert main(["patterns", "run", "--once", "--warehouse", str(tmp_path / "wh"), "--no-alerts"]) == 2
    assert "no events table at" in capsys.readouterr().err
