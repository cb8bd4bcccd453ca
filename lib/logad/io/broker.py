"""The local Apache Kafka broker (KRaft, no ZooKeeper) for the demo, the tests and a laptop.

Apache's own jars (:data:`logad.jars.BROKER`, resolved from Maven once and cached) run as one JVM
per node, on 127.0.0.1 only, each node both broker and controller. The log lives on disk under the
state folder (``node-<id>/data``), formatted on first start, so a restart keeps every record.
``nodes=3`` is the first paper's layout: replication factor 3, ``min.insync.replicas=2``, so a
follower takes over when the leader goes down and an ``acks=all`` producer loses nothing.

Ports, for a base port P and N nodes: node i (0-based) serves clients on P+i and its controller on
P+N+i; a secured broker adds a plaintext inter-broker listener on P+2N+i. Security
(:class:`~logad.config.Broker` ``security``): ``plaintext``, ``sasl`` (SCRAM-SHA-512), or
``sasl_ssl`` (the same over TLS with a self-signed certificate made at first start); the users'
SCRAM credentials are written at format time. :func:`client_options` gives the Kafka client
settings (Java names, as Spark takes them) that reach it.

A real deployment points logad at its own Kafka cluster instead.
"""

from __future__ import annotations

import base64
import logging
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from logad.config import Broker
from logad.errors import BrokerError

log = logging.getLogger(__name__)

_LOG4J = """status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
"""


@dataclass(frozen=True)
class NodeStatus:
    """One node of the local cluster."""

    node_id: int
    running: bool
    pid: int | None
    port: int
    log_file: str


@dataclass(frozen=True)
class BrokerStatus:
    """What ``logad broker status`` reports."""

    running: bool
    pid: int | None
    bootstrap: str
    log_file: str
    nodes: tuple[NodeStatus, ...] = ()


def _node_dir(cfg: Broker, node: int) -> Path:
    return cfg.state_path / f"node-{node}"


def _pid_file(cfg: Broker, node: int) -> Path:
    return _node_dir(cfg, node) / "kafka.pid"


def _log_file(cfg: Broker, node: int) -> Path:
    return _node_dir(cfg, node) / "kafka.log"


def running_pid(pid_file: Path) -> int | None:
    """The pid written in ``pid_file`` while that process runs, else None (a child of ours that
    ended is reaped first). The local broker's and the local Hadoop's daemons keep one each."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


def _read_pid(cfg: Broker, node: int) -> int | None:
    return running_pid(_pid_file(cfg, node))


def port_open(host: str, port: int) -> bool:
    """Whether something accepts connections on ``host:port``."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _ports(cfg: Broker, node: int) -> tuple[int, int, int]:
    """(client, controller, inter-broker) ports of ``node`` (1-based id)."""
    i, n = node - 1, cfg.nodes
    return cfg.port + i, cfg.port + n + i, cfg.port + 2 * n + i


def _protocol(cfg: Broker) -> str:
    return {"plaintext": "PLAINTEXT", "sasl": "SASL_PLAINTEXT", "sasl_ssl": "SASL_SSL"}[cfg.security]


