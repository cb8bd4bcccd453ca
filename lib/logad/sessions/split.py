"""Cutting one key's events into sessions: a pure-Python state machine, no Spark.

The same code runs inside the streaming operator (:mod:`logad.sessions.spark`, one
:class:`Sessionizer` per group key, its state in Spark's state store) and in the batch
sessionizer (all of a key's events at once). That is what makes the two agree:

- Events are folded in one total order, ``(ts, topic, partition, offset)``.
- An event is folded only once it is **final**: its time is at or below the watermark, so no
  event that sorts before it can still arrive. Until then it waits in ``pending``.
- An event that arrives when it is no longer final-able (at or below what its key already folded,
  or the watermark it came under: a host that fell behind, a second host's history) is **late**.
  ``SessionRules.late="join"`` (the default) folds it all the same: into its key's open session in
  time order, or into a new one, which then stays open ``idle_s`` of stream time after its last
  late line (``touched``), so a backlog that drains over several micro-batches stays one session.
  ``late="reject"`` returns it instead, for ``rejects`` (``late_event``): sessions are then a pure
  function of event time, and the stream equals the batch sessionizer even on late data.
- Sessions close on what the events say (``Finished task``, caps) or on event-time deadlines
  (idle, max duration, window end) as soon as a final event or the watermark passes them, never
  by the wall clock. Which micro-batch an event came in therefore cannot change a session.

The batch sessionizer feeds a key's whole history with the watermark the stream would have at
the end (max event time minus the delay), then closes what is left as ``end_of_input``.

Spark Task workflows (``kind="task"``), one :class:`Sessionizer` per executor log (host,
source): ``Running task ... (TID n)`` opens a workflow; ``Finished task`` closes it
(``finished``), ``Exception in task`` (``exception``) and ``Executor killed task`` (``killed``)
close it as failed; a line naming a TID joins that task; a line naming none goes where
``SessionRules.attach`` says. Lines while no task is open belong to the executor, not a task:
they are counted (``unattributed``), not sessionized.
"""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from logad.sessions.rules import SessionRules

US = 1_000_000


class Event(NamedTuple):
    """One events row, reduced to what cutting needs (the regexes ran in Spark SQL)."""

    ts: int  # event time, microseconds since the epoch (UTC)
    topic: str
    partition: int
    offset: int
    template_id: str
    line_id: str | None = None  # host|source|file offset from the shipper: a re-sent line repeats it
    marker: str = ""  # task kind: start | finish | exception | killed
    tid: int | None = None  # task kind: the TID the line names
    task_index: int | None = None  # task kind: the task index of a start line ("Running task 4.0")
    hint: int | None = None  # task kind: a partition the line names (rdd_2_4 -> 4)
    abnormal: bool = False  # WARN/ERROR/FATAL level or an exception: the papers' label rule
    truth: bool | None = None  # ground truth carried by the line itself (BGL/Thunderbird alert)
    task: str = ""  # task kind: "task 4.0 in stage 1.0 (TID 9)" on the start line
    batch: int = -1  # the micro-batch that read the line (the one-query pipeline resolves ids by it)


@dataclass
class Session:
    """A session being built, then closed."""

    name: str  # within its key: the block id, "TID 9", the window start
    events: list[Event] = field(default_factory=list)
    close_reason: str = ""
    duplicates: int = 0
    shared: int = 0  # events also given to another session (the paper's attach rule)
    window_end: int | None = None
    task: str = ""
    origin: tuple[str, int, int] | None = None  # Kafka coordinates of the line that opened it: its id
    touched: int | None = None  # the watermark its last late line arrived under (late="join")
    late: int = 0  # late lines folded in
    emitted: int = 0  # events it had when its prefix was last emitted for scoring (open sessions)

    @property
    def start(self) -> int:
        return self.events[0].ts

    @property
    def last(self) -> int:
        return self.events[-1].ts

    def add(self, ev: Event, shared: bool = False, late_at: int | None = None) -> None:
        """Append ``ev``; a late one (``late_at``: the watermark it arrived under) is put in
        time order instead and moves ``touched``."""
        recent = self.events if late_at is not None else self.events[-64:]
        if ev.line_id is not None and any(e.line_id == ev.line_id for e in recent):
            self.duplicates += 1  # the shipper re-sent a line it had sent (at-least-once)
            return
        if self.origin is None:
            self.origin = (ev.topic, ev.partition, ev.offset)
        if late_at is None:
            self.events.append(ev)
        else:
            bisect.insort(self.events, ev, key=order)
            self.touched = late_at if self.touched is None else max(self.touched, late_at)
            self.late += 1
        self.shared += shared

    def _deadlines(self, rules: SessionRules) -> list[tuple[int, str]]:
        d = [(self.last + int(rules.idle_s * US), "idle"),
             (self.start + int(rules.max_duration_s * US), "max_duration")]
        if self.window_end is not None:
            d.append((self.window_end - 1, "window_end"))
        return d

    def deadline(self, rules: SessionRules) -> int:
        """The event time after which this session cannot grow: the first of its idle, maximum
        and window deadlines; a session that took late lines also waits ``idle_s`` after the
        watermark the last of them arrived under."""
        first = min(t for t, _ in self._deadlines(rules))
        return first if self.touched is None else max(first, self.touched + int(rules.idle_s * US))

    def deadline_reason(self, rules: SessionRules) -> str:
        first, reason = min(self._deadlines(rules), key=lambda d: (d[0], d[1] != "window_end"))
        if self.touched is not None and self.touched + int(rules.idle_s * US) > first:
            return "idle"
        return reason


