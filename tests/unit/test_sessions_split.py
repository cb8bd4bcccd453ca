"""Tier 1: the session state machine without Spark (Task workflows, blocks, windows, lateness)."""

from __future__ import annotations

import json
import random

import pytest

from logad.errors import ConfigError
from logad.sessions.rules import SessionRules, rules_for
from logad.sessions.split import US, Event, Sessionizer, summarize

T0 = 1_500_000_000 * US


def ev(sec: float, off: int, **kw) -> Event:
    return Event(T0 + int(sec * US), "t", 0, off, kw.pop("tpl", "x"), **kw)


def task_lines() -> list[Event]:
    """Two tasks interleaved in one executor log, as Spark writes them."""
    return [
        ev(0, 0, marker="start", tid=1, task_index=0, task="0.0 in stage 0.0 (TID 1)"),
        ev(0, 1, marker="start", tid=2, task_index=1, task="1.0 in stage 0.0 (TID 2)"),
        ev(1, 2, tpl="broadcast"),  # names no task
        ev(1, 3, tpl="found", hint=1),  # "Found block rdd_2_1 locally": partition 1 -> TID 2
        ev(2, 4, marker="finish", tid=1),
        ev(3, 5, tpl="warn", abnormal=True),  # only TID 2 open now
        ev(4, 6, marker="exception", tid=2, abnormal=True),
        ev(5, 7, tpl="idle"),  # no task open: the executor's own line
        ev(6, 8, marker="start", tid=3, task_index=0, task="0.0 in stage 1.0 (TID 3)"),
        ev(7, 9, tpl="work", tid=3),
    ]


def cut(rules: SessionRules, events: list[Event], key: str = "k", close: bool = True):
    z = Sessionizer(rules, key)
    closed, late = z.advance(events, max(e.ts for e in events))
    if close:
        closed += z.close_all()
    return {s.name: s for s in closed}, late, z


def test_task_workflows_open_and_close_where_spark_says():
    sessions, late, z = cut(rules_for("spark"), task_lines())
    assert late == []
    t1, t2, t3 = sessions["TID 1"], sessions["TID 2"], sessions["TID 3"]
    assert [e.offset for e in t1.events] == [0, 2, 4] and t1.close_reason == "finished"
    # hints: the rdd partition line goes to the task with that index only
    assert [e.offset for e in t2.events] == [1, 2, 3, 5, 6] and t2.close_reason == "exception"
    assert t1.task == "0.0 in stage 0.0 (TID 1)"
    assert [e.offset for e in t3.events] == [8, 9] and t3.close_reason == "end_of_input"
    assert z.unattributed == 1  # the line while no task was open
    row = summarize("spark", "h|f", t2)
    assert row["rule_label"] == 1 and row["rule_event"] == 3  # the WARN line, 4th of TID 2
    assert summarize("spark", "h|f", t1)["rule_label"] == 0


def test_the_papers_rule_gives_unnamed_lines_to_every_open_task():
    sessions, _, _ = cut(rules_for("spark", attach="paper"), task_lines())
    assert [e.offset for e in sessions["TID 1"].events] == [0, 2, 3, 4]
    assert sessions["TID 1"].shared == 2 and sessions["TID 2"].shared == 2


def test_a_task_that_never_finishes_closes_at_the_threshold():
    rules = rules_for("spark", max_duration_s=10, idle_s=5, fold="time")
    events = [ev(0, 0, marker="start", tid=1, task_index=0), ev(3, 1, tid=1),
              ev(0, 2, marker="start", tid=2, task_index=1)] + [ev(s, 10 + s, tid=2) for s in range(1, 14, 2)]
    z = Sessionizer(rules, "k")
    closed, _ = z.advance(events, T0 + 7 * US)
    assert [s.name for s in closed] == []  # TID 1 idle since 3 s: deadline 8 s, not yet
    closed, _ = z.advance([], T0 + 8 * US)
    assert [(s.name, s.close_reason) for s in closed] == [("TID 1", "idle")]
    closed, _ = z.advance([], T0 + 20 * US)
    assert [(s.name, s.close_reason) for s in closed] == [("TID 2", "max_duration")]
    assert z.next_timeout_us() is None


