"""The embedded Kafka source: a PySpark Python Data Source (``format("logad_kafka")``).

Same options and columns as Spark's own Kafka source (``key, value, topic, partition, offset,
timestamp, timestampType``), so downstream code does not know which one ran. One input partition
per Kafka partition and offset range; offsets are Spark's (checkpointed), never consumer-group
state. Streaming and batch reads.

How a micro-batch is planned (pyspark 4.0 gives a Python source no ReadLimit, so rate limiting
is done here):
- ``latestOffset`` starts from the end of the last planned batch (Spark re-plans the last batch
  from its checkpoint on restart, before asking for a new one, so this is known after a restart
  too), finds each partition's true end by fetching, and caps the total at
  ``maxOffsetsPerTrigger``.
- A partition seen for the first time (a new topic or partition matching the subscription) gets
  its earliest offset as end, so it joins with an empty range and every later range is explicit.
- A partition whose end is below its start lost data (topic recreated, in-memory broker
  restarted): with ``failOnDataLoss=true`` (the default) the query stops with a clear error,
  otherwise the partition is read again from its earliest offset.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql.datasource import (
    DataSource,
    DataSourceReader,
    DataSourceStreamReader,
    InputPartition,
)

from logad.errors import KafkaSourceError
from logad.io.kafka_client import (
    EARLIEST,
    LATEST,
    TP,
    Offsets,
    Probe,
    SourceOptions,
    from_json,
    rate_limit,
    to_json,
)

log = logging.getLogger(__name__)

NAME = "logad_kafka"
SCHEMA = ("key binary, value binary, topic string, partition int, offset long, "
          "timestamp timestamp, timestampType int")
_ROWS_PER_BATCH = 10_000


@dataclass(frozen=True)
class KafkaRange(InputPartition):
    """Offsets ``[start, end)`` of one Kafka partition; ``lost`` marks a range whose start was
    gone (read from earliest instead, with failOnDataLoss=false)."""

    topic: str
    partition: int
    start: int
    end: int


class KafkaDataSource(DataSource):
    """Register with ``spark.dataSource.register(KafkaDataSource)``; use as ``logad_kafka``."""

    @classmethod
    def name(cls) -> str:
        return NAME

    def schema(self) -> str:
        return SCHEMA

    def streamReader(self, schema: Any) -> DataSourceStreamReader:
        return KafkaStreamReader(SourceOptions.parse(self.options, default_start="latest"))

    def reader(self, schema: Any) -> DataSourceReader:
        return KafkaBatchReader(SourceOptions.parse(self.options, default_start="earliest"))


def _resolve(spec: str | dict[str, dict[str, int]], tps: list[TP], probe: Probe,
             name: str) -> dict[TP, int]:
    """Turn earliest / latest / per-partition JSON into concrete offsets for ``tps``."""
    earliest = probe.earliest(tps)
    if spec == "earliest":
        return earliest
    latest = probe.ends(earliest)
    if spec == "latest":
        return latest
    assert isinstance(spec, dict)
    given = from_json(spec)
    unknown = sorted(set(given) - set(tps))
    if unknown:
        raise KafkaSourceError(f"option {name} names partitions that are not subscribed or do not "
                               f"exist: {', '.join(f'{t}-{p}' for t, p in unknown)}")
    out = {}
    for tp in tps:
        off = given.get(tp, EARLIEST)
        out[tp] = earliest[tp] if off == EARLIEST else latest[tp] if off == LATEST else off
        if not earliest[tp] <= out[tp] <= latest[tp]:
            raise KafkaSourceError(f"option {name}: offset {off} of {tp[0]}-{tp[1]} is outside "
                                   f"the available range [{earliest[tp]}, {latest[tp]}]")
    return out


class KafkaStreamReader(DataSourceStreamReader):
    """Driver side: plans offset ranges. Executor side: reads them (see :func:`read_range`)."""

    def __init__(self, options: SourceOptions) -> None:
        # Runs on the driver and again on every executor: no I/O here.
        self.options = options
        self._probe: Probe | None = None
        self._initial: dict[TP, int] | None = None
        self._last_end: dict[TP, int] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"options": self.options, "_probe": None, "_initial": None, "_last_end": None}

    @property
    def probe(self) -> Probe:
        if self._probe is None:
            self._probe = Probe(self.options)
        return self._probe

    def initialOffset(self) -> Offsets:
        if self._initial is None:
            self._initial = _resolve(self.options.starting, self.probe.partitions(), self.probe,
                                     "startingOffsets")
            log.info("kafka source starts at %s", to_json(self._initial))
        return to_json(self._initial)

    def latestOffset(self) -> Offsets:
        if self._last_end is None:
            self.initialOffset()
            assert self._initial is not None
            self._last_end = dict(self._initial)
        start = self._last_end
        tps = self.probe.partitions()
        new = [tp for tp in tps if tp not in start]
        known = {tp: off for tp, off in start.items() if tp in tps}
        ends = self.probe.ends(known)
        for tp, end in ends.items():
            if end < known[tp]:
                self._data_lost(tp, known[tp], end)
        if new:
            log.info("kafka source picked up new partitions %s", ", ".join(f"{t}-{p}" for t, p in new))
            ends.update(self.probe.earliest(new))
        growing = {tp: end for tp, end in ends.items() if tp in known and end >= known[tp]}
        capped = rate_limit(known, growing, self.options.max_offsets)
        ends.update(capped)
        # Partitions that vanished (topic deleted) keep their last offset.
        for tp, off in start.items():
            ends.setdefault(tp, off)
        return to_json(ends)

    def _data_lost(self, tp: TP, start: int, end: int) -> None:
        message = (f"partition {tp[0]}-{tp[1]} now ends at offset {end}, but offsets up to {start} "
                   "were already read: the topic was recreated or the broker lost data (the "
                   "in-memory local broker loses everything on restart)")
        if self.options.fail_on_data_loss:
            raise KafkaSourceError(message + "; set failOnDataLoss=false to read it again from "
                                   "its earliest offset, or start over with a new checkpoint")
        log.warning("%s; failOnDataLoss=false: reading it again from its earliest offset", message)

    def partitions(self, start: Offsets, end: Offsets) -> Sequence[InputPartition]:
        begin, until = from_json(start), from_json(end)
        self._last_end = dict(until)
        ranges = []
        for tp, stop in sorted(until.items()):
            first = begin.get(tp, stop)  # a partition new in this batch starts at its end
            if stop < first:  # data lost and failOnDataLoss=false: read what is there now
                first = self.probe.earliest([tp])[tp]
            if stop > first:
                ranges.append(KafkaRange(tp[0], tp[1], first, stop))
        return ranges

    def read(self, partition: InputPartition) -> Iterator[Any]:
        assert isinstance(partition, KafkaRange)
        return read_range(self.options, partition)

    def commit(self, end: Offsets) -> None:
        pass  # offsets live in Spark's checkpoint; nothing to tell the broker

    def stop(self) -> None:
        if self._probe is not None:
            self._probe.close()


class KafkaBatchReader(DataSourceReader):
    """``spark.read.format("logad_kafka")``: startingOffsets (default earliest) to endingOffsets."""

    def __init__(self, options: SourceOptions) -> None:
        self.options = options

    def partitions(self) -> Sequence[InputPartition]:
        probe = Probe(self.options)
        try:
            tps = probe.partitions()
            begin = _resolve(self.options.starting, tps, probe, "startingOffsets")
            until = _resolve(self.options.ending, tps, probe, "endingOffsets")
        finally:
            probe.close()
        return [KafkaRange(t, p, begin[(t, p)], until[(t, p)]) for t, p in tps
                if until[(t, p)] > begin[(t, p)]]

    def read(self, partition: InputPartition) -> Iterator[Any]:
        assert isinstance(partition, KafkaRange)
        return read_range(self.options, partition)


def read_range(options: SourceOptions, part: KafkaRange) -> Iterator[Any]:
    """Read offsets ``[part.start, part.end)`` of one partition as Arrow record batches.

    Runs on an executor. Stops with a clear error if the records stop coming for
    ``kafkaConsumer.pollTimeoutMs`` or the partition ends before ``part.end``.
    """
    import pyarrow as pa
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    consumer = Consumer(options.consumer_conf(**{"fetch.wait.max.ms": 100}))
    consumer.assign([TopicPartition(part.topic, part.partition, part.start)])
    schema = pa.schema([("key", pa.binary()), ("value", pa.binary()), ("topic", pa.string()),
                        ("partition", pa.int32()), ("offset", pa.int64()),
                        ("timestamp", pa.timestamp("us", tz="UTC")), ("timestampType", pa.int32())])
    where = f"{part.topic}-{part.partition}"
    next_offset, idle_since = part.start, time.monotonic()
    try:
        while next_offset < part.end:
            keys: list[bytes | None] = []
            values: list[bytes | None] = []
            offsets: list[int] = []
            stamps: list[int | None] = []
            types: list[int] = []
            while next_offset < part.end and len(offsets) < _ROWS_PER_BATCH:
                msgs = consumer.consume(min(_ROWS_PER_BATCH, part.end - next_offset), 0.5)
                if not msgs:
                    if time.monotonic() - idle_since > options.poll_timeout_ms / 1000:
                        raise KafkaSourceError(
                            f"no records from {where} at offset {next_offset} on "
                            f"{options.bootstrap} for kafkaConsumer.pollTimeoutMs="
                            f"{options.poll_timeout_ms}; expected records up to {part.end}")
                    if offsets:
                        break
                    continue
                idle_since = time.monotonic()
                for m in msgs:
                    err = m.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            raise KafkaSourceError(f"reading {where}: {err.str()}")
                        at = int(m.offset() or 0)
                        if at < part.end:
                            _short_read(options, where, at, part.end)
                            next_offset = part.end
                        continue
                    off = int(m.offset() or 0)
                    if off >= part.end:
                        next_offset = part.end
                        break
                    ts_type, ts = m.timestamp()
                    keys.append(m.key())
                    values.append(m.value())
                    offsets.append(off)
                    stamps.append(ts * 1000 if ts_type else None)
                    types.append(ts_type - 1 if ts_type else -1)  # Kafka: 0 create, 1 append
                    next_offset = off + 1
            if offsets:
                n = len(offsets)
                yield pa.RecordBatch.from_arrays(
                    [pa.array(keys, pa.binary()), pa.array(values, pa.binary()),
                     pa.array([part.topic] * n, pa.string()),
                     pa.array([part.partition] * n, pa.int32()), pa.array(offsets, pa.int64()),
                     pa.array(stamps, pa.timestamp("us", tz="UTC")), pa.array(types, pa.int32())],
                    schema=schema)
    finally:
        consumer.close()


def _short_read(options: SourceOptions, where: str, at: int, end: int) -> None:
    message = (f"{where} ends at offset {at} but offsets up to {end} were planned: the broker "
               "lost data or the topic was recreated")
    if options.fail_on_data_loss:
        raise KafkaSourceError(message + "; set failOnDataLoss=false to go on without them")
    log.warning("%s; failOnDataLoss=false: going on without them", message)
