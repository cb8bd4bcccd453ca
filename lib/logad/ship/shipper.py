"""``logad ship``: Filebeat's role for hosts without Filebeat.

Tails files and globs, follows rotation, resumes from a registry, filters with include/exclude
regexes before anything crosses the network (the first paper's design), joins multi-line records
(a Java stack trace under its log line), and produces to a topic per host (``<prefix>.<host>``) or
one topic. Every record's key is ``<host>|<path>``: one file's records share a key, so they keep
their order in one partition, and ingest recovers host and source from it.

Delivery is at-least-once, and repeats only what was sent and not yet confirmed: every record
carries the byte offset where it ends; Kafka's acknowledgements (in order per file: one file is one
key, one partition, and the producer is idempotent) move the file's registry offset, which is saved
atomically at least every ``registry_interval_s`` while a file is read. A kill then repeats at most
the records in flight, and the registry keeps that count (``unconfirmed``), which the restart logs.

Record size: a record longer than ``max_record_bytes`` (default 512 KiB, below the producer's
and the broker's 1 MB message limits) is cut to that size at a UTF-8 character boundary and
counted (``truncated``); the rest of that record is not shipped. Ingest's own limit
(``Parser.max_line_bytes``, 64 KiB) then makes it a ``too_long`` reject with the raw bytes kept.
A record Kafka still refuses (a lower broker limit) is counted as ``refused`` and logged with its
file and offset, and shipping goes on: one line never blocks a file.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from logad.errors import ConfigError, ShipError
from logad.produce import send
from logad.ship.registry import FileState, Registry, open_log

log = logging.getLogger(__name__)

_TOPIC_CHARS = re.compile(r"[^a-zA-Z0-9._-]")
READ_CHUNK = 1 << 20
# librdkafka's message.max.bytes and Kafka's max.message.bytes default to about 1 MB; a record
# (plus its key and headers) must fit under both.
MAX_RECORD_BYTES = 512 * 1024


@dataclass(frozen=True)
class ShipConfig:
    """What to ship and where.

    Example:
        >>> ShipConfig(("/var/log/hadoop/*.log",), "kafka1:9092").topic  # doctest: +SKIP
        'logs.myhost'
    """

    paths: tuple[str, ...]
    bootstrap: str
    host: str = field(default_factory=socket.gethostname)
    topic_prefix: str = "logs"
    single_topic: str | None = None
    partitions: int = 1
    registry: str = ".logad/ship/registry.json"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    multiline_pattern: str | None = None
    multiline_negate: bool = False
    multiline_max_lines: int = 500
    multiline_timeout_s: float = 5.0
    max_record_bytes: int = MAX_RECORD_BYTES
    registry_interval_s: float = 1.0
    poll_interval_s: float = 1.0
    close_inactive_s: float = 300.0
    progress_interval_s: float = 10.0
    producer: dict[str, str] = field(default_factory=dict)
    client: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.paths:
            raise ConfigError("ship needs at least one file or glob")
        if not self.bootstrap:
            raise ConfigError("ship needs --bootstrap (kafka.bootstrap.servers)")
        for name, patterns in (("--include-lines", self.include), ("--exclude-lines", self.exclude),
                               ("--multiline-pattern", (self.multiline_pattern or "",))):
            for p in patterns:
                try:
                    re.compile(p)
                except re.error as e:
                    raise ConfigError(f"{name} {p!r} is not a regex: {e}") from e
        if self.max_record_bytes <= 0:
            raise ConfigError(f"max_record_bytes must be > 0, got {self.max_record_bytes}")
        if self.single_topic is None and not _TOPIC_CHARS.sub("", self.host):
            raise ConfigError(f"host {self.host!r} gives no usable topic name; pass --host")

    @property
    def topic(self) -> str:
        """``<prefix>.<host>`` (host made topic-safe), or the single topic."""
        return self.single_topic or f"{self.topic_prefix}.{_TOPIC_CHARS.sub('_', self.host)}"


@dataclass
class Stats:
    """Counts for progress lines and for tests: what came in, what went out."""

    lines: int = 0
    records: int = 0
    sent: int = 0
    filtered: int = 0
    truncated: int = 0
    refused: int = 0  # records Kafka refused for good (too large for the broker): logged, skipped
    confirmed: int = 0
    bytes: int = 0


@dataclass
class _Open:
    state: FileState
    handle: IO[bytes]
    pending: list[bytes] = field(default_factory=list)  # lines of an unfinished multi-line record
    pending_start: int = 0
    last_data: float = field(default_factory=time.monotonic)
    read_to: int = 0  # bytes consumed from the file (complete lines), >= state.offset
    done_to: int = 0  # end of the last record handed on (sent or filtered)
    acked_to: int = 0  # end of the last record Kafka confirmed
    in_flight: int = 0  # records sent, not yet confirmed
    failed: bool = False  # a delivery failed: the offset stays until a restart resends
    carry: bytes = b""  # gzip: the start of a line the next chunk completes

    def passed(self, end: int) -> None:
        """A record ending at ``end`` was handed on without a send (filtered, refused)."""
        self.done_to = end
        if self.in_flight == 0:  # nothing before it awaits an acknowledgement
            self.acked_to = end

    def confirmed_offset(self) -> int:
        """Where a restart must resume: everything before it was delivered or filtered."""
        if self.failed:
            return self.state.offset
        if self.in_flight == 0:
            return self.pending_start if self.pending else self.done_to
        return self.acked_to


class Shipper:
    """Reads files into Kafka records. ``run(once=True)`` ships what is there and returns."""

    def __init__(self, cfg: ShipConfig) -> None:
        self.cfg = cfg
        self.registry = Registry(cfg.registry)
        self.stats = Stats()
        self._open: dict[str, _Open] = {}
        self._include = [re.compile(p.encode()) for p in cfg.include]
        self._exclude = [re.compile(p.encode()) for p in cfg.exclude]
        self._multi = re.compile(cfg.multiline_pattern.encode()) if cfg.multiline_pattern else None
        self._producer: Any = None
        self._errors: list[str] = []
        self._key_cache: dict[str, bytes] = {}
        self._saved_at = time.monotonic()
        self._located = False

    # -- files ---------------------------------------------------------------------------------
    def discover(self) -> list[str]:
        """Regular files matching the configured paths and globs now."""
        found: dict[str, None] = {}
        for pattern in self.cfg.paths:
            for path in sorted(glob.glob(os.path.expanduser(pattern))):
                if os.path.isfile(path):
                    found[os.path.abspath(path)] = None
        return list(found)

    def _attach(self, path: str) -> str | None:
        state = self.registry.state_for(path)
        if state is None:
            log.debug("%s waits: empty, a .gz still being written, or the compressed copy of a file "
                      "still being shipped", path)
            return None
        self.registry.refresh_fingerprint(state)
        current = self._open.get(state.key)
        if current is not None and current.state is state:
            return state.key
        if current is not None:
            current.handle.close()
        # kept open across cycles to follow renames; gzip (as identified: a file's bytes can change
        # between two looks) decompressed
        handle = open_log(path, state.compressed)
        handle.seek(state.offset)
        self._open[state.key] = _Open(state, handle, read_to=state.offset, pending_start=state.offset,
                                      done_to=state.offset, acked_to=state.offset)
        if state.unconfirmed:
            log.warning("shipping %s from byte %d: the last run stopped with %d records sent and not "
                        "confirmed; they are sent again (at-least-once)", path, state.offset, state.unconfirmed)
        else:
            log.info("shipping %s from byte %d", path, state.offset)
        return state.key

    def _locate_rotated(self, live: set[str]) -> None:
        """Files of the registry that were not shipped to their end and no longer match the
        paths (renamed by a rotation while the shipper was stopped): found again by identity
        (device, inode and fingerprint, as Filebeat does) in their directory and read to their
        end; if gone, a warning says from which byte lines may be missing."""
        for key, state in list(self.registry.files.items()):
            if key in live or key in self._open:
                continue
            path = self.registry.locate(state)
            if path is None:
                log.warning("%s (inode %d) was shipped to byte %d and is gone from its directory (deleted, "
                            "compressed or moved by a rotation while the shipper was stopped): any lines "
                            "written after that byte were not shipped", state.path, state.inode, state.offset)
                self.registry.forget(key)
                continue
            if os.path.getsize(path) > state.offset:
                log.warning("%s was rotated to %s while the shipper was stopped: shipping its rest from "
                            "byte %d", state.path, path, state.offset)
                state.path = path
                self._attach(path)

    # -- records -------------------------------------------------------------------------------
    def _continues(self, line: bytes) -> bool:
        assert self._multi is not None
        matched = self._multi.search(line) is not None
        return matched != self.cfg.multiline_negate

    def _lines(self, f: _Open) -> Iterator[tuple[bytes, int]]:
        """New complete lines of one file (line ends stripped), each with its end offset.

        A partial last line waits for its newline; a line longer than the read chunk is cut
        into chunk-sized pieces so one runaway line cannot stall the file.
        """
        if f.state.compressed:
            yield from self._compressed_lines(f)
            return
        data = f.handle.read(READ_CHUNK)
        if not data:
            return
        f.last_data = time.monotonic()
        end = data.rfind(b"\n") + 1
        pos = f.read_to
        if end == 0 and len(data) == READ_CHUNK:
            f.read_to = pos + len(data)
            self.stats.bytes += len(data)
            yield data, f.read_to
            return
        if end < len(data):
            f.handle.seek(pos + end)
        self.stats.bytes += end
        for raw in data[:end].split(b"\n")[:-1]:
            pos += len(raw) + 1
            yield (raw[:-1] if raw.endswith(b"\r") else raw), pos
        f.read_to = pos

    def _compressed_lines(self, f: _Open) -> Iterator[tuple[bytes, int]]:
        """:meth:`_lines` for a gzip file: a finished file, read forward only (seeking back in a
        gzip stream decompresses it again from the start), a partial line carried to the next
        chunk, and a last line without its newline complete at the end."""
        chunk = f.handle.read(READ_CHUNK)
        data = f.carry + chunk
        f.carry = b""
        if not data:
            return
        f.last_data = time.monotonic()
        end = data.rfind(b"\n") + 1
        # a short read is the end of the file: what follows the last newline is its last line;
        # a runaway line longer than a chunk is cut into chunk-sized pieces, as for plain files
        if len(chunk) < READ_CHUNK or (end == 0 and len(data) >= READ_CHUNK):
            end = len(data)
        else:
            f.carry = data[end:]
        self.stats.bytes += end
        pos = f.read_to
        lines = data[:end].split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        for raw in lines:
            pos = min(pos + len(raw) + 1, f.read_to + end)
            yield (raw[:-1] if raw.endswith(b"\r") else raw), pos
        f.read_to += end

    def _records(self, f: _Open, eof: bool) -> Iterator[tuple[bytes, int]]:
        """New complete records of one file (multi-line records joined), each with the byte
        offset where it ends."""
        got = False
        start = f.read_to
        for line, line_end in self._lines(f):
            got = True
            self.stats.lines += 1
            if self._multi is None:
                yield line, line_end
                start = line_end
                continue
            if f.pending and self._continues(line) and len(f.pending) < self.cfg.multiline_max_lines:
                f.pending.append(line)
            else:
                if f.pending:
                    yield b"\n".join(f.pending), start
                f.pending, f.pending_start = [line], start
            start = line_end
        idle = time.monotonic() - f.last_data > self.cfg.multiline_timeout_s
        if f.pending and not got and (eof or idle):
            record = b"\n".join(f.pending)
            f.pending = []
            yield record, f.read_to

    def _send(self, f: _Open, record: bytes, end: int) -> None:
        self.stats.records += 1
        if (self._include and not any(p.search(record) for p in self._include)) or any(
                p.search(record) for p in self._exclude):
            self.stats.filtered += 1
            f.passed(end)
            return
        if len(record) > self.cfg.max_record_bytes:
            record = truncate_utf8(record, self.cfg.max_record_bytes)
            self.stats.truncated += 1
            log.warning("%s: the record ending at byte %d is longer than %d bytes: shipped its first "
                        "%d bytes", f.state.path, end, self.cfg.max_record_bytes, len(record))
        key = self._key_cache.get(f.state.path)
        if key is None:
            # a file name may hold bytes that are not UTF-8: sent as they are (ingest makes the
            # key valid UTF-8), not a UnicodeEncodeError
            key = self._key_cache[f.state.path] = f"{self.cfg.host}|{f.state.path}".encode(
                "utf-8", "surrogateescape")

        def delivered(err: Any, _msg: Any, f: _Open = f, end: int = end) -> None:
            f.in_flight -= 1
            if err is None or _refused_for_good(err):
                if err is None:
                    self.stats.confirmed += 1
                else:
                    self._refuse(f, end, err)
                f.acked_to = end if f.in_flight else max(end, f.done_to)
            else:
                f.failed = True
                self._errors.append(str(err))

        try:
            send(self._producer, self.cfg.topic, record, key=key, on_delivery=delivered)
        except Exception as e:  # refused before sending (larger than message.max.bytes)
            if not _refused_for_good(e):
                raise
            self._refuse(f, end, e)
            f.passed(end)
            return
        f.in_flight += 1
        f.done_to = end
        self.stats.sent += 1
        if time.monotonic() - self._saved_at >= self.cfg.registry_interval_s:
            self._producer.poll(0)
            self._save()

    def _refuse(self, f: _Open, end: int, err: Any) -> None:
        self.stats.refused += 1
        log.error("%s: Kafka refused the record ending at byte %d for good (%s); skipped. Lower "
                  "--max-record-bytes below the topic's max.message.bytes", f.state.path, end, err)

    def _save(self) -> None:
        """Save each file's confirmed offset (and how many records are still in flight)."""
        for f in self._open.values():
            f.state.offset = f.confirmed_offset()
            f.state.unconfirmed = f.in_flight
        self.registry.save()
        self._saved_at = time.monotonic()

    # -- the loop ------------------------------------------------------------------------------
    def _start_producer(self) -> None:
        from confluent_kafka import Producer

        from logad.io.broker import create_topics
        from logad.produce import producer_conf

        conf = producer_conf(self.cfg.bootstrap, self.cfg.client)
        conf.update(self.cfg.producer)
        try:
            create_topics(self.cfg.bootstrap, {self.cfg.topic: self.cfg.partitions},
                          client=self.cfg.client)
        except Exception as e:
            raise ShipError(f"cannot reach Kafka at --bootstrap {self.cfg.bootstrap} to create "
                            f"{self.cfg.topic}: {e}") from e
        self._producer = Producer(conf)

    def cycle(self, once: bool = False) -> None:
        """One pass: attach new files, read new records, produce, confirm, save the registry."""
        if self._producer is None:
            self._start_producer()
        live = set()
        for path in self.discover():
            try:
                key = self._attach(path)
            except FileNotFoundError:
                continue  # rotated away between glob and open
            if key is not None:
                live.add(key)
        if not self._located:  # once per start: what rotated while we were stopped
            self._locate_rotated(live)
            self._located = True
        for key, f in list(self._open.items()):
            while True:
                before = f.read_to
                for record, end in self._records(f, eof=once):
                    self._send(f, record, end)
                if f.read_to == before:  # nothing new (a last multi-line record was flushed)
                    break
            # A file no longer under the configured paths (renamed away, deleted) was read to its
            # end above; close it once nothing more can come.
            if key not in live and (once or time.monotonic() - f.last_data > self.cfg.close_inactive_s):
                self._confirm()  # raises unless all of it is confirmed
                f.handle.close()
                del self._open[key]
                self.registry.forget(key, orphan=False)  # rotated away, read to its end: done
        self._confirm()

    def _confirm(self) -> None:
        remaining = self._producer.flush(60)
        self._save()
        if remaining or self._errors:
            raise ShipError(f"{remaining} records not delivered to {self.cfg.topic} on "
                            f"{self.cfg.bootstrap}: {self._errors[:3] or 'flush timed out'}; "
                            "the registry holds the confirmed offsets, so a restart sends only "
                            "the unconfirmed records again")

    def run(self, once: bool = False, stop: Any = None) -> Stats:
        """Ship until ``stop`` (a threading.Event) is set, or once through when ``once``."""
        started = last = time.monotonic()
        try:
            while True:
                self.cycle(once=once)
                now = time.monotonic()
                if once or now - last >= self.cfg.progress_interval_s:
                    last = now
                    lag = sum(max(os.path.getsize(f.state.path) - f.read_to, 0) for f in self._open.values()
                              if not f.state.compressed and os.path.exists(f.state.path))
                    log.info("%s: %d lines, %d sent, %d confirmed, %d filtered, %d truncated, %d refused, "
                             "%.1f MB, %.0f lines/s, lag %d bytes", self.cfg.topic, self.stats.lines,
                             self.stats.sent, self.stats.confirmed, self.stats.filtered, self.stats.truncated,
                             self.stats.refused, self.stats.bytes / 1e6,
                             self.stats.lines / max(now - started, 1e-9), lag)
                if once or (stop is not None and stop.wait(self.cfg.poll_interval_s)):
                    break
                if stop is None:
                    time.sleep(self.cfg.poll_interval_s)
        finally:
            for f in self._open.values():
                f.handle.close()
            self._open.clear()
        return self.stats


def truncate_utf8(record: bytes, limit: int) -> bytes:
    """The first ``limit`` bytes of ``record``, cut back to a UTF-8 character boundary (so the
    kept part still decodes; ingest would reject a split character as ``undecodable``)."""
    cut = limit
    while cut > 0 and (record[cut] & 0xC0) == 0x80:  # a continuation byte: inside a character
        cut -= 1
    return record[:cut] if cut > limit - 4 else record[:limit]  # not UTF-8 at all: plain cut


def _refused_for_good(err: Any) -> bool:
    """Kafka refused this record and would refuse it again (too large): skip it, don't stop."""
    from confluent_kafka import KafkaError, KafkaException

    if isinstance(err, KafkaException):
        err = err.args[0] if err.args else None
    code = err.code() if isinstance(err, KafkaError) else None
    # MSG_SIZE_TOO_LARGE is both librdkafka's local check and the broker's MESSAGE_TOO_LARGE
    return code in (KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE)
