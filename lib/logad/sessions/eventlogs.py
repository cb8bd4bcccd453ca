"""Spark's own account of every task attempt, from the event logs a cluster keeps, as the labels
of the Task workflows: ``logad sessions labels --spark-event-logs DIR``.

An operator's cluster has no label file, but Spark writes one of its own: with
``spark.eventLog.enabled`` every application leaves an event log (the History Server's input)
that says how each task attempt ended. This module reads them as the History Server does and
labels every attempt from that account:

- ``Success``: normal;
- ``ExceptionFailure`` (the task threw), ``ExecutorLostFailure`` (its executor died),
  ``FetchFailed`` (shuffle input lost), ``TaskResultLost``, ``TaskCommitDenied``,
  ``UnknownReason``: anomalous;
- ``TaskKilled``: normal when Spark killed it for scheduling (a speculative copy won, its stage
  finished or was cancelled: ``SCHEDULING_KILLS``), anomalous for any other reason;
- an attempt that started and never ended in a log that reached its ``ApplicationEnd``: status
  ``Unknown``, anomalous (the application stopped with it in flight, as an aborted job does).

What it reads (:func:`read_event_logs`, through Spark's own ``EventLogFileReader`` on the JVM, so
every Hadoop filesystem and every Spark codec works): the entries of a directory as
``spark.eventLog.dir`` / ``spark.history.fs.logDirectory`` holds them, single files (plain,
``.lz4``, ``.lzf``, ``.snappy``, ``.zstd``, ``.inprogress``) and rolling
``eventlog_v2_<app>[_<attempt>]`` folders, plus gzip copies (``.gz``, as the lab keeps them). Any
number of applications.

Bad input never gives a wrong label: a line that is not JSON is a reject
(``bad_event_log_line``); the last line of a log that never reached ``ApplicationEnd`` cut off
mid-line is ``truncated_event_log``; an attempt whose end the log does not (yet) hold is
``unfinished_task``, with no label. Rejects go to the ``rejects`` table (``stage = 'labels'``,
``key`` the file).

Joining a label to its workflow: a task id (TID) is unique within one run of an application
(one ``SparkContext``), so a label is keyed ``<run>|TID <n>`` and a workflow's run comes from
the path its executor log was shipped from (:func:`run_of_path`, the same regexes in Spark SQL in
:func:`logad.sessions.spark.with_labels`): a standalone worker's ``work/app-.../<executor>/stderr``
and the lab's ``app-....exec-<id>.log.gz`` carry the application id; a YARN container log
``.../application_<ts>_<n>/container_[e<epoch>_]<ts>_<n>_<attempt>_<id>/stderr`` carries the
application and its attempt (``application_<ts>_<n>_<attempt>``, the attempt read from the event
log's ``App Attempt ID``, 1 where client mode records none).

Example:
    >>> report = load_event_log_labels(spark, Warehouse("/data/logad"), "hdfs:///spark-history")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from logad.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from logad.config import Warehouse

log = logging.getLogger(__name__)

FAILED = ("ExceptionFailure", "ExecutorLostFailure", "FetchFailed", "TaskResultLost",
          "TaskCommitDenied", "UnknownReason", "Unknown")
SCHEDULING_KILLS = ("another attempt succeeded", "Stage cancelled", "Stage finished", "cancelled")
LABEL_SOURCE = "spark:eventlog"

# A run of an application, from the path its executor log was shipped from. Java and Python
# regexes alike: logad.sessions.spark.with_labels applies them in Spark SQL.
STANDALONE_APP = r"(app-[0-9]{14}-[0-9]{4,})"
YARN_APP = r"application_([0-9]+_[0-9]+)"
YARN_ATTEMPT = r"container_(?:e[0-9]+_)?[0-9]+_[0-9]+_([0-9]+)_[0-9]+"


def run_key(app_id: str, attempt_id: str | None) -> str:
    """The run of an application a TID is unique in: its id, and on YARN its attempt."""
    if app_id.startswith("application_"):
        return f"{app_id}_{int(attempt_id or 1)}"
    return app_id if attempt_id is None else f"{app_id}_{attempt_id}"


def run_of_path(path: str) -> str | None:
    """The run an executor log at ``path`` belongs to (None: a layout this does not know)."""
    m = re.search(STANDALONE_APP, path)
    if m:
        return m.group(1)
    app, attempt = re.search(YARN_APP, path), re.search(YARN_ATTEMPT, path)
    if app and attempt:
        return f"application_{app.group(1)}_{int(attempt.group(1))}"
    return None


def label_of(status: str, detail: str) -> int:
    """1 (anomalous) or 0 from Spark's end reason of an attempt (see the module docstring)."""
    if status in FAILED:
        return 1
    return int(status == "TaskKilled" and not any(s in detail for s in SCHEDULING_KILLS))


