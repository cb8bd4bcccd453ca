"""Kafka-side facts for the embedded source: options, topic discovery, true offsets, rate limits.

Owns everything that talks to the broker from the driver and the arithmetic on offsets. Does not
own Spark: :mod:`logad.io.kafka_source` wraps this in a Python Data Source.

Offsets are Spark's Kafka JSON shape, ``{"topic": {"0": 42, "1": 7}}``: the next offset to read per
partition. They live in Spark's checkpoint, never in consumer-group state.

The high watermark a broker reports through ListOffsets is not trusted (the local broker, tansu,
reports the last batch's base offset + 1). The end of a partition is taken from a Fetch response
instead: a consumer positioned at an offset that exists gets the partition's true high watermark
back with the first records, or an end-of-partition event at exactly that offset.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from logad.errors import ConfigError, KafkaSourceError

log = logging.getLogger(__name__)

Offsets = dict[str, dict[str, int]]
TP = tuple[str, int]

EARLIEST, LATEST = -2, -1
# Java-client-only settings that librdkafka cannot take; what to use instead.
_JAVA_ONLY = {
    "ssl.truststore.location": "ssl.ca.location (a PEM file)",
    "ssl.truststore.password": "ssl.ca.location (a PEM file)",
    "ssl.keystore.location": "ssl.certificate.location and ssl.key.location (PEM files)",
    "ssl.keystore.password": "ssl.key.password",
}
_JAAS = re.compile(r'(\w+)\s*=\s*"([^"]*)"')


@dataclass(frozen=True)
class SourceOptions:
    """The embedded source's options, parsed and checked (Spark's Kafka source option names)."""

    bootstrap: str
    subscribe: tuple[str, ...] = ()
    pattern: str | None = None
    assign: dict[str, tuple[int, ...]] | None = None
    starting: str | dict[str, dict[str, int]] = "latest"
    ending: str | dict[str, dict[str, int]] = "latest"
    max_offsets: int | None = None
    poll_timeout_ms: int = 120_000
    fail_on_data_loss: bool = True
    client: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, options: Mapping[str, str], default_start: str = "latest") -> SourceOptions:
        """Check Spark-style options (case-insensitive) and raise ConfigError naming a bad one."""
        opts = {k.lower(): v for k, v in options.items()}
        bootstrap = opts.get("kafka.bootstrap.servers", "").strip()
        if not bootstrap:
            raise ConfigError("option kafka.bootstrap.servers is required (host:port[,host:port])")
        chosen = [k for k in ("subscribe", "subscribepattern", "assign") if opts.get(k)]
        if len(chosen) != 1:
            raise ConfigError("the Kafka source needs exactly one of the options subscribe, "
                              f"subscribePattern, assign; got {chosen or 'none'}")
        pattern = opts.get("subscribepattern")
        if pattern:
            try:
                re.compile(pattern)
            except re.error as e:
                raise ConfigError(f"option subscribePattern={pattern!r} is not a regex: {e}") from e
        assign = None
        if opts.get("assign"):
            try:
                raw = json.loads(opts["assign"])
                assign = {str(t): tuple(int(p) for p in ps) for t, ps in raw.items()}
            except (ValueError, TypeError, AttributeError) as e:
                raise ConfigError(f"option assign={opts['assign']!r} is not JSON like "
                                  '{"topic": [0, 1]}') from e
        max_offsets = _int_opt(opts, "maxoffsetspertrigger", "maxOffsetsPerTrigger", None)
        if max_offsets is not None and max_offsets <= 0:
            raise ConfigError(f"option maxOffsetsPerTrigger must be > 0, got {max_offsets}")
        fail = opts.get("failondataloss", "true").strip().lower()
        if fail not in ("true", "false"):
            raise ConfigError(f"option failOnDataLoss={fail!r}: use true or false")
        return cls(
            bootstrap=bootstrap,
            subscribe=tuple(t.strip() for t in opts.get("subscribe", "").split(",") if t.strip()),
            pattern=pattern,
            assign=assign,
            starting=_offsets_opt(opts.get("startingoffsets", default_start), "startingOffsets"),
            ending=_offsets_opt(opts.get("endingoffsets", "latest"), "endingOffsets"),
            max_offsets=max_offsets,
            poll_timeout_ms=_int_opt(opts, "kafkaconsumer.polltimeoutms",
                                     "kafkaConsumer.pollTimeoutMs", 120_000) or 120_000,
            fail_on_data_loss=fail == "true",
            client=client_settings(opts),
        )

    def consumer_conf(self, **extra: Any) -> dict[str, Any]:
        """librdkafka settings for a consumer that never joins a group or commits offsets."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "group.id": f"logad-{uuid.uuid4().hex}",  # required by the client, never used
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "error",
            "socket.timeout.ms": min(self.poll_timeout_ms, 30_000),
        }
        conf.update(self.client)
        conf.update(extra)
        return conf

    def matches(self, topic: str) -> bool:
        """Whether the subscription covers ``topic``."""
        if topic.startswith("__"):
            return False
        if self.subscribe:
            return topic in self.subscribe
        if self.pattern:
            return re.fullmatch(self.pattern, topic) is not None
        return self.assign is not None and topic in self.assign


