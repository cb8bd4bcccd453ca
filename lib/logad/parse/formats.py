"""Log formats: everything logad knows about one kind of log, in one entry each.

A :class:`LogFormat` owns its header regex and the names of its groups, the rule that turns its
time fields into a UTC timestamp, where it sits in auto-detection, the session rules its events
get by default, the columns of its label files and whether its lines carry their own ground
truth. The parser (:mod:`logad.parse.headers`), the sessionizer (:mod:`logad.sessions.rules`),
the label loader and the CLI read this table; adding a format is one entry here and a test.

Parsing runs on the executors as JVM regex and datetime expressions, never row-by-row Python; the
regexes are written in the common subset of Python ``re`` and Java regex, so the evaluation
protocols and benchmarks read files with the very same patterns.

Time rules (all event times are stored in UTC):
- :class:`Pattern` ``081109 203518``, ``17/06/09 20:10:40``, ``2015-10-18 18:01:47,978``: the named
  fields joined and read with a Spark datetime pattern; no zone in the line, so the format's
  ``timezone`` (UTC default) applies.
- :class:`Epoch` (BGL, Thunderbird): UTC epoch seconds in the record, plus a microseconds field
  when there is one; no zone guess needed.
- :class:`NoYear` (syslog ``Nov  9 12:01:01``): the year is the Kafka record's, minus one when
  that would put the event more than a day after the record (a December line read in January).
- :class:`IsoOrKafka` (generic): an ISO-8601 time at the start of the line if there is one (with
  its own offset, or ``timezone``), else the Kafka record's timestamp.

The header format is not the *system*: two applications may share log4j headers. ``events.system``
is set per topic or host by configuration (:class:`logad.parse.headers.Parser`) and falls back to
the detected format's name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from logad.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import Column

# Levels as the formats write them; WARNING is stored as WARN.
LEVELS = ("TRACE", "DEBUG", "INFO", "NOTICE", "WARN", "WARNING", "ERROR", "SEVERE", "FATAL",
          "FAILURE", "CRITICAL")
# The papers' label rule for lines without ground truth: these levels (or an exception) are abnormal.
ABNORMAL_LEVELS = ("WARN", "WARNING", "ERROR", "FATAL", "SEVERE", "CRITICAL", "FAILURE")
LEVELS_RE = "(?:" + "|".join(LEVELS) + ")"
# An HDFS block id; a line may name several (LogHub labels each block over its whole life).
BLOCK_ID = r"blk_-?\d+"
# Header fields with a column of their own in ``events``, or used only to build ``ts``; every
# other field goes into the ``events.fields`` map.
COLUMN_FIELDS = frozenset({"date", "time", "epoch", "micros", "level", "component", "content"})


def _local(ts: Column, tz: str) -> Column:
    from pyspark.sql import functions as F

    return ts if tz == "UTC" else F.to_utc_timestamp(ts, tz)


@dataclass(frozen=True)
class Pattern:
    """The ``fields`` joined by ``sep``, read with the Spark datetime ``pattern``, in the
    format's ``timezone``."""

    fields: tuple[str, ...]
    pattern: str
    sep: str = ""

    def column(self, g: Mapping[str, Column], kafka_ts: Column, tz: str) -> Column:
        from pyspark.sql import functions as F

        text = g[self.fields[0]] if len(self.fields) == 1 else F.concat_ws(self.sep, *[g[f] for f in self.fields])
        return _local(F.try_to_timestamp(text, F.lit(self.pattern)), tz)


@dataclass(frozen=True)
class Epoch:
    """UTC epoch ``seconds`` (a field), plus the ``micros`` field when given."""

    seconds: str
    micros: str | None = None

    @property
    def fields(self) -> tuple[str, ...]:
        return (self.seconds,) if self.micros is None else (self.seconds, self.micros)

    def column(self, g: Mapping[str, Column], kafka_ts: Column, tz: str) -> Column:
        from pyspark.sql import functions as F

        epoch = g[self.seconds].cast("long")
        if self.micros is None:
            return F.timestamp_seconds(epoch)
        return F.timestamp_micros(epoch * 1_000_000 + g[self.micros].cast("long"))