def end_detail(reason: dict[str, Any]) -> str:
    """One line of what Spark says of an attempt's end: the kill or loss reason, the exception."""
    for k in ("Kill Reason", "Loss Reason"):
        if reason.get(k):
            return str(reason[k])
    if reason.get("Class Name"):
        lines = [x.strip() for x in str(reason.get("Description", "")).splitlines() if x.strip()]
        return f"{reason['Class Name']}: {lines[-1] if lines else ''}"[:200]  # Python: the error line
    return str(reason.get("Message", "")).splitlines()[0][:200] if reason.get("Message") else ""


@dataclass
class Attempt:
    """One task attempt as Spark's event log reports it."""

    app_id: str
    attempt_id: str | None
    tid: int
    job_id: int
    job_group: str
    stage_id: int
    stage_attempt: int
    partition: int
    attempt: int
    executor_id: str
    host: str
    speculative: bool
    launch_ms: int
    finish_ms: int
    status: str
    detail: str

    @property
    def label(self) -> int:
        return label_of(self.status, self.detail)

    @property
    def key(self) -> str:
        """The ``labels`` key: ``<run>|TID <n>``, the workflow's name in its run."""
        return f"{run_key(self.app_id, self.attempt_id)}|TID {self.tid}"


@dataclass
class EventLog:
    """What one application's event log says: its attempts, and what could not be used."""

    source: str
    attempts: list[Attempt] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    app_id: str | None = None
    complete: bool = False


