"""How each system's events are cut into sessions: one typed, self-checking config.

A session is the unit a model scores: an HDFS block's lines, one Spark Task's workflow from
``Running task`` to ``Finished task``, a BGL node's time window, a Hadoop application. What
cuts them (key, markers, timeouts, caps) is a :class:`SessionRules`; :func:`rules_for` gives
the defaults per system, each overridable.

All times are **event time** (the line's own timestamp): a session closes when a later event
or the watermark passes its deadline, never by the wall clock, so the stream and a batch
backfill over the same events give the same sessions (:mod:`logad.sessions.split`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from logad.errors import ConfigError
from logad.parse.formats import BLOCK_ID, FORMATS

KINDS = ("block", "task", "window", "application")
ATTACH = ("paper", "hints")
LATE = ("join", "reject")
FOLD = ("time", "arrival")


@dataclass(frozen=True)
class SessionRules:
    """The rules of one system.

    Attributes:
        system: the ``events.system`` value these rules apply to (``hdfs``, ``spark``, ...).
        kind: ``block`` (one session per id ``key_pattern`` finds in the line), ``task`` (Spark
            Task workflows inside one executor log), ``window`` (fixed time / line windows per
            key) or ``application`` (one session per Hadoop application id).
        idle_s: close a session when no event came for this long (event time).
        max_duration_s: close a session this long after its first event (``task``: the paper's
            threshold for a workflow that never finishes).
        max_events: close a session at this many events (bounds state and model input).
        window_s: ``window`` kind: tumbling windows of this many seconds (aligned to the epoch).
        window_lines: ``window`` kind: also cut a window every this many lines.
        window_key: ``window`` kind: ``node`` (one window series per node) or ``all``.
        attach: ``task`` kind: where a line that names no task goes. ``paper``: to every open
            task of the executor (the second paper's rule). ``hints``: to the task the line
            points at by its partition (``rdd_<rdd>_<partition>``, ``attempt_..._m_<partition>``)
            when exactly one open task has that index, else to the only open task, else (several
            open, no hint) to every open task as the paper does.
        key_pattern: ``block`` kind: the regex whose matches name a line's sessions (a line
            may name several); an HDFS block id by default.
        watermark: how far behind the newest event time (Spark's ``withWatermark`` delay) a line
            may arrive and still be folded in exact event-time order, as the batch sessionizer
            would; what comes later is *late*.
        fold: when a line is folded into its session. ``time``: once it is final under the
            watermark, in event-time order (lines of several hosts or files interleave: HDFS
            blocks, windows, applications). ``arrival``: at once, in the order its file has them
            (Kafka order), so a Task workflow is cut in the micro-batch that reads its ``Finished
            task`` or failure line, not a watermark later; only the ``task`` kind, whose key is
            one executor log shipped in order. Deadlines (idle, maximum duration) still wait for
            event time. Default: ``arrival`` for ``task``, ``time`` for the others.
        late: what a late line does. ``join`` (default): it is still sessionized, into its key's
            open session in time order or a new one that waits ``idle_s`` of stream time after
            its last late line, and counted in the session's ``late_events``: a host that fell
            behind or ships its history later loses nothing. ``reject``: it goes to ``rejects``
            as ``late_event`` (sessions stay a pure function of event time).
    """

    system: str
    kind: str
    idle_s: float = 300.0
    max_duration_s: float = 3600.0
    max_events: int = 10_000
    window_s: float = 60.0
    window_lines: int = 0
    window_key: str = "node"
    attach: str = "hints"
    watermark: str = "1 minute"
    key_pattern: str = BLOCK_ID
    late: str = "join"
    fold: str = ""  # "" = the kind's default (see above)

    def __post_init__(self) -> None:
        if not self.system:
            raise ConfigError("SessionRules.system is empty: give the events.system value, e.g. hdfs")
        if self.kind not in KINDS:
            raise ConfigError(f"SessionRules.kind={self.kind!r}: use one of {', '.join(KINDS)}")
        for name in ("idle_s", "max_duration_s", "window_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"SessionRules.{name} must be > 0, got {getattr(self, name)}")
        if self.max_events < 1:
            raise ConfigError(f"SessionRules.max_events must be >= 1, got {self.max_events}")
        if self.window_lines < 0:
            raise ConfigError(f"SessionRules.window_lines must be >= 0, got {self.window_lines}")
        if self.window_key not in ("node", "all"):
            raise ConfigError(f"SessionRules.window_key={self.window_key!r}: use node or all")
        if self.attach not in ATTACH:
            raise ConfigError(f"SessionRules.attach={self.attach!r}: use paper or hints")
        if not self.fold:
            object.__setattr__(self, "fold", "arrival" if self.kind == "task" else "time")
        if self.fold not in FOLD:
            raise ConfigError(f"SessionRules.fold={self.fold!r}: use time or arrival")
        if self.fold == "arrival" and self.kind != "task":
            raise ConfigError(f"SessionRules.fold='arrival' is for the task kind (one file per key), not {self.kind}: "
                              "lines of several files have no arrival order to trust")
        if self.late not in LATE:
            raise ConfigError(f"SessionRules.late={self.late!r}: use join or reject")
        watermark_seconds(self.watermark)
        import re

        try:
            re.compile(self.key_pattern)
        except re.error as e:
            raise ConfigError(f"SessionRules.key_pattern={self.key_pattern!r} is not a regex: {e}") from None

    @property
    def watermark_us(self) -> int:
        return int(watermark_seconds(self.watermark) * 1_000_000)


_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def watermark_seconds(text: str) -> float:
    """``"1 minute"`` -> 60.0: the delay forms ``withWatermark`` accepts that we use."""
    parts = text.split()
    try:
        value = float(parts[0])
        unit = parts[1].rstrip("s") if len(parts) == 2 else ""
        if unit not in _UNITS or value < 0:
            raise ValueError
    except (ValueError, IndexError):
        raise ConfigError(f"SessionRules.watermark={text!r}: write it like '30 seconds' or "
                          "'2 minutes'") from None
    return value * _UNITS[unit]


# The defaults of each format's system, declared with the format (logad.parse.formats).
DEFAULTS: dict[str, SessionRules] = {
    f.name: SessionRules(f.name, **f.sessions) for f in FORMATS.values() if f.sessions is not None}


def rules_for(system: str, **overrides: Any) -> SessionRules:
    """The default rules of ``system`` with ``overrides`` applied (checked)."""
    if system not in DEFAULTS:
        raise ConfigError(f"no session rules for system {system!r}; known: {', '.join(DEFAULTS)}. "
                          "Give SessionRules(system=..., kind=...) for a new one")
    try:
        return replace(DEFAULTS[system], **overrides)
    except TypeError as e:
        raise ConfigError(f"SessionRules has no setting in {sorted(overrides)}: {e}") from None
