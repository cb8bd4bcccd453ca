"""Spark's event logs as labels, without Spark: every end reason Spark writes, the run a TID
belongs to, and the bad input (a line that is not JSON, a log cut mid-line, an attempt whose end
the log does not hold) that must give a reject and never a label."""

from __future__ import annotations

import json

import pytest

from logad.sessions.eventlogs import label_rows, parse_event_log, run_key, run_of_path


def _task(kind: str, tid: int, stage: int = 0, index: int | None = None, attempt: int = 0, executor: str = "0",
          speculative: bool = False, reason: dict | None = None) -> str:
    e = {"Event": kind, "Stage ID": stage, "Stage Attempt ID": 0,
         "Task Info": {"Task ID": tid, "Index": tid if index is None else index, "Attempt": attempt,
                       "Executor ID": executor, "Host": "127.0.0.1", "Speculative": speculative,
                       "Launch Time": 1000 + tid, "Finish Time": 2000 + tid if kind.endswith("End") else 0}}
    if reason is not None:
        e["Task End Reason"] = reason
    return json.dumps(e)


def _log(app_id: str = "app-20261203150000-0001", attempt: str | None = None, end: bool = True) -> list[str]:
    """One application as Spark writes it: every way a task attempt ends (the reasons' fields as
    Spark 4.0's JsonProtocol names them)."""
    start = {"Event": "SparkListenerApplicationStart", "App Name": "etl", "App ID": app_id, "Timestamp": 1}
    if attempt is not None:
        start["App Attempt ID"] = attempt
    lines = [json.dumps({"Event": "SparkListenerLogStart", "Spark Version": "4.0.0"}), json.dumps(start),
             json.dumps({"Event": "SparkListenerJobStart", "Job ID": 0, "Stage IDs": [0, 1],
                         "Properties": {"spark.jobGroup.id": "etl_join"}})]
    ends = {
        0: {"Reason": "Success"},
        1: {"Reason": "ExceptionFailure", "Class Name": "org.apache.spark.api.python.PythonException",
            "Description": "Traceback (most recent call last):\n  ...\nRuntimeError: record batch 1 failed"},
        2: {"Reason": "TaskKilled", "Kill Reason": "another attempt succeeded"},  # a speculative copy lost
        3: {"Reason": "ExecutorLostFailure", "Executor ID": "1", "Exit Caused By App": True,
            "Loss Reason": "Command exited with code 137"},
        4: {"Reason": "FetchFailed", "Block Manager Address": {}, "Shuffle ID": 0, "Map ID": 3,
            "Message": "org.apache.spark.shuffle.FetchFailedException: Failed to connect\n at ..."},
        5: {"Reason": "TaskResultLost"},
        6: {"Reason": "TaskKilled", "Kill Reason": "killed by the operator"},
        7: {"Reason": "Success"},
    }
    for tid in ends:
        lines.append(_task("SparkListenerTaskStart", tid, speculative=tid == 7))
    for tid, reason in ends.items():
        lines.append(_task("SparkListenerTaskEnd", tid, speculative=tid == 7, reason=reason))
    lines.append(_task("SparkListenerTaskStart", 8))  # never ends: the application stops with it in flight
    if end:
        lines.append(json.dumps({"Event": "SparkListenerApplicationEnd", "Timestamp": 9}))
    return lines


def test_every_end_reason_gets_the_label_spark_gives_it():
    el = parse_event_log(_log(), "ev/app-1")
    got = {a.tid: (a.status, a.label) for a in el.attempts}
    assert got == {0: ("Success", 0), 1: ("ExceptionFailure", 1), 2: ("TaskKilled", 0),
                   3: ("ExecutorLostFailure", 1), 4: ("FetchFailed", 1), 5: ("TaskResultLost", 1),
                   6: ("TaskKilled", 1), 7: ("Success", 0), 8: ("Unknown", 1)}
    assert el.complete and not el.rejects
    a = {a.tid: a for a in el.attempts}
    assert a[1].detail == "org.apache.spark.api.python.PythonException: RuntimeError: record batch 1 failed"
    assert a[3].detail == "Command exited with code 137" and a[7].speculative
    assert a[4].detail == "org.apache.spark.shuffle.FetchFailedException: Failed to connect"
    assert a[0].job_group == "etl_join" and a[0].key == "app-20261203150000-0001|TID 0"


