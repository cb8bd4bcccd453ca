"""Tier 2: header parsing of real LogHub lines, and garbage that must land in rejects."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logad.errors import ConfigError
from logad.parse.headers import Parser, events, parse_records, rejects
from logad.produce import read_lines

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
SCHEMA = ("key binary, value binary, topic string, partition int, offset long, "
          "timestamp timestamp, timestampType int")
KAFKA_TS = dt.datetime(2026, 1, 5)


def records(spark, values, topic="logs.t", key=b"node-1|/var/log/app.log"):
    rows = [(key, v, topic, 0, i, KAFKA_TS, 0) for i, v in enumerate(values)]
    return spark.createDataFrame(rows, SCHEMA)


def first_event(spark, line: bytes, **kw):
    parsed = parse_records(records(spark, [line], **kw)).collect()[0]
    assert parsed.reject_reason is None, parsed.reject_reason
    return parsed


CASES = [
    (b"081109 203518 143 INFO dfs.DataNode$DataXceiver: Receiving block blk_-1608999687919862906 "
     b"src: /10.250.19.102:54106 dest: /10.250.19.102:50010", "hdfs",
     dt.datetime(2008, 11, 9, 20, 35, 18), "INFO", "dfs.DataNode$DataXceiver",
     "Receiving block blk_-1608999687919862906 src: /10.250.19.102:54106 dest: /10.250.19.102:50010",
     {"pid": "143"}),
    (b"17/06/09 20:10:40 INFO executor.CoarseGrainedExecutorBackend: Registered signal handlers for "
     b"[TERM, HUP, INT]", "spark", dt.datetime(2017, 6, 9, 20, 10, 40), "INFO",
     "executor.CoarseGrainedExecutorBackend", "Registered signal handlers for [TERM, HUP, INT]", {}),
    (b"- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 "
     b"RAS KERNEL INFO instruction cache parity error corrected", "bgl",
     dt.datetime(2005, 6, 3, 22, 42, 50, 675872), "INFO", "KERNEL",
     "instruction cache parity error corrected",
     {"alert": "-", "node": "R02-M1-N0-C:J12-U11", "location": "R02-M1-N0-C:J12-U11", "type": "RAS"}),
    (b"APPREAD 1117869872 2005.06.04 R04-M1-N4-I:J18-U11 2005-06-04-00.24.32.432192 "
     b"R04-M1-N4-I:J18-U11 RAS APP FATAL ciod: failed to read message prefix", "bgl",
     dt.datetime(2005, 6, 4, 7, 24, 32, 432192), "FATAL", "APP", "ciod: failed to read message prefix",
     {"alert": "APPREAD", "node": "R04-M1-N4-I:J18-U11", "location": "R04-M1-N4-I:J18-U11",
      "type": "RAS"}),
    (b"- 1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228 crond(pam_unix)[2915]: session "
     b"closed for user root", "thunderbird", dt.datetime(2005, 11, 9, 20, 1, 1), None,
     "crond(pam_unix)", "session closed for user root",
     {"alert": "-", "node": "dn228", "location": "dn228/dn228", "pid": "2915"}),
    (b"2015-10-17 18:09:21,549 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: Created "
     b"MRAppMaster for application appattempt_1445076437777_0004_000001", "hadoop",
     dt.datetime(2015, 10, 17, 18, 9, 21, 549000), "INFO",
     "org.apache.hadoop.mapreduce.v2.app.MRAppMaster",
     "Created MRAppMaster for application appattempt_1445076437777_0004_000001", {"thread": "main"}),
    (b"Dec 31 23:59:58 web1 sshd[77]: Accepted publickey", "syslog",  # a year-less line from
     dt.datetime(2025, 12, 31, 23, 59, 58), None, "sshd", "Accepted publickey",  # last year
     {"node": "web1", "pid": "77"}),
    (b"2023-01-01T10:00:00.250+02:00 [WARNING] disk almost full", "generic",
     dt.datetime(2023, 1, 1, 8, 0, 0, 250000), "WARN", None, "disk almost full", {}),
    (b"2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:FastLeaderElection@774] - "
     b"Notification time out: 3200", "zookeeper", dt.datetime(2015, 7, 29, 17, 41, 44, 747000), "INFO",
     "FastLeaderElection", "Notification time out: 3200",
     {"thread": "QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181", "lineno": "774"}),
    (b"no header at all, just words", "generic", KAFKA_TS, None, None,
     "no header at all, just words", {}),
]


def test_each_format_gives_its_fields_and_a_utc_time(spark):
    # One DataFrame for all cases: each new plan costs seconds of code generation.
    parsed = {r.offset: r for r in parse_records(records(spark, [c[0] for c in CASES])).collect()}
    for i, (line, system, ts, level, component, content, fields) in enumerate(CASES):
        e = parsed[i]
        assert e.reject_reason is None, (line, e.reject_reason)
        got = (e.system, e.ts, e.level, e.component, e.content, e.fields)
        assert got == (system, ts, level, component, content, fields), line
        assert (e.host, e.source) == ("node-1", "/var/log/app.log")


def test_filebeat_events_are_unwrapped(spark):
    event = (b'{"@timestamp":"2026-01-01T00:00:00.000Z","message":"17/06/09 20:10:40 INFO '
             b'spark.SecurityManager: Changing view acls to: yarn,curi","host":{"name":"worker-3"},'
             b'"log":{"file":{"path":"/var/log/spark/executor.log"},"offset":4096}}')
    e = first_event(spark, event, key=None, topic="filebeat")
    assert (e.system, e.host, e.source, e.file_offset) == ("spark", "worker-3",
                                                           "/var/log/spark/executor.log", 4096)
    assert e.content == "Changing view acls to: yarn,curi"


BAD = [
    (b"\xff\xfe\x00 not utf-8", "undecodable"),
    (b"", "empty"),
    (b"   \t ", "empty"),
    (None, "empty"),
    (b"081309 203518 143 INFO dfs.DataNode: month 13", "bad_timestamp"),
    (b"x" * 70_000, "too_long"),
]


def test_bad_records_are_rejected_with_their_reason(spark):
    parsed = parse_records(records(spark, [v for v, _ in BAD] + [b"17/06/09 20:10:40 INFO a.B: fine"])).cache()
    assert sorted((r.offset, r.reason) for r in rejects(parsed).collect()) == [
        (i, reason) for i, (_, reason) in enumerate(BAD)]
    assert [r.offset for r in events(parsed).collect()] == [len(BAD)]


def test_a_topic_pinned_to_a_format_rejects_lines_that_do_not_fit(spark):
    parser = Parser(formats={r"logs\.hdfs.*": "hdfs"}, fallback_generic=False)
    df = records(spark, [b"17/06/09 20:10:40 INFO x.Y: a spark line", b"081109 203518 1 INFO a.B: ok"],
                 topic="logs.hdfs-dn1")
    parsed = parse_records(df, parser).cache()
    assert [(r.offset, r.reason) for r in rejects(parsed).collect()] == [(0, "no_header")]
    assert [r.system for r in events(parsed).collect()] == ["hdfs"]
    with pytest.raises(ConfigError, match="unknown log format"):
        Parser(formats={"x": "cobol"})


def test_every_bundled_line_is_an_event_or_a_reject(spark):
    files = {"logs.hdfs": "HDFS_first20000.log.gz", "logs.spark": "Spark_2k.log.gz",
             "logs.bgl": "BGL_2k.log.gz", "logs.tbird": "Thunderbird_2k.log.gz",
             "logs.hadoop": "Hadoop_container_1445062781478_0011_01_000001.log.gz"}
    rows = [(b"h|f", line, topic, 0, i, KAFKA_TS, 0) for topic, name in files.items()
            for i, line in enumerate(read_lines(SAMPLES / name))]
    parsed = parse_records(spark.createDataFrame(rows, SCHEMA)).cache()
    ev, rej = events(parsed), rejects(parsed)
    assert ev.count() + rej.count() == len(rows)  # counts in = counts out
    by_topic = {r.topic: r.asDict() for r in ev.groupBy("topic").pivot("system").count().collect()}
    assert by_topic["logs.hdfs"]["hdfs"] == 20_000
    assert by_topic["logs.spark"]["spark"] == 2_000
    assert by_topic["logs.bgl"]["bgl"] == 2_000
    assert by_topic["logs.tbird"]["thunderbird"] == 2_000
    assert by_topic["logs.hadoop"]["hadoop"] == 1_210  # the rest: stack-trace continuation lines
    assert {r.reason for r in rej.collect()} == {"empty"}  # the container log's blank lines
    parsed.unpersist()


def test_zookeeper_lines_parse_as_loghub_splits_them(spark):
    """The format added as one entry in logad.parse.formats: every line of LogHub's Zookeeper_2k
    is a zookeeper event whose level, content and time are LogHub's corrected ground truth."""
    import csv
    import gzip

    with gzip.open(SAMPLES / "Zookeeper_2k.log_structured_corrected.csv.gz", "rt", encoding="utf-8") as f:
        truth = list(csv.DictReader(f))
    lines = list(read_lines(SAMPLES / "Zookeeper_2k.log.gz"))
    assert len(lines) == len(truth) == 2000
    got = {r.offset: r for r in parse_records(records(spark, lines, topic="logs.zk1")).collect()}
    for i, row in enumerate(truth):
        e = got[i]
        assert (e.reject_reason, e.system, e.level) == (None, "zookeeper", row["Level"]), lines[i]
        assert e.content.rstrip() == row["Content"], lines[i]  # LogHub strips trailing blanks; we keep them
        assert e.ts == dt.datetime.strptime(f"{row['Date']} {row['Time']}", "%Y-%m-%d %H:%M:%S,%f")
        assert lines[i].decode().startswith(f"{row['Date']} {row['Time']} - {row['Level']}")


