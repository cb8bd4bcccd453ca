"""Ingest: Kafka records to the ``raw_logs``, ``events`` and ``rejects`` Delta tables, exactly once.

One streaming query reads the host topics, parses every record once
(:func:`logad.parse.headers.parse_records`), gives every parsed line its ``template_id``
(:class:`logad.templates.stream.TemplateStage`, which also keeps the ``templates`` and
``template_lookup`` tables) and writes three tables from the same micro-batch: ``raw_logs``
(every record, decoded), ``events`` (records whose header parsed) and ``rejects`` (the rest,
with the reason and the raw bytes). Every record lands in exactly one of ``events`` and
``rejects``. Rows keep their Kafka coordinates (topic, partition, offset), so every later stage
can lead back to the raw line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from logad.config import KafkaSource, Warehouse
from logad.io.kafka import read_kafka
from logad.parse.headers import Parser

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)

RAW_LOGS, EVENTS, REJECTS = "raw_logs", "events", "rejects"


def raw_logs_from_parsed(parsed: DataFrame) -> DataFrame:
    """``raw_logs`` rows from :func:`parse_records` output (Filebeat events unwrapped)."""
    from pyspark.sql import functions as F

    return parsed.select("topic", "partition", "offset", "kafka_ts",
                         F.make_valid_utf8(F.col("key").cast("string")).alias("key"), "host", "source", "line",
                         F.current_timestamp().alias("ingested_at"))


def start_ingest(spark: SparkSession, source: KafkaSource, warehouse: Warehouse,
                 parser: Parser | None = None, trigger: str = "5 seconds",
                 query_name: str = "ingest", template_parser: str = "drain") -> StreamingQuery:
    """Start the streaming query Kafka -> ``raw_logs`` + ``events`` + ``rejects`` (and the
    template tables). ``template_parser`` is ``drain`` or ``swisslog``.

    Example:
        >>> q = start_ingest(spark, KafkaSource("kafka1:9092", subscribe_pattern=r"logs\\..*"),
        ...                  Warehouse("/data/logad"))  # doctest: +SKIP
    """
    from logad.io.delta import write_stream_tables
    from logad.parse.headers import events, parse_records, rejects
    from logad.templates.stream import TemplateStage

    stage = TemplateStage(spark, warehouse, template_parser)
    outputs = {
        RAW_LOGS: (warehouse.table(RAW_LOGS), raw_logs_from_parsed),
        EVENTS: (warehouse.table(EVENTS), lambda df: events(df, extra=("template_id",))),
        REJECTS: (warehouse.table(REJECTS), rejects),
    }
    query = write_stream_tables(read_kafka(spark, source), outputs, warehouse.checkpoint(query_name),
                                query_name=query_name, trigger=trigger,
                                prepare=lambda df: stage.columns(parse_records(df, parser)),
                                stage=stage, unstaged=(RAW_LOGS, REJECTS))  # neither needs template ids
    log.info("query %s: %s -> %s", query_name, source.subscribe_pattern or source.subscribe,
             ", ".join(uri for uri, _ in outputs.values()))
    return query


def _settle(query: StreamingQuery, settle_s: float) -> None:
    """After the last data batch of a stateful query, wait for the no-data batch Spark runs to
    apply the new watermark (timeouts, closing sessions), so ``once`` leaves nothing pending that
    the data read already allows. Gives up after ``settle_s`` without a new batch."""
    import time

    last = query.lastProgress
    if not last or not last.get("stateOperators"):
        return
    seen, deadline = last["batchId"], time.monotonic() + settle_s
    while query.isActive and time.monotonic() < deadline:
        progress = query.lastProgress
        if progress and progress["batchId"] > seen:
            if progress["numInputRows"] == 0:
                return
            seen, deadline = progress["batchId"], time.monotonic() + settle_s
        time.sleep(0.1)


@dataclass
class Ran:
    """What one :func:`run` of a query read: its micro-batches and their input rows (Spark's
    ``numInputRows``, summed from the progress events of this run)."""

    batches: int = 0
    input_rows: int = 0


class _Counter:
    """A StreamingQueryListener summing one query's progress (every batch, not only the last
    hundred that ``recentProgress`` keeps)."""

    def __init__(self, spark: SparkSession, query_id: str) -> None:
        from pyspark.sql.streaming import StreamingQueryListener

        counter = self
        self.ran, self.last_batch, self.spark = Ran(), -1, spark

        class Listener(StreamingQueryListener):
            def onQueryStarted(self, event: Any) -> None:
                pass

            def onQueryProgress(self, event: Any) -> None:
                p = event.progress
                if str(p.id) == query_id:
                    counter.ran.batches += 1
                    counter.ran.input_rows += int(p.numInputRows)
                    counter.last_batch = max(counter.last_batch, int(p.batchId))

            def onQueryIdle(self, event: Any) -> None:
                pass

            def onQueryTerminated(self, event: Any) -> None:
                pass

        self.listener = Listener()
        spark.streams.addListener(self.listener)

    def close(self, query: StreamingQuery, wait_s: float = 5.0) -> Ran:
        """Wait (briefly) for the listener bus to deliver the query's last progress, then detach."""
        import time

        last = query.lastProgress
        deadline = time.monotonic() + wait_s
        while last and self.last_batch < last["batchId"] and time.monotonic() < deadline:
            time.sleep(0.05)
        self.spark.streams.removeListener(self.listener)
        return self.ran


