"""Embedded Delta writes: executors write Parquet files, the driver commits them with delta-rs.

Owns the file layout (``part-<batch>-<uuid>.parquet``, Hive-style partition folders), the
per-file statistics Delta readers use to skip files, and the commit: one delta-rs transaction per
micro-batch, carrying an application transaction ``(app_id, batch_id)`` so a batch that Spark
replays after a crash is recognised and skipped. Does not own Spark streaming (see
:mod:`logad.io.delta`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from logad.errors import DeltaError

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

ADD_SCHEMA = "path string, size long, partition_values string, stats string"


def is_remote(uri: str) -> bool:
    """Whether ``uri`` names an object store or cluster file system rather than a local path."""
    return "://" in uri and not uri.startswith("file://")


def _filesystem(uri: str) -> tuple[Any, str]:
    import pyarrow.fs as pafs

    return pafs.FileSystem.from_uri(uri if "://" in uri else "file://" + uri)


def arrow_schema(df: DataFrame) -> pa.Schema:
    """The Arrow schema logad writes for ``df`` (timestamps as microseconds, UTC)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(df.schema, timestamp_utc=True)


def file_writer(table_uri: str, schema: pa.Schema, partition_by: tuple[str, ...],
                batch_id: int) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The ``mapInArrow`` function that writes one task's rows as Parquet files in the table.

    It yields one row per file written: its path relative to the table, size, partition values
    and statistics, ready to become a Delta ``add`` action on the driver.
    """

    def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        fs, root = _filesystem(table_uri)
        data_schema = pa.schema([f for f in schema if f.name not in partition_by])
        open_files: dict[tuple[Any, ...], tuple[Any, str, _Stats]] = {}
        try:
            for batch in batches:
                table = pa.Table.from_batches([batch]).cast(schema)
                for key, part in _split(table, partition_by):
                    if key not in open_files:
                        folder = "/".join(f"{c}={_hive(v)}" for c, v in zip(partition_by, key, strict=True))
                        rel = (folder + "/" if folder else "") + (
                            f"part-{batch_id:08d}-{uuid.uuid4().hex}.snappy.parquet")
                        fs.create_dir(f"{root}/{folder}" if folder else root, recursive=True)
                        sink = fs.open_output_stream(f"{root}/{rel}")
                        writer = pq.ParquetWriter(sink, data_schema, compression="snappy")
                        open_files[key] = (writer, rel, _Stats(data_schema))
                    writer, _, stats = open_files[key]
                    data = part.select(data_schema.names)
                    writer.write_table(data)
                    stats.add(data)
        finally:
            for writer, _, _ in open_files.values():
                writer.close()
        rows = []
        for key, (_, rel, stats) in open_files.items():
            values = {c: (None if v is None else _hive_value(v)) for c, v in zip(partition_by, key, strict=True)}
            size = fs.get_file_info(f"{root}/{rel}").size
            rows.append((rel, size, json.dumps(values), stats.to_json()))
        yield pa.RecordBatch.from_arrays(
            [pa.array([r[i] for r in rows], t) for i, t in
             enumerate((pa.string(), pa.int64(), pa.string(), pa.string()))],
            names=["path", "size", "partition_values", "stats"])

    return write


def _split(table: pa.Table, partition_by: tuple[str, ...]) -> Iterator[tuple[tuple[Any, ...], pa.Table]]:
    if not partition_by:
        yield (), table
        return
    import pyarrow.compute as pc

    keys = table.select(list(partition_by)).to_pylist()
    for key in dict.fromkeys(tuple(k[c] for c in partition_by) for k in keys):
        mask = None
        for col, value in zip(partition_by, key, strict=True):
            cond = pc.is_null(table[col]) if value is None else pc.equal(table[col], value)
            mask = cond if mask is None else pc.and_(mask, cond)
        yield key, table.filter(mask)


def _hive_value(v: Any) -> str:
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S.%f")
    return str(v)


def _hive(v: Any) -> str:
    from urllib.parse import quote

    return "__HIVE_DEFAULT_PARTITION__" if v is None else quote(_hive_value(v), safe="")


class _Stats:
    """numRecords, nullCount and min/max of numeric, date and timestamp columns."""

    def __init__(self, schema: pa.Schema) -> None:
        import pyarrow as pa

        self.rows = 0
        self.nulls = {f.name: 0 for f in schema if not pa.types.is_nested(f.type)}
        self.ranged = [f.name for f in schema if pa.types.is_integer(f.type)
                       or pa.types.is_floating(f.type) or pa.types.is_timestamp(f.type)
                       or pa.types.is_date(f.type)]
        self.lo: dict[str, Any] = {}
        self.hi: dict[str, Any] = {}

    def add(self, table: pa.Table) -> None:
        import pyarrow.compute as pc

        self.rows += table.num_rows
        for name in self.nulls:
            self.nulls[name] += table[name].null_count
        for name in self.ranged:
            mm = pc.min_max(table[name]).as_py()
            if mm["min"] is None:
                continue
            self.lo[name] = mm["min"] if name not in self.lo else min(self.lo[name], mm["min"])
            self.hi[name] = mm["max"] if name not in self.hi else max(self.hi[name], mm["max"])

    def to_json(self) -> str:
        def enc(v: Any, up: bool) -> Any:
            if isinstance(v, dt.datetime):  # Delta stats are in milliseconds: round max up
                ms = v.replace(microsecond=(v.microsecond // 1000) * 1000)
                if up and ms != v:
                    ms += dt.timedelta(milliseconds=1)
                return ms.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            if isinstance(v, dt.date):
                return v.isoformat()
            if isinstance(v, float) and v != v:  # NaN has no order
                return None
            return v

        return json.dumps({
            "numRecords": self.rows,
            "minValues": {k: enc(v, False) for k, v in self.lo.items()},
            "maxValues": {k: enc(v, True) for k, v in self.hi.items()},
            "nullCount": self.nulls,
        })


def ensure_table(table_uri: str, schema: pa.Schema, partition_by: tuple[str, ...] = ()) -> None:
    """Create an empty Delta table at ``table_uri`` unless one is there (then check its schema)."""
    from deltalake import DeltaTable

    if not is_remote(table_uri):
        _check_writable(table_uri)
    try:
        if DeltaTable.is_deltatable(table_uri):
            existing = {f.name for f in _table_arrow_schema(DeltaTable(table_uri))}
            missing = [f.name for f in schema if f.name not in existing]
            if missing:
                raise DeltaError(f"the Delta table at {table_uri} has no column(s) "
                                 f"{', '.join(missing)}; write to a new table path or migrate it")
            return
        DeltaTable.create(table_uri, schema, mode="ignore", partition_by=list(partition_by) or None)
        log.info("created Delta table %s", table_uri)
    except DeltaError:
        raise
    except Exception as e:
        raise DeltaError(f"cannot create the Delta table at {table_uri}: {e}") from e


def _check_writable(path: str) -> None:
    import os
    from pathlib import Path

    p = Path(path.removeprefix("file://"))
    probe = p
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise DeltaError(f"cannot write the Delta table at {p}: {probe} is a file, not a folder; "
                         "choose another table path (warehouse root)")
    if not os.access(probe, os.W_OK):
        raise DeltaError(f"cannot write the Delta table at {p}: {probe} is not writable; "
                         "choose another table path (warehouse root)")


def _table_arrow_schema(table: Any) -> pa.Schema:
    import pyarrow as pa

    return pa.schema(table.schema().to_arrow())


def committed_version(table_uri: str, app_id: str) -> int | None:
    """The last batch id committed to the table by application ``app_id``, if any."""
    from deltalake import DeltaTable

    if not DeltaTable.is_deltatable(table_uri):
        return None
    return DeltaTable(table_uri).transaction_version(app_id)


def append_batch(df: DataFrame, table_uri: str, app_id: str, batch_id: int,
                 partition_by: tuple[str, ...] = (), mode: str = "append") -> int:
    """Append ``df`` to the table as one Delta commit, exactly once per ``(app_id, batch_id)``.

    Executors write the files in parallel; the driver commits only their metadata. A batch
    already committed under the same application id is skipped (Spark replays the last batch
    after a crash). Returns the number of rows written (0 when skipped). ``mode="overwrite"``
    replaces the table's rows in the same commit.
    """
    from deltalake import CommitProperties, DeltaTable, Transaction
    from deltalake.transaction import AddAction, RemoveAction

    done = committed_version(table_uri, app_id)
    if done is not None and done >= batch_id:
        log.info("batch %d of %s is already in %s (committed version %d): skipped",
                 batch_id, app_id, table_uri, done)
        return 0
    schema = arrow_schema(df)
    ensure_table(table_uri, schema, partition_by)
    rows = df.mapInArrow(file_writer(table_uri, schema, partition_by, batch_id),  # type: ignore[arg-type]
                         ADD_SCHEMA).collect()
    now = int(time.time() * 1000)
    actions: list[AddAction | RemoveAction] = [AddAction(r.path, r.size, json.loads(r.partition_values), now, True, r.stats)
               for r in rows]
    written = sum(json.loads(r.stats)["numRecords"] for r in rows)
    if not actions and mode == "append":
        # Nothing to add: no commit (a stream with few rejects would otherwise leave an empty
        # version per trigger). A replay of this batch is empty again, so there is nothing to
        # guard against doubling.
        log.debug("batch %d: no rows for %s, no commit", batch_id, table_uri)
        return 0
    try:
        table = DeltaTable(table_uri)
        table.create_write_transaction(
            actions, mode=mode, schema=_table_arrow_schema(table),  # type: ignore[arg-type]
            partition_by=list(partition_by) or None,
            commit_properties=CommitProperties(
                app_transactions=[Transaction(app_id, batch_id, now)],
                custom_metadata={"logad.app_id": app_id, "logad.batch_id": batch_id}))
    except Exception as e:
        raise DeltaError(f"cannot commit batch {batch_id} to the Delta table at {table_uri}: {e}") from e
    log.info("batch %d: %d rows in %d files committed to %s", batch_id, written, len(actions), table_uri)
    return written