def test_a_workflow_closes_in_the_batch_that_reads_its_terminal_line():
    """fold="arrival" (the task default): no watermark wait for Finished/failure lines."""
    assert rules_for("spark").fold == "arrival" and rules_for("hdfs").fold == "time"
    lines = task_lines()
    z = Sessionizer(rules_for("spark"), "k")
    closed, late = z.advance(lines[:5], T0 - 3600 * US)  # the watermark is an hour behind
    assert late == [] and [(s.name, s.close_reason) for s in closed] == [("TID 1", "finished")]
    z = Sessionizer.from_state(rules_for("spark"), "k", json.loads(json.dumps(z.to_state())))
    closed, _ = z.advance(lines[5:], T0 - 3600 * US)
    assert [(s.name, s.close_reason) for s in closed] == [("TID 2", "exception")]
    # the time fold waits for the watermark to pass the line
    zt = Sessionizer(rules_for("spark", fold="time"), "k")
    assert zt.advance(lines[:5], T0 - 3600 * US)[0] == []
    assert [s.name for s in zt.advance([], T0 + 2 * US)[0]] == ["TID 1"]


def test_arrival_fold_in_any_batches_equals_the_whole_file():
    """Split into batches of any size, state saved and restored, the watermark lagging: the same
    workflows as the whole log at once, each closed by its terminal line (or a deadline)."""
    rng = random.Random(3)
    rules = rules_for("spark", idle_s=30, max_duration_s=120)
    lines, t, tid = [], 0.0, 0
    open_: list[int] = []
    for off in range(600):
        t += rng.choice([0, 0, 0.5, 1])
        r = rng.random()
        if r < 0.15 or not open_:
            tid += 1
            open_.append(tid)
            lines.append(ev(t, off, marker="start", tid=tid, task_index=tid % 4))
        elif r < 0.3:
            done = open_.pop(rng.randrange(len(open_)))
            lines.append(ev(t, off, marker=rng.choice(["finish", "finish", "exception"]), tid=done))
        else:
            lines.append(ev(t, off, tpl=f"w{off % 3}", tid=rng.choice(open_ + [None])))
    whole, _ = Sessionizer(rules, "k").advance(lines, lines[-1].ts)

    def shape(sessions):
        return sorted((s.name, s.close_reason, tuple(e.offset for e in s.events)) for s in sessions)

    z, got, i = Sessionizer(rules, "k"), [], 0
    while i < len(lines):
        step = rng.randint(1, 50)
        part = lines[i:i + step]
        i += step
        closed, late = z.advance(part, part[-1].ts - 10 * US)
        assert late == []
        got += closed
        z = Sessionizer.from_state(rules, "k", json.loads(json.dumps(z.to_state())))
    got += z.advance([], lines[-1].ts)[0]
    assert shape(got) == shape(whole)
    assert {s.close_reason for s in whole} >= {"finished", "exception"}


def test_arrival_fold_is_only_for_task_workflows():
    with pytest.raises(ConfigError, match="task kind"):
        rules_for("hdfs", fold="arrival")
    with pytest.raises(ConfigError, match="time or arrival"):
        rules_for("spark", fold="now")


