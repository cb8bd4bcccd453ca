"""Tier 1: the format table (logad.parse.formats) checks itself, and everything that reads it
derives from it: detection order, session rules, label files, the evaluation's regexes."""

from __future__ import annotations

import re

import pytest

from logad.errors import ConfigError
from logad.parse.formats import (
    BLOCK_ID,
    DETECT_ORDER,
    FORMATS,
    Epoch,
    LogFormat,
    Pattern,
    content_of,
)
from logad.parse.headers import EXTRA_FIELDS
from logad.sessions.labels import LABEL_COLUMNS
from logad.sessions.rules import DEFAULTS, rules_for


def test_a_format_without_a_time_rule_is_an_error_where_it_is_defined():
    with pytest.raises(ConfigError, match="time rule"):
        LogFormat("myapp", r"^(\S+) (.*)$", ("time", "content"), time=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        LogFormat("myapp", r"^(\S+) (.*)$", ("time", "content"))  # type: ignore[call-arg]


def test_a_time_rule_must_read_fields_the_regex_captures():
    with pytest.raises(ConfigError, match=r"reads \['date'\]"):
        LogFormat("myapp", r"^(\S+) (.*)$", ("time", "content"), time=Pattern(("date", "time"), "yyMMddHHmmss"))
    with pytest.raises(ConfigError, match="groups"):
        LogFormat("myapp", r"^(\S+) (\S+) (.*)$", ("time", "content"), time=Epoch("time"))
    with pytest.raises(ConfigError, match="content"):
        LogFormat("myapp", r"^(\S+) (.*)$", ("time", "text"), time=Epoch("time"))
    with pytest.raises(ConfigError, match="kind"):
        LogFormat("myapp", r"^(\d+) (.*)$", ("epoch", "content"), time=Epoch("epoch"), sessions={"idle_s": 5})


def test_one_entry_gives_detection_fields_session_rules_and_label_columns():
    zk = FORMATS["zookeeper"]
    assert DETECT_ORDER.index("zookeeper") < DETECT_ORDER.index("syslog")  # specific before loose
    assert "generic" not in DETECT_ORDER  # the fallback matches everything
    assert DETECT_ORDER[:6] == ("bgl", "thunderbird", "hdfs", "spark", "hadoop", "zookeeper")
    assert set(zk.extra) == {"thread", "lineno"} and set(zk.extra) <= set(EXTRA_FIELDS)
    assert rules_for("zookeeper").kind == "window"
    assert DEFAULTS["hdfs"].kind == "block" and DEFAULTS["hdfs"].key_pattern == BLOCK_ID
    assert set(DEFAULTS) == {f.name for f in FORMATS.values() if f.sessions is not None}
    assert LABEL_COLUMNS["hdfs"] == ("BlockId", "Label")
    assert {f.name for f in FORMATS.values() if f.truth} == {"bgl", "thunderbird"}


def test_every_regex_is_valid_in_python_and_matches_its_own_example():
    examples = {
        "hdfs": "081109 203518 143 INFO dfs.DataNode$DataXceiver: Receiving block blk_-16 src: /10.2.1.1:5",
        "spark": "17/06/09 20:10:40 INFO executor.Executor: Running task 0.0 in stage 1.0 (TID 4)",
        "zookeeper": "2015-07-29 19:04:12,394 - INFO  [/10.10.34.11:3888:QuorumCnxManager$Listener@493] - "
                     "Received connection request /10.10.34.11:45307",
    }
    for name, line in examples.items():
        assert re.match(FORMATS[name].regex, line), name
    assert content_of("hdfs", examples["hdfs"]) == "Receiving block blk_-16 src: /10.2.1.1:5"
    assert content_of("zookeeper", examples["zookeeper"]) == "Received connection request /10.10.34.11:45307"
    assert content_of("hdfs", examples["spark"]) is None