def _int_opt(opts: Mapping[str, str], key: str, name: str, default: int | None) -> int | None:
    if key not in opts:
        return default
    try:
        return int(opts[key])
    except ValueError as e:
        raise ConfigError(f"option {name}={opts[key]!r} is not an integer") from e


def _offsets_opt(value: str, name: str) -> str | dict[str, dict[str, int]]:
    text = value.strip()
    if text.lower() in ("earliest", "latest"):
        return text.lower()
    try:
        raw = json.loads(text)
        return {str(t): {str(p): int(o) for p, o in parts.items()} for t, parts in raw.items()}
    except (ValueError, TypeError, AttributeError) as e:
        raise ConfigError(f"option {name}={value!r}: use earliest, latest or JSON like "
                          '{"topic": {"0": 42, "1": -2}} (-2 earliest, -1 latest)') from e


def client_settings(opts: Mapping[str, str]) -> dict[str, str]:
    """The ``kafka.*`` options as librdkafka settings (SASL/SSL included).

    A Java ``sasl.jaas.config`` with username/password becomes ``sasl.username`` and
    ``sasl.password``; Java keystore settings are refused with what to use instead.
    """
    out: dict[str, str] = {}
    for key, value in opts.items():
        if not key.startswith("kafka.") or key == "kafka.bootstrap.servers":
            continue
        name = key[len("kafka."):]
        if name in _JAVA_ONLY:
            raise ConfigError(f"option {key} is a Java-client setting the embedded Kafka source "
                              f"cannot use; give kafka.{_JAVA_ONLY[name]} instead")
        if name == "sasl.jaas.config":
            fields = dict(_JAAS.findall(value))
            if "username" not in fields:
                raise ConfigError("option kafka.sasl.jaas.config has no username=\"...\"; give "
                                  "kafka.sasl.username and kafka.sasl.password instead")
            out["sasl.username"] = fields["username"]
            out["sasl.password"] = fields.get("password", "")
            continue
        out[name] = value
    return out


def rate_limit(start: Mapping[TP, int], end: Mapping[TP, int], limit: int | None) -> dict[TP, int]:
    """Cap ``end`` so that at most ``limit`` offsets are read in all, shared by backlog.

    Each partition gets a share proportional to its backlog (Spark's rule); the shares are
    apportioned by largest remainder, so the total is exactly ``min(limit, backlog)`` and a
    partition with a small backlog is not starved while the limit allows.

    Example:
        >>> rate_limit({("t", 0): 0, ("t", 1): 0}, {("t", 0): 90, ("t", 1): 10}, 10)
        {('t', 0): 9, ('t', 1): 1}
    """
    out = dict(end)
    backlog = {tp: end[tp] - start[tp] for tp in end if tp in start and end[tp] > start[tp]}
    total = sum(backlog.values())
    if limit is None or total <= limit:
        return out
    shares = {tp: limit * size / total for tp, size in backlog.items()}
    grant = {tp: int(share) for tp, share in shares.items()}
    left = limit - sum(grant.values())
    for tp in sorted(backlog, key=lambda t: (grant[t] > 0, -(shares[t] - grant[t]), t))[:left]:
        grant[tp] += 1
    for tp, n in grant.items():
        out[tp] = start[tp] + n
    return out


def to_json(offsets: Mapping[TP, int]) -> Offsets:
    """``{(topic, partition): offset}`` to Spark's Kafka offset JSON shape."""
    out: Offsets = {}
    for (topic, part), off in sorted(offsets.items()):
        out.setdefault(topic, {})[str(part)] = int(off)
    return out


def from_json(offsets: Mapping[str, Mapping[str, int]]) -> dict[TP, int]:
    """Spark's Kafka offset JSON shape to ``{(topic, partition): offset}``."""
    return {(t, int(p)): int(o) for t, parts in offsets.items() for p, o in parts.items()}