def test_the_system_is_set_per_topic_or_host_and_falls_back_to_the_format(spark):
    """Two applications sharing log4j headers are told apart by configuration, not by format."""
    spark_line = b"17/06/09 20:10:40 INFO executor.Executor: Running task 0.0 in stage 1.0 (TID 4)"
    rows = [(b"node-1|/a.log", spark_line, "logs.etl.node-1", 0, 0, KAFKA_TS, 0),
            (b"ml-7|/b.log", spark_line, "logs.all", 0, 1, KAFKA_TS, 0),
            (b"web-2|/c.log", spark_line, "logs.all", 0, 2, KAFKA_TS, 0)]
    parser = Parser(systems={r"logs\.etl\..*": "spark-etl"}, host_systems={r"ml-\d+": "spark-ml"})
    got = {r.offset: r for r in parse_records(spark.createDataFrame(rows, SCHEMA), parser).collect()}
    assert [got[i].system for i in range(3)] == ["spark-etl", "spark-ml", "spark"]
    assert {got[i].component for i in range(3)} == {"executor.Executor"}  # parsed by its format
    with pytest.raises(ConfigError, match="Parser.systems"):
        Parser(systems={"logs.(": "x"})
    with pytest.raises(ConfigError, match="must be a name"):
        Parser(host_systems={"h.*": "two words"})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode),
                          st.sampled_from([b"081109 203518 143 INFO a.B: ", b"- 1117838570 2005.06.03 ",
                                           b"17/06/09 99:99:99 INFO x: ", b"\xc3\x28", b"{\"message\":"])),
                min_size=1, max_size=40))
def test_fuzz_garbage_never_fails_and_every_record_comes_out_once(spark, values):
    parsed = parse_records(records(spark, values))
    out = parsed.select("offset", "reject_reason", "ts", "system").collect()
    assert sorted(r.offset for r in out) == list(range(len(values)))
    assert all(r.reject_reason is not None or (r.ts is not None and r.system) for r in out)
