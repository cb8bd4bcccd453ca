"""Tier 1: the embedded Kafka source's options and offset arithmetic, no broker, no Spark."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logad.errors import ConfigError, KafkaSourceError, explain
from logad.io.kafka_client import SourceOptions, from_json, rate_limit, to_json

BASE = {"kafka.bootstrap.servers": "127.0.0.1:9092", "subscribe": "a,b"}


@given(st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 5000)), min_size=1, max_size=8),
       st.integers(1, 4000))
def test_rate_limit_reads_exactly_the_limit_and_never_past_the_end(parts, limit):
    start = {("t", i): s for i, (s, _) in enumerate(parts)}
    end = {("t", i): s + n for i, (s, n) in enumerate(parts)}
    capped = rate_limit(start, end, limit)
    backlog = sum(n for _, n in parts)
    assert sum(capped[tp] - start[tp] for tp in start) == min(limit, backlog)
    assert all(start[tp] <= capped[tp] <= end[tp] for tp in start)


def test_rate_limit_shares_by_backlog_and_does_not_starve_small_partitions():
    start = {("t", 0): 0, ("t", 1): 100, ("t", 2): 0}
    end = {("t", 0): 1000, ("t", 1): 105, ("t", 2): 0}
    assert rate_limit(start, end, 100) == {("t", 0): 99, ("t", 1): 101, ("t", 2): 0}
    assert rate_limit(start, end, None) == end


def test_offsets_round_trip_through_spark_json_shape():
    offsets = {("logs.a", 0): 5, ("logs.a", 1): 7, ("logs.b", 0): 0}
    assert to_json(offsets) == {"logs.a": {"0": 5, "1": 7}, "logs.b": {"0": 0}}
    assert from_json(to_json(offsets)) == offsets


def test_options_parse_like_sparks_kafka_source():
    o = SourceOptions.parse({**BASE, "startingOffsets": '{"a": {"0": 3, "1": -2}}',
                             "maxOffsetsPerTrigger": "100", "kafka.security.protocol": "SASL_SSL",
                             "kafka.sasl.mechanism": "PLAIN"})
    assert o.subscribe == ("a", "b")
    assert o.starting == {"a": {"0": 3, "1": -2}}
    assert o.max_offsets == 100
    assert o.client == {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"}
    assert o.matches("a") and not o.matches("c") and not o.matches("__consumer_offsets")


def test_java_jaas_config_becomes_librdkafka_username_and_password():
    jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
            'username="alice" password="s3cret";')
    o = SourceOptions.parse({**BASE, "kafka.sasl.jaas.config": jaas})
    assert o.client == {"sasl.username": "alice", "sasl.password": "s3cret"}


@pytest.mark.parametrize("extra, names", [
    ({"startingOffsets": "yesterday"}, "startingOffsets"),
    ({"startingOffsets": '{"a": 3}'}, "startingOffsets"),
    ({"maxOffsetsPerTrigger": "0"}, "maxOffsetsPerTrigger"),
    ({"maxOffsetsPerTrigger": "ten"}, "maxOffsetsPerTrigger"),
    ({"subscribePattern": "logs.*"}, "exactly one"),
    ({"failOnDataLoss": "maybe"}, "failOnDataLoss"),
    ({"kafka.ssl.truststore.location": "/x.jks"}, "ssl.ca.location"),
])
def test_bad_options_name_the_option(extra, names):
    with pytest.raises(ConfigError, match=names):
        SourceOptions.parse({**BASE, **extra})


def test_missing_bootstrap_and_bad_pattern_are_config_errors():
    with pytest.raises(ConfigError, match="kafka.bootstrap.servers"):
        SourceOptions.parse({"subscribe": "a"})
    with pytest.raises(ConfigError, match="subscribePattern"):
        SourceOptions.parse({"kafka.bootstrap.servers": "h:1", "subscribePattern": "("})


def test_explain_digs_the_logad_error_out_of_a_wrapped_spark_error():
    wrapped = RuntimeError("py4j stuff\nTraceback...\nlogad.errors.KafkaSourceError: topic gone\n  at x")
    err = explain(wrapped)
    assert isinstance(err, KafkaSourceError) and str(err) == "topic gone"
    assert explain(RuntimeError("unrelated")) is None
