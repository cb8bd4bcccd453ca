"""Tier 3: Spark labels itself. A real application on a local cluster (a standalone master and
worker: the executor's log in the worker's ``work/<app>/<executor>/stderr``, as on a cluster)
writes a compressed, rolling event log; one task throws, one kills its executor.
``logad sessions labels --spark-event-logs`` labels every attempt from Spark's account, and every
Task workflow cut from the executor logs finds its label. Plain, gzip and truncated copies of the
same log give the same labels or rejects, never a wrong label."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

APP = """
import sys, time
from pyspark import TaskContext
from pyspark.sql import SparkSession
from logad.lab.faults import executor_pid
spark = (SparkSession.builder.master("local-cluster[1,2,1024]").appName("logad-eventlog-labels")
         .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1")
         .config("spark.pyspark.python", sys.executable)
         .config("spark.eventLog.enabled", "true").config("spark.eventLog.dir", sys.argv[1])
         .config("spark.eventLog.compress", "true").config("spark.eventLog.compression.codec", "zstd")
         .config("spark.eventLog.rolling.enabled", "true").getOrCreate())
def work(i):
    import os, signal
    first = TaskContext.get().attemptNumber() == 0
    if i == 3 and first:
        raise RuntimeError("record batch 3 failed")
    if i == 5 and first:
        os.kill(executor_pid(), signal.SIGKILL)  # the executor dies mid-task
        time.sleep(60)
    time.sleep(0.3)
    return i
