"""``logad ship``: Filebeat's role for hosts without Filebeat.

Tails files and globs, follows rotation, resumes from a registry, filters with include/exclude
regexes before anything crosses the network (the first paper's design), joins multi-line records
(a Java stack trace under its log line), and produces to a topic per host (``<prefix>.<host>``) or
one topic. Every record's key is ``<host>|<path>``: one file's records share a key, so they keep
their order in one partition, and ingest recovers host and source from it.

Delivery is at-least-once: the registry moves on only after the idempotent producer confirmed
every record before that point.
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

from logad.errors import ConfigError, LogadError
from logad.produce import send
from logad.ship.registry import FileState, Registry

log = logging.getLogger(__name__)

_TOPIC_CHARS = re.compile(r"[^a-zA-Z0-9._-]")
READ_CHUNK = 1 << 20


class ShipError(LogadError):
    """The shipper could not deliver records."""


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
    max_record_bytes: int = 1 << 20
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
    bytes: int = 0


@dataclass
class _Open:
    state: FileState
    handle: IO[bytes]
    pending: list[bytes] = field(default_factory=list)  # lines of an unfinished multi-line record
    pending_start: int = 0
    last_data: float = field(default_factory=time.monotonic)
    read_to: int = 0  # bytes consumed from the file (complete lines), >= state.offset


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

    # -- files ---------------------------------------------------------------------------------
    def discover(self) -> list[str]:
        """Regular files matching the configured paths and globs now."""
        found: dict[str, None] = {}
        for pattern in self.cfg.paths:
            for path in sorted(glob.glob(os.path.expanduser(pattern))):
                if os.path.isfile(path):
                    found[os.path.abspath(path)] = None
        return list(found)

    def _attach(self, path: str) -> str:
        state = self.registry.state_for(path)
        self.registry.refresh_fingerprint(state)
        current = self._open.get(state.key)
        if current is not None and current.state is state:
            return state.key
        if current is not None:
            current.handle.close()
        handle = open(path, "rb")  # noqa: SIM115 - kept open across cycles to follow renames
        handle.seek(state.offset)
        self._open[state.key] = _Open(state, handle, read_to=state.offset, pending_start=state.offset)
        log.info("shipping %s from byte %d", path, state.offset)
        return state.key

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

    def _records(self, f: _Open, eof: bool) -> Iterator[bytes]:
        """New complete records of one file (multi-line records joined)."""
        got = False
        start = f.read_to
        for line, line_end in self._lines(f):
            got = True
            self.stats.lines += 1
            if self._multi is None:
                yield line
                start = line_end
                continue
            if f.pending and self._continues(line) and len(f.pending) < self.cfg.multiline_max_lines:
                f.pending.append(line)
            else:
                if f.pending:
                    yield b"\n".join(f.pending)
                f.pending, f.pending_start = [line], start
            start = line_end
        idle = time.monotonic() - f.last_data > self.cfg.multiline_timeout_s
        if f.pending and not got and (eof or idle):
            yield b"\n".join(f.pending)
            f.pending = []

    def _send(self, f: _Open, record: bytes) -> None:
        self.stats.records += 1
        if self._include and not any(p.search(record) for p in self._include):
            self.stats.filtered += 1
            return
        if any(p.search(record) for p in self._exclude):
            self.stats.filtered += 1
            return
        if len(record) > self.cfg.max_record_bytes:
            record = record[: self.cfg.max_record_bytes]
            self.stats.truncated += 1
        key = self._key_cache.get(f.state.path)
        if key is None:
            key = self._key_cache[f.state.path] = f"{self.cfg.host}|{f.state.path}".encode()
        send(self._producer, self.cfg.topic, record, key=key, on_delivery=self._delivered)
        self.stats.sent += 1

    def _delivered(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._errors.append(str(err))

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
                live.add(self._attach(path))
            except FileNotFoundError:
                continue  # rotated away between glob and open
        for key, f in list(self._open.items()):
            while True:
                before = f.read_to
                for record in self._records(f, eof=once):
                    self._send(f, record)
                if f.read_to == before:  # nothing new (a last multi-line record was flushed)
                    break
            # A file no longer under the configured paths (renamed away, deleted) was read to its
            # end above; close it once nothing more can come.
            if key not in live and (once or time.monotonic() - f.last_data > self.cfg.close_inactive_s):
                f.handle.close()
                del self._open[key]
        self._confirm()

    def _confirm(self) -> None:
        remaining = self._producer.flush(60)
        if remaining or self._errors:
            raise ShipError(f"{remaining} records not delivered to {self.cfg.topic} on "
                            f"{self.cfg.bootstrap}: {self._errors[:3] or 'flush timed out'}; "
                            "the registry was not advanced, so a restart sends them again")
        for f in self._open.values():
            f.state.offset = f.pending_start if f.pending else f.read_to
        self.registry.save()

    def run(self, once: bool = False, stop: Any = None) -> Stats:
        """Ship until ``stop`` (a threading.Event) is set, or once through when ``once``."""
        started = last = time.monotonic()
        try:
            while True:
                self.cycle(once=once)
                now = time.monotonic()
                if once or now - last >= self.cfg.progress_interval_s:
                    last = now
                    lag = sum(max(os.path.getsize(f.state.path) - f.read_to, 0)
                              for f in self._open.values() if os.path.exists(f.state.path))
                    log.info("%s: %d lines, %d sent, %d filtered, %.1f MB, %.0f lines/s, lag %d bytes",
                             self.cfg.topic, self.stats.lines, self.stats.sent, self.stats.filtered,
                             self.stats.bytes / 1e6, self.stats.lines / max(now - started, 1e-9), lag)
                if once or (stop is not None and stop.wait(self.cfg.poll_interval_s)):
                    break
                if stop is None:
                    time.sleep(self.cfg.poll_interval_s)
        finally:
            for f in self._open.values():
                f.handle.close()
            self._open.clear()
        return self.stats
