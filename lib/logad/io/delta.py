"""Delta tables through delta-spark: streaming and batch writes, reads, time travel, small tables.

Every write is delta-spark's ``format("delta")``; streaming outputs are exactly once per
micro-batch (the Delta sink keys commits on the query id, ``foreachBatch`` writes on
``txnAppId``/``txnVersion``). Small driver-side tables are written whole
(:func:`write_small`: ``templates`` is replaced per batch) or merged by key (:func:`merge_small`).

A few read-only helpers (:func:`table_exists`, :func:`table_version`, :func:`rows_added`) read
the Delta log's files themselves through :mod:`logad.io.fs`, on any Hadoop filesystem and without a
SparkSession for a local table, so the CLI can answer about a table without starting Spark
(docs/native-stack.md has the measurement); :func:`table_summary` and :func:`committed_version`
use delta-rs on a local disk.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from logad.errors import DeltaError, StopRequested
from logad.io import checkpoint as ckpt
from logad.io import fs

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import DataStreamWriter, StreamingQuery
    from pyspark.sql.types import StructType

log = logging.getLogger(__name__)


class BatchGate:
    """Lets a foreachBatch query stop between micro-batches, never inside one.

    Each batch runs holding the gate; :meth:`close` waits for the batch in flight to finish its
    commits, then refuses new ones (a refused batch writes nothing and is replayed on restart).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False
        self.last_done: int | None = None

    @contextmanager
    def batch(self, batch_id: int) -> Iterator[None]:
        with self._lock:
            if self._closed:
                raise StopRequested(f"batch {batch_id} not started: the query is stopping")
            yield
            self.last_done = batch_id

    def close(self, timeout_s: float | None = None) -> bool:
        """Close; True once no batch is in flight (False if one was still running at timeout)."""
        self._closed = True
        if not self._lock.acquire(timeout=-1 if timeout_s is None else timeout_s):
            return False
        self._lock.release()
        return True


_GATES: dict[str, BatchGate] = {}


class BatchStage(Protocol):
    """A step of a multi-table query that needs the whole micro-batch and the driver (an
    action, driver-side state, its own commits), such as template mining.

    ``schema`` gives the streaming DataFrame the columns ``apply`` adds (values do not matter),
    so the output tables can be created before the first batch. ``apply`` runs once per batch,
    on the persisted prepared batch, before any output is written; it must be idempotent per
    ``(app_id, batch_id)``, since Spark replays the last batch after a crash.
    """

    def schema(self, df: DataFrame) -> DataFrame: ...

    def apply(self, batch: DataFrame, batch_id: int, app_id: str) -> DataFrame: ...