@dataclass(frozen=True)
class NoYear:
    """A time without a year (``MMM d HH:mm:ss``): the Kafka record's year, or the year before."""

    field: str
    pattern: str = "MMM d HH:mm:ss"

    @property
    def fields(self) -> tuple[str, ...]:
        return (self.field,)

    def column(self, g: Mapping[str, Column], kafka_ts: Column, tz: str) -> Column:
        from pyspark.sql import functions as F

        def read_in(year: Column) -> Column:
            return F.try_to_timestamp(
                F.concat_ws(" ", year.cast("string"), F.regexp_replace(g[self.field], " +", " ")),
                F.lit("yyyy " + self.pattern))

        this_year = read_in(F.year(kafka_ts))
        guess = F.when(this_year > kafka_ts + F.expr("INTERVAL 1 DAY"),
                       read_in(F.year(kafka_ts) - 1)).otherwise(this_year)
        return _local(guess, tz)


@dataclass(frozen=True)
class IsoOrKafka:
    """An ISO-8601 ``field`` when the line has one, else the Kafka record's timestamp."""

    field: str

    @property
    def fields(self) -> tuple[str, ...]:
        return (self.field,)

    def column(self, g: Mapping[str, Column], kafka_ts: Column, tz: str) -> Column:
        from pyspark.sql import functions as F

        text = F.regexp_replace(g[self.field], ",", ".")
        own = (F.when(g[self.field].rlike(r"(Z|[+-]\d{2}:?\d{2})$"), F.try_to_timestamp(text))
               .otherwise(_local(F.try_to_timestamp(F.regexp_replace(text, "T", " ")), tz)))
        return F.coalesce(own, kafka_ts)


TimeRule = Pattern | Epoch | NoYear | IsoOrKafka


@dataclass(frozen=True)
class LogFormat:
    """One log format, checked when it is defined.

    Attributes:
        name: the format's name, and the ``events.system`` of its lines unless configuration
            names the system.
        regex: a regex (the Python/Java common subset) matching a whole line; its groups are
            named by ``fields``, one of which is ``content`` (what template mining sees).
        fields: the group names. ``level`` and ``component`` become columns; the time fields are
            read by ``time``; the rest go into the ``events.fields`` map.
        time: how the time fields become the event time (required: a format without one would
            turn every line into a ``bad_timestamp`` reject).
        detect: its place in auto-detection, lowest first (most specific formats first); None
            for a format used only where configuration pins it, or as the fallback (generic).
        timezone: the zone of a local time in the line.
        sessions: the default :class:`logad.sessions.rules.SessionRules` settings of its
            system (``kind`` and overrides); None: not cut into sessions unless rules are given.
        label_columns: (key, label) columns of its data set's label file, for
            ``logad sessions labels``; None: no label file format.
        truth: a field whose value is the line's own ground truth (BGL's alert category, ``-``
            for normal); None when the lines carry none.
        node: regexes tried in turn on the content for the node a line is about (group 1),
            where the header names none (an HDFS line names its datanode in the text); a
            ``node`` field of the header comes first.
    """

    name: str
    regex: str
    fields: tuple[str, ...]
    time: TimeRule
    detect: int | None = None
    timezone: str = "UTC"
    sessions: Mapping[str, Any] | None = None
    label_columns: tuple[str, str] | None = None
    truth: str | None = None
    node: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ConfigError(f"format {self.name!r}: a name is lower-case letters, digits and _")
        try:
            groups = re.compile(self.regex).groups
        except re.error as e:
            raise ConfigError(f"format {self.name}: regex does not compile: {e}") from e
        if groups != len(self.fields):
            raise ConfigError(f"format {self.name}: regex has {groups} groups but {len(self.fields)} "
                              "fields are named")
        if len(set(self.fields)) != len(self.fields):
            raise ConfigError(f"format {self.name}: a field is named twice in {self.fields}")
        if "content" not in self.fields:
            raise ConfigError(f"format {self.name}: one field must be named 'content'")
        if not isinstance(self.time, Pattern | Epoch | NoYear | IsoOrKafka):
            raise ConfigError(f"format {self.name}: time must be a time rule (Pattern, Epoch, NoYear, "
                              f"IsoOrKafka), got {self.time!r}: without one every line is a bad_timestamp")
        missing = [f for f in self.time.fields if f not in self.fields]
        if missing:
            raise ConfigError(f"format {self.name}: its time rule reads {missing}, which the regex "
                              f"does not capture (fields {self.fields})")
        if self.truth is not None and self.truth not in self.fields:
            raise ConfigError(f"format {self.name}: truth field {self.truth!r} is not one of {self.fields}")
        for pattern in self.node:
            try:
                if re.compile(pattern).groups < 1:
                    raise ConfigError(f"format {self.name}: node pattern {pattern!r} has no group")
            except re.error as e:
                raise ConfigError(f"format {self.name}: node pattern {pattern!r} does not compile: {e}") from e
        if self.sessions is not None and "kind" not in self.sessions:
            raise ConfigError(f"format {self.name}: sessions needs a kind (block, task, window, application)")

    @property
    def extra(self) -> tuple[str, ...]:
        """The fields kept in ``events.fields``: those without a column of their own."""
        return tuple(f for f in self.fields if f not in COLUMN_FIELDS)


