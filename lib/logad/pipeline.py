"""One streaming query from Kafka to alerts (``logad run``): how logad runs live.

Every micro-batch reads the host topics once and, in that batch:

1. parses every record and masks its content (Spark SQL on the executors:
   :func:`logad.parse.headers.parse_records`, :meth:`TemplateStage.columns`);
2. cuts sessions with the stateful operator of :mod:`logad.sessions.spark`
   (:func:`~logad.sessions.spark.cut_stream`). A Spark Task workflow is cut in the batch that
   reads its ``Finished task`` or failure line (``SessionRules.fold = "arrival"``); HDFS blocks,
   windows and idle workflows close on their event-time deadlines under the watermark, as in
   the separate sessions query;
3. gives every line its template (:class:`~logad.templates.stream.TemplateStage`: new masked
   texts are mined on the driver) and resolves the masked texts of the sessions it closed to
   the template ids their lines got in ``events`` (:meth:`TemplateStage.ids_as_of`);
4. scores the closed sessions, and the prefixes of open ones that grew, and sends the alerts
   (:class:`~logad.live_scoring.ScoreStage`), before the batch commits;
5. writes ``raw_logs``, ``events``, ``rejects``, ``sessions``, ``scores`` and ``early_scores`` at
   the same time, each exactly once per batch (``txnAppId``/``txnVersion``), skipping the tables
   the batch has no rows for.

Why the stateful operator keeps masked texts, not template ids: Spark runs it inside the batch's
plan, before the driver can mine the batch's new texts. Each line keeps its masked text and the
id of the batch that read it (a Spark local property, :data:`~logad.sessions.spark.BATCH_PROPERTY`,
set before the batch's first job); when its session closes, the pair is turned into the id that
the events table holds for that line, even if Drain generalized its template in between.

The separate queries (``logad ingest``, ``logad sessions run``, ``logad score``) stay: for
backfills and replays, for a second model scoring the same sessions, and for ingest at bulk rates
where nobody waits for an alert (docs/operate.md says which to use when).

Exactly once: a batch Spark replays after a crash writes nothing twice (each table skips a
``txnVersion`` it has), the template stage does not mine or count it twice, and the session
state is Spark's, committed with the batch. Alerts are at least once; each carries a stable
``alert_id`` (session id + model version) for consumers to deduplicate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from logad.config import KafkaSource, Warehouse
from logad.parse.headers import Parser
from logad.sessions.rules import SessionRules
from logad.sessions.spark import BUCKETS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

    from logad.live_scoring import ScoreStage
    from logad.templates.stream import TemplateStage

log = logging.getLogger(__name__)


def resolve_templates(cut: DataFrame, stage: TemplateStage) -> tuple[DataFrame, set[str]]:
    """``cut`` rows (closed and open sessions) with ``template_ids`` turned from masked texts into
    the ids their lines got in ``events``, and the set of those ids: the distinct (masked text,
    batch) pairs of the rows go to the driver, the answer comes back as one broadcast map."""
    from pyspark.sql import functions as F

    pairs = {(r[0], int(r[1])) for r in cut.where("kind IN ('session', 'open')")
             .select(F.explode(F.arrays_zip("template_ids", "event_batches")).alias("p"))
             .select("p.template_ids", "p.event_batches").distinct().collect()}
    if not pairs:
        return cut, set()
    resolved = stage.ids_as_of(pairs)
    ids = {f"{batch}\x1f{masked}": tid for (masked, batch), tid in resolved.items()}
    lookup = cut.sparkSession.createDataFrame([(ids,)], "_ids map<string,string>")
    key = F.arrays_zip("template_ids", "event_batches")
    return (cut.crossJoin(F.broadcast(lookup))
            .withColumn("template_ids", F.transform(key, lambda x: F.col("_ids")[F.concat(
                x["event_batches"].cast("string"), F.lit("\x1f"), x["template_ids"])]))
            .drop("_ids")), set(resolved.values())


def start_pipeline(spark: SparkSession, source: KafkaSource, warehouse: Warehouse, rules: Sequence[SessionRules],
                   score: ScoreStage | None = None, *, parser: Parser | None = None, trigger: str = "1 second",
                   query_name: str = "run", template_parser: str = "drain", buckets: int = BUCKETS,
                   early: bool = True) -> StreamingQuery:
    """Start the one query Kafka -> ``raw_logs``, ``events``, ``rejects``, ``templates`` ->
    ``sessions`` -> ``scores`` + alerts (see the module docstring). Without ``score`` it stops at
    ``sessions``. ``early`` (with ``score``): the prefixes of open sessions that grew are scored
    too (``early_scores``), so an HDFS block open for a day is alerted on while it grows.

    Example:
        >>> stage = ScoreStage(spark, wh, bootstrap="kafka1:9092")  # doctest: +SKIP
        >>> q = start_pipeline(spark, KafkaSource("kafka1:9092", subscribe_pattern=r"logs\\..*"), wh,
        ...                    [rules_for("spark"), rules_for("hdfs")], stage)  # doctest: +SKIP
    """
    from pyspark.sql import functions as F

    from logad.ingest import EVENTS, RAW_LOGS, REJECTS, raw_logs_from_parsed
    from logad.io import checkpoint as ckpt
    from logad.io.delta import start_gated, write_tables
    from logad.io.kafka import read_kafka
    from logad.live_scoring import score_outputs
    from logad.parse.headers import events, parse_records, rejects
    from logad.sessions.spark import (
        BATCH_PROPERTY,
        SESSIONS,
        LabelsCache,
        cut_stream,
        late_rejects,
        sessions_from_cut,
    )
    from logad.templates.stream import MASKED, TemplateStage

    checkpoint = warehouse.checkpoint(query_name)
    ckpt.validate(checkpoint)
    stage = TemplateStage(spark, warehouse, template_parser)
    early = early and score is not None
    if score is not None:
        # the state cuts each session once and every table is written once per batch: no read of
        # scores to skip sessions scored before (that is for queries that may re-read sessions)
        score.once_per_session = False
    parsed = stage.columns(parse_records(read_kafka(spark, source), parser))
    # A barrier for the optimizer. The session branch's filters and its many regexes over
    # ``content`` would otherwise be pushed into, and collapsed with, the parsing projection,
    # copying its large expressions into every use: planning ran out of memory. Spark neither
    # pushes a filter through nor inlines a nondeterministic column; wrapping each column in an
    # always-true nondeterministic condition makes them so, at the cost of one comparison per value.
    opaque = parsed.select(*[F.when(F.spark_partition_id() >= 0, F.col(c)).alias(c) for c in parsed.columns])
    lines = events(opaque, extra=(MASKED,)).withColumn("template_id", F.col(MASKED))
    cut = cut_stream(lines, rules, buckets, early)
    # one plan, two branches over the same Kafka offsets: the records, and what the state cut
    both = (parsed.select(F.struct(*parsed.columns).alias("_rec"))
            .unionByName(cut.select(F.struct(*cut.columns).alias("_cut")), allowMissingColumns=True))
    labels = LabelsCache(spark, warehouse)
    sc = spark.sparkContext

    def write_batch(batch: DataFrame, batch_id: int, app_id: str) -> None:
        started = time.perf_counter()
        sc.setLocalProperty(BATCH_PROPERTY, str(batch_id))  # before the batch's first job: the state reads it
        base = batch.persist()
        kept: list[DataFrame] = []
        try:
            part = (F.when(F.col("_rec").isNotNull(),
                           F.when(F.col("_rec.reject_reason").isNull(), "event").otherwise("reject"))
                    .otherwise(F.col("_cut.kind")))
            counts: dict[str, int] = {r[0]: r[1] for r in base.groupBy(part).count().collect()}
            timings = [f"{counts} in {time.perf_counter() - started:.2f}s"]
            if not counts:
                return
            records = base.where("_rec IS NOT NULL").select("_rec.*")
            cut = base.where("_cut IS NOT NULL").select("_cut.*")
            t = time.perf_counter()
            tagged = stage.apply(records, batch_id, app_id, defer_commit=True)
            timings.append(f"templates {time.perf_counter() - t:.2f}s")
            todo: list[tuple[str, str, DataFrame]] = []
            if counts.get("event", 0) + counts.get("reject", 0):
                todo.append((RAW_LOGS, warehouse.table(RAW_LOGS), raw_logs_from_parsed(records)))
            if counts.get("event"):
                todo.append((EVENTS, warehouse.table(EVENTS), events(tagged, extra=("template_id",))))
            bad = ([rejects(records)] if counts.get("reject") else []) + \
                ([late_rejects(cut)] if counts.get("late") else [])
            if bad:
                todo.append((REJECTS, warehouse.table(REJECTS),
                             bad[0] if len(bad) == 1 else bad[0].unionByName(bad[1])))
            if counts.get("session") or (early and counts.get("open")):
                t = time.perf_counter()
                resolved, template_ids = resolve_templates(cut, stage)
                lab = labels.get()
                timings.append(f"ids {time.perf_counter() - t:.2f}s")
                if counts.get("session"):
                    todo.append((SESSIONS, warehouse.table(SESSIONS), sessions_from_cut(resolved, lab)))
                if score is not None:
                    t = time.perf_counter()
                    scored_in = sessions_from_cut(resolved, lab, with_open=early).persist()
                    kept.append(scored_in)
                    score.recent = records.select("topic", "partition", "offset", "host", "source", "line")
                    score.texts.update(stage.texts())  # this batch's new ones are not committed yet
                    scored = score.apply(scored_in, batch_id, app_id, template_ids)
                    timings.append(f"score {time.perf_counter() - t:.2f}s")
                    for name, (uri, transform) in score_outputs(warehouse, early).items():
                        if counts.get("session" if name == "scores" else "open"):
                            todo.append((name, uri, transform(scored)))
            # the templates commit goes beside the tables: off the alert path, and safe in any order
            write_tables(todo, batch_id, app_id, timings, beside={"templates commit": stage.commit_pending})
            log.info("%s batch %d: %s; %.2fs in all", query_name, batch_id, ", ".join(timings),
                     time.perf_counter() - started)
        finally:
            if score is not None:
                score.recent = None
            for df in kept:
                df.unpersist()
            base.unpersist()

    writer = (both.writeStream.queryName(query_name).option("checkpointLocation", checkpoint)
              .trigger(processingTime=trigger))
    query = start_gated(writer, checkpoint, query_name, write_batch)
    log.info("query %s: %s -> raw_logs, events, rejects, templates -> sessions (%s)%s", query_name,
             source.subscribe_pattern or source.subscribe,
             ", ".join(f"{r.system}:{r.kind}" for r in rules),
             f" -> scores, alerts to {score.alerts_topic}" if score is not None and score.alerts_topic
             else " -> scores" if score is not None else "")
    return query


def table_counts(warehouse: Warehouse) -> dict[str, Any]:
    """Each pipeline table's summary (version, rows, files), for the CLI's report."""
    from logad.io.delta import table_exists, table_summary

    names = ("raw_logs", "events", "rejects", "templates", "sessions", "scores", "early_scores")
    return {n: table_summary(warehouse.table(n)) for n in names if table_exists(warehouse.table(n))}