def stop_between_batches(query: StreamingQuery, timeout_s: float | None = None) -> None:
    """Stop ``query`` after its micro-batch in flight has committed, not in the middle of it.

    For the queries :func:`write_stream_tables` starts;
    ``timeout_s`` bounds the wait, after which the query is stopped anyway (still safe: the
    writes are idempotent and Spark replays the interrupted batch on restart).
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    gate = _GATES.pop(str(query.id), None)
    if gate is not None and not gate.close(timeout_s):
        log.warning("%s: a batch still ran after %ss; stopping inside it (it is replayed on restart)",
                    query.name, timeout_s)
    elif gate is not None and gate.last_done is not None:
        # Spark writes the batch to the checkpoint's commit log after foreachBatch returns and
        # only then reports progress; stop once it has, so no finished batch is replayed.
        while query.isActive and (deadline is None or time.monotonic() < deadline):
            progress = query.lastProgress
            if progress is not None and progress["batchId"] >= gate.last_done:
                break
            time.sleep(0.05)
    query.stop()


def batch_app_id(checkpoint: str, query_name: str) -> str:
    """The ``txnAppId`` of the query at ``checkpoint``: ``logad-<query id>`` (the query name
    before the checkpoint has one)."""
    return f"logad-{ckpt.validate(checkpoint) or query_name}"


def start_gated(writer: DataStreamWriter, checkpoint: str, query_name: str,
                 write: Callable[[DataFrame, int, str], object]) -> StreamingQuery:
    """Start ``writer`` with ``write(batch, batch_id, app_id)`` as its foreachBatch, inside a
    :class:`BatchGate` that :func:`stop_between_batches` can close. ``app_id`` is
    ``logad-<query id>``, stable across restarts of the checkpoint: the key of idempotent commits."""
    gate = BatchGate()
    app: dict[str, str] = {}

    def commit(batch: DataFrame, batch_id: int) -> None:
        with gate.batch(batch_id):
            if "id" not in app:
                app["id"] = batch_app_id(checkpoint, query_name)
            write(batch, batch_id, app["id"])

    query = writer.foreachBatch(commit).start()
    _GATES[str(query.id)] = gate
    return query


def write_stream(df: DataFrame, table_uri: str, checkpoint: str, *, query_name: str,
                 trigger: str = "10 seconds", partition_by: tuple[str, ...] = ()) -> StreamingQuery:
    """Start a streaming query that appends ``df`` to the Delta table at ``table_uri``.

    Exactly once across restarts and crashes: the Delta sink keys commits on the query id and
    batch id.

    Args:
        df: a streaming DataFrame.
        table_uri: the table's folder or URI.
        checkpoint: the query's checkpoint location (checked first; see :mod:`logad.io.checkpoint`).
        query_name: the query's name in the Spark UI and the logs.
        trigger: a processing-time interval such as ``"10 seconds"``.
        partition_by: partition columns of the table.

    Example:
        >>> q = write_stream(events, "/w/tables/raw_logs", "/w/checkpoints/ingest",
        ...                  query_name="ingest")  # doctest: +SKIP
    """
    ckpt.validate(checkpoint)
    writer = (df.writeStream.queryName(query_name).option("checkpointLocation", checkpoint)
              .trigger(processingTime=trigger))
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    return writer.format("delta").outputMode("append").start(table_uri)


@dataclass(frozen=True)
class Chain:
    """A stage run on one output of the same micro-batch, with outputs of its own.

    For scoring the sessions a sessions batch closed in that batch (:func:`logad.sessions.spark.
    start_sessions` with ``score=``) instead of in a second query that waits for its trigger and
    reads the ``sessions`` table back: ``stage.apply`` gets the rows written to ``outputs[source]``
    and each of ``outputs`` is written from what it returns, exactly once per batch like the rest.
    """

    source: str
    stage: BatchStage
    outputs: Mapping[str, tuple[str, Callable[[DataFrame], DataFrame]]]
    # the stage's input from the (staged) batch when it is not just the source output's rows
    # (the sessions query also scores the prefixes of sessions still open)
    input: Callable[[DataFrame], DataFrame] | None = None


def overlapping(table_uri: str, df: DataFrame, span: tuple[str, str] = ("start_ts", "end_ts")) -> DataFrame | None:
    """The table's rows whose time span (``span``: start and end columns) overlaps that of
    ``df``'s rows; None without a table or without rows. Delta skips the files outside the span
    by their column statistics, so the cost follows the batch, not the table."""
    from pyspark.sql import functions as F

    if not table_exists(table_uri):
        return None
    lo, hi = df.agg(F.min(span[0]), F.max(span[1])).first() or (None, None)
    if lo is None:
        return None
    return read_table(df.sparkSession, table_uri).where((F.col(span[1]) >= F.lit(lo)) & (F.col(span[0]) <= F.lit(hi)))


def absent(table_uri: str, df: DataFrame, key: str = "session_id",
           span: tuple[str, str] = ("start_ts", "end_ts")) -> DataFrame:
    """The rows of ``df`` whose ``key`` the table does not hold yet: for tables that hold each
    session once however many queries, restarts or re-reads write it (``sessions``, ``scores``).
    Only the table's rows whose span overlaps the batch's are read (:func:`overlapping`): a row
    with the same session id has the same opening line, so its span overlaps.
    """
    existing = overlapping(table_uri, df, span)
    return df if existing is None else df.join(existing.select(key), key, "left_anti")


def write_once(name: str, uri: str, out: DataFrame, batch_id: int, app_id: str, timings: list[str],
               unique: Mapping[str, str] | None = None) -> None:
    """Append ``out`` to the table at ``uri`` as micro-batch ``batch_id`` of ``app_id``: delta-spark's
    ``txnAppId``/``txnVersion`` make a replayed batch a no-op. ``unique`` (table name -> key
    column): insert only the keys the table does not hold (:func:`absent`). Appends
    ``"<name> <seconds>s"`` to ``timings``."""
    t = time.perf_counter()
    if unique and name in unique:
        out = absent(uri, out, unique[name])
    # mergeSchema: a column added in a later logad version is added to an existing table
    (out.write.format("delta").option("txnAppId", app_id).option("txnVersion", batch_id)
     .option("mergeSchema", "true").mode("append").save(uri))
    timings.append(f"{name} {time.perf_counter() - t:.2f}s")


def write_tables(todo: list[tuple[str, str, DataFrame]], batch_id: int, app_id: str, timings: list[str],
                 unique: Mapping[str, str] | None = None,
                 beside: Mapping[str, Callable[[], object]] | None = None) -> None:
    """:func:`write_once` each ``(name, uri, rows)`` at the same time, one thread each: every
    write is a Spark job and a commit whose fixed cost (scheduling, the Delta log) dominates a
    small micro-batch, and the tables do not depend on each other (each write is exactly once by
    itself). ``beside``: other commits of the batch (name -> call) to run in threads alongside,
    timed the same way. Waits for all of them; the first error is raised after."""
    # the scheduler pool, job group and local properties go along to the threads
    from pyspark import InheritableThread

    errors: list[BaseException] = []

    def run(job: Callable[[], object]) -> None:
        try:
            job()
        except BaseException as e:  # raised in the batch's thread below
            errors.append(e)

    def timed(name: str, call: Callable[[], object]) -> Callable[[], None]:
        def job() -> None:
            t = time.perf_counter()
            call()
            timings.append(f"{name} {time.perf_counter() - t:.2f}s")
        return job

    from functools import partial

    jobs: list[Callable[[], object]] = [partial(write_once, name, uri, out, batch_id, app_id, timings, unique)
                                        for name, uri, out in todo]
    jobs += [timed(name, call) for name, call in (beside or {}).items()]
    if len(jobs) == 1:
        jobs[0]()
        return
    threads = [InheritableThread(run, args=(job,)) for job in jobs]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]


def write_stream_tables(df: DataFrame, outputs: Mapping[str, tuple[str, Callable[[DataFrame], DataFrame]]],
                        checkpoint: str, *, query_name: str, trigger: str = "10 seconds",
                        prepare: Callable[[DataFrame], DataFrame] | None = None,
                        stage: BatchStage | None = None, chain: Chain | None = None,
                        unique: Mapping[str, str] | None = None,
                        unstaged: Collection[str] = ()) -> StreamingQuery:
    """Start one streaming query that appends to several Delta tables, each exactly once.

    Each micro-batch is ``prepare``-d once and persisted, passed through ``stage`` if there is
    one (:class:`BatchStage`), then every output
    ``name -> (table_uri, transform)`` is written from it with delta-spark's idempotent
    ``txnAppId`` / ``txnVersion`` writes, the tables at the same time (one thread each). A replayed batch is skipped table by table, so a crash between two tables' commits is
    repaired on restart. A ``chain`` then runs its stage
    on one of those outputs and writes its own outputs the same way. ``unique`` (table name ->
    key column) makes a table's writes insert-if-absent (:func:`absent`): a key another query or
    an earlier run already wrote is not written again (the chain still gets every row). An empty micro-batch (a
    stateful query's batch that only moves the watermark and closes nothing) writes nothing.
    ``unstaged``: outputs that need nothing the stage adds, written from the prepared batch as it
    was (the ingest query's ``raw_logs`` and ``rejects`` skip the join to template ids: 0.25 to
    0.45 s less per 100,000-line batch, measured).

    Example:
        >>> write_stream_tables(records, {"events": ("/w/tables/events", events)},
        ...                     "/w/checkpoints/ingest", query_name="ingest",
        ...                     prepare=parse_records)  # doctest: +SKIP
    """
    ckpt.validate(checkpoint)
    prepared = prepare(df) if prepare else df
    if stage is not None:
        prepared = stage.schema(prepared)
    if chain is not None and chain.source not in outputs:
        raise ValueError(f"chain source {chain.source!r} is not one of the outputs {sorted(outputs)}")

    def write_all(todo: list[tuple[str, str, DataFrame]], batch_id: int, app_id: str, timings: list[str]) -> None:
        write_tables(todo, batch_id, app_id, timings, unique)

    def write_batch(batch: DataFrame, batch_id: int, app_id: str) -> None:
        started = time.perf_counter()
        base = (prepare(batch) if prepare else batch).persist()
        kept: DataFrame | None = None
        try:
            rows = base.count()  # materialises the prepared batch once, for every table
            timings = [f"{rows} in, prepared in {time.perf_counter() - started:.2f}s"]
            if rows == 0:
                log.debug("%s batch %d: empty, nothing to write", query_name, batch_id)
                return
            staged = base
            if stage is not None:
                t = time.perf_counter()
                staged = stage.apply(base, batch_id, app_id)
                timings.append(f"{type(stage).__name__} {time.perf_counter() - t:.2f}s")
            todo = []
            for name, (uri, transform) in outputs.items():
                out = transform(base if name in unstaged else staged)
                if chain is not None and chain.input is None and name == chain.source:
                    kept = out = out.persist()
                todo.append((name, uri, out))
            if chain is not None and chain.input is not None:
                kept = chain.input(staged).persist()
            write_all(todo, batch_id, app_id, timings)
            if chain is not None and kept is not None:
                t = time.perf_counter()
                chained = chain.stage.apply(kept, batch_id, app_id)
                timings.append(f"{type(chain.stage).__name__} {time.perf_counter() - t:.2f}s")
                write_all([(name, uri, transform(chained)) for name, (uri, transform) in chain.outputs.items()],
                          batch_id, app_id, timings)
            log.info("%s batch %d: %s", query_name, batch_id, ", ".join(timings))
        finally:
            if kept is not None:
                kept.unpersist()
            base.unpersist()

    writer = (df.writeStream.queryName(query_name).option("checkpointLocation", checkpoint)
              .trigger(processingTime=trigger))
    return start_gated(writer, checkpoint, query_name, write_batch)


def write_table(df: DataFrame, table_uri: str) -> None:
    """Replace the rows of the table at ``table_uri`` with ``df`` (a batch DataFrame), one commit.

    For batch outputs such as a sessions backfill; the table takes ``df``'s schema (a backfill
    made by an older logad, without a column added since, is replaced, not refused).
    """
    df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(table_uri)


def append_table(df: DataFrame, table_uri: str) -> None:
    """Append the rows of ``df`` (a batch DataFrame) to the table, one commit."""
    df.write.format("delta").mode("append").save(table_uri)


def read_table(spark: SparkSession, table_uri: str, version: int | None = None) -> DataFrame:
    """A batch read of the table's snapshot (the latest, or ``version``: time travel)."""
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    try:
        return reader.load(table_uri)
    except Exception as e:
        if _missing(e):
            raise DeltaError(f"no Delta table at {table_uri}"
                             + (f" (version {version})" if version is not None else "")) from e
        raise DeltaError(f"cannot read {'version ' + str(version) + ' of ' if version is not None else ''}"
                         f"the Delta table at {table_uri}: {why(e)}") from e


