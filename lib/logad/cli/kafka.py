"""``logad broker``, ``logad produce``, ``logad ship``: the local Kafka and getting lines into it."""

from __future__ import annotations

import argparse
from typing import Any

from logad.cli.common import default, kafka_args


def add(sub: Any) -> None:
    from logad.config import Broker
    from logad.ship import ShipConfig

    b = sub.add_parser("broker", help="start, stop or check the local Apache Kafka broker (KRaft)")
    b.add_argument("action", choices=["start", "stop", "status"])
    port = default(Broker, "port")
    b.add_argument("--port", type=int, default=port,
                   help=f"base TCP port on 127.0.0.1: node i serves clients on PORT+i (default {port})")
    b.add_argument("--nodes", type=int, default=default(Broker, "nodes"), choices=[1, 3],
                   help="1, or 3 for replication factor 3 with min.insync.replicas=2")
    state = default(Broker, "state_dir")
    b.add_argument("--state-dir", default=state, help=f"each node's log, data, pid and settings (default {state})")
    b.add_argument("--security", default=default(Broker, "security"), choices=["plaintext", "sasl", "sasl_ssl"],
                   help="client listener: plaintext, SASL SCRAM-SHA-512, or SCRAM over TLS")
    b.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD",
                   help="a SCRAM user, created when the storage is formatted (repeatable)")
    b.set_defaults(func=cmd_broker)

    p = sub.add_parser("produce", help="produce the lines of files (plain or .gz) into a topic")
    p.add_argument("files", nargs="+")
    p.add_argument("--topic", required=True)
    kafka_args(p)
    from logad.produce import produce_files

    p.add_argument("--partitions", type=int, default=default(produce_files, "partitions"),
                   help="partitions if the topic is created")
    p.set_defaults(func=cmd_produce)

    s = sub.add_parser("ship", help="tail log files into Kafka (Filebeat's role)")
    s.add_argument("paths", nargs="+", help="files and globs (quote globs); gzip files are read decompressed")
    kafka_args(s)
    s.add_argument("--host", default=None, help="host name for the topic and key (default: this host)")
    prefix = default(ShipConfig, "topic_prefix")
    s.add_argument("--topic-prefix", default=prefix, help=f"topic per host: <prefix>.<host> (default {prefix})")
    s.add_argument("--topic", default=None, help="one topic for all hosts instead (key host|file)")
    s.add_argument("--partitions", type=int, default=default(ShipConfig, "partitions"),
                   help="partitions if the topic is created")
    registry = default(ShipConfig, "registry")
    s.add_argument("--registry", default=registry, help=f"resume state (default {registry})")
    s.add_argument("--include-lines", action="append", default=[], metavar="REGEX",
                   help="ship only records matching one of these (repeatable)")
    s.add_argument("--exclude-lines", action="append", default=[], metavar="REGEX",
                   help="drop records matching any of these (repeatable)")
    s.add_argument("--multiline-pattern", default=None, metavar="REGEX",
                   help=r"a line matching this continues the previous record, e.g. '^\s+(at|\.\.\.) |^Caused by:'")
    s.add_argument("--multiline-negate", action="store_true",
                   help="a line NOT matching --multiline-pattern continues the previous record")
    most = default(ShipConfig, "max_record_bytes")
    s.add_argument("--max-record-bytes", type=int, default=most, metavar="N",
                   help=f"longer records are cut to N bytes at a character boundary and counted "
                        f"(default {most}: under Kafka's 1 MB message limits)")
    s.add_argument("--poll-interval", type=float, default=default(ShipConfig, "poll_interval_s"),
                   help="seconds between scans")
    s.add_argument("--once", action="store_true", help="ship what is there, then stop")
    s.set_defaults(func=cmd_ship)


def _broker_cfg(a: argparse.Namespace) -> Any:
    from logad.config import Broker
    from logad.errors import ConfigError

    users = []
    for item in a.user:
        name, sep, password = item.partition(":")
        if not sep:
            raise ConfigError(f"--user {item!r}: give NAME:PASSWORD")
        users.append((name, password))
    return Broker(port=a.port, nodes=a.nodes, state_dir=a.state_dir, security=a.security,
                  users=tuple(users))


def cmd_broker(a: argparse.Namespace) -> int:
    import json

    from logad.io import broker

    cfg = _broker_cfg(a)
    if a.action == "start":
        st = broker.start(cfg)
        print(f"Kafka running: {cfg.nodes} node(s), bootstrap {st.bootstrap}, logs under {cfg.state_path}")
        opts = broker.client_options(cfg)
        if opts:
            print("client settings: " + " ".join(f"--kafka-option '{k}={v}'" for k, v in opts.items()))
    elif a.action == "stop":
        print("Kafka stopped" if broker.stop(cfg) else "no broker was running")
    else:
        st = broker.status(cfg)
        print(f"Kafka {'running' if st.running else 'not running'}: bootstrap {st.bootstrap}")
        for n in st.nodes:
            print(f"  node {n.node_id}: {'up' if n.running else 'down'} on port {n.port}"
                  + (f", pid {n.pid}" if n.pid else "") + f", log {n.log_file}")
        if a.verbose:
            print(json.dumps([n.__dict__ for n in st.nodes]))
        return 0 if st.running else 1
    return 0


def cmd_produce(a: argparse.Namespace) -> int:
    from logad.io.kafka import parse_options
    from logad.produce import produce_files

    n = produce_files(a.bootstrap, a.topic, a.files, partitions=a.partitions,
                      client=parse_options(a.kafka_option))
    print(f"produced {n} lines to {a.topic}")
    return 0


def cmd_ship(a: argparse.Namespace) -> int:
    import socket
    import threading

    from logad.io.kafka import parse_options
    from logad.ship import ShipConfig, Shipper

    cfg = ShipConfig(
        paths=tuple(a.paths), bootstrap=a.bootstrap, host=a.host or socket.gethostname(),
        client=parse_options(a.kafka_option),
        topic_prefix=a.topic_prefix, single_topic=a.topic, partitions=a.partitions,
        registry=a.registry, include=tuple(a.include_lines), exclude=tuple(a.exclude_lines),
        multiline_pattern=a.multiline_pattern, multiline_negate=a.multiline_negate,
        poll_interval_s=a.poll_interval, max_record_bytes=a.max_record_bytes)
    stop = threading.Event()
    try:
        stats = Shipper(cfg).run(once=a.once, stop=stop)
    except KeyboardInterrupt:
        stop.set()
        return 130
    print(f"shipped {stats.sent} records ({stats.lines} lines read, {stats.filtered} filtered, "
          f"{stats.truncated} truncated, {stats.refused} refused by Kafka) to {cfg.topic}")
    return 0
