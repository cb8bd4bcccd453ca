"""Ground-truth labels from the data sets' own label files, as the ``labels`` table.

One row per ``(system, key)``: ``label`` (1 anomalous, 0 normal), ``label_source`` (which file
said so) and ``reason`` (why, where the source says: Spark's end reason of a task attempt). The
sessions stage joins it by key (:func:`logad.sessions.spark.with_labels`); a key
with no row falls back to the line's own flag (BGL/Thunderbird) or the papers' rule.

Known files:
- HDFS (LogHub): ``anomaly_label.csv`` with ``BlockId,Label`` (``Normal``/``Anomaly``).
- Hadoop (LogHub): a CSV with ``application_id`` and ``label`` (``Normal``/``Anomaly``), as in
  ``hadoop_dev_labels.csv``.
- Spark (the lab, :mod:`logad.lab.corpus`): ``truth.csv.gz`` with ``session_key`` and ``label``:
  one row per task attempt, keyed ``<app-id>.exec-<id>|TID <n>`` (the executor log's file name
  and the workflow's name), stored as ``<app-id>|TID <n>``: a TID is unique in its application.
- Spark (any cluster): its own event logs, :mod:`logad.sessions.eventlogs` (no file to write:
  ``logad sessions labels --spark-event-logs DIR``), keyed the same way, so a Task workflow
  finds its label wherever its executor log was shipped from.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from logad.config import Warehouse
from logad.errors import ConfigError
from logad.parse.formats import FORMATS

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

# (key, label) columns of each data set's label file, declared with its format
LABEL_COLUMNS = {f.name: f.label_columns for f in FORMATS.values() if f.label_columns is not None}


def _schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([("system", pa.string()), ("key", pa.string()), ("label", pa.int32()),
                      ("label_source", pa.string()), ("reason", pa.string())])


def read_label_file(system: str, path: str) -> pa.Table:
    """The label file of ``system`` as ``labels`` rows (plain or .gz CSV)."""
    import pyarrow as pa

    if system not in LABEL_COLUMNS:
        raise ConfigError(f"no label file format for system {system!r}; known: {', '.join(LABEL_COLUMNS)}")
    key_col, label_col = LABEL_COLUMNS[system]
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"label file {path} does not exist")
    raw = p.read_bytes()
    text = (gzip.decompress(raw) if path.endswith(".gz") else raw).decode("utf-8-sig")
    rows = [r for r in csv.DictReader(io.StringIO(text)) if (r.get(key_col) or "").strip()]
    if not rows or key_col not in rows[0] or label_col not in rows[0]:
        raise ConfigError(f"{path}: a {system} label file needs the columns {key_col} and {label_col}")
    bad = [r[label_col] for r in rows if r[label_col].strip().lower() not in ("normal", "anomaly")]
    if bad:
        raise ConfigError(f"{path}: labels must be Normal or Anomaly, found {bad[0]!r} "
                          f"({len(bad)} rows)")
    source = f"{system}:{p.name}"
    keys = [r[key_col].strip() for r in rows]
    if system == "spark":  # the lab's <app-id>.exec-<id>|TID <n>: the run is what the join reads
        keys = [_task_key(k) for k in keys]
    return pa.table({
        "system": [system] * len(rows), "key": keys,
        "label": pa.array([int(r[label_col].strip().lower() == "anomaly") for r in rows], pa.int32()),
        "label_source": [source] * len(rows)})


def upsert_labels(spark: SparkSession, warehouse: Warehouse, new: pa.Table, replace_system: bool = False) -> None:
    """Write ``new`` rows into the ``labels`` table: each (system, key) of ``new`` replaces its old
    row, or (``replace_system``) every old row of ``new``'s systems goes. A column one side lacks
    (``reason``, added with the event-log labels) is null there."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from logad.io.delta import read_small, write_small
    from logad.sessions.spark import LABELS

    uri = warehouse.table(LABELS)
    old = read_small(spark, uri)
    if old is not None and old.num_rows:
        systems = pa.array(sorted(set(new["system"].to_pylist())))
        gone = (pc.is_in(old["system"], systems) if replace_system else
                pc.is_in(pc.binary_join_element_wise(old["system"], old["key"], "|"),
                         pc.binary_join_element_wise(new["system"], new["key"], "|")))
        old = old.filter(pc.invert(gone))
        new = _with_columns(new, _schema())  # both sides on the table's schema: a reason on either side stays
        new = pa.concat_tables([_with_columns(old, _schema()), new])
    write_small(spark, uri, _with_columns(new, _schema()), mode="overwrite")


def _with_columns(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with ``schema``'s columns, in its order; missing ones null."""
    import pyarrow as pa

    cols = [table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
            for f in schema]
    return pa.table(cols, schema=schema)


def _task_key(key: str) -> str:
    from logad.sessions.eventlogs import run_of_path

    where, _, name = key.rpartition("|")
    run = run_of_path(where)
    if run is None or not name.startswith("TID "):
        raise ConfigError(f"spark label key {key!r}: expected <executor log file>|TID <n>")
    return f"{run}|{name}"


def load_labels(spark: SparkSession, warehouse: Warehouse, system: str, path: str) -> int:
    """Replace ``system``'s rows of the ``labels`` table with the file's; returns the row count."""
    import pyarrow.compute as pc

    new = read_label_file(system, path)
    upsert_labels(spark, warehouse, new, replace_system=True)
    log.info("labels: %d %s rows from %s (%d anomalous)", len(new), system, path, pc.sum(new["label"]).as_py() or 0)
    return int(new.num_rows)