def read_stream(spark: SparkSession, table_uri: str, starting_version: int = 0) -> DataFrame:
    """A streaming read (Delta's streaming source) of the rows appended from ``starting_version`` on."""
    return (spark.readStream.format("delta").option("startingVersion", starting_version)
            .load(table_uri))


# Spark's and delta-spark's error conditions for "there is no table here"
_NO_TABLE = frozenset({"PATH_NOT_FOUND", "DELTA_MISSING_DELTA_TABLE", "DELTA_TABLE_NOT_FOUND",
                       "DELTA_PATH_DOES_NOT_EXIST"})


def _missing(e: BaseException) -> bool:
    """Whether the error says there is no table: by its error condition, or (time travel on a
    missing table) by the Java exception's class."""
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    if isinstance(e, PySparkException):
        return (e.getCondition() or "") in _NO_TABLE
    if isinstance(e, Py4JJavaError):
        return str(e.java_exception.getClass().getName()) == "java.io.FileNotFoundException"
    return False


_CHECKPOINT_INTERVAL = 10  # Delta's default checkpointInterval: the probes past _last_checkpoint


def _log_dir(table_uri: str) -> str:
    return fs.join(table_uri, "_delta_log")


def table_exists(table_uri: str) -> bool:
    """Whether a Delta table is at ``table_uri`` (a ``_delta_log`` holding a commit or a
    checkpoint), on any Hadoop filesystem."""
    return any(n.endswith(".json") and n[:20].isdigit() or ".checkpoint." in n
               for n in fs.listdir(_log_dir(table_uri)))  # [] without a log folder