def session_id(system: str, key: str, first: tuple[str, int, int]) -> str:
    """Stable id: SHA-256 of system, key and the Kafka coordinates (topic, partition, offset) of
    the line that opened the session (its first line, unless a late line was put before it)."""
    topic, partition, offset = first
    text = f"{system}\x1f{key}\x1f{topic}\x1f{partition}\x1f{offset}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def order(ev: Event) -> tuple[int, str, int, int]:
    return (ev.ts, ev.topic, ev.partition, ev.offset)


def arrival(ev: Event) -> tuple[str, int, int]:
    """The order a key's lines were written in, for keys fed by one file (one Kafka partition)."""
    return (ev.topic, ev.partition, ev.offset)


class Sessionizer:
    """The sessions of one key. ``advance`` with new events and the watermark; ``to_state`` and
    ``from_state`` move it in and out of Spark's state store (plain JSON-able values)."""

    def __init__(self, rules: SessionRules, key: str) -> None:
        self.rules = rules
        self.key = key
        self.pending: list[Event] = []
        self.open: dict[str, Session] = {}
        self.final_until = -(2**62)  # events at or below this time have been folded
        self.unattributed = 0

    # -- the fold -------------------------------------------------------------------------
    def advance(self, events: list[Event], watermark_us: int,
                arrived_at_us: int | None = None) -> tuple[list[Session], list[Event]]:
        """Take new events, fold those that are final at ``watermark_us``; return the sessions
        that closed and the events that came too late: at or below what this key already folded,
        or (the stream passes the watermark they arrived under as ``arrived_at_us``) at or below
        that watermark, Spark's own definition of late, which holds for keys whose state is gone."""
        if self.rules.fold == "arrival":
            return self._advance_arrival(events, watermark_us), []
        floor = self.final_until if arrived_at_us is None else max(self.final_until, arrived_at_us)
        late = [e for e in events if e.ts <= floor]
        self.pending.extend(e for e in events if e.ts > floor)
        closed: list[Session] = []
        if late and self.rules.late == "join":
            for ev in sorted(late, key=order):
                closed.extend(self._feed(ev, late_at=floor))
            late = []
        if watermark_us > self.final_until:
            self.pending.sort(key=order)
            cut = 0
            while cut < len(self.pending) and self.pending[cut].ts <= watermark_us:
                cut += 1
            for ev in self.pending[:cut]:
                closed.extend(self._expire(ev.ts - 1))
                closed.extend(self._feed(ev))
            del self.pending[:cut]
            closed.extend(self._expire(watermark_us))
            self.final_until = watermark_us
        return closed, late

    def _advance_arrival(self, events: list[Event], watermark_us: int) -> list[Session]:
        """``fold="arrival"``: fold the lines now, in the order the key's file has them; only the
        deadlines wait for event time (the line that passes them, or the watermark)."""
        closed: list[Session] = []
        for ev in sorted(events, key=arrival):
            closed.extend(self._expire(ev.ts - 1))
            closed.extend(self._feed(ev))
            self.final_until = max(self.final_until, ev.ts)
        closed.extend(self._expire(watermark_us))
        self.final_until = max(self.final_until, watermark_us)
        return closed

    def close_all(self, reason: str = "end_of_input") -> list[Session]:
        """Fold what is pending regardless of the watermark and close every open session."""
        closed, _ = self.advance([], max([self.final_until, *(e.ts for e in self.pending)]))
        for s in self.open.values():
            s.close_reason = reason
        closed.extend(self.open.values())
        self.open.clear()
        return closed

    def next_timeout_us(self) -> int | None:
        """The event time at which this key needs to run again without new events: when the
        watermark passes its first pending event or an open session's deadline."""
        times = [min(e.ts for e in self.pending)] if self.pending else []
        times += [s.deadline(self.rules) for s in self.open.values()]
        return min(times) if times else None

    def _expire(self, now_us: int) -> list[Session]:
        done = [name for name, s in self.open.items() if s.deadline(self.rules) <= now_us]
        out = []
        for name in done:
            s = self.open.pop(name)
            s.close_reason = s.deadline_reason(self.rules)
            out.append(s)
        return out

    def _close(self, name: str, reason: str) -> list[Session]:
        s = self.open.pop(name)
        s.close_reason = reason
        return [s]

    def _feed(self, ev: Event, late_at: int | None = None) -> list[Session]:
        kind = self.rules.kind
        if kind == "task":
            return self._feed_task(ev, late_at)
        if kind == "window":
            start = ev.ts - ev.ts % int(self.rules.window_s * US)
            name = str(start)
            closed = []
            for other in [n for n in self.open if int(n) < start]:  # an older window: ended
                closed += self._close(other, "window_end")
            s = self.open.get(name)
            if s is None:
                s = self.open[name] = Session(name, window_end=start + int(self.rules.window_s * US))
            s.add(ev, late_at=late_at)
            if self.rules.window_lines and len(s.events) >= self.rules.window_lines:
                closed += self._close(name, "max_lines")
                # the rest of this time window starts a new session (its first event names it)
            elif len(s.events) >= self.rules.max_events:
                closed += self._close(name, "max_events")
            return closed
        # block / application: one session at a time per key
        s = self.open.get(self.key)
        if s is None:
            s = self.open[self.key] = Session(self.key)
        s.add(ev, late_at=late_at)
        if len(s.events) >= self.rules.max_events:
            return self._close(self.key, "max_events")
        return []

    def _feed_task(self, ev: Event, late_at: int | None = None) -> list[Session]:
        closed: list[Session] = []
        if ev.marker == "start" and ev.tid is not None:
            name = f"TID {ev.tid}"
            if name in self.open:  # a second start for an open TID: the first never ended
                closed += self._close(name, "restarted")
            self.open[name] = Session(name, task=ev.task)
            self.open[name].add(ev, late_at=late_at)
            return closed
        targets: list[str]
        if ev.tid is not None:
            targets = [f"TID {ev.tid}"] if f"TID {ev.tid}" in self.open else []
        elif self.rules.attach == "hints" and ev.hint is not None and \
                len(by_index := [n for n, s in self.open.items() if _index(s) == ev.hint]) == 1:
            targets = by_index
        else:
            targets = list(self.open)
        if not targets:
            self.unattributed += 1
            return closed
        for name in targets:
            s = self.open[name]
            s.add(ev, shared=len(targets) > 1, late_at=late_at)
            if ev.marker in ("finish", "exception", "killed") and ev.tid is not None:
                closed += self._close(name, {"finish": "finished"}.get(ev.marker, ev.marker))
            elif len(s.events) >= self.rules.max_events:
                closed += self._close(name, "max_events")
        return closed

    # -- state ----------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {"p": [list(e) for e in self.pending], "f": self.final_until, "u": self.unattributed,
                "o": [[s.name, [list(e) for e in s.events], s.duplicates, s.shared, s.window_end, s.task,
                       list(s.origin) if s.origin else None, s.touched, s.late, s.emitted]
                      for s in self.open.values()]}

    @classmethod
    def from_state(cls, rules: SessionRules, key: str, state: dict[str, Any]) -> Sessionizer:
        z = cls(rules, key)
        z.pending = [Event(*e) for e in state["p"]]
        z.final_until = state["f"]
        z.unattributed = state["u"]
        for name, events, dups, shared, window_end, task, *more in state["o"]:
            evs = [Event(*e) for e in events]
            # state written before origin/touched/late were kept: the first event opened it
            origin, touched, late, emitted = (more + [0])[:4] if more else ([evs[0][1], evs[0][2], evs[0][3]], None, 0, 0)
            z.open[name] = Session(name, evs, "", dups, shared, window_end, task,
                                   tuple(origin) if origin else None, touched, late, emitted)
        return z