_FORMATS = (
    LogFormat("hdfs", r"^(\d{6}) (\d{6}) (\d+) ([A-Z]+) ([^:\s]+): ?(.*)$",
              ("date", "time", "pid", "level", "component", "content"),
              time=Pattern(("date", "time"), "yyMMddHHmmss"), detect=30,
              # A block's lines span its allocation, replication and (hours later) deletion, and LogHub
              # labels a block over its whole life: one block, one session. The longest quiet gap
              # inside a block is 12.9 h in LogHub's HDFS (46,329 s, dev sample; 3,611 of 5,917
              # blocks have one over 1 h), so a block closes after a day without a line or a week
              # after its first; its alert does not wait for that (scoring on the growing prefix).
              sessions={"kind": "block", "key_pattern": BLOCK_ID, "idle_s": 86400.0,
                        "max_duration_s": 7 * 86400.0},
              label_columns=("BlockId", "Label"),
              # the datanode a line is about: the one speaking ("10.251.70.211:50010 Served
              # block ..."), the receiving one ("... dest: /10.250.19.102:50010"), else the first
              # datanode (data-transfer port 50010) a namenode line names ("blockMap updated:
              # 10.251.71.16:50010 is added to blk_...")
              node=(r"^/?(\d{1,3}(?:\.\d{1,3}){3}):\d+\b", r"\bdest: /(\d{1,3}(?:\.\d{1,3}){3}):\d+",
                    r"\b(\d{1,3}(?:\.\d{1,3}){3}):50010\b")),
    LogFormat("bgl", r"^(\S+) (\d{9,11}) (\d{4}\.\d{2}\.\d{2}) (\S+) "
              r"(\d{4}-\d{2}-\d{2}-\d{2}\.\d{2}\.\d{2}\.(\d{6})) (\S+) (\S+) (\S+) (\S+) ?(.*)$",
              ("alert", "epoch", "date", "node", "time", "micros", "location", "type", "component",
               "level", "content"),
              time=Epoch("epoch", "micros"), detect=10,
              # per-node windows; 60 s is the window of the BGL studies we compare with
              sessions={"kind": "window", "window_s": 60.0}, truth="alert"),
    LogFormat("thunderbird", r"^(\S+) (\d{9,11}) (\d{4}\.\d{2}\.\d{2}) (\S+) "
              r"([A-Z][a-z]{2} +\d{1,2} \d{2}:\d{2}:\d{2}) (\S+) (?:([^:\[\s]+(?: [^:\[\s]+)?)"
              r"(?:\[(\d+)\])?: ?)?(.*)$",
              ("alert", "epoch", "date", "node", "time", "location", "component", "pid", "content"),
              time=Epoch("epoch"), detect=20, sessions={"kind": "window", "window_s": 60.0},
              truth="alert"),
    LogFormat("spark", r"^(\d{2}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}) ([A-Z]+) ([^:\s]+): ?(.*)$",
              ("time", "level", "component", "content"),
              time=Pattern(("time",), "yy/MM/dd HH:mm:ss"), detect=40,
              # the paper closes an unfinished workflow "by a threshold"; tasks last seconds to minutes
              sessions={"kind": "task", "idle_s": 600.0, "max_duration_s": 3600.0},
              label_columns=("session_key", "label")),
    LogFormat("hadoop", r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3}) ([A-Z]+) \[([^\]]*)\] "
              r"([^:\s]+): ?(.*)$", ("time", "level", "thread", "component", "content"),
              time=Pattern(("time",), "yyyy-MM-dd HH:mm:ss,SSS"), detect=50,
              sessions={"kind": "application", "idle_s": 3600.0, "max_duration_s": 86400.0},
              label_columns=("application_id", "label")),
    # ZooKeeper's log4j layout: "%d{ISO8601} - %-5p [%t:%C{1}@%L] - %m%n". The thread name may hold
    # brackets and colons (QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181), so the class is what
    # follows the last colon before "@line]".
    LogFormat("zookeeper", r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3}) - ([A-Z]+) +"
              r"\[(.*?):([^:@\]\s]+)@(\d+)\] - ?(.*)$",
              ("time", "level", "thread", "component", "lineno", "content"),
              time=Pattern(("time",), "yyyy-MM-dd HH:mm:ss,SSS"), detect=55,
              # no natural session: one window series per host, as for BGL nodes
              sessions={"kind": "window", "window_s": 60.0}),
    LogFormat("syslog", r"^([A-Z][a-z]{2} +\d{1,2} \d{2}:\d{2}:\d{2}) (\S+) ([^:\[\s]+)"
              r"(?:\[(\d+)\])?: ?(.*)$", ("time", "node", "component", "pid", "content"),
              time=NoYear("time"), detect=60),
    # the fallback: matches every line (content = the whole line when there is no header)
    LogFormat("generic", r"^(?:\[?(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?"
              r"(?:Z|[+-]\d{2}:?\d{2})?)\]?\s*)?(?:[\[<]?(" + LEVELS_RE + r")[\]>:]?\s+)?(.*)$",
              ("time", "level", "content"), time=IsoOrKafka("time")),
)

