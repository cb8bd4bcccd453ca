"""Poison records: nothing in one record can fail a batch. Known bad records get the reason they
deserve; hypothesis-generated ones go through the real broker, ingest and sessions, and every
record lands in exactly one of ``events`` and ``rejects``, also when a batch is replayed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from conftest import new_topic

HDFS = "081109 203518 143 INFO dfs.DataNode$DataXceiver: Receiving block blk_1 src: /1.2.3.4:5 dest: /1.2.3.4:50010"
STACK = (HDFS.replace("INFO", "ERROR") + "\njava.io.IOException: Connection reset by peer\n"
         "\tat sun.nio.ch.FileDispatcher.read0(Native Method)\n\tat org.apache.hadoop.Foo.bar(Foo.java:42)")


def envelope(message: object, offset: str) -> bytes:
    head = '{"message": ' + json.dumps(message) + ', "host": {"name": "h9"}, '
    return (head + '"log": {"file": {"path": "/v/a.log"}, "offset": ' + offset + "}}").encode()


KNOWN = {  # value -> (reject reason or None, content or None)
    envelope(HDFS, '"abc"'): ("bad_envelope", None),
    envelope(HDFS, "1e30"): ("bad_envelope", None),
    envelope(HDFS, "18446744073709551616"): ("bad_envelope", None),
    envelope(HDFS, "12.5"): ("bad_envelope", None),
    envelope(HDFS, "true"): ("bad_envelope", None),
    envelope(HDFS, "-1"): ("bad_envelope", None),
    envelope(HDFS, "7"): (None, "Receiving block blk_1 src: /1.2.3.4:5 dest: /1.2.3.4:50010"),
    envelope(12345, "8"): (None, "12345"),
    b"9999-12-31T23:59:59.999999Z ERROR boom": ("bad_timestamp", None),
    b"9999-12-31T23:59:59-14:00 ERROR boom": ("bad_timestamp", None),
    b"0001-01-01T00:00:00+14:00 ERROR boom": ("bad_timestamp", None),
    b"1899-12-31T23:59:59Z ERROR boom": ("bad_timestamp", None),
    b"2262-04-11T00:00:00Z ERROR boom": ("bad_timestamp", None),  # past pandas' nanoseconds
    b"- 99999999999 2005.06.03 R02 2005-06-03-15.42.50.999999 R02 RAS KERNEL INFO x": ("bad_timestamp", None),
    b"2015-10-18T18:01:47+02:00 ERROR boom": (None, "boom"),
    STACK.encode(): (None, STACK.split(": ", 1)[1]),
    b"081109 203518 143 INFO dfs.DataNode: a\rb": (None, "a\rb"),
    b"\x00\x01\x7f ERROR \x1b[31m": (None, "\x00\x01\x7f ERROR \x1b[31m"),
}


def test_known_poison_gets_its_reason_and_multiline_records_keep_their_header(spark):
    from pyspark.sql import functions as F

    from logad.parse.headers import parse_records

    values = list(KNOWN)
    records = (spark.createDataFrame([("t.h1", 0, i, None, v) for i, v in enumerate(values)],
                                     "topic string, partition int, offset long, key binary, value binary")
               .withColumn("timestamp", F.current_timestamp()))
    rows = {r.offset: r for r in parse_records(records).collect()}
    for i, value in enumerate(values):
        reason, content = KNOWN[value]
        assert rows[i].reject_reason == reason, (value, rows[i].reject_detail)
        if content is not None:
            assert rows[i].content == content, value
    stack = rows[values.index(STACK.encode())]
    assert (stack.system, stack.level, stack.component) == ("hdfs", "ERROR", "dfs.DataNode$DataXceiver")
    assert "outside 1900-01-01..2262-01-01 UTC" in rows[values.index(b"9999-12-31T23:59:59-14:00 ERROR boom")].reject_detail
    assert rows[values.index(envelope(HDFS, "7"))].file_offset == 7


def test_a_kafka_timestamp_beyond_year_9999_is_dropped_not_fatal(spark):
    from pyspark.sql import functions as F

    from logad.parse.headers import parse_records

    year_10000_ms = 253_402_300_800_000 + 86_400_000
    records = (spark.createDataFrame([("t.h1", 0, 0, None, HDFS.encode()), ("t.h1", 0, 1, None, b"no time here")],
                                     "topic string, partition int, offset long, key binary, value binary")
               .withColumn("timestamp", F.timestamp_millis(F.lit(year_10000_ms))))
    parsed = parse_records(records).select("offset", "kafka_ts", "ts", "reject_reason")
    rows = {r.offset: r for r in parsed.collect()}  # collected: Python holds every time left
    assert rows[0].kafka_ts is None and rows[0].reject_reason is None and rows[0].ts.year == 2008
    assert rows[1].reject_reason == "bad_timestamp"  # its only time was the Kafka one


def test_a_key_that_is_not_utf8_still_names_host_and_file(spark):
    from pyspark.sql import functions as F

    from logad.parse.headers import parse_records

    records = (spark.createDataFrame([("t.h1", 0, 0, b"dn\xff|/var/log/\xfe.log", HDFS.encode())],
                                     "topic string, partition int, offset long, key binary, value binary")
               .withColumn("timestamp", F.current_timestamp()))
    row = parse_records(records).select("host", "source", "reject_reason").collect()[0]
    assert (row.host, row.source, row.reject_reason) == ("dn\ufffd", "/var/log/\ufffd.log", None)


# ---- fuzz through the real pipeline -------------------------------------------------------

_json = st.recursive(st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
                     | st.floats(allow_nan=False) | st.text(max_size=40),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                     max_leaves=6)
_iso = st.builds(lambda y, mo, d, h, tz, rest: f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:00:00{tz} ERROR {rest}",
                 st.integers(1, 9999), st.integers(0, 13), st.integers(0, 32), st.integers(0, 25),
                 st.sampled_from(["Z", "+14:00", "-14:00", "", ".999999999Z"]), st.text(max_size=30))
_header = st.builds(lambda head, rest: head + rest,
                    st.sampled_from(["081109 203518 143 INFO dfs.DataNode: ", "17/06/09 20:10:40 INFO executor.Executor: ",
                                     "- 99999999999 2005.06.03 R02 2005-06-03-15.42.50.999999 R02 RAS KERNEL INFO ",
                                     "2015-10-18 18:01:47,978 INFO [main] org.A: ", "Nov  9 12:01:01 tb1 sshd[7]: ",
                                     "991399 256199 143 INFO a.b: "]),
                    st.text(max_size=60))
_value = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    _iso.map(str.encode),
    _header.map(str.encode),
    st.builds(lambda m, o, h: json.dumps({"message": m, "log": {"offset": o}, "host": {"name": h}}).encode(),
              _json, _json, _json),
    st.sampled_from([b"", b" \t", b"x" * 70_000, b"{", b'{"message": null}', b"\xff" * 10,
                     STACK.encode(), "\u2028\u0085".encode()]),
)


_key = st.one_of(st.none(), st.binary(max_size=40),
                 st.builds(lambda h, p: (h + "|" + p).encode("utf-8", "surrogatepass"), st.text(max_size=10),
                           st.text(max_size=30)),
                 st.builds(lambda h, p: h + b"|/var/log/" + p, st.binary(max_size=8), st.binary(max_size=20)))


# Each example is a real stream run (~30 s): no shrinking (the failing records are printed whole).
@settings(max_examples=2, deadline=None, derandomize=True, phases=(Phase.explicit, Phase.generate),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(values=st.lists(_value, min_size=150, max_size=300), keys=st.lists(_key, min_size=1, max_size=50))
def test_fuzzed_records_each_land_once_and_a_replayed_batch_changes_nothing(spark, broker, tmp_path, values, keys):
    from confluent_kafka import Producer

    from logad.config import KafkaSource, Warehouse
    from logad.ingest import EVENTS, RAW_LOGS, REJECTS, run, start_ingest
    from logad.io.broker import create_topics
    from logad.io.delta import read_table
    from logad.sessions.rules import rules_for
    from logad.sessions.spark import SESSIONS, start_sessions

    topic = new_topic("fuzz")
    values = [*values, STACK.encode()]  # and one stack trace, to follow to its template
    create_topics(broker.bootstrap, {topic: 1})
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
    for i, value in enumerate(values):  # keys as any producer may send them
        producer.produce(topic, value=value, key=keys[i % len(keys)])
        producer.poll(0)
    assert producer.flush(30) == 0
    root = tmp_path / new_topic("wh")
    wh = Warehouse(str(root))
    source = KafkaSource(broker.bootstrap, subscribe=topic, starting_offsets="earliest",
                         max_offsets_per_trigger=100)

    def ingest_and_count() -> dict[str, list[int]]:
        run(start_ingest(spark, source, wh, trigger="0 seconds", query_name="ingest"), once=True)
        return {t: sorted(r.offset for r in read_table(spark, wh.table(t)).select("offset").collect())
                for t in (RAW_LOGS, EVENTS, REJECTS)}

    got = ingest_and_count()
    every = list(range(len(values)))
    assert got[RAW_LOGS] == every
    assert sorted(got[EVENTS] + got[REJECTS]) == every  # each record in exactly one of the two

    # the stack trace: one event, the whole trace as content, templated like any line
    trace = read_table(spark, wh.table(EVENTS)).where(f"offset = {len(values) - 1}").collect()
    assert len(trace) == 1 and trace[0].content == STACK.split(": ", 1)[1] and trace[0].template_id
    assert (trace[0].system, trace[0].level) == ("hdfs", "ERROR")

    # replay the last batch, as after a crash between the table commits and the checkpoint's
    checkpoint = Path(wh.checkpoint("ingest"))
    last = max(int(p.name) for p in (checkpoint / "commits").iterdir() if p.name.isdigit())
    (checkpoint / "commits" / str(last)).unlink()
    (checkpoint / "commits" / f".{last}.crc").unlink(missing_ok=True)
    assert ingest_and_count() == got

    systems = [rules_for(s) for s in ("hdfs", "spark", "bgl", "thunderbird", "hadoop")]
    for name, rules in (("sessions_a", systems[:2]), ("sessions_b", systems[2:])):
        run(start_sessions(spark, wh, rules, trigger="0 seconds", query_name=name), once=True)
    # the sessions queries stayed up (run raises otherwise); what they cut is made of events
    from logad.io.delta import table_exists

    if table_exists(wh.table(SESSIONS)):
        cut = {o for r in read_table(spark, wh.table(SESSIONS)).select("offsets").collect() for o in r.offsets}
        assert cut <= set(got[EVENTS])
    shutil.rmtree(root, ignore_errors=True)


def test_hypothesis_strategies_make_what_the_fuzz_test_claims():
    """The generator is part of the test: it must reach the cases it is meant to."""
    from hypothesis import find

    enough = settings(derandomize=True, max_examples=20_000, database=None)  # a search, not a gamble
    find(_value, lambda v: v.startswith(b"{") and b'"offset": "' in v, settings=enough)
    find(_value, lambda v: len(v) > 65_536, settings=enough)
    find(_value, lambda v: b"-14:00 ERROR" in v, settings=enough)
    find(_key, lambda k: k is not None and b"|" in k and not _utf8(k), settings=enough)


def _utf8(b: bytes) -> bool:
    try:
        b.decode()
    except UnicodeDecodeError:
        return False
    return True

