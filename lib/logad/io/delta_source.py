"""The embedded streaming read of a Delta table (``format("logad_delta")``): new versions as they come.

Offsets are ``{"version": v}``, the last table version read. Each micro-batch reads the files
that the versions after the previous offset added, straight from the Delta log (the protocol's
``_delta_log/<version>.json`` commits), one input partition per file. Only appends are streamed:
a version that removes data (an overwrite, a delete) stops the query with a clear error, as
Delta's own streaming source does unless told to skip changes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition

from logad.errors import ConfigError, DeltaError

NAME = "logad_delta"


@dataclass(frozen=True)
class DeltaFile(InputPartition):
    """One Parquet file of the table and its partition values."""

    uri: str
    partition_values: tuple[tuple[str, str | None], ...]


class DeltaStreamSource(DataSource):
    """Options: ``path`` (required), ``startingVersion`` (default 0: the whole table)."""

    @classmethod
    def name(cls) -> str:
        return NAME

    def schema(self) -> Any:
        from pyspark.sql.pandas.types import from_arrow_schema

        return from_arrow_schema(table_schema(_path(self.options)))

    def streamReader(self, schema: Any) -> DataSourceStreamReader:
        start = self.options.get("startingversion", "0")
        try:
            first = int(start)
        except ValueError as e:
            raise ConfigError(f"option startingVersion={start!r} is not a table version") from e
        return DeltaStreamReader(_path(self.options), first)


def _path(options: Any) -> str:
    path = options.get("path")
    if not path:
        raise ConfigError("the logad_delta source needs the table path: .load(path)")
    return str(path)


def table_schema(uri: str) -> Any:
    """The Arrow schema of the Delta table at ``uri``."""
    import pyarrow as pa
    from deltalake import DeltaTable

    if not DeltaTable.is_deltatable(uri):
        raise DeltaError(f"no Delta table at {uri}: check the path, or start the query that "
                         "writes it first")
    return pa.schema(DeltaTable(uri).schema().to_arrow())


def log_actions(uri: str, version: int) -> list[dict[str, Any]]:
    """The actions of commit ``version`` of the table, read from its Delta log."""
    from logad.io.delta_files import _filesystem

    fs, root = _filesystem(uri)
    with fs.open_input_stream(f"{root}/_delta_log/{version:020d}.json") as f:
        return [json.loads(line) for line in f.read().decode().splitlines() if line.strip()]


class DeltaStreamReader(DataSourceStreamReader):
    """Plans one input partition per added file; reads each with pyarrow on an executor."""

    def __init__(self, uri: str, starting_version: int) -> None:
        self.uri = uri
        self.starting_version = starting_version

    def initialOffset(self) -> dict[str, int]:
        return {"version": self.starting_version - 1}

    def latestOffset(self) -> dict[str, int]:
        from deltalake import DeltaTable

        return {"version": DeltaTable(self.uri).version()}

    def partitions(self, start: dict[str, int], end: dict[str, int]) -> Sequence[InputPartition]:
        files = []
        for version in range(start["version"] + 1, end["version"] + 1):
            for action in log_actions(self.uri, version):
                removed = action.get("remove")
                if removed and removed.get("dataChange", True):
                    raise DeltaError(
                        f"version {version} of {self.uri} removes data ({removed['path']}); "
                        "the logad_delta stream reads appends only: restart it with "
                        f"startingVersion={version + 1} or a new checkpoint")
                added = action.get("add")
                if added and added.get("dataChange", True):
                    from urllib.parse import unquote

                    values = tuple(sorted((added.get("partitionValues") or {}).items()))
                    files.append(DeltaFile(f"{self.uri.rstrip('/')}/{unquote(added['path'])}", values))
        return files

    def read(self, partition: InputPartition) -> Iterator[Any]:
        assert isinstance(partition, DeltaFile)
        return read_file(self.uri, partition)

    def commit(self, end: dict[str, int]) -> None:
        pass


def read_file(table_uri: str, part: DeltaFile) -> Iterator[Any]:
    """Read one data file as Arrow batches in the table's schema (partition columns filled)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from logad.io.delta_files import _filesystem

    schema = table_schema(table_uri)
    fs, path = _filesystem(part.uri)
    values = dict(part.partition_values)
    with fs.open_input_file(path) as f:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=10_000):
            cols = []
            for field in schema:
                if field.name in values:
                    raw = values[field.name]
                    col = pa.array([raw] * batch.num_rows, pa.string())
                    cols.append(col.cast(field.type))
                else:
                    cols.append(batch.column(field.name).cast(field.type))
            yield pa.RecordBatch.from_arrays(cols, schema=schema)