def rejects_version(warehouse: Warehouse) -> int:
    """The ``rejects`` table's version now (-1 without a table): where a run starts counting."""
    from logad.io.delta import table_exists, table_version

    uri = warehouse.table(REJECTS)
    return table_version(uri) if table_exists(uri) else -1


def rejects_written(warehouse: Warehouse, query_name: str, since: int) -> int:
    """Rows the query ``query_name`` added to ``rejects`` after version ``since``, counted from
    its commits in the Delta log (the table itself is not read)."""
    from logad.io.delta import batch_app_id, rows_added

    return rows_added(warehouse.table(REJECTS), batch_app_id(warehouse.checkpoint(query_name), query_name), since)


def check_rejects(rejected: int, ran: Ran, what: str, max_share: float) -> str | None:
    """The loud message when a run rejected more than ``max_share`` of what it read, else None."""
    share = rejected / ran.input_rows if ran.input_rows else 0.0
    log.info("%s: %d rows in, %d rejected (%.2f%%)", what, ran.input_rows, rejected, 100 * share)
    if rejected and share > max_share:
        return (f"{what} rejected {rejected:,} of {ran.input_rows:,} rows read ({share:.1%}, more than "
                f"--max-reject-share {max_share:.1%}): see the rejects table's reason column")
    return None