def _properties(cfg: Broker, node: int) -> str:
    client, controller, internal = _ports(cfg, node)
    h = cfg.host
    voters = ",".join(f"{n}@{h}:{_ports(cfg, n)[1]}" for n in range(1, cfg.nodes + 1))
    rf = min(3, cfg.nodes)
    isr = 2 if cfg.nodes >= 3 else 1
    secured = cfg.security != "plaintext"
    listeners = [f"CLIENT://{h}:{client}", f"CONTROLLER://{h}:{controller}"]
    protocols = [f"CLIENT:{_protocol(cfg)}", "CONTROLLER:PLAINTEXT"]
    if secured:
        listeners.append(f"INTERNAL://{h}:{internal}")
        protocols.append("INTERNAL:PLAINTEXT")
    advertised = [x for x in listeners if not x.startswith("CONTROLLER")]
    lines = [
        "process.roles=broker,controller",
        f"node.id={node}",
        f"controller.quorum.voters={voters}",
        f"listeners={','.join(listeners)}",
        f"advertised.listeners={','.join(advertised)}",
        "controller.listener.names=CONTROLLER",
        f"inter.broker.listener.name={'INTERNAL' if secured else 'CLIENT'}",
        f"listener.security.protocol.map={','.join(protocols)}",
        f"log.dirs={_node_dir(cfg, node) / 'data'}",
        "num.partitions=1",
        f"default.replication.factor={rf}",
        f"min.insync.replicas={isr}",
        f"offsets.topic.replication.factor={rf}",
        f"transaction.state.log.replication.factor={rf}",
        f"transaction.state.log.min.isr={isr}",
        f"share.coordinator.state.topic.replication.factor={rf}",
        f"share.coordinator.state.topic.min.isr={isr}",
        "group.initial.rebalance.delay.ms=0",
        "auto.create.topics.enable=false",
        # Room for the shipper's largest record (its --max-record-bytes default) plus headers.
        f"message.max.bytes={cfg.max_message_bytes}",
        f"replica.fetch.max.bytes={cfg.max_message_bytes}",
    ]
    if secured:
        lines += ["sasl.enabled.mechanisms=SCRAM-SHA-512",
                  "listener.name.client.scram-sha-512.sasl.jaas.config="
                  "org.apache.kafka.common.security.scram.ScramLoginModule required;"]
    if cfg.security == "sasl_ssl":
        tls = _tls(cfg)
        lines += [f"listener.name.client.ssl.keystore.location={tls / 'server.p12'}",
                  f"listener.name.client.ssl.keystore.password={cfg.tls_password}",
                  "listener.name.client.ssl.keystore.type=PKCS12"]
    return "\n".join(lines) + "\n"


