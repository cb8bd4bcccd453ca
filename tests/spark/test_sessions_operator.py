"""Tier 2: what an operator meets with `logad sessions run`: an HDFS block is one session however
long its quiet gaps, a second host's history that arrives after the watermark still joins its
blocks, `--once` says what stays open, and a run that rejects much of its input fails loudly."""

from __future__ import annotations

import datetime as dt
import gzip
import re
from pathlib import Path

import pytest

from logad.cli import main
from logad.config import Warehouse
from logad.ingest import REJECTS, ingest_files
from logad.io.delta import read_table
from logad.sessions.labels import load_labels
from logad.sessions.rules import rules_for
from logad.sessions.spark import SESSIONS, open_sessions, read_labels, sessionize

pytestmark = pytest.mark.slow
SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
LOG, LABELS = SAMPLES / "HDFS_blocks600.log.gz", SAMPLES / "HDFS_blocks600.anomaly_label.csv.gz"


def blocks(lines: list[str]) -> set[str]:
    return {b for ln in lines for b in re.findall(r"blk_-?\d+", ln)}


def stamp(line: str) -> int:
    return int(dt.datetime.strptime(line[:13], "%y%m%d %H%M%S").timestamp())


@pytest.fixture(scope="module")
def two_hosts(spark, tmp_path_factory):
    """The 600-block sample (39 hours of a cluster) split between two datanodes' logs: dn2 was
    down for the last hour and ships every other line of that hour after dn1's were sessionized,
    hours behind the watermark."""
    tmp = tmp_path_factory.mktemp("operator")
    lines = gzip.decompress(LOG.read_bytes()).decode().splitlines()
    end = max(stamp(ln) for ln in lines)
    dn2 = {i for i, ln in enumerate(lines) if i % 2 and stamp(ln) >= end - 3600}
    files = {"dn1": tmp / "dn1.log", "dn2": tmp / "dn2.log"}
    files["dn1"].write_text("".join(ln + "\n" for i, ln in enumerate(lines) if i not in dn2))
    files["dn2"].write_text("".join(lines[i] + "\n" for i in sorted(dn2)))
    wh = Warehouse(str(tmp / "wh"))
    load_labels(spark, wh, "hdfs", str(LABELS))
    return wh, files, lines


def test_a_late_host_joins_its_blocks_and_once_reports_what_stays_open(spark, two_hosts, capsys):
    wh, files, lines = two_hosts
    ingest_files(spark, wh, {str(files["dn1"]): "dn1"}, topic="logs.dn1")
    argv = ["sessions", "run", "--warehouse", wh.root, "--system", "hdfs", "--once", "--trigger", "1 second"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    # a block closes after a day without a line: the blocks of the last day are still open, and
    # --once says how many
    still = open_sessions(spark, wh.checkpoint("sessions"))["hdfs"]["open"]
    closed = read_table(spark, wh.table(SESSIONS)).count()
    assert still > 100 and closed > 100 and still + closed == 600
    assert f"hdfs: {still:,} sessions" in out and "still open" in out

    ingest_files(spark, wh, {str(files["dn2"]): "dn2"}, topic="logs.dn2")  # an hour behind
    assert main(argv) == 0
    capsys.readouterr()
    assert read_table(spark, wh.table(REJECTS)).where("stage = 'sessions'").count() == 0  # nothing lost
    # time moves on: a line two days later closes every block on its idle deadline
    later = Path(wh.root) / "later.log"
    two_days = dt.datetime.fromtimestamp(stamp(lines[-1]) + 2 * 86400)
    later.write_text(two_days.strftime("%y%m%d %H%M%S") + " 19 INFO dfs.DataNode: Deleting block blk_1\n")
    ingest_files(spark, wh, {str(later): "dn3"}, topic="logs.dn3")
    assert main(argv) == 0
    # only blk_1's line is left, waiting for the watermark to pass it
    assert "hdfs: 0 sessions (oldest from None), 1 lines waiting" in capsys.readouterr().out

    stream = {r.key: r for r in read_table(spark, wh.table(SESSIONS)).collect()}
    assert len(stream) == 600 and sorted(stream) == sorted(blocks(lines))  # one session per block
    assert {r.close_reason for r in stream.values()} == {"idle"}
    events = read_table(spark, wh.table("events")).where("host IN ('dn1', 'dn2')")
    batch = {r.key: r for r in sessionize(events, [rules_for("hdfs")], read_labels(spark, wh)).collect()}
    for key, s in stream.items():  # the same lines in the same order as the batch, labels included
        b = batch[key]
        assert list(zip(s.topics, s.offsets, strict=True)) == list(zip(b.topics, b.offsets, strict=True)), key
        assert (s.label, s.label_source) == (b.label, b.label_source)
    # late: dn2's lines at or below the watermark dn1's run left (its newest line minus 1 minute)
    watermark = max(r.ts for r in events.where("host = 'dn1'").select("ts").collect()) - dt.timedelta(minutes=1)
    late = [r.content for r in events.where("host = 'dn2'").collect() if r.ts <= watermark]
    assert sum(s.late_events for s in stream.values()) == sum(len(blocks([c])) for c in late) > 100


def test_late_reject_fails_the_once_run_loudly(spark, two_hosts, capsys):
    wh, _, _ = two_hosts  # events of dn1, dn2 (later) and dn3 are there from the test above
    argv = ["sessions", "run", "--warehouse", wh.root, "--system", "hdfs", "--once", "--trigger", "1 second",
            "--late", "reject", "--query-name", "sessions_strict", "--max-events", "100000"]
    code = main(argv)
    out = capsys.readouterr().out
    # one query reads dn1's, dn2's and dn3's events in its first batch: nothing is late yet...
    assert code == 0, out
    ingest_files(spark, wh, {str(Path(wh.root) / "later.log"): "dn4"}, topic="logs.dn4")
    events = read_table(spark, wh.table("events"))
    # ...until a host ships lines from before the watermark
    from pyspark.sql import functions as F

    from logad.io.delta import append_table

    old = events.where("host = 'dn1' AND content LIKE '%blk_%'").orderBy("offset").limit(50).collect()
    append_table(spark.createDataFrame(old, schema=events.schema).withColumn("host", F.lit("dn5"))
                 .withColumn("topic", F.lit("logs.dn5")), wh.table("events"))
    code = main(argv)
    out = capsys.readouterr().out
    assert code == 3 and "rejected 50 of" in out and "--max-reject-share" in out
    late = read_table(spark, wh.table(REJECTS)).where("reason = 'late_event'").count()
    assert late == 50
