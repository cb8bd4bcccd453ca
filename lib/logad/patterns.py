"""The two alerts every log platform has: a template never seen before, and a template whose
rate on one host jumps far above its own recent history. ``logad patterns run``.

A streaming query over the ``events`` table (:func:`start_patterns`). Each micro-batch
(:class:`PatternStage`, a :class:`logad.io.delta.BatchStage`) counts its lines per
``(system, host, template, window)`` on the executors (tumbling windows of ``window_s`` event
time) and keeps their earliest lines' Kafka coordinates, then on the driver
(:class:`PatternState`, plain Python, tested without Spark):

- **learning**: per system, the first ``learn_s`` of event time it sees is history: its
  templates become known and nothing alerts; per host likewise for its rates (a host that just
  joined the cluster alerts no surge until it has ``learn_s`` of history of its own);
- **new template**: a template of a system that none of its earlier lines had (kind
  ``new_template``), with its first lines and the hosts that wrote them;
- **rate surge**: when a window is closed (the system's event time has passed its end by
  ``lateness_s``), its count of a template on a host is compared with that pair's baseline: the
  highest count of its windows before, decaying by half every ``memory_s`` of event time. Logs
  are bursty (a job that writes 50 blocks logs 150 lines in a minute, then nothing for an hour),
  so a mean over quiet windows would call every job a surge; the peak of the last day's bursts
  does not. It alerts (kind ``rate_surge``) when the count is at least ``min_count`` and at least
  ``ratio`` times the baseline. The window then joins the baseline, which so adapts: a new,
  higher normal stops alerting once it is the peak.

Every anomaly is a row of the ``anomalies`` table (once, ``anomaly_id`` stable) and, with a
broker, a JSON alert on the same topic as the scoring stage's (``kind`` says which; key =
``anomaly_id``; at least once, deduplicate on ``alert_id``), with its raw lines from
``raw_logs``. ``logad explain ANOMALY_ID`` prints them.

Exactly once: the state (known templates, baselines, open windows) and the batch's anomalies are
committed together to the ``pattern_state`` table before anything is written; a batch Spark
replays after a crash gets the anomalies it had (the same rows, which the idempotent writes
skip; the same alerts, sent again with the same ids), not a second update.

Lines without event time cannot be windowed: they are counted in the batch's log line
(``untimed``) and left out.

Example:
    >>> stage = PatternStage(spark, Warehouse("/data/logad"), bootstrap="kafka1:9092")  # doctest: +SKIP
    >>> run(start_patterns(spark, Warehouse("/data/logad"), stage), once=True)  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from logad.config import Warehouse
from logad.errors import ConfigError, LogadError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)

ANOMALIES, PATTERN_STATE = "anomalies", "pattern_state"
US = 1_000_000


@dataclass(frozen=True)
class PatternRules:
    """When a pattern alerts (see the module docstring)."""

    learn_s: float = 86_400.0
    window_s: float = 60.0
    lateness_s: float = 60.0
    memory_s: float = 86_400.0  # the baseline peak's half-life
    ratio: float = 5.0
    min_count: int = 20
    lines: int = 5  # the earliest lines an alert carries

    def __post_init__(self) -> None:
        for name in ("learn_s", "lateness_s", "ratio"):
            if getattr(self, name) < 0:
                raise ConfigError(f"PatternRules.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("window_s", "memory_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"PatternRules.{name} must be > 0, got {getattr(self, name)}")
        if self.min_count < 1 or self.lines < 1:
            raise ConfigError("PatternRules.min_count and lines must be >= 1")


Line = tuple[int, str, int, int]  # (event time in µs, topic, partition, offset)


@dataclass
class Group:
    """One batch's lines of a template on a host in one window."""

    system: str
    host: str
    template_id: str
    window: int
    count: int
    first_us: int
    last_us: int
    lines: list[Line] = field(default_factory=list)


def anomaly_id(kind: str, system: str, host: str | None, template_id: str, window: int | None) -> str:
    """Stable across replays and restarts: the kind and what it is about."""
    return hashlib.sha256(f"{kind}|{system}|{host or ''}|{template_id}|{window}".encode()).hexdigest()[:20]


