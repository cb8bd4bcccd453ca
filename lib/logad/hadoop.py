"""A real single-node Apache Hadoop on 127.0.0.1: HDFS and YARN, for the tests, the docs, a laptop.

Apache Hadoop's own jars (:data:`COORDINATES`, the 3.4.x line that pyspark's Hadoop client
ships, resolved from Maven once and cached like the broker's) run as four JVMs: a NameNode and a
DataNode (HDFS, replication 1) and a ResourceManager and a NodeManager (YARN, the FIFO
scheduler). Everything listens on 127.0.0.1 only; the state folder holds the configuration
(``conf/``, the ``HADOOP_CONF_DIR`` that spark-submit reads), the NameNode's metadata, the
DataNode's blocks, the NodeManager's local and log folders, and one log file per daemon. The
NameNode is formatted on first start; a restart keeps the files.

A cluster you already run needs none of this: point ``HADOOP_CONF_DIR`` at its configuration.

Ports, for a base port P: NameNode RPC P (``hdfs://127.0.0.1:P``) and web P+1; DataNode P+2..P+4;
ResourceManager P+5..P+9 (web P+9); NodeManager P+10..P+12.

Single-node choices, each one line in :func:`_site`: the NodeManager offers ``memory_mb`` and
``vcores`` whatever the machine has (a 2-core machine runs an application master and two
executors), and its physical and virtual memory checks are off, because a PySpark executor's
Python workers (torch among them) live in the container's process tree and a test machine has no
memory to spare for the overhead a production cluster sets (``spark.executor.memoryOverhead``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from logad.errors import HadoopError
from logad.io.broker import port_open, running_pid

log = logging.getLogger(__name__)

HADOOP_VERSION = "3.4.1"
COORDINATES = tuple(f"org.apache.hadoop:{a}:{HADOOP_VERSION}" for a in (
    "hadoop-common", "hadoop-hdfs", "hadoop-yarn-server-resourcemanager",
    "hadoop-yarn-server-nodemanager", "hadoop-yarn-server-timelineservice"))

# (name, main class, heap): the start order
DAEMONS = (
    ("namenode", "org.apache.hadoop.hdfs.server.namenode.NameNode", "512m"),
    ("datanode", "org.apache.hadoop.hdfs.server.datanode.DataNode", "256m"),
    ("resourcemanager", "org.apache.hadoop.yarn.server.resourcemanager.ResourceManager", "512m"),
    ("nodemanager", "org.apache.hadoop.yarn.server.nodemanager.NodeManager", "384m"),
)
# Hadoop 3.4 reflects into the JDK in places (Jersey, Guice, the NodeManager's shell); Java 17
# refuses that without these, as it does for Spark.
_OPENS = [f"--add-opens=java.base/{p}=ALL-UNNAMED" for p in (
    "java.lang", "java.lang.reflect", "java.io", "java.net", "java.nio", "java.util",
    "java.util.concurrent", "sun.nio.ch", "sun.security.action")]

_LOG4J = """log4j.rootLogger=INFO,out
log4j.appender.out=org.apache.log4j.ConsoleAppender
log4j.appender.out.layout=org.apache.log4j.PatternLayout
log4j.appender.out.layout.ConversionPattern=%d{ISO8601} %p %c{1}: %m%n
log4j.logger.org.apache.hadoop=WARN
log4j.logger.org.apache.hadoop.hdfs.server.namenode.NameNode=INFO
log4j.logger.org.apache.hadoop.yarn.server.resourcemanager.ResourceManager=INFO
log4j.logger.org.apache.hadoop.yarn.server.nodemanager.containermanager.launcher=INFO
log4j.logger.org.apache.hadoop.yarn.server.nodemanager.containermanager.container=INFO
log4j.logger.org.eclipse.jetty=WARN
"""


@dataclass(frozen=True)
class LocalHadoop:
    """Where the local cluster keeps its state, which ports it takes and what YARN offers."""

    state_dir: str = ".logad/hadoop"
    port: int = 19000
    memory_mb: int = 8192
    vcores: int = 4
    host: str = field(default="127.0.0.1", init=False)

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536 - 13:
            raise HadoopError(f"LocalHadoop.port={self.port} leaves no room for the 13 ports it takes")
        if self.memory_mb < 2048 or self.vcores < 2:
            raise HadoopError("the NodeManager needs at least 2048 MB and 2 vcores for an application "
                              "master and one executor")

    @property
    def state_path(self) -> Path:
        return Path(os.path.expanduser(self.state_dir)).absolute()

    @property
    def conf_dir(self) -> Path:
        """``HADOOP_CONF_DIR`` for spark-submit and for any Hadoop client of this cluster."""
        return self.state_path / "conf"

    @property
    def fs(self) -> str:
        """The default filesystem: ``hdfs://127.0.0.1:P``."""
        return f"hdfs://{self.host}:{self.port}"

    @property
    def web(self) -> dict[str, str]:
        return {"namenode": f"http://{self.host}:{self.port + 1}",
                "resourcemanager": f"http://{self.host}:{self.port + 9}"}


