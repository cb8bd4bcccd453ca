"""Masking rules: variables that a regex can see (ids, addresses, numbers) become ``<*>`` before
mining, so miners compare only the words that carry meaning.

Every pattern is written in the common subset of Python ``re`` and Java regex, and Python
compiles it with ``re.ASCII`` (Java's default classes: ``\\d`` is [0-9], ``\\s`` is
[ \\t\\n\\x0B\\f\\r]), so the same rule gives the same text in the miners (Python, on the driver)
and in the stream (on the executors). Rules apply in order; a later rule sees ``<*>`` already.

In the stream (:func:`mask_column`), the default rules run as one JVM call per line,
``logad.jvm.Mask`` (logad's JVM module, :mod:`logad.jvm`): a character scanner that does what
the ten regexes do, 13x faster per core (bench/templates.py), identical on every line
(tests/unit/test_jvm_mask.py). Any other rule set, or a session without the module's jar, runs
the regexes with ``regexp_replace``: the same text, slower.

Example:
    >>> mask("Receiving block blk_-1608999687919862906 src: /10.250.19.102:54106", DEFAULT_RULES)
    'Receiving block <*> src: /<*>:<*>'
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from logad.errors import ConfigError
from logad.jvm import MASK_CLASS
from logad.parse.formats import BLOCK_ID

if TYPE_CHECKING:
    from pyspark.sql import Column, SparkSession

log = logging.getLogger(__name__)

WILDCARD = "<*>"


@dataclass(frozen=True)
class MaskRule:
    """Replace matches of ``pattern`` with ``replacement`` (``<*>`` by default; ``$1`` style group
    references are not allowed, so the text is the same in Python and Java)."""

    name: str
    pattern: str
    replacement: str = WILDCARD

    def __post_init__(self) -> None:
        try:
            re.compile(self.pattern)
        except re.error as e:
            raise ConfigError(f"mask rule {self.name}: pattern does not compile: {e}") from e
        if "$" in self.replacement or "\\" in self.replacement:
            raise ConfigError(f"mask rule {self.name}: the replacement must be plain text")
        if re.search(r"\(\?P?<[A-Za-z]|\\[AZ]|\(\?[a-zA-Z]", self.pattern):
            raise ConfigError(f"mask rule {self.name}: use only syntax Python and Java share "
                              "(no named groups, \\A, \\Z or inline flags)")

    @cached_property
    def compiled(self) -> re.Pattern[str]:
        return re.compile(self.pattern, re.ASCII)


# Lookarounds instead of \b where a token may start or end with a non-word character.
_START = r"(?<![A-Za-z0-9_.<])"
_END = r"(?![A-Za-z0-9_>])"

DEFAULT_RULES: tuple[MaskRule, ...] = (
    MaskRule("url", r"(?<=://)[^\s,;)\]'\"]+"),
    MaskRule("path", r"(?<![A-Za-z0-9_:>.])(?:/[A-Za-z0-9_.$@~+-]+){2,}/?"),
    MaskRule("block_id", BLOCK_ID),
    # a host name (with a dot or a hyphen) before :port or /address: msra-sa-41:9000
    MaskRule("host_port", _START + r"[A-Za-z][A-Za-z0-9]*(?:[.-][A-Za-z0-9]+)+(?=[:/]\d)"),
    MaskRule("ip", r"(?<![A-Za-z0-9_.<>])/?\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}" + _END),
    MaskRule("hex", _START + r"0x[0-9a-fA-F]+" + _END),
    MaskRule("uuid", _START + r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}" + _END),
    # words joined by underscores with a digit somewhere: broadcast_9_piece0, attempt_2017_m_01
    MaskRule("id", _START + r"(?=[A-Za-z0-9_]*\d)[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+" + _END),
    MaskRule("size", _START + r"\d+(?:\.\d+)?\s?[KMGT]?B" + _END),
    # a number may follow a dot (core.2275), unlike the rules above
    MaskRule("number", r"(?<![A-Za-z0-9_<])[-+]?\d+(?:\.\d+)*" + _END),
)

# Additions for systems whose variables the defaults miss (chosen on the loghub 2k development
# data, the same for every parser; see docs/templates.md).
PRESETS: Mapping[str, tuple[MaskRule, ...]] = {
    "default": DEFAULT_RULES,
}


def rules_for(system: str | None) -> tuple[MaskRule, ...]:
    """The rules for a system (``hdfs``, ``spark``...), the defaults when it has no preset."""
    return PRESETS.get((system or "default").lower(), DEFAULT_RULES)


def mask(text: str, rules: Sequence[MaskRule]) -> str:
    """``text`` with every rule applied in order."""
    for rule in rules:
        text = rule.compiled.sub(rule.replacement, text)
    return text


def rules_text(rules: Sequence[MaskRule]) -> str:
    """The rules as ``logad.jvm.Mask.patterns()`` lists the ones it implements."""
    return "".join(f"{r.name}\t{r.pattern}\n" for r in rules)


_NATIVE = "spark.logad.mask.native"  # the answer of native_masking, once per session


def native_masking(spark: SparkSession | None, rules: Sequence[MaskRule]) -> bool:
    """Whether ``spark`` can run ``rules`` as ``logad.jvm.Mask``: the class is on its classpath
    (``spark.jars``, see :mod:`logad.jvm`) and implements exactly these rules. Asked once per
    session, through ``java_method`` itself, and logged."""
    if spark is None or any(r.replacement != WILDCARD for r in rules):
        return False
    answer = spark.conf.get(_NATIVE, None)
    if answer is None:
        from pyspark.sql import functions as F

        try:
            row = spark.range(1).select(F.java_method(F.lit(MASK_CLASS), F.lit("patterns"))).first()
            found = row[0] if row is not None else None
        except Exception as e:  # AnalysisException: the class is not on the classpath
            log.info("masking: %s is not on this session's classpath (%s); running the rules as regexes",
                     MASK_CLASS, str(e).splitlines()[0][:200])
            found = None
        answer = found or ""
        spark.conf.set(_NATIVE, answer)
        if found and found != rules_text(DEFAULT_RULES):
            log.warning("masking: the %s on the classpath implements other rules than this logad's "
                        "defaults (an old jar?): running the rules as regexes; rebuild with "
                        "'python -m logad.jvm build'", MASK_CLASS)
    return bool(answer) and answer == rules_text(rules)


def mask_column(col: Column, rules: Sequence[MaskRule], spark: SparkSession | None = None) -> Column:
    """The same masking as a Spark SQL expression: one ``logad.jvm.Mask`` call per line when
    ``spark`` has it for these rules (:func:`native_masking`), else one ``regexp_replace`` per
    rule (Java regex on the executors)."""
    from pyspark.sql import functions as F

    if native_masking(spark, rules):
        return F.java_method(F.lit(MASK_CLASS), F.lit("mask"), col)
    for rule in rules:
        col = F.regexp_replace(col, rule.pattern, rule.replacement)
    return col
