"""Kafka records to ``events`` and ``rejects``: decode, unwrap Filebeat, parse headers.

A plain ``DataFrame -> DataFrame`` transform, the same for the live stream and for backfills,
built only from Spark SQL expressions so it runs on the executors at JVM speed. Every input
record comes out exactly once, as an event (``reject_reason`` null) or a reject with its reason:

| reason | when |
|---|---|
| ``undecodable`` | the value is not valid UTF-8 |
| ``too_long`` | the value is longer than ``max_line_bytes`` |
| ``empty`` | no value, or only whitespace |
| ``no_header`` | the line matches no format the topic allows |
| ``bad_envelope`` | a Filebeat event whose ``log.offset`` is not a non-negative 64-bit integer |
| ``bad_timestamp`` | the header matched but its time does not exist (month 13, Feb 30), or lies outside ``TS_RANGE`` |

Event times must lie in ``TS_RANGE`` (1900-01-01 to 2262-01-01 UTC, end excluded): times that
Delta, Spark, Python and pandas can all hold (pandas counts nanoseconds: 1677-09-21 to
2262-04-11, and the sessions operator and the scorer pass events through pandas), with months to
spare for a shift into any time zone. A Kafka record timestamp outside it (a producer's
CreateTime in year 10000) is dropped to null: the line keeps its
own time, and a line that needed the Kafka time (no time of its own) is a ``bad_timestamp``.
Every cast is a ``try_`` cast or guarded by a regex, so nothing in one record can fail a batch
under ANSI mode.

A record may hold several lines (a Java stack trace joined by ``ship --multiline-pattern``, or a
stray CR): the header is the first line's, and the content runs to the end of the record.

Records are raw lines, or Filebeat's Kafka output (a JSON event with ``message``, ``host.name``,
``log.file.path``, ``log.offset``), detected per record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from logad.errors import ConfigError
from logad.parse.formats import DETECT_ORDER, FORMATS, GENERIC, get

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

TS_RANGE = ("1900-01-01 00:00:00", "2262-01-01 00:00:00")  # UTC, [start, end)
# the header fields kept in ``events.fields``: every format's fields without a column of their own
EXTRA_FIELDS = tuple(dict.fromkeys(n for f in FORMATS.values() for n in f.extra))
EVENT_COLUMNS = ("topic", "partition", "offset", "kafka_ts", "host", "source", "file_offset",
                 "system", "ts", "level", "component", "content", "fields", "line")


@dataclass(frozen=True)
class Parser:
    """Which formats apply to which topics, which system the lines belong to, and the limits.

    ``formats`` maps a topic regex to a format name or ``auto`` (try the known formats, most
    specific first); the first matching entry wins; topics matching none use ``default``.
    ``fallback_generic`` lets a line that matches no specific format through as ``generic``
    (content = the whole line) instead of rejecting it.

    ``systems`` (topic regex -> system) and ``host_systems`` (host regex -> system) name the
    system of a topic's or a host's lines (``events.system``, which picks session rules, labels
    and models), for applications that share a header format; the first match wins, topics
    before hosts, and lines matching neither take the detected format's name.
    """

    formats: dict[str, str] = field(default_factory=dict)
    default: str = "auto"
    fallback_generic: bool = True
    max_line_bytes: int = 64 * 1024
    systems: dict[str, str] = field(default_factory=dict)
    host_systems: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for pattern, name in {**self.formats, "": self.default}.items():
            if name != "auto":
                get(name)
            _regex("Parser.formats", pattern)
        for what, mapping in (("Parser.systems", self.systems), ("Parser.host_systems", self.host_systems)):
            for pattern, system in mapping.items():
                _regex(what, pattern)
                if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]*", system or ""):
                    raise ConfigError(f"{what}: system {system!r} for {pattern!r} must be a name "
                                      "(letters, digits, _ . -)")
        if self.max_line_bytes <= 0:
            raise ConfigError(f"Parser.max_line_bytes must be > 0, got {self.max_line_bytes}")


def _regex(what: str, pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as e:
        raise ConfigError(f"{what}: pattern {pattern!r} is not a regex: {e}") from e


# A record of several lines (a stack trace) matches on its first line's header, and its content
# runs to the end: in DOTALL mode ``.`` also matches the line breaks (Java's ``.`` otherwise
# stops at \n, \r, \u0085, \u2028 and \u2029).
_DOTALL = "(?s)"


def _in_range(ts: Column) -> Column:
    from pyspark.sql import functions as F

    return (ts >= F.lit(TS_RANGE[0]).cast("timestamp")) & (ts < F.lit(TS_RANGE[1]).cast("timestamp"))


def _detect(line: Column, allowed: str) -> Column:
    from pyspark.sql import functions as F

    names = DETECT_ORDER if allowed == "auto" else (allowed,)
    expr = None
    for name in names:
        cond = line.rlike(_DOTALL + FORMATS[name].regex)
        expr = F.when(cond, F.lit(name)) if expr is None else expr.when(cond, F.lit(name))
    assert expr is not None
    return expr


def _format_column(topic: Column, line: Column, parser: Parser) -> Column:
    from pyspark.sql import functions as F

    chosen = None
    for pattern, name in parser.formats.items():
        cond = topic.rlike(f"^(?:{pattern})$")
        chosen = F.when(cond, _detect(line, name)) if chosen is None else chosen.when(cond, _detect(line, name))
    default = _detect(line, parser.default)
    detected = default if chosen is None else chosen.otherwise(default)
    if parser.fallback_generic:
        detected = F.coalesce(detected, F.lit(GENERIC))
    return detected


def _system_column(topic: Column, host: Column, fmt: Column, parser: Parser) -> Column:
    from pyspark.sql import functions as F

    chosen = None
    for col, mapping in ((topic, parser.systems), (host, parser.host_systems)):
        for pattern, system in mapping.items():
            cond = col.rlike(f"^(?:{pattern})$")
            chosen = F.when(cond, F.lit(system)) if chosen is None else chosen.when(cond, F.lit(system))
    return fmt if chosen is None else chosen.otherwise(fmt)


# Joins a format's groups into one string so one regex evaluation yields all of them (Spark SQL
# has no "all groups of one match" function). U+FFFF is a Unicode noncharacter: it does not occur
# in text; a line that still contains one gets shifted fields, never an error.
_SEP = "\uffff"


def _groups(fmt: Column, line: Column) -> Column:
    """All groups of whichever format matched, as an array (one regex evaluation per row)."""
    from pyspark.sql import functions as F

    expr = None
    for f in FORMATS.values():
        joined = F.regexp_replace(line, _DOTALL + f.regex, _SEP.join(f"${i}" for i in range(1, len(f.fields) + 1)))
        parts = F.split(joined, _SEP, len(f.fields))
        expr = F.when(fmt == f.name, parts) if expr is None else expr.when(fmt == f.name, parts)
    assert expr is not None
    return expr


def _field(fmt: Column, groups: Column, name: str) -> Column:
    """Field ``name`` of whichever format matched (null when that format has no such field)."""
    from pyspark.sql import functions as F

    expr = None
    for f in FORMATS.values():
        if name in f.fields:
            value = F.get(groups, f.fields.index(name))
            expr = F.when(fmt == f.name, value) if expr is None else expr.when(fmt == f.name, value)
    if expr is None:
        return F.lit(None).cast("string")
    return F.nullif(expr, F.lit(""))


def _timestamp(fmt: Column, g: dict[str, Column], kafka_ts: Column) -> Column:
    """The event time by the time rule of whichever format matched (null when it cannot be read)."""
    from pyspark.sql import functions as F

    expr = None
    for f in FORMATS.values():
        ts = f.time.column(g, kafka_ts, f.timezone)
        expr = F.when(fmt == f.name, ts) if expr is None else expr.when(fmt == f.name, ts)
    assert expr is not None
    return expr


def parse_records(records: DataFrame, parser: Parser | None = None) -> DataFrame:
    """Kafka records -> one row per record with event columns and ``reject_reason``.

    Use :func:`events` and :func:`rejects` to split the result.

    Example:
        >>> parsed = parse_records(spark.read.format("logad_kafka").options(**opts).load())  # doctest: +SKIP
    """
    from pyspark.sql import functions as F

    parser = parser or Parser()
    value = F.col("value")
    raw = value.cast("string")  # the bytes as they are; checked, not decoded (ANSI would throw)
    bad_utf8 = ~F.is_valid_utf8(raw)
    decoded = F.make_valid_utf8(raw)
    is_filebeat = decoded.startswith("{") & F.get_json_object(decoded, "$.message").isNotNull()

    def fb(path: str) -> Column:
        return F.when(F.col("_fb"), F.get_json_object(F.col("_decoded"), path))

    # the key names host and file (``host|path``): a path may hold any bytes, a string column
    # must be UTF-8 (Arrow, pandas and Python refuse anything else)
    key = F.make_valid_utf8(F.col("key").cast("string"))
    df = (records
          .withColumn("_decoded", decoded)
          .withColumn("_bad_utf8", F.coalesce(bad_utf8, F.lit(False)))
          .withColumn("_fb", F.coalesce(is_filebeat, F.lit(False)))
          .withColumn("line", F.regexp_replace(
              F.when(F.col("_fb"), fb("$.message")).otherwise(F.col("_decoded")), r"\r$", ""))
          .withColumn("host", F.coalesce(
              fb("$.host.name"), F.when(key.contains("|"), F.substring_index(key, "|", 1)),
              F.element_at(F.split(F.col("topic"), r"\."), -1)))
          .withColumn("source", F.coalesce(
              fb("$.log.file.path"), F.when(key.contains("|"), F.expr("substr(cast(key as string), "
                                                                          "instr(cast(key as string), '|') + 1)")),
              key))
          .withColumn("_fb_offset", fb("$.log.offset"))
          .withColumn("file_offset", F.when(F.col("_fb_offset").rlike(r"^\d{1,18}$"),
                                            F.col("_fb_offset").cast("long")))
          .withColumn("kafka_ts", F.when(_in_range(F.col("timestamp")), F.col("timestamp"))))
    line = F.col("line")
    df = df.withColumn("_format", _format_column(F.col("topic"), line, parser))
    fmt = F.col("_format")
    df = df.withColumn("_groups", _groups(fmt, line))
    names = sorted({n for f in FORMATS.values() for n in f.fields})
    g = {n: F.col(f"_g_{n}") for n in names}
    df = df.select("*", *[_field(fmt, F.col("_groups"), n).alias(f"_g_{n}") for n in names])
    level = F.upper(g["level"])
    no_field = F.create_map().cast("map<string,string>")
    df = (df.withColumn("_ts", _timestamp(fmt, g, F.col("kafka_ts")))
          .withColumn("ts", F.when(_in_range(F.col("_ts")), F.col("_ts")))
          .withColumn("level", F.when(level == "WARNING", F.lit("WARN")).otherwise(level))
          .withColumn("system", _system_column(F.col("topic"), F.col("host"), fmt, parser))
          .withColumn("component", g["component"])
          .withColumn("content", F.coalesce(g["content"], F.lit("")))
          # map_concat of one-entry maps, not map_filter: a lambda is interpreted, and it keeps
          # the whole projection out of generated code.
          .withColumn("fields", F.map_concat(*[
              F.when(g[n].isNotNull(), F.create_map(F.lit(n), g[n])).otherwise(no_field)
              for n in EXTRA_FIELDS])))
    reason = (F.when(F.col("_bad_utf8"), F.lit("undecodable"))
              .when(F.octet_length(value) > parser.max_line_bytes, F.lit("too_long"))
              .when(value.isNull() | ~line.rlike(r"\S"), F.lit("empty"))
              .when(F.col("_fb_offset").isNotNull() & F.col("file_offset").isNull(), F.lit("bad_envelope"))
              .when(fmt.isNull(), F.lit("no_header"))
              .when(F.col("ts").isNull(), F.lit("bad_timestamp")))
    df = df.withColumn("_reason", reason)
    detail = (F.when(F.col("_reason") == "no_header",
                     F.concat(F.lit("no format matched for topic "), F.col("topic")))
              .when(F.col("_reason") == "too_long",
                    F.concat(F.lit("bytes: "), F.octet_length(value).cast("string")))
              .when(F.col("_reason") == "bad_envelope",
                    F.concat(F.lit("log.offset is not an integer: "), F.substring("_fb_offset", 1, 40)))
              .when(F.col("_reason") == "bad_timestamp",
                    F.concat(F.lit("format "), fmt,
                             F.when(F.col("_ts").isNotNull(), F.lit(f": outside {TS_RANGE[0][:10]}.."
                                                                   f"{TS_RANGE[1][:10]} UTC")))))
    df = df.withColumn("reject_reason", F.col("_reason")).withColumn("reject_detail", detail)
    return df.drop(*[c for c in df.columns if c.startswith("_")])


def events(parsed: DataFrame, extra: tuple[str, ...] = ()) -> DataFrame:
    """The rows of :func:`parse_records` that parsed, in ``events`` columns (then ``extra``).

    Apply it (and :func:`rejects`) to a persisted result, as the ingest query does: a filter on
    the unpersisted result would be pushed by Spark's optimizer into the parsing expressions and
    copied into every branch of them, which makes the generated code explode in size.
    """
    return parsed.where("reject_reason IS NULL").select(*EVENT_COLUMNS, *extra)


def rejects(parsed: DataFrame, stage: str = "ingest") -> DataFrame:
    """The rows of :func:`parse_records` that did not, with their reason (``rejects`` columns).

    Apply it to a persisted result (see :func:`events`).
    """
    from pyspark.sql import functions as F

    return (parsed.where("reject_reason IS NOT NULL")
            .select("topic", "partition", "offset", "kafka_ts",
                    F.make_valid_utf8(F.col("key").cast("string")).alias("key"),
                    "value", F.col("reject_reason").alias("reason"), F.lit(stage).alias("stage"),
                    F.col("reject_detail").alias("detail")))