class PatternState:
    """The detection, in plain Python (see the module docstring); JSON round trip for storage."""

    def __init__(self, rules: PatternRules) -> None:
        self.rules = rules
        self.start: dict[str, int] = {}  # system -> first event time seen (µs)
        self.now: dict[str, int] = {}  # system -> latest event time seen (µs)
        self.known: dict[str, dict[str, int]] = {}  # system -> template -> first event time
        self.hosts: dict[str, int] = {}  # "system|host" -> first event time seen (µs)
        self.rates: dict[str, list[float]] = {}  # "system|host|template" -> [peak, its window]
        self.open: dict[str, list[Any]] = {}  # "system|host|template|window" -> [count, lines]

    @property
    def _window_us(self) -> int:
        return int(self.rules.window_s * US)

    def _learned(self, system: str, t_us: int) -> bool:
        return t_us >= self.start[system] + int(self.rules.learn_s * US)

    def update(self, groups: Iterable[Group]) -> list[dict[str, Any]]:
        """Fold one batch's groups in; the anomalies they reveal, in a stable order."""
        groups = sorted(groups, key=lambda g: (g.system, g.template_id, g.host, g.window))
        for g in groups:
            self.start[g.system] = min(self.start.get(g.system, g.first_us), g.first_us)
            self.now[g.system] = max(self.now.get(g.system, g.last_us), g.last_us)
            host = f"{g.system}|{g.host}"
            self.hosts[host] = min(self.hosts.get(host, g.first_us), g.first_us)
        out = self._new_templates(groups)
        for g in groups:
            key = f"{g.system}|{g.host}|{g.template_id}|{g.window}"
            count, lines = self.open.get(key, [0, []])
            self.open[key] = [count + g.count, sorted(lines + [list(x) for x in g.lines])[:self.rules.lines]]
        return out + self._close()

    def _new_templates(self, groups: list[Group]) -> list[dict[str, Any]]:
        seen: dict[tuple[str, str], list[Group]] = {}
        for g in groups:
            seen.setdefault((g.system, g.template_id), []).append(g)
        out = []
        for (system, tid), gs in seen.items():
            known = self.known.setdefault(system, {})
            first = min(g.first_us for g in gs)
            if tid in known:
                known[tid] = min(known[tid], first)
                continue
            known[tid] = first
            if not self._learned(system, first):
                continue
            lines = sorted(x for g in gs for x in g.lines)[:self.rules.lines]
            hosts = sorted({g.host for g in gs})
            first_host = min(gs, key=lambda g: g.first_us).host
            out.append({"anomaly_id": anomaly_id("new_template", system, None, tid, None), "kind": "new_template",
                        "system": system, "host": first_host, "hosts": hosts, "template_id": tid,
                        "window_start_us": None, "window_end_us": None, "count": sum(g.count for g in gs),
                        "baseline": 0.0, "first_us": first, "lines": lines})
        return out

    def _close(self) -> list[dict[str, Any]]:
        r, w_us = self.rules, self._window_us
        due = []
        for key in self.open:
            system, host, tid, w = key.rsplit("|", 3)
            if (int(w) + 1) * w_us + int(r.lateness_s * US) <= self.now[system]:
                due.append((system, host, tid, int(w), key))
        out = []
        learn_us = int(r.learn_s * US)
        for system, host, tid, window, key in sorted(due, key=lambda d: (d[3], d[0], d[2], d[1])):
            count, lines = self.open.pop(key)
            pair = f"{system}|{host}|{tid}"
            peak, at = self.rates.get(pair, [0.0, float(window)])
            baseline = peak * 0.5 ** (max(0.0, window - at) * r.window_s / r.memory_s)  # decayed to this window
            if (window * w_us >= self.hosts[f"{system}|{host}"] + learn_us and count >= r.min_count
                    and count >= r.ratio * baseline):
                out.append({"anomaly_id": anomaly_id("rate_surge", system, host, tid, window), "kind": "rate_surge",
                            "system": system, "host": host, "hosts": [host], "template_id": tid,
                            "window_start_us": window * w_us, "window_end_us": (window + 1) * w_us,
                            "count": count, "baseline": baseline, "first_us": lines[0][0] if lines else window * w_us,
                            "lines": [tuple(x) for x in lines]})
            if count >= baseline:
                self.rates[pair] = [float(count), float(window)]
        return out

    def to_json(self) -> str:
        return json.dumps({"rules": asdict(self.rules), "start": self.start, "now": self.now, "known": self.known,
                           "hosts": self.hosts, "rates": self.rates, "open": self.open})

    @classmethod
    def from_json(cls, text: str, rules: PatternRules) -> PatternState:
        doc = json.loads(text)
        if doc["rules"]["window_s"] != rules.window_s:
            raise ConfigError(f"the pattern state was built with {doc['rules']['window_s']} s windows, not "
                              f"{rules.window_s}: keep the window or start a new --query-name")
        s = cls(rules)
        s.start, s.now, s.known, s.hosts = doc["start"], doc["now"], doc["known"], doc["hosts"]
        s.rates, s.open = doc["rates"], doc["open"]
        return s