FORMATS: dict[str, LogFormat] = {f.name: f for f in _FORMATS}
GENERIC = "generic"
# The order auto-detection tries them in: most specific first; generic matches everything.
DETECT_ORDER: tuple[str, ...] = tuple(f.name for f in sorted(
    (f for f in _FORMATS if f.detect is not None), key=lambda f: f.detect or 0))


def get(name: str) -> LogFormat:
    """A format by name, with an error listing the known ones."""
    try:
        return FORMATS[name]
    except KeyError:
        raise ConfigError(f"unknown log format {name!r}; known: {', '.join(FORMATS)}, auto") from None


@cache
def header(name: str) -> re.Pattern[str]:
    """A format's regex compiled for Python (files read outside Spark: evaluation, benchmarks),
    in the same DOTALL mode as the stream."""
    return re.compile(get(name).regex, re.DOTALL)


def content_of(name: str, line: str) -> str | None:
    """The ``content`` field of ``line`` under format ``name``; None when the header does not
    match. The same regex the executors run."""
    fmt = get(name)
    m = header(name).match(line)
    return None if m is None else m.group(fmt.fields.index("content") + 1)


def node_of(name: str, line: str) -> str | None:
    """The node a raw line of format ``name`` was written by or is about: the header's ``node``
    field (BGL, Thunderbird), else the first of the format's ``node`` patterns that matches the
    content (an HDFS datanode's address); None when neither says (the shipping host stands)."""
    fmt = FORMATS.get(name)
    if fmt is None:
        return None
    m = header(name).match(line)
    if m is None:
        return None
    if "node" in fmt.fields:
        return m.group(fmt.fields.index("node") + 1)
    content = m.group(fmt.fields.index("content") + 1)
    for pattern in fmt.node:
        found = re.search(pattern, content)
        if found:
            return found.group(1)
    return None