def test_micro_batch_boundaries_and_arrival_order_do_not_change_the_sessions():
    """The stream's promise: any split into batches, any order within the watermark, state saved
    and restored between batches -> exactly the batch result."""
    rng = random.Random(7)
    rules = rules_for("hdfs", idle_s=5, max_events=6)
    events = []
    t = 0.0
    for i in range(400):
        t += rng.choice([0, 0, 0.5, 1, 2, 7])
        events.append(ev(t, i, tpl=f"e{i % 5}"))
    expected, _ = Sessionizer(rules, "k").advance(events, events[-1].ts)
    expected_ids = sorted((s.close_reason, tuple(e.offset for e in s.events)) for s in expected)
    assert {r for r, _ in expected_ids} >= {"idle", "max_events"}
    for trial in range(5):
        lateness = 3 * US
        z = Sessionizer(rules, "k")
        got, held, watermark, i = [], [], T0 - US, 0
        while True:
            step = rng.randint(1, 40)
            batch = held + events[i:i + step]
            i += step
            # some lines come a batch later (out of order, but still above the watermark)
            newest = max(e.ts for e in events[:i])  # the next watermark stays below newest - lateness
            held = [e for e in batch if e.ts > newest - lateness and rng.random() < 0.3]
            batch = [e for e in batch if e not in held] if i < len(events) else batch
            rng.shuffle(batch)
            closed, late = z.advance(batch, watermark, arrived_at_us=watermark)
            assert late == []
            got += closed
            z = Sessionizer.from_state(rules, "k", json.loads(json.dumps(z.to_state())))  # restart
            seen_max = max(e.ts for e in events[:i] if e not in held)
            watermark = seen_max - lateness
            if i >= len(events):
                closed, _ = z.advance([], watermark)
                got += closed
                break
        got_ids = sorted((s.close_reason, tuple(e.offset for e in s.events)) for s in got)
        # what the batch closes by the same final watermark
        zb = Sessionizer(rules, "k")
        closed_b, _ = zb.advance(events, watermark)
        assert got_ids == sorted((s.close_reason, tuple(e.offset for e in s.events)) for s in closed_b), trial
    assert len(expected_ids) > 50


def test_a_line_later_than_the_watermark_is_returned_as_late_not_dropped():
    z = Sessionizer(rules_for("hdfs", idle_s=5, late="reject"), "blk_1")
    z.advance([ev(0, 0), ev(10, 1)], T0 + 9 * US)
    closed, late = z.advance([ev(3, 2), ev(11, 3)], T0 + 12 * US)
    assert [e.offset for e in late] == [2]
    assert [e.offset for s in z.close_all() for e in s.events] == [1, 3]
    # a key whose state is gone (its session closed): late by the watermark it arrived under
    fresh = Sessionizer(rules_for("hdfs", idle_s=5, late="reject"), "blk_1")
    closed, late = fresh.advance([ev(3, 4), ev(13, 5)], T0 + 12 * US, arrived_at_us=T0 + 12 * US)
    assert [e.offset for e in late] == [4] and closed == []


def test_a_resent_line_is_counted_as_a_duplicate_once():
    a = ev(0, 0, line_id="h|f|0")
    b = ev(1, 1, line_id="h|f|100")
    again = ev(1, 7, line_id="h|f|100")  # the shipper sent it twice: another Kafka offset
    sessions, _, _ = cut(rules_for("hdfs"), [a, b, again])
    s = sessions["k"]
    assert [e.offset for e in s.events] == [0, 1] and s.duplicates == 1


def test_windows_cut_by_time_and_by_lines_with_the_alert_as_ground_truth():
    rules = rules_for("bgl", window_s=60, window_lines=3)
    events = [ev(s, i, truth=(i == 4)) for i, s in enumerate([0, 10, 20, 30, 59, 60, 61, 200])]
    z = Sessionizer(rules, "R02-M1")
    closed, _ = z.advance(events, max(e.ts for e in events))
    got = [(s.close_reason, [e.offset for e in s.events]) for s in closed + z.close_all()]
    assert got == [("max_lines", [0, 1, 2]), ("window_end", [3, 4]), ("window_end", [5, 6]),
                   ("end_of_input", [7])]
    window = summarize("bgl", "R02-M1", closed[1])
    assert window["truth_label"] == 1 and window["truth_event"] == 1


def test_session_ids_are_stable_and_distinct():
    s1, _, _ = cut(rules_for("spark"), task_lines())
    s2, _, _ = cut(rules_for("spark"), list(reversed(task_lines())))
    ids = {n: summarize("spark", "h|f", s)["session_id"] for n, s in s1.items()}
    assert ids == {n: summarize("spark", "h|f", s)["session_id"] for n, s in s2.items()}
    assert len(set(ids.values())) == len(ids)


@pytest.mark.parametrize("kw, word", [({"kind": "tasks"}, "kind"), ({"idle_s": 0}, "idle_s"),
                                      ({"attach": "all"}, "attach"), ({"watermark": "soon"}, "watermark"),
                                      ({"max_events": 0}, "max_events")])