# -- in the stream ---------------------------------------------------------------------------------

ANOMALY_SCHEMA = ("anomaly_id string, kind string, system string, host string, hosts array<string>, "
                  "template_id string, template string, window_start timestamp, window_end timestamp, "
                  "count long, baseline double, first_ts timestamp, topics array<string>, "
                  "partitions array<int>, offsets array<long>, detected_at timestamp, batch_id long")


def _ts(us: int | None) -> dt.datetime | None:
    return None if us is None else dt.datetime.fromtimestamp(us / US, dt.UTC)


class PatternStage:
    """New-template and rate-surge alerts per micro-batch of ``events`` (see the module docstring)."""

    def __init__(self, spark: SparkSession, warehouse: Warehouse, rules: PatternRules | None = None,
                 bootstrap: str | None = None, alerts_topic: str | None = "logad.alerts",
                 kafka_options: dict[str, str] | None = None, query_name: str = "patterns") -> None:
        self.spark, self.warehouse = spark, warehouse
        self.rules = rules or PatternRules()
        self.state_uri = warehouse.table(PATTERN_STATE)
        self.query_name = query_name
        self.alerts_topic = alerts_topic if bootstrap else None
        self.producer = None
        if self.alerts_topic:
            from confluent_kafka import Producer

            from logad.produce import producer_conf

            self.producer = Producer(producer_conf(str(bootstrap), kafka_options))
        self.state = PatternState(self.rules)
        self._done: tuple[str, int] | None = None
        self._last: list[dict[str, Any]] = []
        self.alerts_sent = 0
        self.found: dict[str, int] = {}
        self._load()

    def close(self) -> None:
        if self.producer is not None:
            self.producer.flush(30)
            self.producer = None

    def schema(self, df: DataFrame) -> DataFrame:
        from pyspark.sql import functions as F
        from pyspark.sql.types import _parse_datatype_string

        fields = _parse_datatype_string(ANOMALY_SCHEMA).fields  # type: ignore[attr-defined]
        return df.select(*(F.lit(None).cast(f.dataType).alias(f.name) for f in fields))

    def apply(self, batch: DataFrame, batch_id: int, app_id: str) -> DataFrame:
        if self._done is not None and self._done[0] == app_id and batch_id <= self._done[1]:
            rows = self._last if batch_id == self._done[1] else []
            log.info("patterns: batch %d of %s is already in %s; its %d anomalies again, no update",
                     batch_id, app_id, self.state_uri, len(rows))
        else:
            groups, untimed = self.groups(batch)
            found = self.state.update(groups)
            rows = self._rows(found, batch_id)
            self._commit(rows, batch_id, app_id)
            for r in rows:
                self.found[r["kind"]] = self.found.get(r["kind"], 0) + 1
            log.info("patterns: batch %d: %d groups, %d new templates, %d rate surges%s", batch_id, len(groups),
                     sum(r["kind"] == "new_template" for r in rows), sum(r["kind"] == "rate_surge" for r in rows),
                     f", {untimed} lines without event time left out" if untimed else "")
        if rows and self.producer is not None:
            self._alert(rows)
        return self.spark.createDataFrame([_spark_row(r) for r in rows], ANOMALY_SCHEMA)

    def groups(self, batch: DataFrame) -> tuple[list[Group], int]:
        """The batch's lines per (system, host, template, window), counted on the executors, with
        the earliest ``rules.lines`` of each; and how many lines had no event time."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        keys = ["system", "host", "template_id", "window"]
        timed = (batch.where(F.col("template_id").isNotNull())
                 .withColumn("t_us", F.unix_micros("ts"))
                 .withColumn("host", F.coalesce("host", F.lit("")))
                 .withColumn("window", F.floor(F.col("t_us") / F.lit(int(self.rules.window_s * US)))))
        counts = timed.groupBy(*keys).agg(F.count(F.lit(1)).alias("n"), F.min("t_us").alias("first"),
                                          F.max("t_us").alias("last")).collect()
        untimed = sum(int(r["n"]) for r in counts if r["window"] is None)  # no event time: its window is null
        rank = F.row_number().over(Window.partitionBy(*keys).orderBy("t_us", "topic", "partition", "offset"))
        first_lines: dict[tuple[str, str, str, int], list[Line]] = {}
        for r in timed.where(F.col("t_us").isNotNull()).withColumn("rn", rank).where(
                F.col("rn") <= self.rules.lines).select(*keys, "t_us", "topic", "partition", "offset").collect():
            first_lines.setdefault((r[0], r[1], r[2], int(r[3])), []).append(
                (int(r["t_us"]), str(r["topic"]), int(r["partition"]), int(r["offset"])))
        return [Group(r[0], r[1], r[2], int(r[3]), int(r["n"]), int(r["first"]), int(r["last"]),
                      sorted(first_lines.get((r[0], r[1], r[2], int(r[3])), [])))
                for r in counts if r["window"] is not None], untimed

    def _rows(self, found: list[dict[str, Any]], batch_id: int) -> list[dict[str, Any]]:
        from logad.templates.stream import template_texts

        texts = (template_texts(self.spark, self.warehouse) or {}) if found else {}
        now = dt.datetime.now(dt.UTC)
        return [{**a, "template": texts.get(a["template_id"]), "detected_at": now.isoformat(), "batch_id": batch_id}
                for a in found]

    def _commit(self, rows: list[dict[str, Any]], batch_id: int, app_id: str) -> None:
        import pyarrow as pa

        from logad.io.delta import write_small

        write_small(self.spark, self.state_uri, pa.table({
            "app_id": [app_id], "batch_id": pa.array([batch_id], pa.int64()), "state": [self.state.to_json()],
            "anomalies": [json.dumps(rows)]}), mode="overwrite")
        self._done, self._last = (app_id, batch_id), rows

    def _load(self) -> None:
        from logad.io.delta import read_small

        table = read_small(self.spark, self.state_uri)
        if table is None or table.num_rows == 0:
            return
        row = table.to_pylist()[0]
        self.state = PatternState.from_json(row["state"], self.rules)
        self._done, self._last = (row["app_id"], int(row["batch_id"])), json.loads(row["anomalies"])
        log.info("patterns: state from %s (batch %d of %s): %d systems, %d templates known, %d host baselines",
                 self.state_uri, self._done[1], self._done[0], len(self.state.start),
                 sum(len(k) for k in self.state.known.values()), len(self.state.rates))

    def _alert(self, rows: list[dict[str, Any]]) -> None:
        from logad.live_scoring import raw_lines
        from logad.produce import deliver

        assert self.producer is not None
        raw = raw_lines(self.spark, self.warehouse, [tuple(x[1:]) for r in rows for x in r["lines"]])  # type: ignore[misc]
        deliver(self.producer, str(self.alerts_topic), [
            (r["anomaly_id"].encode(), json.dumps(build_alert(r, raw), default=str).encode()) for r in rows],
            what="pattern alerts")
        self.alerts_sent += len(rows)


def _spark_row(r: dict[str, Any]) -> tuple[Any, ...]:
    lines = r["lines"]
    return (r["anomaly_id"], r["kind"], r["system"], r["host"], r["hosts"], r["template_id"], r["template"],
            _ts(r["window_start_us"]), _ts(r["window_end_us"]), int(r["count"]), float(r["baseline"]),
            _ts(r["first_us"]), [x[1] for x in lines], [int(x[2]) for x in lines],
            [int(x[3]) for x in lines], dt.datetime.fromisoformat(r["detected_at"]), int(r["batch_id"]))


def build_alert(r: dict[str, Any], raw: dict[tuple[str, int, int], dict[str, Any]]) -> dict[str, Any]:
    """The JSON alert of one anomaly: what it is, and its first raw lines."""
    what = (f"template never seen before on {r['system']}" if r["kind"] == "new_template" else
            f"{r['count']} lines in {int((r['window_end_us'] - r['window_start_us']) / US)} s on {r['host']}, "
            f"{r['count'] / max(r['baseline'], 1.0):.0f}x its baseline peak {r['baseline']:.1f}")
    return {"alert_id": r["anomaly_id"], "kind": r["kind"], "anomaly_id": r["anomaly_id"], "system": r["system"],
            "host": r["host"], "hosts": r["hosts"], "template_id": r["template_id"], "template": r["template"],
            "what": what, "count": r["count"], "baseline": r["baseline"],
            "window_start": _ts(r["window_start_us"]), "window_end": _ts(r["window_end_us"]),
            "first": _ts(r["first_us"]), "detected_at": r["detected_at"],
            "lines": [{"ts": _ts(x[0]), "topic": x[1], "partition": x[2], "offset": x[3],
                       **{k: raw.get((x[1], int(x[2]), int(x[3])), {}).get(k) for k in ("host", "source", "line")}}
                      for x in r["lines"]]}


def start_patterns(spark: SparkSession, warehouse: Warehouse, stage: PatternStage, trigger: str = "5 seconds",
                   query_name: str = "patterns", starting_version: int = 0) -> StreamingQuery:
    """Start the streaming query ``events`` -> ``anomalies`` (+ alerts)."""
    from delta.tables import DeltaTable

    from logad.io.delta import read_stream, write_stream_tables

    if not DeltaTable.isDeltaTable(spark, warehouse.table("events")):
        raise LogadError(f"no events table at {warehouse.table('events')}: run 'logad ingest' first")
    events = read_stream(spark, warehouse.table("events"), starting_version).select(
        "system", "host", "ts", "template_id", "topic", "partition", "offset")
    query = write_stream_tables(events, {ANOMALIES: (warehouse.table(ANOMALIES), lambda df: df)},
                                warehouse.checkpoint(query_name), query_name=query_name, trigger=trigger, stage=stage)
    log.info("query %s: events -> %s%s", query_name, warehouse.table(ANOMALIES),
             f" + alerts to {stage.alerts_topic}" if stage.alerts_topic else "")
    return query


def explain_anomaly(spark: SparkSession, warehouse: Warehouse, anomaly_id_: str
                    ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """A pattern anomaly's row and its first raw lines (``logad explain ANOMALY_ID``); None when
    ``anomalies`` has no such id."""
    from pyspark.sql import functions as F

    from logad.io.delta import read_table, table_exists
    from logad.live_scoring import raw_lines

    uri = warehouse.table(ANOMALIES)
    row = (read_table(spark, uri).where(F.col("anomaly_id") == anomaly_id_).first()
           if table_exists(uri) else None)
    if row is None:
        return None
    r = row.asDict()
    coords = list(zip(r["topics"], r["partitions"], r["offsets"], strict=True))
    raw = raw_lines(spark, warehouse, coords)
    return r, [{"topic": t, "partition": p, "offset": o, **raw.get((t, p, o), {})} for t, p, o in coords]


__all__ = ["ANOMALIES", "Group", "PatternRules", "PatternStage", "PatternState", "anomaly_id", "build_alert",
           "explain_anomaly", "start_patterns"]