spark.sparkContext.parallelize(range(8), 8).map(work).count()
print("APP", spark.sparkContext.applicationId)
spark.stop()
"""


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """(event log dir, worker dir, application id) of one real application; its work folder is
    removed afterwards (a local cluster's worker writes under $SPARK_HOME/work)."""
    import shutil

    import pyspark

    events = tmp_path_factory.mktemp("eventlog") / "eventlogs"
    events.mkdir()
    work = Path(pyspark.__file__).parent / "work"
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    out = subprocess.run([sys.executable, "-c", APP, str(events)], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    app_id = re.search(r"APP (\S+)", out.stdout).group(1)
    yield events, work, app_id
    shutil.rmtree(work / app_id, ignore_errors=True)


def _labels(spark, wh) -> dict[str, tuple[int, str, str]]:
    from logad.io.delta import read_small

    t = read_small(spark, wh.table("labels")).to_pylist()
    return {r["key"]: (r["label"], r["label_source"], r["reason"]) for r in t}


@pytest.mark.slow
def test_every_attempt_is_labelled_from_a_rolling_compressed_event_log(spark, app, tmp_path, capsys):
    from logad.cli import main
    from logad.config import Warehouse

    events, _, app_id = app
    (rolled,) = events.iterdir()
    assert rolled.name == f"eventlog_v2_{app_id}" and any(p.suffix == ".zstd" for p in rolled.iterdir())
    wh = Warehouse(str(tmp_path / "wh"))
    assert main(["sessions", "labels", "--warehouse", wh.root, "--spark-event-logs", str(events)]) == 0
    out = capsys.readouterr().out
    assert "of 1 applications (1 event logs)" in out and "ExceptionFailure 1" in out, out
    labels = _labels(spark, wh)
    by_tid = {int(k.split("TID ")[1]): v for k, v in labels.items()}
    assert all(k.startswith(f"{app_id}|TID ") for k in labels)
    anomalous = {tid: reason for tid, (y, _, reason) in by_tid.items() if y}
    # by Spark's account one attempt threw and the executor took the one or two it ran with it;
    # their retries and every other task succeeded
    ends = Counter(r.split(":")[0] for r in anomalous.values())
    assert ends["ExceptionFailure"] == 1 and 1 <= ends["ExecutorLostFailure"] <= 2 and len(ends) == 2, ends
    assert "RuntimeError: record batch 3 failed" in next(r for r in anomalous.values() if "Exception" in r)
    assert len(by_tid) >= 10 and {src for _, src, _ in by_tid.values()} == {"spark:eventlog"}
    assert all(reason == "Success" for tid, (y, _, reason) in by_tid.items() if not y)
    # run again: the same rows, not twice as many
    assert main(["sessions", "labels", "--warehouse", wh.root, "--spark-event-logs", str(events)]) == 0
    assert _labels(spark, wh) == labels


@pytest.mark.slow
def test_the_workflows_cut_from_the_worker_dir_find_their_labels(spark, app, tmp_path):
    from logad.config import Warehouse
    from logad.ingest import ingest_files
    from logad.io.delta import read_table
    from logad.sessions.eventlogs import load_event_log_labels
    from logad.sessions.rules import rules_for
    from logad.sessions.spark import read_labels, sessionize

    events, work, app_id = app
    logs = sorted((work / app_id).glob("*/stderr"))
    assert len(logs) == 2  # the executor that died and the one the worker started in its place
    wh = Warehouse(str(tmp_path / "wh"))
    ingest_files(spark, wh, {str(p): "worker-1" for p in logs})
    report = load_event_log_labels(spark, wh, str(events))
    sessions = sessionize(read_table(spark, wh.table("events")), [rules_for("spark")], read_labels(spark, wh))
    got = {r["name"]: r for r in sessions.where("system = 'spark'").collect()}
    labels = {int(k.split("TID ")[1]): v[0] for k, v in _labels(spark, wh).items()}
    assert len(got) == report.attempts == len(labels)  # every attempt's workflow, and only those
    for name, s in got.items():
        assert s["label_source"] == "spark:eventlog" and s["label"] == labels[int(name[4:])], name
    assert 2 <= sum(s["label"] for s in got.values()) == sum(labels.values())
    # the attempts whose executor died have no end line in its log: Spark's account labels them
    lost = [s for s in got.values() if s["label"] and s["close_reason"] != "exception"]
    assert lost and all("/0/stderr" in s["key"] for s in lost)


@pytest.mark.slow
def test_plain_gzip_and_truncated_copies_label_alike_or_reject(spark, app, tmp_path):
    from logad.config import Warehouse
    from logad.io.delta import read_table
    from logad.sessions.eventlogs import load_event_log_labels, read_event_logs

    events, _, app_id = app
    ((_, lines, error),) = read_event_logs(spark, str(events))
    assert lines and not error
    text = "\n".join(lines)
    copies = tmp_path / "copies"
    copies.mkdir()
    (copies / app_id).write_text(text)  # an uncompressed single-file log, as Spark names it
    with gzip.open(copies / "app-20991231000000-0009.json.gz", "wt") as f:  # a gzip copy of another run
        f.write(text.replace(app_id, "app-20991231000000-0009"))
    wh = Warehouse(str(tmp_path / "wh"))
    report = load_event_log_labels(spark, wh, str(copies))
    reference = Warehouse(str(tmp_path / "ref"))
    load_event_log_labels(spark, reference, str(events))
    want = _labels(spark, reference)
    got = _labels(spark, wh)
    assert report.applications == 2 and report.rejects == 0
    assert {k: v for k, v in got.items() if k.startswith(app_id)} == want
    assert {k.replace("app-20991231000000-0009", app_id): v for k, v in got.items()
            if not k.startswith(app_id)} == want

    # a log the driver never finished, cut mid-line, beside a file that is no event log
    cut = tmp_path / "cut"
    cut.mkdir()
    end = next(i for i, x in enumerate(lines) if '"SparkListenerTaskEnd"' in x and '"Task ID":6,' in x)
    (cut / "app-20991231000000-0010.inprogress").write_text(
        "\n".join(lines[:end]).replace(app_id, "app-20991231000000-0010") + "\n" + lines[end][:50])
    (cut / "notes.txt").write_text("not an event log\n")
    report = load_event_log_labels(spark, wh, str(cut))
    assert report.reject_reasons.get("truncated_event_log") == 1 and report.reject_reasons["bad_event_log"] == 1
    assert report.reject_reasons.get("unfinished_task", 0) >= 1
    labelled = {k.split("|")[1]: v for k, v in _labels(spark, wh).items() if k.startswith("app-20991231000000-0010")}
    for tid, v in labelled.items():  # what it does label, it labels as the whole log does
        assert v == want[f"{app_id}|{tid}"], tid
    assert "TID 6" not in labelled  # its end line was cut: no label, a reject
    rejects = read_table(spark, wh.table("rejects")).where("stage = 'labels'")
    assert rejects.count() == report.rejects
    load_event_log_labels(spark, wh, str(cut))  # again: the directory's rejects are replaced, not added
    assert read_table(spark, wh.table("rejects")).where("stage = 'labels'").count() == report.rejects
    assert str(Path(str(cut))) in rejects.first()["key"]
