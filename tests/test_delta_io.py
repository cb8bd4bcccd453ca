"""Tier 2/3: the embedded Delta path writes standard tables, exactly once, and reads them back."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from pyspark.testing import assertDataFrameEqual

from logad.io.delta import read_stream, read_table, table_summary, table_version, write_stream
from logad.io.delta_files import append_batch

SCHEMA = "id long, host string, ts timestamp, line string"


def rows(start, n, host="h1"):
    base = dt.datetime(2008, 11, 9, 20, 35, 18)
    return [(i, host, base + dt.timedelta(seconds=i, microseconds=999), f"line {i}")
            for i in range(start, start + n)]


def test_a_replayed_batch_is_committed_once(spark, tmp_path):
    table = str(tmp_path / "t")
    df = spark.createDataFrame(rows(0, 100), SCHEMA).repartition(3)
    assert append_batch(df, table, "app-1", 0) == 100
    assert append_batch(df, table, "app-1", 0) == 0  # Spark replays batch 0 after a crash
    assert append_batch(spark.createDataFrame(rows(100, 10), SCHEMA), table, "app-1", 1) == 10
    assert append_batch(df, table, "app-2", 0) == 100  # another application is not confused
    assert read_table(spark, table).count() == 210
    assert table_version(table) == 3  # create + three commits


def test_tables_are_standard_delta_with_stats_and_time_travel(spark, tmp_path):
    from deltalake import DeltaTable

    table = str(tmp_path / "t")
    append_batch(spark.createDataFrame(rows(0, 50), SCHEMA).coalesce(1), table, "a", 0)
    append_batch(spark.createDataFrame(rows(50, 25), SCHEMA), table, "a", 1)

    dtable = DeltaTable(table)  # an independent reader: delta-rs
    assert dtable.transaction_version("a") == 1
    assert pyarrow_rows(dtable) == 75
    stats = [json.loads(a["add"]["stats"]) for v in (1, 2) for a in log(table, v) if "add" in a]
    assert sum(s["numRecords"] for s in stats) == 75
    first = [s for s in stats if s["minValues"]["id"] == 0][0]
    # Delta stats are in milliseconds: the max is rounded up so file skipping stays correct.
    assert first["minValues"]["ts"] == "2008-11-09T20:35:18.000Z"
    assert first["maxValues"]["ts"] == "2008-11-09T20:36:07.001Z"
    assert read_table(spark, table, version=1).count() == 50
    assertDataFrameEqual(read_table(spark, table), spark.createDataFrame(rows(0, 75), SCHEMA))


def pyarrow_rows(dtable):
    import pyarrow as pa

    return pa.table(dtable.to_pyarrow_table() if hasattr(dtable, "to_pyarrow_table") else
                    dtable.to_pyarrow_dataset().to_table()).num_rows


def log(table, version):
    with open(f"{table}/_delta_log/{version:020d}.json") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_partitioned_writes_put_values_in_folders_and_read_back(spark, tmp_path):
    table = str(tmp_path / "p")
    df = spark.createDataFrame(rows(0, 20, "h1") + rows(20, 30, "h2"), SCHEMA)
    append_batch(df, table, "a", 0, partition_by=("host",))
    assert sorted(p.name for p in (tmp_path / "p").iterdir() if p.is_dir()) == [
        "_delta_log", "host=h1", "host=h2"]
    back = read_table(spark, table)
    assert back.where("host = 'h2'").count() == 30
    assertDataFrameEqual(back.select(*df.columns), df)


def test_stream_read_sees_each_new_version_once(spark, tmp_path):
    table = str(tmp_path / "src")
    append_batch(spark.createDataFrame(rows(0, 40), SCHEMA), table, "w", 0)
    seen: list[int] = []

    def keep(batch, _):
        seen.extend(r.id for r in batch.select("id").collect())

    query = (read_stream(spark, table).writeStream.foreachBatch(keep)
             .option("checkpointLocation", str(tmp_path / "ckpt")).start())
    query.processAllAvailable()
    append_batch(spark.createDataFrame(rows(40, 15), SCHEMA), table, "w", 1)
    query.processAllAvailable()
    query.stop()
    assert sorted(seen) == list(range(55))


def test_streaming_write_then_batch_read(spark, tmp_path):
    source, target = str(tmp_path / "src"), str(tmp_path / "dst")
    append_batch(spark.createDataFrame(rows(0, 30), SCHEMA), source, "w", 0)
    query = write_stream(read_stream(spark, source), target, str(tmp_path / "ckpt"),
                         query_name="copy", trigger="1 second")
    query.processAllAvailable()
    query.stop()
    assertDataFrameEqual(read_table(spark, target), read_table(spark, source))
    assert table_summary(target)["rows"] == 30


def test_unwritable_table_path_is_a_clear_error(spark, tmp_path):
    from logad.errors import DeltaError

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(DeltaError, match="a-file"):
        append_batch(spark.createDataFrame(rows(0, 1), SCHEMA), str(blocker / "t"), "a", 0)