@dataclass(frozen=True)
class HadoopStatus:
    """What ``logad hadoop status`` reports."""

    running: dict[str, int | None]
    fs: str
    conf_dir: str
    live_datanodes: int
    active_nodemanagers: int

    @property
    def ready(self) -> bool:
        return all(self.running.values()) and self.live_datanodes > 0 and self.active_nodemanagers > 0


def _site(cfg: LocalHadoop) -> dict[str, dict[str, str]]:
    h, p, s = cfg.host, cfg.port, cfg.state_path
    return {
        "core-site.xml": {
            "fs.defaultFS": cfg.fs,
            "hadoop.tmp.dir": str(s / "tmp"),
        },
        "hdfs-site.xml": {
            "dfs.replication": "1",
            "dfs.namenode.name.dir": str(s / "namenode"),
            "dfs.datanode.data.dir": str(s / "datanode"),
            "dfs.namenode.rpc-address": f"{h}:{p}",
            "dfs.namenode.http-address": f"{h}:{p + 1}",
            "dfs.namenode.secondary.http-address": f"{h}:0",
            "dfs.datanode.address": f"{h}:{p + 2}",
            "dfs.datanode.http.address": f"{h}:{p + 3}",
            "dfs.datanode.ipc.address": f"{h}:{p + 4}",
            "dfs.datanode.hostname": h,
            # one user runs the daemons and the jobs on a test machine: no HDFS permission model
            "dfs.permissions.enabled": "false",
            # a small disk is normal here: do not refuse writes at the production reserve
            "dfs.datanode.du.reserved": "0",
            "dfs.namenode.resource.du.reserved": "10485760",
            "dfs.namenode.safemode.extension": "0",
            "dfs.heartbeat.interval": "1",
        },
        "yarn-site.xml": {
            "yarn.resourcemanager.hostname": h,
            "yarn.resourcemanager.scheduler.address": f"{h}:{p + 5}",
            "yarn.resourcemanager.resource-tracker.address": f"{h}:{p + 6}",
            "yarn.resourcemanager.address": f"{h}:{p + 7}",
            "yarn.resourcemanager.admin.address": f"{h}:{p + 8}",
            "yarn.resourcemanager.webapp.address": f"{h}:{p + 9}",
            "yarn.resourcemanager.scheduler.class":
                "org.apache.hadoop.yarn.server.resourcemanager.scheduler.fifo.FifoScheduler",
            "yarn.nodemanager.hostname": h,
            "yarn.nodemanager.address": f"{h}:{p + 10}",
            "yarn.nodemanager.localizer.address": f"{h}:{p + 11}",
            "yarn.nodemanager.webapp.address": f"{h}:{p + 12}",
            "yarn.nodemanager.local-dirs": str(s / "nm-local"),
            "yarn.nodemanager.log-dirs": str(s / "nm-logs"),
            "yarn.nodemanager.resource.memory-mb": str(cfg.memory_mb),
            "yarn.nodemanager.resource.cpu-vcores": str(cfg.vcores),
            "yarn.scheduler.minimum-allocation-mb": "256",
            "yarn.scheduler.maximum-allocation-mb": str(cfg.memory_mb),
            "yarn.scheduler.maximum-allocation-vcores": str(cfg.vcores),
            "yarn.nodemanager.pmem-check-enabled": "false",
            "yarn.nodemanager.vmem-check-enabled": "false",
            "yarn.nodemanager.disk-health-checker.max-disk-utilization-per-disk-percentage": "99",
            "yarn.nodemanager.env-whitelist":
                "JAVA_HOME,HADOOP_COMMON_HOME,HADOOP_HDFS_HOME,HADOOP_CONF_DIR,HADOOP_YARN_HOME,"
                "PATH,LANG,TZ,SPARK_LOCAL_IP",
            # keep a finished container's folder a while: its stderr is what a failure test reads
            "yarn.nodemanager.delete.debug-delay-sec": "600",
            "yarn.nodemanager.recovery.enabled": "false",
            "yarn.resourcemanager.nodemanager-connect-retries": "3",
            "yarn.nodemanager.resourcemanager.minimum.version": "NONE",
        },
    }