def test_the_first_end_of_an_attempt_counts_not_a_later_resubmission():
    lines = _log()
    lines.insert(-1, _task("SparkListenerTaskEnd", 0, reason={"Reason": "Resubmitted"}))
    assert {a.tid: a.status for a in parse_event_log(lines, "x").attempts}[0] == "Success"


def test_a_log_cut_mid_line_rejects_that_line_and_labels_no_attempt_it_does_not_end():
    lines = _log(end=False)
    lines.append(_task("SparkListenerTaskEnd", 8, reason={"Reason": "Success"})[:40])  # the writer stopped mid-line
    el = parse_event_log(lines, "ev/app-1.inprogress")
    assert not el.complete
    assert [r["reason"] for r in el.rejects] == ["truncated_event_log", "unfinished_task"]
    assert el.rejects[1]["detail"].startswith("TID 8 started")  # no 'Unknown' label: the log may go on
    assert 8 not in {a.tid for a in el.attempts} and len(el.attempts) == 8


def test_a_bad_line_in_the_middle_is_a_reject_and_the_rest_is_read():
    lines = _log()
    lines.insert(5, "{not json")
    lines.insert(6, "[1, 2]")
    el = parse_event_log(lines, "x")
    assert [(r["reason"], r["line"]) for r in el.rejects] == [("bad_event_log_line", 6), ("bad_event_log_line", 7)]
    assert len(el.attempts) == 9


def test_a_file_that_is_no_event_log_is_one_reject():
    el = parse_event_log(["hello", ""], "x")
    assert [r["reason"] for r in el.rejects] == ["bad_event_log_line", "bad_event_log"] and not el.attempts
    assert parse_event_log([], "empty").rejects == []


@pytest.mark.parametrize("path, run", [
    ("/opt/spark/work/app-20261203150000-0001/3/stderr", "app-20261203150000-0001"),
    ("worker-1|/corpus/logs/worker-1/app-20261123051951-0000.exec-1.log.gz", "app-20261123051951-0000"),
    ("/var/log/hadoop-yarn/userlogs/application_1700000000000_0042/container_1700000000000_0042_01_000002/stderr",
     "application_1700000000000_0042_1"),
    ("nm-1|/yarn/logs/application_1700000000000_0042/container_e17_1700000000000_0042_02_000007/stderr",
     "application_1700000000000_0042_2"),
    ("/var/log/hdfs/hadoop-hdfs-datanode.log", None),
])
def test_the_run_of_an_executor_log_comes_from_its_path(path, run):
    assert run_of_path(path) == run


def test_a_yarn_run_is_the_application_and_its_attempt_as_in_the_container_ids():
    assert run_key("application_1700000000000_0042", "2") == "application_1700000000000_0042_2"
    assert run_key("application_1700000000000_0042", None) == "application_1700000000000_0042_1"  # client mode
    assert run_key("app-20261203150000-0001", None) == "app-20261203150000-0001"
    el = parse_event_log(_log("application_1700000000000_0042", attempt="2"), "x")
    assert el.attempts[0].key == "application_1700000000000_0042_2|TID 0"


def test_label_rows_count_what_went_in_and_what_came_out():
    good, cut = parse_event_log(_log(), "a"), parse_event_log(_log("app-20261203150000-0002", end=False), "b")
    labels, rejects, report = label_rows([good, cut])
    assert report.logs == 2 and report.applications == 2 and report.attempts == 9 + 8 == len(labels)
    assert report.anomalous == 6 + 5 and report.rejects == 1 == len(rejects)
    assert rejects[0]["key"] == "b" and report.reject_reasons == {"unfinished_task": 1}
    row = next(r for r in labels if r["key"] == "app-20261203150000-0001|TID 1")
    assert row["label"] == 1 and row["reason"].startswith("ExceptionFailure: ") and row["label_source"] == "spark:eventlog"