def test_bad_rules_name_the_setting(kw, word):
    with pytest.raises(ConfigError, match=word):
        SessionRules(**{"system": "x", "kind": "block", **kw})
    with pytest.raises(ConfigError, match="known"):
        rules_for("vms")


def test_late_lines_join_their_open_block_in_time_order_by_default():
    """A second host's lines of a block arrive after the watermark passed them: with the default
    policy they are folded into the block's open session, in time order, and counted."""
    z = Sessionizer(rules_for("hdfs"), "blk_1")
    z.advance([ev(0, 0), ev(100, 1)], T0 + 200 * US)
    closed, late = z.advance([ev(50, 2), ev(300, 3)], T0 + 400 * US, arrived_at_us=T0 + 200 * US)
    assert late == [] and closed == []
    (s,) = z.close_all()
    assert [e.offset for e in s.events] == [0, 2, 1, 3] and s.late == 1
    # the id is the opening line's, whatever came before it later
    on_time = cut(rules_for("hdfs"), [ev(0, 0), ev(100, 1)], key="blk_1")[0]["blk_1"]
    row = summarize("hdfs", "blk_1", s)
    assert row["session_id"] == summarize("hdfs", "blk_1", on_time)["session_id"]
    assert row["late_events"] == 1


def test_a_backlog_that_drains_over_several_batches_stays_one_session():
    """A host that was down for an hour ships its block's lines in three micro-batches, all older
    than the watermark: they make one session, closed idle_s of stream time after the last."""
    rules = rules_for("hdfs", idle_s=60)
    z = Sessionizer(rules, "blk_9")
    wm = T0 + 3600 * US
    got = []
    for b, (secs, offs) in enumerate([((0, 10), (0, 1)), ((20, 30), (2, 3)), ((40,), (4,))]):
        closed, late = z.advance([ev(s, o) for s, o in zip(secs, offs, strict=True)], wm + b * 10 * US,
                                 arrived_at_us=wm + b * 10 * US)
        assert late == []
        got += closed
    assert got == []  # still open: the stream has not moved 60 s past the last arrival
    closed, _ = z.advance([], wm + 20 * US + 61 * US, arrived_at_us=wm + 20 * US)
    assert [(s.close_reason, [e.offset for e in s.events], s.late) for s in closed] == [("idle", [0, 1, 2, 3, 4], 5)]


def test_late_reject_keeps_the_event_time_only_policy():
    z = Sessionizer(rules_for("hdfs", idle_s=5, late="reject"), "blk_1")
    z.advance([ev(0, 0), ev(10, 1)], T0 + 9 * US)
    _, late = z.advance([ev(3, 2)], T0 + 12 * US)
    assert [e.offset for e in late] == [2]


def test_a_late_window_collects_its_lines_without_closing_newer_windows():
    rules = rules_for("bgl", window_s=60)
    z = Sessionizer(rules, "R1")
    z.advance([ev(120, 0)], T0 + 125 * US)  # window 120 open
    closed, late = z.advance([ev(5, 2), ev(65, 3)], T0 + 131 * US, arrived_at_us=T0 + 125 * US)
    assert late == []
    # the late line of window 0 was closed by the late line of window 60; window 120 stays open
    assert [(s.name, [e.offset for e in s.events]) for s in closed] == [(str(T0), [2])]
    assert sorted(z.open) == sorted([str(T0 + 60 * US), str(T0 + 120 * US)])


def test_state_written_before_late_fields_existed_still_loads():
    z = Sessionizer(rules_for("hdfs"), "blk_1")
    z.advance([ev(0, 5), ev(1, 6)], T0 + 2 * US)
    state = json.loads(json.dumps(z.to_state()))
    state["o"] = [o[:6] for o in state["o"]]  # the layout of logad <= stop 28
    (s,) = Sessionizer.from_state(rules_for("hdfs"), "blk_1", state).close_all()
    assert s.origin == ("t", 0, 5) and s.touched is None and s.late == 0