def _xml(props: dict[str, str]) -> str:
    body = "\n".join(f"  <property><name>{escape(k)}</name><value>{escape(v)}</value></property>"
                     for k, v in props.items())
    return f'<?xml version="1.0"?>\n<configuration>\n{body}\n</configuration>\n'


def write_conf(cfg: LocalHadoop) -> Path:
    """Write ``conf/`` (core, hdfs and yarn site files, log4j) and return it."""
    cfg.conf_dir.mkdir(parents=True, exist_ok=True)
    # The NameNode's and DataNode's web servers (where /jmx lives) look for webapps/<name> on the
    # classpath; Hadoop's tarball ships those folders beside the jars, Maven does not.
    for app in ("hdfs", "datanode", "secondary"):
        (cfg.conf_dir / "webapps" / app / "WEB-INF").mkdir(parents=True, exist_ok=True)
    for name, props in _site(cfg).items():
        (cfg.conf_dir / name).write_text(_xml(props))
    (cfg.conf_dir / "log4j.properties").write_text(_LOG4J)
    return cfg.conf_dir


def java_home() -> str:
    """``$JAVA_HOME``, else the JDK behind ``java`` on PATH (the containers need it)."""
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    java = shutil.which("java")
    if java is None:
        raise HadoopError("java is not on PATH: install Java 17 (Hadoop runs on the JVM)")
    return str(Path(os.path.realpath(java)).parent.parent)


def classpath() -> str:
    from logad import jars

    return ":".join(jars.resolve(COORDINATES, purpose="hadoop", skip_shipped=False))


def _pid_file(cfg: LocalHadoop, name: str) -> Path:
    return cfg.state_path / f"{name}.pid"


def log_file(cfg: LocalHadoop, name: str) -> Path:
    return cfg.state_path / f"{name}.log"


def _read_pid(cfg: LocalHadoop, name: str) -> int | None:
    return running_pid(_pid_file(cfg, name))


def _env(cfg: LocalHadoop) -> dict[str, str]:
    env = dict(os.environ)
    # containers inherit these (yarn.nodemanager.env-whitelist): Spark binds to loopback in them
    env.update(JAVA_HOME=java_home(), HADOOP_CONF_DIR=str(cfg.conf_dir), SPARK_LOCAL_IP=cfg.host)
    return env


def _java(cfg: LocalHadoop, main: str, heap: str, cp: str, *args: str) -> list[str]:
    return ["java", f"-Xmx{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{cfg.conf_dir / 'log4j.properties'}",
            f"-Dhadoop.log.dir={cfg.state_path}", "-Djava.net.preferIPv4Stack=true", *_OPENS,
            "-cp", f"{cfg.conf_dir}:{cp}", main, *args]


def _format(cfg: LocalHadoop, cp: str) -> None:
    if (cfg.state_path / "namenode" / "current" / "VERSION").is_file():
        return
    out = subprocess.run(_java(cfg, DAEMONS[0][1], "256m", cp, "-format", "-nonInteractive", "-force"),
                         capture_output=True, text=True, env=_env(cfg), check=False)
    if out.returncode != 0:
        raise HadoopError("formatting the NameNode failed: "
                          + _last_error(out.stdout + out.stderr))


