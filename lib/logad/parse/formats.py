"""Log header formats: one regex and one timestamp rule each, applied as Spark SQL expressions.

A format splits a line into its header fields (time, level, component, ...) and the free-text
content that template mining sees. Parsing runs on the executors as JVM regex and datetime
expressions, never row-by-row Python.

Time handling, per format (all event times are stored in UTC):
- hdfs ``081109 203518``: two-digit year (20yy), no zone: the format's ``timezone`` (UTC default).
- spark ``17/06/09 20:10:40``: the same.
- hadoop ``2015-10-18 18:01:47,978``: milliseconds after a comma; ``timezone`` applies.
- bgl: the record carries UTC epoch seconds and a local time with microseconds; the time is the
  epoch seconds plus those microseconds, so no zone guess is needed.
- thunderbird: UTC epoch seconds.
- syslog ``Nov  9 12:01:01``: no year; the year is the Kafka record's, minus one when that would
  put the event more than a day after the record (a December line read in January).
- generic: an ISO-8601 time at the start of the line if there is one (with its own offset, or
  ``timezone``), else none, and the event time falls back to the Kafka timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass

from logad.errors import ConfigError

LEVELS = r"(?:TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|SEVERE|FATAL|FAILURE|CRITICAL)"


@dataclass(frozen=True)
class LogFormat:
    """A header format: a Java regex whose groups are named by ``fields``."""

    name: str
    regex: str
    fields: tuple[str, ...]
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        import re

        try:
            groups = re.compile(self.regex).groups
        except re.error as e:
            raise ConfigError(f"format {self.name}: regex does not compile: {e}") from e
        if groups != len(self.fields):
            raise ConfigError(f"format {self.name}: regex has {groups} groups but {len(self.fields)} "
                              "fields are named")
        if "content" not in self.fields:
            raise ConfigError(f"format {self.name}: one field must be named 'content'")


FORMATS: dict[str, LogFormat] = {f.name: f for f in (
    LogFormat("hdfs", r"^(\d{6}) (\d{6}) (\d+) ([A-Z]+) ([^:\s]+): ?(.*)$",
              ("date", "time", "pid", "level", "component", "content")),
    LogFormat("bgl", r"^(\S+) (\d{9,11}) (\d{4}\.\d{2}\.\d{2}) (\S+) "
              r"(\d{4}-\d{2}-\d{2}-\d{2}\.\d{2}\.\d{2}\.(\d{6})) (\S+) (\S+) (\S+) (\S+) ?(.*)$",
              ("alert", "epoch", "date", "node", "time", "micros", "location", "type", "component",
               "level", "content")),
    LogFormat("thunderbird", r"^(\S+) (\d{9,11}) (\d{4}\.\d{2}\.\d{2}) (\S+) "
              r"([A-Z][a-z]{2} +\d{1,2} \d{2}:\d{2}:\d{2}) (\S+) (?:([^:\[\s]+(?: [^:\[\s]+)?)"
              r"(?:\[(\d+)\])?: ?)?(.*)$",
              ("alert", "epoch", "date", "node", "time", "location", "component", "pid", "content")),
    LogFormat("spark", r"^(\d{2}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}) ([A-Z]+) ([^:\s]+): ?(.*)$",
              ("time", "level", "component", "content")),
    LogFormat("hadoop", r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3}) ([A-Z]+) \[([^\]]*)\] "
              r"([^:\s]+): ?(.*)$", ("time", "level", "thread", "component", "content")),
    LogFormat("syslog", r"^([A-Z][a-z]{2} +\d{1,2} \d{2}:\d{2}:\d{2}) (\S+) ([^:\[\s]+)"
              r"(?:\[(\d+)\])?: ?(.*)$", ("time", "node", "component", "pid", "content")),
    LogFormat("generic", r"^(?:\[?(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?"
              r"(?:Z|[+-]\d{2}:?\d{2})?)\]?\s*)?(?:[\[<]?(" + LEVELS + r")[\]>:]?\s+)?(.*)$",
              ("time", "level", "content")),
)}

# The order auto-detection tries them in: most specific first; generic matches everything.
DETECT_ORDER = ("bgl", "thunderbird", "hdfs", "spark", "hadoop", "syslog")


def get(name: str) -> LogFormat:
    """A format by name, with an error listing the known ones."""
    try:
        return FORMATS[name]
    except KeyError:
        raise ConfigError(f"unknown log format {name!r}; known: {', '.join(FORMATS)}, auto") from None
