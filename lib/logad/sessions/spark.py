"""Sessions in Spark: the streaming stateful operator and the batch sessionizer, one cutting code.

- :func:`session_events` (``DataFrame -> DataFrame``, batch or stream): the ``events`` rows of the
  systems that have rules, with their group key and what cutting needs, computed by Spark SQL on
  the executors (block and application ids, task markers and TIDs, partition hints, the
  WARN/ERROR/exception rule, BGL alert flags).
- :func:`start_sessions`: a streaming query over the ``events`` table. ``withWatermark`` on the
  event time, ``groupBy(system, bucket).applyInPandasWithState`` with event-time timeouts: one
  :class:`logad.sessions.split.Sessionizer` per key, keys hashed into buckets (a Python call per
  bucket, not per key), their state (JSON) in Spark's state store and checkpoint, so work spreads
  over executors by key and survives restarts. Closed sessions go to
  the ``sessions`` table exactly once per micro-batch. Lines that came later than the watermark
  still join their sessions (``SessionRules.late="join"``, counted in ``late_events``), or go to
  ``rejects`` as ``late_event`` under ``late="reject"``.
- :func:`sessionize`: the batch sessionizer over an ``events`` snapshot (backfill, retraining):
  ``groupBy(system, bucket).applyInPandas`` running the same Sessionizer with the watermark the
  stream would have reached, so both give the same sessions (a test checks it on real data).

Labels (:func:`with_labels`): ground truth when there is any (the line's own alert flag for
BGL/Thunderbird, the ``labels`` table for HDFS blocks and Hadoop applications), else the papers'
rule (``label_source = 'rule'``). ``label_event`` is the index of the first line that defines the
label (first alert / first WARN-ERROR-exception line), so a model can be scored on the prefix
before it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from logad.config import Warehouse
from logad.errors import ConfigError
from logad.parse.formats import ABNORMAL_LEVELS, FORMATS
from logad.sessions import tasks
from logad.sessions.rules import SessionRules
from logad.sessions.split import Event, Sessionizer, summarize

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

    from logad.io.delta import BatchStage

log = logging.getLogger(__name__)

SESSIONS, LABELS = "sessions", "labels"

EVENT_FIELDS = ("ts_us", "topic", "partition", "offset", "template_id", "line_id", "marker", "tid",
                "index", "hint", "abnormal", "truth", "task")
CUT_SCHEMA = (
    "kind string, session_id string, system string, key string, name string, task string, "
    "hosts array<string>, start_us long, end_us long, n_events int, template_ids array<string>, "
    "event_us array<long>, topics array<string>, partitions array<int>, offsets array<long>, "
    "close_reason string, duplicates int, shared_events int, late_events int, rule_label int, rule_event int, "
    "truth_label int, truth_event int, event_batches array<long>")
BATCH_PROPERTY = "logad.batch"  # the micro-batch id, for the one-query pipeline (logad.pipeline)
STATE_SCHEMA = "blob string"
BUCKETS = 64

_FAR_FUTURE_US = 7_258_118_400_000_000  # 2200-01-01: far, and still inside pandas' ns range


def session_events(events: DataFrame, rules: Sequence[SessionRules]) -> DataFrame:
    """``events`` rows of the ruled systems with ``skey`` (the group key) and the cut columns.

    An HDFS line that names several blocks belongs to each (LogHub's convention); a line with
    no key (an HDFS line naming no block) is not in any session.
    """
    from pyspark.sql import functions as F

    by_system = _check(rules)
    content = F.coalesce(F.col("content"), F.lit(""))
    key = None
    for r in by_system.values():
        if r.kind == "block":
            k = F.regexp_extract_all(content, F.lit(f"({r.key_pattern})"), 1)
        elif r.kind == "task":
            k = F.array(F.concat_ws("|", "host", "source"))
        elif r.kind == "window":
            k = F.array(F.coalesce(F.col("fields")["node"], F.col("host")) if r.window_key == "node"
                        else F.lit("all"))
        else:  # application: from the container log's path, else from the line
            text = F.concat_ws(" ", "source", "content")
            app = F.regexp_extract(text, r"application_(\d+_\d+)", 1)
            container = F.regexp_extract(text, r"container_(?:e\d+_)?(\d+_\d+)_", 1)
            k = F.array(F.concat(F.lit("application_"), F.coalesce(F.nullif(app, F.lit("")), container)))
        cond = F.col("system") == r.system
        key = F.when(cond, k) if key is None else key.when(cond, k)
    assert key is not None
    # The task columns cost regexes per line: computed for task-kind systems only.
    task_systems = [r.system for r in by_system.values() if r.kind == "task"]
    is_task = F.col("system").isin(*task_systems) if task_systems else F.lit(False)
    task = F.regexp_extract(content, tasks.TASK, 0)
    tid = F.regexp_extract(content, tasks.TID, 1)
    marker = F.when(content.startswith(tasks.START + "task "), "start")
    for name, words in tasks.ENDS.items():
        marker = marker.when(content.startswith(words + "task "), name)
    marker = marker.when(content.rlike("^(?:" + "|".join(tasks.KILLED_OTHER) + ")"), "killed").otherwise("")
    hint = F.coalesce(F.nullif(F.regexp_extract(content, r"\brdd_\d+_(\d+)\b", 1), F.lit("")),
                      F.nullif(F.regexp_extract(content, r"attempt_\d+_\d+_[mr]_0*(\d+)_", 1), F.lit("")))
    abnormal = (F.upper(F.coalesce(F.col("level"), F.lit(""))).isin(*ABNORMAL_LEVELS)
                | content.rlike(r"Exception\b|\bexception\b"))
    truth = None  # the line's own ground truth, for formats whose lines carry it (BGL's alert)
    for f in FORMATS.values():
        if f.truth is not None:
            value = F.col("fields")[f.truth]
            cond = (F.col("system") == f.name) & value.isNotNull()
            truth = F.when(cond, value != "-") if truth is None else truth.when(cond, value != "-")
    truth = F.lit(None).cast("boolean") if truth is None else truth
    line_id = F.when(F.col("file_offset").isNotNull(),
                     F.concat_ws("|", "host", "source", F.col("file_offset").cast("string")))
    return (events.where(F.col("system").isin(*by_system))
            .withColumn("skey", F.explode(F.array_distinct(key)))
            .where(F.col("skey").isNotNull() & (F.col("skey") != ""))
            .select("system", "skey", "host", "ts",
                    F.unix_micros("ts").alias("ts_us"), "topic", "partition", "offset",
                    F.coalesce("template_id", F.lit("")).alias("template_id"), line_id.alias("line_id"),
                    F.when(is_task, marker).otherwise("").alias("marker"),
                    F.when(is_task, F.nullif(tid, F.lit("")).cast("long")).alias("tid"),
                    F.when(is_task & (marker == "start"),
                           F.regexp_extract(content, tasks.TASK, 1).cast("long")).alias("index"),
                    F.when(is_task, hint.cast("long")).alias("hint"), abnormal.alias("abnormal"),
                    truth.alias("truth"),
                    F.when(is_task & (marker == "start"), F.regexp_extract(task, r"task (.*)", 1)).alias("task")))


def _check(rules: Sequence[SessionRules]) -> dict[str, SessionRules]:
    if not rules:
        raise ConfigError("no session rules given: pass rules_for('hdfs'), ... for the systems to cut")
    by_system: dict[str, SessionRules] = {}
    for r in rules:
        if r.system in by_system:
            raise ConfigError(f"two session rules for system {r.system!r}: give one per system")
        by_system[r.system] = r
    return by_system


def _events(pdf: pd.DataFrame, batch: int = -1) -> dict[str, tuple[list[Event], set[str]]]:
    """A group's rows as Events, by session key (in row order), with the hosts seen; ``batch``:
    the micro-batch that read them."""
    cols = [pdf[c].tolist() for c in ("skey", "host", *EVENT_FIELDS)]
    out: dict[str, tuple[list[Event], set[str]]] = {}
    for skey, host, ts, topic, part, off, tid_, line, marker, tid, index, hint, abn, truth, task in zip(
            *cols, strict=True):
        evs, hosts = out.setdefault(skey, ([], set()))
        evs.append(Event(int(ts), topic, int(part), int(off), tid_, _opt_str(line), marker,
                         _opt_int(tid), _opt_int(index), _opt_int(hint), bool(abn),
                         None if truth is None or truth != truth else bool(truth), task or "", batch))
        if host is not None and host == host:
            hosts.add(host)
    return out


def _opt_int(v: Any) -> int | None:
    return None if v is None or v != v else int(v)


def _opt_str(v: Any) -> str | None:
    return None if v is None or v != v else str(v)


def _rows(system: str, key: str, closed: list[Any], late: list[Event], hosts: list[str]) -> list[dict[str, Any]]:
    rows = []
    for s in closed:
        row = summarize(system, key, s)
        row.update(kind="session", hosts=hosts)
        rows.append(row)
    for e in late:
        rows.append({"kind": "late", "system": system, "key": key, "start_us": e.ts, "end_us": e.ts,
                     "n_events": 1, "topics": [e.topic], "partitions": [e.partition],
                     "offsets": [e.offset], "close_reason": "late_event", "hosts": hosts})
    return rows


def _grown(system: str, key: str, z: Sessionizer, hosts: list[str]) -> list[dict[str, Any]]:
    """The open sessions of ``z`` that took events since they were last emitted, as they stand."""
    rows = []
    for s in z.open.values():
        if s.events and len(s.events) > s.emitted:
            s.emitted = len(s.events)
            row = summarize(system, key, s)
            row.update(kind="open", hosts=hosts, close_reason="open")
            rows.append(row)
    return rows


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    names = [c.split()[0] for c in CUT_SCHEMA.split(", ")]
    return pd.DataFrame([[r.get(n) for n in names] for r in rows], columns=names, dtype=object)


def _stateful(by_system: dict[str, SessionRules], early: bool = False):  # type: ignore[no-untyped-def]
    """The ``applyInPandasWithState`` function: one group is a bucket of session keys, its state
    every key's :class:`Sessionizer` state with its next deadline (JSON, one string per key).
    Buckets, not keys, because Spark calls Python once per group: one call per HDFS block cost
    ~10 ms each (measured, ``bench/sessions.py``). A key without new lines whose deadline is
    still ahead of the watermark is carried over as its string, not rebuilt: most keys of a
    bucket, in a batch, are such keys.
    ``early``: every open session that grew in the batch is also emitted as it stands now
    (``kind = 'open'``), for scoring its prefix."""

    def cut(key: tuple[str, int], pdfs: Iterator[pd.DataFrame], state: Any) -> Iterator[pd.DataFrame]:
        system = key[0]
        rules = by_system[system]
        saved = json.loads(state.get[0]) if state.exists else {}
        new: dict[str, tuple[list[Event], set[str]]] = {}
        batch = _current_batch()
        for pdf in pdfs:
            for skey, (evs, hosts) in _events(pdf, batch).items():
                have = new.setdefault(skey, ([], set()))
                have[0].extend(evs)
                have[1].update(hosts)
        watermark_us = state.getCurrentWatermarkMs() * 1000
        rows: list[dict[str, Any]] = []
        keep: dict[str, Any] = {}
        timeouts = []
        for skey in sorted(set(saved) | set(new)):
            entry = saved.get(skey)
            due = _due_us(entry)
            if skey not in new and due is not None and due > watermark_us:
                # nothing reaches this key in this batch (no line, no deadline, no pending line
                # becomes final): its state stays as it was, never parsed
                keep[skey] = entry
                timeouts.append(due)
                continue
            if entry is not None:
                z = Sessionizer.from_state(rules, skey, _key_state(entry))
                hosts = set(entry[-1])
            else:
                z, hosts = Sessionizer(rules, skey), set()
            evs, more = new.get(skey, ([], set()))
            hosts |= more
            closed, late = z.advance(evs, watermark_us, arrived_at_us=watermark_us)
            rows += _rows(system, skey, closed, late, sorted(hosts))
            if early:
                rows += _grown(system, skey, z, sorted(hosts))
            timeout = z.next_timeout_us()
            if timeout is not None:
                keep[skey] = [timeout, json.dumps(z.to_state(), separators=(",", ":")), sorted(hosts)]
                timeouts.append(timeout)
        if rows:
            yield _frame(rows)
        if not keep:
            state.remove()
        else:
            state.update((json.dumps(keep),))
            # Spark times a group out once the watermark is *past* the timestamp; a key must run
            # when the watermark reaches the time (events at the watermark are final): one ms less.
            state.setTimeoutTimestamp(max(-(-min(timeouts) // 1000) - 1, state.getCurrentWatermarkMs() + 1))

    return cut


def _due_us(entry: list[Any] | None) -> int | None:
    """When a key's saved state needs to run again without new lines (its next deadline or
    pending line), None when unknown (no state, or state written before logad kept it)."""
    return int(entry[0]) if entry is not None and len(entry) == 3 else None


def _key_state(entry: list[Any]) -> dict[str, Any]:
    """A key's Sessionizer state from its bucket entry: ``[due_us, state JSON, hosts]``, or
    ``[state, hosts]`` as logad wrote it before (checkpoints from then still load)."""
    if len(entry) == 3:
        state: dict[str, Any] = json.loads(entry[1])
        return state
    old: dict[str, Any] = entry[0]
    return old


def _current_batch() -> int:
    """The micro-batch id the driver set for this job (:data:`BATCH_PROPERTY`), -1 without one."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    value = ctx.getLocalProperty(BATCH_PROPERTY) if ctx is not None else None
    return int(value) if value else -1