def _index(s: Session) -> int | None:
    return s.events[0].task_index if s.events else None


def summarize(system: str, key: str, s: Session) -> dict[str, Any]:
    """A closed session as a ``sessions`` row (without the ground-truth label, joined later)."""
    ev = s.events
    rule_event = next((i for i, e in enumerate(ev) if e.abnormal), None)
    truths = [e.truth for e in ev if e.truth is not None]
    truth_event = next((i for i, e in enumerate(ev) if e.truth), None)
    return {
        "session_id": session_id(system, f"{key}|{s.name}", s.origin or (ev[0].topic, ev[0].partition, ev[0].offset)),
        "system": system, "key": key, "name": s.name, "task": s.task or None,
        "start_us": ev[0].ts, "end_us": ev[-1].ts, "n_events": len(ev),
        "template_ids": [e.template_id for e in ev],
        "event_us": [e.ts for e in ev],
        "topics": [e.topic for e in ev], "partitions": [e.partition for e in ev],
        "offsets": [e.offset for e in ev], "event_batches": [e.batch for e in ev],
        "close_reason": s.close_reason, "duplicates": s.duplicates, "shared_events": s.shared,
        "late_events": s.late,
        "rule_label": int(rule_event is not None), "rule_event": rule_event,
        "truth_label": (int(any(truths)) if truths else None), "truth_event": truth_event,
    }
