"""New-template and rate-surge detection without Spark: what learning hides, when a window
closes, what a surge is against a baseline that adapts, and the state's round trip."""

from __future__ import annotations

import pytest

from logad.errors import ConfigError
from logad.patterns import Group, PatternRules, PatternState

MIN = 60_000_000  # one minute in µs
RULES = PatternRules(learn_s=600, window_s=60, lateness_s=60, memory_s=3600, ratio=5, min_count=20, lines=3)


def minute(state: PatternState, m: int, counts: dict[tuple[str, str], int], system: str = "hdfs") -> list[dict]:
    """Feed minute ``m``: ``(host, template) -> lines``, spread over the minute; returns anomalies."""
    groups = []
    for (host, tid), n in counts.items():
        lines = [(m * MIN + i * (MIN // max(n, 1)), "logs.x", 0, m * 1000 + i) for i in range(n)]
        groups.append(Group(system, host, tid, m, n, lines[0][0], lines[-1][0], lines[:3]))
    return state.update(groups)


def steady(m: int) -> dict[tuple[str, str], int]:
    return {("dn1", "served"): 10 + m % 3, ("dn2", "served"): 12, ("dn1", "received"): 4}


def test_nothing_alerts_while_learning_and_a_steady_stream_never_alerts():
    state = PatternState(RULES)
    found = [a for m in range(0, 120) for a in minute(state, m, steady(m))]
    assert found == []
    assert set(state.known["hdfs"]) == {"served", "received"}


def test_a_template_never_seen_alerts_once_with_its_first_lines_and_host():
    state = PatternState(RULES)
    for m in range(20):
        minute(state, m, steady(m))
    found = minute(state, 20, {**steady(20), ("dn2", "disk full"): 2, ("dn1", "disk full"): 1})
    (a,) = [x for x in found if x["kind"] == "new_template"]
    assert a["template_id"] == "disk full" and a["hosts"] == ["dn1", "dn2"] and a["count"] == 3
    assert a["host"] == "dn1" and a["first_us"] == 20 * MIN  # the earliest line's host and time
    assert len(a["lines"]) == 3 and a["lines"][0][0] == 20 * MIN
    assert not [x for x in minute(state, 21, {**steady(21), ("dn3", "disk full"): 5}) if x["kind"] == "new_template"]
    # a template first seen while learning is history, not news
    early = PatternState(RULES)
    assert minute(early, 0, {("dn1", "rare"): 1}) == [] and "rare" in early.known["hdfs"]


def test_a_surge_on_one_host_alerts_when_its_window_closes():
    state = PatternState(RULES)
    for m in range(30):
        assert minute(state, m, steady(m)) == []
    assert minute(state, 30, {**steady(30), ("dn1", "served"): 300}) == []  # the window is still open
    assert minute(state, 31, steady(31)) == []  # its end + lateness not reached yet
    (a,) = minute(state, 32, steady(32))
    assert (a["kind"], a["host"], a["template_id"], a["count"]) == ("rate_surge", "dn1", "served", 300)
    assert a["window_start_us"] == 30 * MIN and a["window_end_us"] == 31 * MIN
    assert 11 < a["baseline"] <= 12 and len(a["lines"]) == 3  # the peak of dn1's minutes, barely decayed


def test_the_baseline_is_the_recent_peak_so_bursty_work_is_not_a_surge_and_it_adapts():
    state = PatternState(RULES)
    # a job writes 150 blocks at the top of every hour and nothing between: bursts like the
    # ones before are normal; one thirty times bigger is not
    found = []
    for m in range(0, 300):
        counts = steady(m) | ({("dn1", "allocate"): 150} if m % 60 == 0 else {})
        if m == 270:
            counts[("dn1", "allocate")] = 4500
        found += minute(state, m, counts)
    assert [(a["kind"], a["template_id"], a["count"], a["window_start_us"] // MIN) for a in found] == \
        [("rate_surge", "allocate", 4500, 270)]
    assert 70 < found[0]["baseline"] < 150  # the 240th minute's burst, decayed by half an hour
    # a template seen once every 20 minutes has a low peak: 25 lines in one minute is a surge
    state = PatternState(RULES)
    found = []
    for m in range(0, 100):
        counts = steady(m) | ({("dn1", "flush"): 1} if m % 20 == 0 else {})
        if m == 90:
            counts[("dn1", "flush")] = 25
        found += minute(state, m, counts)
    assert [(a["template_id"], a["count"]) for a in found] == [("flush", 25)]
    # a new steady rate on dn2 alerts once, then is the peak and stops alerting
    state = PatternState(RULES)
    surges = []
    for m in range(0, 160):
        counts = steady(m) | ({("dn2", "served"): 200} if m >= 30 else {})
        surges += [a["window_start_us"] // MIN for a in minute(state, m, counts)]
    assert surges == [30]


def test_small_counts_and_new_hosts_do_not_alert_surges():
    state = PatternState(RULES)
    found = []
    for m in range(0, 60):
        found += minute(state, m, steady(m) | ({("dn1", "rare"): 15} if m == 40 else {}))
    assert [a["kind"] for a in found] == ["new_template"]  # 15 lines < min_count: no surge, however quiet
    # a host that joins late learns its own rates first: its first busy minutes are not surges
    found = []
    for m in range(60, 100):
        found += minute(state, m, steady(m) | {("dn5", "served"): 100})
    assert found == []


def test_the_state_round_trips_and_goes_on_the_same():
    a, b = PatternState(RULES), PatternState(RULES)
    for m in range(25):
        minute(a, m, steady(m))
        minute(b, m, steady(m))
    b = PatternState.from_json(b.to_json(), RULES)
    surge = {**steady(25), ("dn1", "received"): 90, ("dn9", "oops"): 1}
    assert minute(a, 25, surge) == minute(b, 25, surge)
    after = [[minute(x, m, steady(m)) for m in (26, 27)] for x in (a, b)]
    assert after[0] == after[1] and [x["kind"] for x in after[0][1]] == ["rate_surge"]
    with pytest.raises(ConfigError, match="built with 60 s windows, not 30"):
        PatternState.from_json(a.to_json(), PatternRules(window_s=30))


def test_rules_check_themselves():
    with pytest.raises(ConfigError, match="window_s"):
        PatternRules(window_s=0)
    with pytest.raises(ConfigError, match="memory_s"):
        PatternRules(memory_s=0)