def _batch_cut(by_system: dict[str, SessionRules], watermark_us: int, close_open: bool):  # type: ignore[no-untyped-def]
    def cut(key: tuple[str, int], pdf: pd.DataFrame) -> pd.DataFrame:
        system = key[0]
        rows: list[dict[str, Any]] = []
        for skey, (events, hosts) in sorted(_events(pdf).items()):
            z = Sessionizer(by_system[system], skey)
            closed, late = z.advance(events, watermark_us)
            if close_open:
                closed += z.close_all()
            rows += _rows(system, skey, closed, late, sorted(hosts))
        return _frame(rows)

    return cut


def sessions_from_cut(cut: DataFrame, labels: DataFrame | None = None, with_open: bool = False) -> DataFrame:
    """The ``sessions`` rows of the operator's output, labelled (see :func:`with_labels`);
    ``with_open``: also the prefixes of sessions still open, with ``phase`` = ``open`` (else
    ``closed``), for scoring them as they grow."""
    from pyspark.sql import functions as F

    ts = [F.timestamp_micros("start_us").alias("start_ts"), F.timestamp_micros("end_us").alias("end_ts")]
    phase = [F.when(F.col("kind") == "open", "open").otherwise("closed").alias("phase")] if with_open else []
    out = (cut.where("kind IN ('session', 'open')" if with_open else "kind = 'session'")
           .select(*phase, "session_id", "system", "key", "name", "task", "hosts", *ts, "n_events",
                   "template_ids", F.transform("event_us", lambda u: F.timestamp_micros(u)).alias("event_ts"),
                   "topics", "partitions", "offsets", "close_reason", "duplicates", "shared_events",
                   "late_events", "rule_label", "rule_event", "truth_label", "truth_event"))
    return with_labels(out, labels).withColumn("sessionized_at", F.current_timestamp())