def _tls(cfg: Broker) -> Path:
    """A self-signed certificate for 127.0.0.1 (``server.p12``), the same as a trust store for
    Java clients (``truststore.p12``) and as PEM for librdkafka (``ca.pem``); made once."""
    tls = cfg.state_path / "tls"
    if (tls / "ca.pem").is_file():
        return tls
    tls.mkdir(parents=True, exist_ok=True)
    pw = cfg.tls_password

    def keytool(*args: str) -> None:
        out = subprocess.run(["keytool", *args], capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise BrokerError(f"keytool {args[0]} failed: {(out.stderr or out.stdout).strip()}")

    keytool("-genkeypair", "-alias", "logad", "-keyalg", "RSA", "-keysize", "2048", "-validity",
            "3650", "-dname", "CN=localhost", "-ext", "SAN=ip:127.0.0.1,dns:localhost",
            "-keystore", str(tls / "server.p12"), "-storetype", "PKCS12", "-storepass", pw,
            "-keypass", pw)
    keytool("-exportcert", "-alias", "logad", "-rfc", "-keystore", str(tls / "server.p12"),
            "-storepass", pw, "-file", str(tls / "ca.pem"))
    keytool("-importcert", "-noprompt", "-alias", "logad", "-file", str(tls / "ca.pem"),
            "-keystore", str(tls / "truststore.p12"), "-storetype", "PKCS12", "-storepass", pw)
    return tls


def client_options(cfg: Broker, user: str | None = None, password: str | None = None) -> dict[str, str]:
    """Kafka client settings (Java names, as ``--kafka-option`` takes them) for this broker.

    ``user``/``password`` default to the first configured user. librdkafka-only keys
    (``ssl.ca.location``) ride along; each client keeps what it understands
    (:func:`logad.io.kafka.librdkafka_conf`).
    """
    if cfg.security == "plaintext":
        return {}
    if user is None:
        if not cfg.users:
            raise BrokerError("a secured broker needs at least one user (--user NAME:PASSWORD)")
        user, password = cfg.users[0]
    opts = {"security.protocol": _protocol(cfg), "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required "
                                f'username="{user}" password="{password or ""}";'}
    if cfg.security == "sasl_ssl":
        tls = _tls(cfg)
        opts.update({"ssl.truststore.location": str(tls / "truststore.p12"),
                     "ssl.truststore.password": cfg.tls_password,
                     "ssl.truststore.type": "PKCS12", "ssl.ca.location": str(tls / "ca.pem")})
    return opts


def _classpath() -> str:
    from logad import jars

    return ":".join(jars.resolve(jars.BROKER, purpose="kafka-broker", skip_shipped=False))


def _cluster_id(cfg: Broker) -> str:
    path = cfg.state_path / "cluster.id"
    if path.is_file():
        return path.read_text().strip()
    # Kafka's own Uuid.randomUuid() never starts an id with "-" (the command line would read it
    # as an option); neither do we, one in 64 would.
    cid = "-"
    while cid.startswith("-"):
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    path.write_text(cid + "\n")
    return cid


def _format(cfg: Broker, node: int, classpath: str) -> None:
    props = _node_dir(cfg, node) / "server.properties"
    if (_node_dir(cfg, node) / "data" / "meta.properties").is_file():
        return
    cmd = ["java", "-cp", classpath, "kafka.tools.StorageTool", "format",
           f"--cluster-id={_cluster_id(cfg)}", "-c", str(props), "--ignore-formatted"]
    for name, password in cfg.users:
        cmd += ["--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise BrokerError(f"formatting the storage of node {node} failed: "
                          f"{(out.stderr or out.stdout).strip().splitlines()[-1:]}")


def start_node(cfg: Broker, node: int, classpath: str | None = None) -> int:
    """Start one node (1-based id) unless it runs; return its pid (waits only for the port)."""
    pid = _read_pid(cfg, node)
    if pid is not None:
        return pid
    client, controller, internal = _ports(cfg, node)
    for port in (client, controller, *((internal,) if cfg.security != "plaintext" else ())):
        if port_open(cfg.host, port):
            raise BrokerError(f"port {port} on {cfg.host} is already in use by another program; "
                              "stop it or choose another base port (--port / Broker.port)")
    classpath = classpath or _classpath()
    nd = _node_dir(cfg, node)
    nd.mkdir(parents=True, exist_ok=True)
    (nd / "server.properties").write_text(_properties(cfg, node))
    (nd / "log4j2.properties").write_text(_LOG4J)
    _format(cfg, node, classpath)
    cmd = ["java", f"-Xmx{cfg.heap}", f"-Xms{cfg.heap}", "-XX:+UseG1GC",
           "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={nd / 'log4j2.properties'}",
           "-cp", classpath, "kafka.Kafka", str(nd / "server.properties")]
    with open(_log_file(cfg, node), "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    _pid_file(cfg, node).write_text(str(proc.pid))
    return proc.pid


def start(cfg: Broker, wait_s: float = 60.0) -> BrokerStatus:
    """Start every node that is not running, then wait until the cluster answers with all of them.

    Example:
        >>> start(Broker(port=9092, nodes=3)).bootstrap  # doctest: +SKIP
        '127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094'
    """
    cfg.state_path.mkdir(parents=True, exist_ok=True)
    classpath = _classpath()
    pids = {n: start_node(cfg, n, classpath) for n in range(1, cfg.nodes + 1)}
    wait_ready(cfg, wait_s)
    log.info("Kafka %s running: %d node(s) (pids %s) on %s, log under %s", _version(), cfg.nodes,
             ",".join(map(str, pids.values())), cfg.bootstrap, cfg.state_path)
    return status(cfg)


def _version() -> str:
    from logad.jars import KAFKA_VERSION

    return KAFKA_VERSION


def wait_ready(cfg: Broker, wait_s: float = 60.0) -> None:
    """Wait until every running node is registered with the cluster and answers metadata."""
    from confluent_kafka.admin import AdminClient

    from logad.io.kafka import librdkafka_conf

    deadline = time.monotonic() + wait_s
    want = {n for n in range(1, cfg.nodes + 1) if _read_pid(cfg, n) is not None}
    # Quiet while it starts: every refused connection would print a librdkafka error line.
    admin = AdminClient(librdkafka_conf(cfg.bootstrap, client_options(cfg), log_level=0))
    last = "no answer"
    while time.monotonic() < deadline:
        dead = [n for n in want if _read_pid(cfg, n) is None]
        if dead:
            tail = _tail(_log_file(cfg, dead[0]))
            raise BrokerError(f"Kafka node {dead[0]} exited at start; see {_log_file(cfg, dead[0])}"
                              + (f": {tail}" if tail else ""))
        try:
            brokers = set(admin.list_topics(timeout=2).brokers)
            if want <= brokers:
                return
            last = f"{len(brokers)} of {len(want)} nodes registered"
        except Exception as e:  # KafkaException while it starts
            last = str(e)
        time.sleep(0.2)
    raise BrokerError(f"the broker did not answer on {cfg.bootstrap} within {wait_s:.0f}s ({last}); "
                      f"see {cfg.state_path}/node-*/kafka.log")


def _tail(path: Path) -> str:
    try:
        lines = [x for x in path.read_text(errors="replace").splitlines() if "ERROR" in x or "Exception" in x]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def stop_node(cfg: Broker, node: int, wait_s: float = 30.0, kill: bool = False) -> bool:
    """Stop one node: SIGTERM (a controlled shutdown) or, with ``kill``, SIGKILL. True if it ran."""
    pid = _read_pid(cfg, node)
    if pid is None:
        return False
    os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and _read_pid(cfg, node) is not None:
        time.sleep(0.1)
    if _read_pid(cfg, node) is not None:
        log.warning("Kafka node %d did not stop within %.0fs; killing it", node, wait_s)
        os.kill(pid, signal.SIGKILL)
        while _read_pid(cfg, node) is not None:
            time.sleep(0.05)
    _pid_file(cfg, node).unlink(missing_ok=True)
    return True


def stop(cfg: Broker, wait_s: float = 30.0) -> bool:
    """Stop every node of this state folder's cluster; True if one was running."""
    running = [n for n in range(1, cfg.nodes + 1) if _read_pid(cfg, n) is not None]
    for n in running:  # all at once: the last nodes then shut down without waiting for a quorum
        pid = _read_pid(cfg, n)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
    for n in running:
        stop_node(cfg, n, wait_s)
    if running:
        log.info("Kafka stopped (%d node(s))", len(running))
    return bool(running)


def status(cfg: Broker) -> BrokerStatus:
    """Whether this state folder's nodes run and listen."""
    nodes = []
    for n in range(1, cfg.nodes + 1):
        pid = _read_pid(cfg, n)
        port = _ports(cfg, n)[0]
        up = pid is not None and port_open(cfg.host, port)
        nodes.append(NodeStatus(n, up, pid if up else None, port, str(_log_file(cfg, n))))
    first = nodes[0]
    return BrokerStatus(any(x.running for x in nodes), first.pid, cfg.bootstrap, first.log_file,
                        tuple(nodes))


def create_topics(bootstrap: str, topics: dict[str, int], timeout: float = 30.0,
                  client: dict[str, str] | None = None) -> None:
    """Create ``{topic: partitions}`` that do not exist yet (existing ones are left alone), with
    the cluster's default replication factor."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    from logad.io.kafka import librdkafka_conf

    admin = AdminClient(librdkafka_conf(bootstrap, client or {}))
    try:
        existing = admin.list_topics(timeout=timeout).topics
    except Exception as e:
        raise BrokerError(f"cannot reach Kafka at {bootstrap}: {e}") from e
    wanted = [NewTopic(t, n) for t, n in topics.items() if t not in existing]
    for topic, future in admin.create_topics(wanted, operation_timeout=timeout).items() if wanted else []:
        try:
            future.result(timeout)
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # another producer made it first: fine
                raise BrokerError(f"cannot create topic {topic} on {bootstrap}: {e}") from e
        except Exception as e:
            raise BrokerError(f"cannot create topic {topic} on {bootstrap}: {e}") from e