def start(cfg: LocalHadoop, wait_s: float = 120.0) -> HadoopStatus:
    """Start each daemon that is not running, then wait until HDFS takes writes (a live DataNode,
    safe mode off) and YARN has an active NodeManager.

    Example:
        >>> start(LocalHadoop()).fs  # doctest: +SKIP
        'hdfs://127.0.0.1:19000'
    """
    cfg.state_path.mkdir(parents=True, exist_ok=True)
    write_conf(cfg)
    cp = classpath()
    _format(cfg, cp)
    started = []
    for name, main, heap in DAEMONS:
        if _read_pid(cfg, name) is not None:
            continue
        if name == "namenode" and port_open(cfg.host, cfg.port):
            raise HadoopError(f"port {cfg.port} on {cfg.host} is in use by another program; "
                              "stop it or choose another base port (--port)")
        with open(log_file(cfg, name), "ab") as out:
            proc = subprocess.Popen(_java(cfg, main, heap, cp), stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=_env(cfg), start_new_session=True)
        _pid_file(cfg, name).write_text(str(proc.pid))
        started.append(name)
    st = wait_ready(cfg, wait_s)
    if started:
        log.info("Hadoop %s running (%s started) on %s; HADOOP_CONF_DIR=%s", HADOOP_VERSION,
                 ", ".join(started), cfg.fs, cfg.conf_dir)
    return st


def _jmx(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=2) as r:
        beans = json.load(r).get("beans", [])
    return beans[0] if beans else {}


def status(cfg: LocalHadoop) -> HadoopStatus:
    """Which daemons run, how many DataNodes HDFS counts live (0 while in safe mode) and how many
    NodeManagers YARN counts active."""
    running = {name: _read_pid(cfg, name) for name, _, _ in DAEMONS}
    live = active = 0
    try:
        fsn = _jmx(f"{cfg.web['namenode']}/jmx?qry=Hadoop:service=NameNode,name=FSNamesystemState")
        info = _jmx(f"{cfg.web['namenode']}/jmx?qry=Hadoop:service=NameNode,name=NameNodeInfo")
        live = 0 if info.get("Safemode") else int(fsn.get("NumLiveDataNodes", 0))
    except (OSError, ValueError):
        pass
    try:
        with urllib.request.urlopen(f"{cfg.web['resourcemanager']}/ws/v1/cluster/metrics", timeout=2) as r:
            active = int(json.load(r)["clusterMetrics"]["activeNodes"])
    except (OSError, ValueError, KeyError):
        pass
    return HadoopStatus(running, cfg.fs, str(cfg.conf_dir), live, active)


def wait_ready(cfg: LocalHadoop, wait_s: float = 120.0) -> HadoopStatus:
    deadline = time.monotonic() + wait_s
    st = status(cfg)
    while not st.ready:
        dead = [n for n, pid in st.running.items() if pid is None]
        if dead:
            raise HadoopError(f"the {dead[0]} exited at start; see {log_file(cfg, dead[0])}: "
                              + _last_error(_read(log_file(cfg, dead[0]))))
        if time.monotonic() > deadline:
            raise HadoopError(f"Hadoop was not ready within {wait_s:.0f}s ({st.live_datanodes} live "
                              f"DataNodes, {st.active_nodemanagers} NodeManagers); see "
                              f"{cfg.state_path}/*.log")
        time.sleep(0.5)
        st = status(cfg)
    return st


def stop(cfg: LocalHadoop, wait_s: float = 30.0) -> bool:
    """Stop every daemon (SIGTERM, then SIGKILL after ``wait_s``), in reverse start order."""
    stopped = False
    for name, _, _ in reversed(DAEMONS):
        pid = _read_pid(cfg, name)
        if pid is None:
            continue
        stopped = True
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + wait_s
        while _read_pid(cfg, name) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        if _read_pid(cfg, name) is not None:
            log.warning("the %s did not stop within %.0fs; killing it", name, wait_s)
            os.killpg(pid, signal.SIGKILL)
        _pid_file(cfg, name).unlink(missing_ok=True)
    if stopped:
        log.info("Hadoop stopped")
    return stopped


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _last_error(text: str) -> str:
    lines = [x.strip() for x in text.splitlines() if "ERROR" in x or "Exception" in x]
    if not lines:
        lines = [x.strip() for x in text.splitlines() if x.strip()]
    return lines[-1][:300] if lines else "no output"