def run(query: StreamingQuery, once: bool, timeout_s: int | None = None,
        stop_timeout_s: float = 300.0, settle_s: float = 10.0) -> Ran:
    """Drive a started query until it is done, stopped or failed; return what it read.

    ``once`` processes what is there now (for a stateful query, also the batch that applies the
    final watermark, waiting up to ``settle_s``), then stops; otherwise it runs until ``timeout_s`` or a
    stop. SIGTERM (what YARN, Kubernetes and ``kill`` send) and Ctrl-C stop it between micro-batches:
    the batch in flight commits first (up to ``stop_timeout_s``), so a restart has nothing to
    replay. A second Ctrl-C stops at once (still safe: writes are idempotent and Spark replays an
    interrupted batch).
    """
    import signal
    import threading

    from logad.errors import StopRequested, explain
    from logad.io.delta import stop_between_batches
    from logad.io.kafka import explain_failure

    finished = threading.Event()
    requested: list[str] = []
    failure: list[BaseException] = []

    def drive() -> None:
        try:
            if once:
                query.processAllAvailable()
                _settle(query, settle_s)
            else:
                query.awaitTermination(timeout_s)
        except BaseException as e:  # reported by the main thread
            failure.append(e)
        finally:
            finished.set()

    def on_signal(signum: int, _frame: object) -> None:
        requested.append(signal.Signals(signum).name)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C: at once
        finished.set()

    in_main = threading.current_thread() is threading.main_thread()
    saved = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)} if in_main else {}
    from pyspark.sql import SparkSession

    counter = _Counter(SparkSession.active(), str(query.id))
    try:
        threading.Thread(target=drive, name=f"logad-{query.name}", daemon=True).start()
        while not finished.wait(0.5):
            pass
        if requested:
            log.info("%s: %s received, stopping after the batch in flight", query.name, requested[0])
        if query.isActive:
            stop_between_batches(query, stop_timeout_s)
        if requested:
            log.info("%s: stopped between batches", query.name)
    except KeyboardInterrupt:
        log.info("%s: stopping now", query.name)
        query.stop()
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        ran = counter.close(query)
    # After a requested stop, the driving thread's error is the stop itself.
    errors: list[BaseException] = [] if requested else list(failure)
    if query.exception() is not None:
        errors.append(query.exception())  # type: ignore[arg-type]
    for error in errors:
        clear = explain(error) or explain_failure(error)  # type: ignore[arg-type]
        if isinstance(clear, StopRequested):
            continue  # a batch refused after the stop: nothing written, replayed on restart
        if clear is not None:
            raise clear from None
        raise error if isinstance(error, Exception) else RuntimeError(str(error))
    return ran


def ingest_files(spark: SparkSession, warehouse: Warehouse, files: dict[str, str], *,
                 topic: str = "logs.files", parser: Parser | None = None,
                 template_parser: str = "drain", raw: bool = True) -> dict[str, int | None]:
    """Batch ingest of archived log files (``path -> host``; plain or .gz) into ``raw_logs``
    (unless ``raw`` is False), ``events`` and ``rejects``, with templates, as the stream would
    write them: each file is one host's ``source`` (its path as given, as ``logad ship`` sends
    it), its line number the offset (partition = the
    file's index in name order), so ``logad explain`` finds the raw lines; give each backfill its
    own ``topic`` to keep coordinates unique. For backfills and tests of moderate size: the lines
    are read on the driver. Returns rows per table.

    Example:
        >>> ingest_files(spark, Warehouse("/data/logad"), {"/archive/hdfs.log.gz": "dn1"})  # doctest: +SKIP
    """
    import gzip
    import uuid
    from pathlib import Path

    from pyspark.sql import functions as F

    from logad.errors import LogadError
    from logad.io.delta import append_table
    from logad.parse.headers import events, parse_records, rejects
    from logad.templates.stream import TemplateStage

    rows = []
    for part, (path, host) in enumerate(sorted(files.items())):
        p = Path(path)
        if not p.is_file():
            raise LogadError(f"no log file at {path}")
        data = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
        key = f"{host}|{path}".encode()  # as the shipper keys a file's records: two stderr files stay two
        rows += [(topic, part, i, key, line) for i, line in enumerate(data.splitlines())]
    records = (spark.createDataFrame(rows, "topic string, partition int, offset long, key binary, value binary")
               .withColumn("timestamp", F.current_timestamp()))
    stage = TemplateStage(spark, warehouse, template_parser)
    app = f"logad-files-{uuid.uuid4().hex[:8]}"
    parsed = stage.columns(parse_records(records, parser)).persist()
    tagged = stage.apply(parsed, 0, app).persist()
    outputs = {EVENTS: events(tagged, extra=("template_id",)), REJECTS: rejects(parsed)}
    if raw:
        outputs[RAW_LOGS] = raw_logs_from_parsed(parsed)
    counts: dict[str, int | None] = {}
    for name, out in outputs.items():
        counts[name] = out.count()  # from the persisted batch: cheap, and the log says it
        append_table(out, warehouse.table(name))
    tagged.unpersist()
    parsed.unpersist()
    log.info("ingested %d lines from %d files: %s events, %s rejects", len(rows), len(files),
             counts[EVENTS], counts[REJECTS])
    return counts