def table_version(table_uri: str) -> int:
    """The table's latest version, read from its ``_delta_log`` (no SparkSession): from
    ``_last_checkpoint`` on, commit files are probed one by one, so a streaming table's log of
    thousands of commits is not listed."""
    log_dir = _log_dir(table_uri)
    start = None
    last = fs.join(log_dir, "_last_checkpoint")
    try:
        if fs.exists(last):
            start = int(json.loads(fs.read_text(last))["version"])
    except (ValueError, KeyError, OSError):
        start = None
    if start is None:
        versions = [int(n[:20]) for n in fs.listdir(log_dir) if n.endswith(".json") and n[:20].isdigit()]
        if not versions:
            raise DeltaError(f"no Delta table at {table_uri}")
        return max(versions)
    version = start
    while fs.exists(fs.join(log_dir, f"{version + 1:020d}.json")):
        version += 1
    return version


def _commit(table_uri: str, version: int) -> list[dict[str, Any]]:
    text = fs.read_text(fs.join(_log_dir(table_uri), f"{version:020d}.json"))
    return [json.loads(line) for line in text.splitlines() if line]


def rows_added(table_uri: str, app_id: str, after_version: int) -> int:
    """Rows that the commits after ``after_version`` made with ``txnAppId`` ``app_id`` added to
    the table: their ``numOutputRows``, read from the Delta log's commit files (no data file is
    read, however large the table). 0 without a table."""
    if not table_exists(table_uri):
        return 0
    rows = 0
    for version in range(after_version + 1, table_version(table_uri) + 1):
        actions = _commit(table_uri, version)
        if any(a.get("txn", {}).get("appId") == app_id for a in actions):
            rows += sum(int(a["commitInfo"].get("operationMetrics", {}).get("numOutputRows", 0))
                        for a in actions if "commitInfo" in a)
    return rows