class Probe:
    """A driver-side client that lists partitions and finds where they really begin and end."""

    def __init__(self, options: SourceOptions) -> None:
        self.options = options
        self._consumer: Any = None

    def _client(self) -> Any:
        if self._consumer is None:
            from confluent_kafka import Consumer, KafkaException

            # Fetch little (one record per partition is enough to learn the high watermark), and
            # do not let librdkafka's queue-full backoff (1 s by default) delay the next probe.
            try:
                self._consumer = Consumer(self.options.consumer_conf(
                    **{"fetch.wait.max.ms": 10, "queued.min.messages": 1, "fetch.queue.backoff.ms": 5,
                       "fetch.max.bytes": 1024 * 1024, "max.partition.fetch.bytes": 64 * 1024}))
            except KafkaException as e:
                raise ConfigError(f"a kafka.* option was refused by the Kafka client: {e}") from e
        return self._consumer

    def close(self) -> None:
        """Close the client (it reconnects on next use)."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def partitions(self) -> list[TP]:
        """The partitions the subscription covers now (new topics and partitions included)."""
        from confluent_kafka import KafkaException

        timeout = min(self.options.poll_timeout_ms / 1000, 30.0)
        try:
            meta = self._client().list_topics(timeout=timeout)
        except KafkaException as e:
            raise KafkaSourceError(
                f"cannot reach Kafka at kafka.bootstrap.servers={self.options.bootstrap} "
                f"within {timeout:.0f}s ({e.args[0].str() if e.args else e}); check the setting "
                "and that the broker runs (for the local one: logad broker status)") from e
        found: list[TP] = []
        for topic, tmeta in meta.topics.items():
            if tmeta.error is not None or not self.options.matches(topic):
                continue
            parts = sorted(tmeta.partitions)
            if self.options.assign is not None:
                parts = [p for p in parts if p in self.options.assign.get(topic, ())]
            found.extend((topic, p) for p in parts)
        wanted = set(self.options.subscribe) | set(self.options.assign or {})
        missing = sorted(wanted - {t for t, _ in found})
        if missing:
            option = "subscribe" if self.options.subscribe else "assign"
            raise KafkaSourceError(
                f"topic(s) {', '.join(missing)} named by option {option} do not exist on "
                f"{self.options.bootstrap}; create them first or use subscribePattern, which "
                "waits for matching topics")
        return sorted(found)

    def earliest(self, tps: Iterable[TP]) -> dict[TP, int]:
        """The first available offset of each partition (ListOffsets earliest)."""
        from confluent_kafka import KafkaException, TopicPartition

        out = {}
        for topic, part in tps:
            try:
                low, _ = self._client().get_watermark_offsets(
                    TopicPartition(topic, part), timeout=self.options.poll_timeout_ms / 1000)
            except KafkaException as e:
                raise KafkaSourceError(f"cannot list offsets of {topic}-{part} on "
                                       f"{self.options.bootstrap}: {e}") from e
            out[(topic, part)] = max(int(low), 0)
        return out

    def ends(self, starts: Mapping[TP, int]) -> dict[TP, int]:
        """The true end (next offset to be written) of each partition, found by fetching.

        ``starts`` must be offsets that exist (or the end itself). A partition whose start lies
        past its end (the topic was recreated, or an in-memory broker restarted) is reported
        with its real end, which is then smaller than its start.
        """
        ends = self._fetch_ends(starts, self.options.poll_timeout_ms / 1000)
        lost = [tp for tp in starts if tp not in ends]
        if lost:  # nothing came back from these start offsets: measure from the beginning
            ends.update(self._fetch_ends(self.earliest(lost), self.options.poll_timeout_ms / 1000))
        missing = [tp for tp in starts if tp not in ends]
        if missing:
            raise KafkaSourceError(
                f"no answer from {self.options.bootstrap} for partitions "
                f"{', '.join(f'{t}-{p}' for t, p in missing)} within "
                f"kafkaConsumer.pollTimeoutMs={self.options.poll_timeout_ms}")
        return ends

    def _fetch_ends(self, starts: Mapping[TP, int], timeout_s: float) -> dict[TP, int]:
        from confluent_kafka import KafkaError, TopicPartition

        if not starts:
            return {}
        client = self._client()
        assigned = [TopicPartition(t, p, off) for (t, p), off in starts.items()]
        client.assign(assigned)
        client.resume(assigned)  # pause() outlives unassign() in librdkafka
        pending, ends = set(starts), {}
        deadline = time.monotonic() + timeout_s
        # A start offset past the end gets no answer at all; after a quiet spell the caller
        # measures those again from the earliest offset, which always answers.
        quiet_deadline = time.monotonic() + min(timeout_s, 3.0)
        try:
            while pending and time.monotonic() < deadline:
                msg = client.poll(0.05)
                if msg is None:
                    if time.monotonic() > quiet_deadline:
                        break  # the rest are measured again from their earliest offset
                    continue
                key = (msg.topic(), msg.partition())
                err = msg.error()
                if err is not None and err.code() != KafkaError._PARTITION_EOF:
                    if err.fatal() or err.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART,
                                                     KafkaError.TOPIC_AUTHORIZATION_FAILED):
                        raise KafkaSourceError(f"Kafka refused a fetch of {key[0]}-{key[1]}: "
                                               f"{err.str()}")
                    if err.code() == KafkaError._AUTO_OFFSET_RESET:
                        pending.discard(key)  # start offset out of range: measured again above
                    continue
                if key not in pending:
                    continue
                if err is not None:  # end of partition: the event's offset is the end
                    ends[key] = int(msg.offset())
                else:
                    _, high = client.get_watermark_offsets(TopicPartition(*key), cached=True)
                    ends[key] = max(int(high), int(msg.offset()) + 1)
                pending.discard(key)
                client.pause([TopicPartition(*key)])
                quiet_deadline = time.monotonic() + min(timeout_s, 3.0)
        finally:
            client.unassign()
        return ends