def task_label_key(key: Column, name: Column) -> Column:
    """A Task workflow's ``labels`` key, ``<run>|TID <n>`` (:mod:`logad.sessions.eventlogs`): the
    run (application, and attempt on YARN) from the path its executor log was shipped from,
    which differs with how it was shipped while the run does not. Null for other sessions."""
    from pyspark.sql import functions as F

    from logad.sessions.eventlogs import STANDALONE_APP, YARN_APP, YARN_ATTEMPT

    app = F.regexp_extract(key, STANDALONE_APP, 1)
    yarn, attempt = F.regexp_extract(key, YARN_APP, 1), F.regexp_extract(key, YARN_ATTEMPT, 1)
    run = (F.when(app != "", app)
           .when((yarn != "") & (attempt != ""),
                 F.concat(F.lit("application_"), yarn, F.lit("_"), attempt.cast("int").cast("string"))))
    return F.when(name.startswith("TID ") & run.isNotNull(), F.concat(run, F.lit("|"), name))


def with_labels(sessions: DataFrame, labels: DataFrame | None) -> DataFrame:
    """``label``, ``label_source``, ``label_event``: the line's own ground truth, else the
    ``labels`` table's (system, key) row, else the papers' WARN/ERROR/exception rule."""
    from pyspark.sql import functions as F

    if labels is None:
        s = sessions.withColumn("_gt", F.lit(None).cast("int")).withColumn("_gt_src", F.lit(None).cast("string"))
    else:
        lkey = F.coalesce(task_label_key(F.col("key"), F.col("name")), F.col("key"))
        lab = labels.select("system", F.col("key").alias("_lkey"), F.col("label").cast("int").alias("_gt"),
                            F.col("label_source").alias("_gt_src"))
        s = (sessions.withColumn("_lkey", lkey)
             .join(F.broadcast(lab), ["system", "_lkey"], "left").drop("_lkey"))
    truth = F.col("truth_label").isNotNull()
    gt = F.col("_gt").isNotNull()
    return (s.withColumn("label", F.when(truth, F.col("truth_label")).when(gt, F.col("_gt"))
                         .otherwise(F.col("rule_label")))
            .withColumn("label_source", F.when(truth, F.concat(F.col("system"), F.lit("_alert")))
                        .when(gt, F.col("_gt_src")).otherwise(F.lit("rule")))
            .withColumn("label_event", F.when(truth, F.col("truth_event")).when(gt, F.lit(None).cast("int"))
                        .otherwise(F.col("rule_event")))
            .drop("_gt", "_gt_src"))