def parse_event_log(lines: Sequence[str], source: str) -> EventLog:
    """The task attempts of one application's event log (its lines in order, every rolled file's
    together), with rejects for what cannot be used (see the module docstring)."""
    out = EventLog(source)
    events: list[tuple[int, dict[str, Any]]] = []
    bad: list[tuple[int, str, str]] = []
    last = max((i for i, x in enumerate(lines) if x.strip()), default=-1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            e = json.loads(line)
            if not isinstance(e, dict) or "Event" not in e:
                raise ValueError("not an event object")
        except ValueError as err:
            bad.append((i, line, str(err)[:200]))
            continue
        events.append((i, e))
    attempt_id = None
    stage_job: dict[int, tuple[int, str]] = {}
    starts: dict[int, dict[str, Any]] = {}
    ends: dict[int, dict[str, Any]] = {}
    for _, e in events:
        kind = e["Event"]
        if kind == "SparkListenerApplicationStart":
            out.app_id = e.get("App ID")
            attempt_id = e.get("App Attempt ID")
        elif kind == "SparkListenerApplicationEnd":
            out.complete = True
        elif kind == "SparkListenerJobStart":
            group = (e.get("Properties") or {}).get("spark.jobGroup.id", "") or ""
            for s in e.get("Stage IDs", []):
                stage_job.setdefault(int(s), (int(e["Job ID"]), group))
        elif kind == "SparkListenerTaskStart":
            starts[int(e["Task Info"]["Task ID"])] = e
        elif kind == "SparkListenerTaskEnd":
            ends.setdefault(int(e["Task Info"]["Task ID"]), e)  # the first end (later: Resubmitted)
    for i, line, why in bad:
        cut = i == last and not out.complete and out.app_id is not None
        out.rejects.append({"line": i + 1, "value": line, "reason": "truncated_event_log" if cut else
                            "bad_event_log_line", "detail": f"line {i + 1}: {why}"})
    if out.app_id is None:
        if events or bad:
            out.rejects.append({"line": 0, "value": "", "reason": "bad_event_log",
                                "detail": "no SparkListenerApplicationStart: not an application's event log"})
        return out
    for tid in sorted(set(starts) | set(ends)):
        e = ends.get(tid)
        if e is None and not out.complete:
            out.rejects.append({"line": 0, "value": "", "reason": "unfinished_task",
                                "detail": f"TID {tid} started and the log ends before its end "
                                          "(in progress or truncated): no label"})
            continue
        e = e or starts[tid]
        info = e["Task Info"]
        reason = e.get("Task End Reason") or {"Reason": "Unknown"}
        stage = int(e["Stage ID"])
        job, group = stage_job.get(stage, (-1, ""))
        out.attempts.append(Attempt(
            app_id=out.app_id, attempt_id=attempt_id, tid=tid, job_id=job, job_group=group, stage_id=stage,
            stage_attempt=int(e.get("Stage Attempt ID", 0)), partition=int(info["Index"]),
            attempt=int(info["Attempt"]), executor_id=str(info["Executor ID"]), host=str(info.get("Host", "")),
            speculative=bool(info.get("Speculative")), launch_ms=int(info.get("Launch Time", 0)),
            finish_ms=int(info.get("Finish Time", 0)), status=str(reason["Reason"]), detail=end_detail(reason)))
    return out


# -- reading what the History Server reads ---------------------------------------------------------


def _jvm_list(jvm: Any, seq: Any) -> list[Any]:
    return list(jvm.scala.jdk.javaapi.CollectionConverters.asJava(seq))


def _filesystem(spark: SparkSession, directory: str) -> tuple[Any, Any, Any]:
    """(jvm, Hadoop FileSystem, qualified Path) of ``directory``."""
    jvm = spark.sparkContext._jvm  # type: ignore[attr-defined]
    assert jvm is not None
    hconf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[union-attr]
    path = jvm.org.apache.hadoop.fs.Path(directory)
    fs = path.getFileSystem(hconf)
    return jvm, fs, fs.makeQualified(path)


def read_event_logs(spark: SparkSession, directory: str) -> Iterator[tuple[str, list[str] | None, str]]:
    """(source, lines, error) of every application's event log under ``directory`` (any Hadoop
    filesystem URI or a local path): a rolling folder's files in order, as one log. The source
    is the entry's qualified path; an entry that cannot be read (a codec Spark does not know, a
    corrupt compressed stream) comes with lines None and the error."""
    jvm, fs, path = _filesystem(spark, directory)
    if not fs.exists(path) or not fs.getFileStatus(path).isDirectory():
        raise ConfigError(f"{directory} is not a directory of Spark event logs (spark.eventLog.dir)")
    reader_cls = jvm.org.apache.spark.deploy.history.EventLogFileReader
    for status in sorted(fs.listStatus(path), key=lambda s: s.getPath().getName()):
        name = status.getPath().getName()
        if name.startswith("."):
            continue
        try:
            if not status.isDirectory() and name.endswith(".gz"):  # a gzip copy: not a Spark codec
                files = [status.getPath()]
            else:
                reader = reader_cls.apply(fs, status)
                if reader.isEmpty():
                    raise ConfigError("not an event log folder (no events_<n>_ files)")
                files = [f.getPath() for f in _jvm_list(jvm, reader.get().listEventLogFiles())]
            lines: list[str] = []
            for f in files:
                if f.getName().endswith(".gz"):
                    stream = jvm.java.util.zip.GZIPInputStream(fs.open(f))
                else:
                    stream = reader_cls.openEventLog(f, fs)
                try:
                    data = bytes(jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
                finally:
                    stream.close()
                lines += data.decode("utf-8", "replace").split("\n")
        except Exception as e:  # the entry becomes a reject row with the error, never lost
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            yield str(status.getPath()), None, first[:300]
            continue
        yield str(status.getPath()), lines, ""


def read_parsed(spark: SparkSession, directory: str) -> Iterator[EventLog]:
    """:func:`parse_event_log` of every entry of :func:`read_event_logs`; an unreadable one is an
    empty log with one ``bad_event_log`` reject."""
    for source, lines, error in read_event_logs(spark, directory):
        if lines is None:
            yield EventLog(source, rejects=[{"line": 0, "value": "", "reason": "bad_event_log",
                                             "detail": f"cannot read it: {error}"}])
        else:
            yield parse_event_log(lines, source)


# -- into the warehouse ------------------------------------------------------------------------------


@dataclass
class LabelReport:
    """What one labelling run read and wrote."""

    logs: int = 0
    applications: int = 0
    attempts: int = 0
    anomalous: int = 0
    rejects: int = 0
    status: dict[str, int] = field(default_factory=dict)
    reject_reasons: dict[str, int] = field(default_factory=dict)


def label_rows(logs: Iterable[EventLog]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], LabelReport]:
    """``labels`` rows, ``rejects`` rows and the report, from parsed event logs."""
    labels: dict[str, dict[str, Any]] = {}
    rejects: list[dict[str, Any]] = []
    report = LabelReport()
    status: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    apps = set()
    for el in logs:
        report.logs += 1
        if el.app_id:
            apps.add(el.app_id)
        for a in el.attempts:
            labels[a.key] = {"system": "spark", "key": a.key, "label": a.label, "label_source": LABEL_SOURCE,
                             "reason": f"{a.status}: {a.detail}" if a.detail else a.status}
            status[a.status] += 1
        for r in el.rejects:
            reasons[r["reason"]] += 1
            rejects.append({"key": el.source, **r})
    report.applications, report.attempts = len(apps), len(labels)
    report.anomalous = sum(r["label"] for r in labels.values())
    report.rejects, report.status, report.reject_reasons = len(rejects), dict(status), dict(reasons)
    return list(labels.values()), rejects, report


def load_event_log_labels(spark: SparkSession, warehouse: Warehouse, directory: str) -> LabelReport:
    """Label every task attempt the event logs under ``directory`` report: upsert them into the
    ``labels`` table (a key seen again is replaced, others stay: a History Server's cleaner may
    have removed older logs), and replace this directory's earlier rejects with the new ones."""
    import pyarrow as pa

    from logad.io.delta import replace_small
    from logad.sessions.labels import upsert_labels

    labels, rejects, report = label_rows(read_parsed(spark, directory))
    if labels:
        upsert_labels(spark, warehouse, pa.Table.from_pylist(labels))
    base = str(_filesystem(spark, directory)[2]).rstrip("/") + "/"
    rows = pa.table({
        "topic": pa.array([None] * len(rejects), pa.string()),
        "partition": pa.array([None] * len(rejects), pa.int32()),
        "offset": pa.array([r["line"] for r in rejects], pa.int64()),
        "kafka_ts": pa.array([None] * len(rejects), pa.timestamp("us", tz="UTC")),
        "key": pa.array([r["key"] for r in rejects], pa.string()),
        "value": pa.array([r["value"].encode() for r in rejects], pa.binary()),
        "reason": pa.array([r["reason"] for r in rejects], pa.string()),
        "stage": pa.array(["labels"] * len(rejects), pa.string()),
        "detail": pa.array([r["detail"] for r in rejects], pa.string()),
    })
    escaped = base.replace("'", "''")
    replace_small(spark, warehouse.table("rejects"), rows, f"stage = 'labels' AND key LIKE '{escaped}%'")
    log.info("event logs under %s: %d logs, %d applications, %d attempts labelled (%d anomalous), %d rejects %s",
             directory, report.logs, report.applications, report.attempts, report.anomalous, report.rejects,
             report.reject_reasons or "")
    return report


__all__ = ["Attempt", "EventLog", "LabelReport", "label_of", "label_rows", "load_event_log_labels",
           "parse_event_log", "read_event_logs", "read_parsed", "run_key", "run_of_path"]