def table_summary(table_uri: str) -> dict[str, object]:
    """Version, row count (from file statistics) and file count, for logs and the CLI: with
    delta-rs for a local table, with Spark's Delta on other filesystems. No table yet (a query
    that wrote nothing): version None, 0 files and rows."""
    if not table_exists(table_uri):
        return {"table": table_uri, "version": None, "files": 0, "rows": 0}
    if not fs.is_local(table_uri):
        from delta.tables import DeltaTable as SparkDeltaTable
        from pyspark.sql import SparkSession

        from logad.spark_session import get_spark

        spark = SparkSession.getActiveSession() or get_spark("logad-summary")
        detail: Any = SparkDeltaTable.forPath(spark, table_uri).detail().first()
        return {"table": table_uri, "version": table_version(table_uri), "files": int(detail["numFiles"]),
                "rows": read_table(spark, table_uri).count()}
    from deltalake import DeltaTable

    table = DeltaTable(fs.local_path(table_uri))
    actions = table.get_add_actions(flatten=True)
    import pyarrow as pa

    rows = pa.table(actions).column("num_records").to_pylist() if actions.num_rows else []
    return {"table": table_uri, "version": table.version(), "files": len(rows),
            "rows": int(sum(r or 0 for r in rows))}


def write_small(spark: SparkSession, table_uri: str, data: pa.Table,
                mode: Literal["append", "overwrite"] = "append") -> None:
    """Write a small table that lives on the driver (``append`` or ``overwrite``), one commit."""
    try:
        (_frame(spark, data)
         .write.format("delta").mode(mode).save(table_uri))
    except Exception as e:
        raise DeltaError(f"cannot write to the Delta table at {table_uri}: {e}") from e


def replace_small(spark: SparkSession, table_uri: str, data: pa.Table, where: str) -> None:
    """Replace the rows matching the SQL predicate ``where`` with the driver's rows ``data`` (each
    of which must match it), one commit (Delta's ``replaceWhere``); the table is created when
    there is none. Idempotent: the same call twice leaves the same rows."""
    from delta.tables import DeltaTable

    try:
        writer = _frame(spark, data).write.format("delta")
        if DeltaTable.isDeltaTable(spark, table_uri):
            writer = writer.mode("overwrite").option("replaceWhere", where)
        writer.save(table_uri)
    except Exception as e:
        raise DeltaError(f"cannot write to the Delta table at {table_uri}: {e}") from e