def late_rejects(cut: DataFrame) -> DataFrame:
    """Lines that came later than the watermark, as ``rejects`` rows (reason ``late_event``)."""
    from pyspark.sql import functions as F

    return (cut.where("kind = 'late'")
            .select(F.col("topics")[0].alias("topic"), F.col("partitions")[0].alias("partition"),
                    F.col("offsets")[0].alias("offset"), F.lit(None).cast("timestamp").alias("kafka_ts"),
                    F.concat_ws("|", "system", "key").alias("key"), F.lit(None).cast("binary").alias("value"),
                    F.lit("late_event").alias("reason"), F.lit("sessions").alias("stage"),
                    F.concat(F.lit("event time "), F.timestamp_micros("start_us").cast("string"),
                             F.lit(" at or below the watermark")).alias("detail")))


def open_sessions(spark: SparkSession, checkpoint: str) -> dict[str, dict[str, Any]]:
    """What a sessions query's state holds at its last committed batch, per system: ``open``
    sessions, ``pending`` lines (not yet final under the watermark), ``oldest`` open session's
    first event time. Read with Spark's state data source (``format("statestore")``), on the
    executors; ``{}`` when the checkpoint holds no state yet."""
    import pandas as pd

    def count(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        acc: dict[str, list[Any]] = {}
        for pdf in frames:
            for system, blob in zip(pdf["system"], pdf["blob"], strict=True):
                a = acc.setdefault(system, [0, 0, None])
                for state in map(_key_state, json.loads(blob).values()):
                    a[0] += len(state["o"])
                    a[1] += len(state["p"])
                    for o in state["o"]:
                        if o[1] and (a[2] is None or o[1][0][0] < a[2]):
                            a[2] = o[1][0][0]
        yield pd.DataFrame([[k, *v] for k, v in acc.items()], columns=["system", "open", "pending", "oldest_us"])

    try:
        state = spark.read.format("statestore").load(checkpoint)
    except Exception as e:  # no state written yet (no batch committed), or no such checkpoint
        log.debug("no session state under %s: %s", checkpoint, e)
        return {}
    from pyspark.sql import functions as F

    rows = (state.select(F.col("key.system").alias("system"), F.col("value.groupState.blob").alias("blob"))
            .mapInPandas(count, "system string, open long, pending long, oldest_us long")  # type: ignore[arg-type]
            .groupBy("system").agg(F.sum("open").alias("open"), F.sum("pending").alias("pending"),
                                   F.min("oldest_us").alias("oldest_us")).collect())
    import datetime as dt

    return {r["system"]: {"open": int(r["open"]), "pending": int(r["pending"]),
                          "oldest": None if r["oldest_us"] is None else
                          dt.datetime.fromtimestamp(r["oldest_us"] / 1e6, dt.UTC).isoformat()} for r in rows}


def read_labels(spark: SparkSession, warehouse: Warehouse) -> DataFrame | None:
    from logad.io.delta import read_small

    table = read_small(spark, warehouse.table(LABELS))
    return None if table is None else spark.createDataFrame(table)  # from Arrow: an all-null column keeps its type


class LabelsCache:
    """The ``labels`` table for :func:`with_labels`, read again only when its version moved: a
    read is a Spark job, not something a streaming query should pay every micro-batch."""

    def __init__(self, spark: SparkSession, warehouse: Warehouse) -> None:
        self.spark, self.uri, self.warehouse = spark, warehouse.table(LABELS), warehouse
        self.version: int | None = None
        self.frame: DataFrame | None = None

    def get(self) -> DataFrame | None:
        from logad.io.delta import table_exists, table_version

        version = table_version(self.uri) if table_exists(self.uri) else -1
        if version != self.version:
            self.frame = read_labels(self.spark, self.warehouse) if version >= 0 else None
            self.version = version
        return self.frame


def _bucketed(ev: DataFrame, buckets: int) -> Any:
    from pyspark.sql import functions as F

    if buckets < 1:
        raise ConfigError(f"buckets must be >= 1, got {buckets}")
    return ev.withColumn("bucket", F.pmod(F.xxhash64("skey"), F.lit(buckets)).cast("int")).groupBy(
        "system", "bucket")


def _watermark(rules: Sequence[SessionRules]) -> SessionRules:
    return max(rules, key=lambda r: r.watermark_us)


def sessionize(events: DataFrame, rules: Sequence[SessionRules], labels: DataFrame | None = None,
               close_open: bool = True, buckets: int = BUCKETS) -> DataFrame:
    """Batch sessions from an ``events`` snapshot: what the stream writes once it has read all of
    it, plus (``close_open``) the sessions still open at the end, as ``end_of_input``.

    Example:
        >>> s = sessionize(read_table(spark, wh.table("events")), [rules_for("hdfs")])  # doctest: +SKIP
    """
    from pyspark.sql import functions as F

    by_system = _check(rules)
    ev = session_events(events, rules).persist()  # read twice: the final watermark, then the cut
    first = ev.agg(F.max("ts_us")).first()
    max_us = None if first is None else first[0]
    if max_us is None:
        watermark_us = 0
    else:  # what Spark's watermark reaches: max event time (ms) minus the delay
        watermark_us = (max_us // 1000 - _watermark(rules).watermark_us // 1000) * 1000
    cut = _bucketed(ev, buckets).applyInPandas(_batch_cut(by_system, watermark_us, close_open),
                                                     CUT_SCHEMA)
    return sessions_from_cut(cut, labels)


def cut_stream(events: DataFrame, rules: Sequence[SessionRules], buckets: int = BUCKETS,
               early: bool = False) -> DataFrame:
    """The stateful operator over a stream of ``events`` rows: closed sessions (``kind =
    'session'``), late lines (``'late'``) and, with ``early``, the prefixes of open sessions that
    grew (``'open'``), in :data:`CUT_SCHEMA`. Event-time watermark and timeouts; a query may
    have only this one stateful operator."""
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F
    from pyspark.sql.streaming.state import GroupStateTimeout

    by_system = _check(rules)
    # The watermark comes from ``ts``. Spark's stateful operator would silently drop rows at or
    # below it (only a metric counts them); a second watermark on a far-future guard column takes
    # over that row filter (nothing is ever below it) while the global watermark stays the min,
    # the one from ``ts``. Our Sessionizer sees every row and sends late ones to ``rejects``.
    # Two watermarks in one chain need Spark's single-stateful-operator mode (this query has one).
    SparkSession.active().conf.set("spark.sql.streaming.statefulOperator.allowMultiple", "false")
    ev = (session_events(events, rules)
          .withWatermark("ts", _watermark(rules).watermark)
          .withColumn("_late_guard", F.timestamp_micros(F.lit(_FAR_FUTURE_US)))
          .withWatermark("_late_guard", "0 seconds"))
    return _bucketed(ev, buckets).applyInPandasWithState(
        _stateful(by_system, early), CUT_SCHEMA, STATE_SCHEMA, "append", GroupStateTimeout.EventTimeTimeout)


def start_sessions(spark: SparkSession, warehouse: Warehouse, rules: Sequence[SessionRules],
                   trigger: str = "5 seconds", query_name: str = "sessions",
                   starting_version: int = 0, buckets: int = BUCKETS,
                   score: BatchStage | None = None, early: bool = True) -> StreamingQuery:
    """Start the streaming query ``events`` -> ``sessions`` (+ late lines to ``rejects``).

    With ``score`` (a :class:`logad.live_scoring.ScoreStage`), the sessions each micro-batch closes
    are scored in that same batch (``scores`` table + alerts) rather than by a second query over
    the ``sessions`` table: one trigger wait, one read and one batch's fixed cost fewer between a
    session's last line and its alert. With ``early`` too (the default), every session still open
    that grew in the batch is scored as it stands (``early_scores``), so a block that stays open
    for a day is alerted on its prefix, not a day later; a session is alerted once per decision.

    Session keys are hashed into ``buckets`` state groups (spread over executors like any
    shuffle); the number is part of the checkpoint's state layout: keep it for a checkpoint.

    Example:
        >>> q = start_sessions(spark, Warehouse("/data/logad"), [rules_for("hdfs")])  # doctest: +SKIP
    """
    from logad.ingest import REJECTS
    from logad.io.delta import Chain, read_stream, write_stream_tables

    early = early and score is not None
    labels = LabelsCache(spark, warehouse)
    cut = cut_stream(read_stream(spark, warehouse.table("events"), starting_version), rules, buckets, early)
    outputs = {
        SESSIONS: (warehouse.table(SESSIONS),
                   lambda df: sessions_from_cut(df, labels.get())),
        REJECTS: (warehouse.table(REJECTS), late_rejects),
    }
    chain = None
    if score is not None:
        from logad.live_scoring import score_outputs

        chain = Chain(SESSIONS, score, score_outputs(warehouse, early),
                      input=(lambda df: sessions_from_cut(df, labels.get(), with_open=True))
                      if early else None)
    # each session once in sessions, whatever other query or re-read wrote it before (the
    # scoring stage skips sessions already scored itself)
    query = write_stream_tables(cut, outputs, warehouse.checkpoint(query_name), query_name=query_name,
                                trigger=trigger, chain=chain, unique={SESSIONS: "session_id"})
    log.info("query %s: events -> sessions for %s (watermark %s)%s", query_name,
             ", ".join(f"{r.system}:{r.kind}" for r in rules), _watermark(rules).watermark,
             " -> scores in the same batch" if chain else "")
    return query
