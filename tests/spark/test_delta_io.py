"""Tier 2: delta-spark writes standard tables exactly once, reads them back, travels in time."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from pyspark.testing import assertDataFrameEqual

from logad.io.delta import (
    committed_version,
    create_small,
    merge_small,
    read_small,
    read_stream,
    read_table,
    table_summary,
    table_version,
    write_stream,
)

SCHEMA = "id long, host string, ts timestamp, line string"


def rows(start, n, host="h1"):
    base = dt.datetime(2008, 11, 9, 20, 35, 18)
    return [(i, host, base + dt.timedelta(seconds=i, microseconds=999), f"line {i}")
            for i in range(start, start + n)]


def txn_append(df, table, app, batch):
    """What write_stream_tables does for each table of a micro-batch."""
    df.write.format("delta").option("txnAppId", app).option("txnVersion", batch).mode("append").save(table)


def test_a_replayed_batch_is_committed_once_and_time_travel_sees_each_version(spark, tmp_path):
    table = str(tmp_path / "t")
    df = spark.createDataFrame(rows(0, 100), SCHEMA).repartition(3)
    txn_append(df, table, "app-1", 0)
    txn_append(df, table, "app-1", 0)  # Spark replays batch 0 after a crash: skipped
    txn_append(spark.createDataFrame(rows(100, 10), SCHEMA), table, "app-1", 1)
    txn_append(df, table, "app-2", 0)  # another application is not confused
    assert read_table(spark, table).count() == 210
    assert committed_version(table, "app-1") == 1 and committed_version(table, "app-2") == 0
    assert committed_version(table, "app-3") is None
    assert read_table(spark, table, version=0).count() == 100
    assert table_version(table) == 2  # the replay wrote no version
    assert table_summary(table)["rows"] == 210


def test_stream_read_sees_each_new_version_once_and_write_stream_copies_it(spark, tmp_path):
    source, target = str(tmp_path / "src"), str(tmp_path / "dst")
    txn_append(spark.createDataFrame(rows(0, 40), SCHEMA), source, "w", 0)
    query = write_stream(read_stream(spark, source), target, str(tmp_path / "ckpt"),
                         query_name="copy", trigger="1 second")
    query.processAllAvailable()
    txn_append(spark.createDataFrame(rows(40, 15), SCHEMA), source, "w", 1)
    query.processAllAvailable()
    query.stop()
    assertDataFrameEqual(read_table(spark, target), read_table(spark, source))
    assert sorted(r.id for r in read_table(spark, target).collect()) == list(range(55))


def test_merge_updates_known_keys_and_inserts_new_ones_in_one_commit(spark, tmp_path):
    table = str(tmp_path / "small")
    schema = pa.schema([("k", pa.string()), ("count", pa.int64())])
    create_small(spark, table, schema)
    merge_small(spark, table, pa.table({"k": ["a", "b"], "count": [1, 2]}, schema=schema), ("k",))
    before = table_version(table)
    merge_small(spark, table, pa.table({"k": ["b", "c"], "count": [5, 1]}, schema=schema), ("k",))
    merge_small(spark, table, pa.table({"k": ["b", "c"], "count": [5, 1]}, schema=schema), ("k",))
    got = read_small(spark, table)
    assert got is not None and sorted(got.to_pylist(), key=lambda r: r["k"]) == [
        {"k": "a", "count": 1}, {"k": "b", "count": 5}, {"k": "c", "count": 1}]
    assert table_version(table) == before + 2
    assert read_small(spark, str(tmp_path / "none")) is None


def test_missing_table_and_unwritable_path_are_clear_errors(spark, tmp_path):
    from logad.errors import DeltaError

    with pytest.raises(DeltaError, match="no Delta table at .*nowhere"):
        read_table(spark, str(tmp_path / "nowhere"))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(DeltaError, match="a-file"):
        create_small(spark, str(blocker / "t"), pa.schema([("k", pa.string())]))


def test_write_table_replaces_a_table_written_with_an_older_schema(spark, tmp_path):
    """A backfill made before a column was added (sessions.late_events) is replaced, not refused."""
    from logad.io.delta import read_table, write_table

    uri = str(tmp_path / "sessions_backfill")
    write_table(spark.createDataFrame([("a", 1)], "session_id string, n_events int"), uri)
    write_table(spark.createDataFrame([("b", 2, 0)], "session_id string, n_events int, late_events int"), uri)
    assert [tuple(r) for r in read_table(spark, uri).collect()] == [("b", 2, 0)]