def merge_small(spark: SparkSession, table_uri: str, data: pa.Table, keys: tuple[str, ...]) -> None:
    """Upsert the driver's rows ``data`` into the table on ``keys`` (one MERGE commit): rows with
    a known key are updated, new keys inserted, the others left as they are. Idempotent: the same
    rows merged twice (a replayed micro-batch) leave the same table."""
    if data.num_rows == 0:
        return
    from delta.tables import DeltaTable

    try:
        updates = _frame(spark, data)
        cond = " AND ".join(f"t.`{k}` = u.`{k}`" for k in keys)
        (DeltaTable.forPath(spark, table_uri).alias("t").merge(updates.alias("u"), cond)
         .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute())
    except Exception as e:
        raise DeltaError(f"cannot merge into the Delta table at {table_uri}: {e}") from e


def create_small(spark: SparkSession, table_uri: str, schema: pa.Schema) -> None:
    """Create an empty table for :func:`write_small` unless there is one (readers then find it)."""
    try:
        (spark.createDataFrame([], schema=_spark_schema(schema))
         .write.format("delta").mode("ignore").save(table_uri))
    except Exception as e:
        raise DeltaError(f"cannot create the Delta table at {table_uri}: {e}") from e


def read_small(spark: SparkSession, table_uri: str) -> pa.Table | None:
    """The latest snapshot of a small table, on the driver; None when there is no table yet."""
    try:
        return spark.read.format("delta").load(table_uri).toArrow()
    except Exception as e:
        if _missing(e):
            return None
        raise DeltaError(f"cannot read the Delta table at {table_uri}: {why(e)}") from e


_CAUSE = re.compile(r"^Caused by: (?:[\w.$]+(?:Exception|Error): )?(.+)$", re.MULTILINE)
_DAMAGED_LOG = re.compile(r"(file:\S*_delta_log/\d+\.(?:json|checkpoint\.parquet))")


def why(e: BaseException) -> str:
    """One line for a JVM failure while reading or writing a table: the deepest cause, and for a
    damaged commit in ``_delta_log`` the file and what to do (a Spark error is a page of stack)."""
    text = str(e)
    causes = _CAUSE.findall(text)
    first = next((ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith(":")), "")
    cause = (causes[-1] if causes else first).strip()
    damaged = _DAMAGED_LOG.search(text)
    if damaged and ("Checksum" in text or "FAILED_READ_FILE" in text or "JsonParseException" in text
                    or "MALFORMED" in text):
        return (f"the table's log file {damaged.group(1)} is damaged ({cause[:160]}); restore it "
                "from a backup, or move the table aside to rebuild it from its source")
    return cause[:300]


def _frame(spark: SparkSession, data: pa.Table) -> DataFrame:
    """The driver's Arrow table as a DataFrame, straight from Arrow (Spark 4 takes a
    ``pyarrow.Table``): through pandas, list columns arrive as numpy arrays of numpy scalars that
    Spark's schema check refuses."""
    return spark.createDataFrame(data)


def _spark_schema(schema: pa.Schema) -> StructType:
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)


def committed_version(table_uri: str, app_id: str) -> int | None:
    """The last ``txnVersion`` (micro-batch id) that application ``app_id`` committed to the
    table, read from the Delta log's ``txn`` actions; None if it never wrote there. Local tables
    are read with delta-rs (which replays checkpoints too); other filesystems from the commits
    still in the log."""
    if not table_exists(table_uri):
        return None
    if fs.is_local(table_uri):
        from deltalake import DeltaTable

        return DeltaTable(fs.local_path(table_uri)).transaction_version(app_id)  # type: ignore[no-any-return]
    best: int | None = None
    for n in fs.listdir(_log_dir(table_uri)):
        if n.endswith(".json") and n[:20].isdigit():
            for action in _commit(table_uri, int(n[:20])):
                txn = action.get("txn")
                if txn and txn.get("appId") == app_id:
                    best = max(best or 0, int(txn["version"]))
    return best
