"""A real Spark standalone cluster on 127.0.0.1: one master and N workers, from the pyspark install.

The lab runs its applications here (and the submit test of ``submit.sh`` uses it) because a
standalone cluster is what ``local[*]`` is not: executors are separate JVMs launched by workers,
each writes its own ``stderr`` log under the worker's work dir (``<work>/<app-id>/<executor-id>/``),
tasks of one executor interleave in that file, and an executor can be killed and relaunched.

Each worker binds its own loopback address (``127.0.0.2``, ``127.0.0.3``, ...: all of 127/8 is
loopback on Linux), so its executors are on a host of their own, as on a cluster: Spark never
runs a speculative copy on the host of the original attempt, so one shared host would switch
speculation off. Each worker also gets its own work dir and ``SPARK_LOCAL_DIRS`` (shuffle files),
so the lab can find an executor's log and shuffle output by worker. Ports are picked free at start; the master's JSON
status page says when every worker has registered.

Example:
    >>> with StandaloneCluster("/tmp/lab", workers=2, cores=2) as c:  # doctest: +SKIP
    ...     print(c.url)
    spark://127.0.0.1:41235
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from logad.errors import ClusterError

log = logging.getLogger(__name__)

HOST = "127.0.0.1"


def spark_home() -> str:
    """``$SPARK_HOME`` if set, else the pyspark package (pip's pyspark carries ``bin/spark-class``)."""
    env = os.environ.get("SPARK_HOME")
    if env:
        return env
    import pyspark

    return str(Path(pyspark.__file__).parent)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class StandaloneCluster:
    """Master + ``workers`` workers (``cores`` cores, ``memory`` each) under ``root``.

    Worker ``i`` is named ``worker-i``; its work dir is ``root/workers/worker-i`` and its local
    (shuffle) dir ``root/local/worker-i``. Daemon logs go to ``root/daemons``.
    """

    def __init__(self, root: str | Path, workers: int = 2, cores: int = 2, memory: str = "2g",
                 start_timeout_s: float = 90.0) -> None:
        if workers < 1 or cores < 1:
            raise ClusterError("a cluster needs at least one worker with one core")
        self.root = Path(root).resolve()
        self.workers, self.cores, self.memory = workers, cores, memory
        self.start_timeout_s = start_timeout_s
        self.port = self.ui_port = 0
        self._procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"spark://{HOST}:{self.port}"

    @property
    def worker_names(self) -> list[str]:
        return [f"worker-{i + 1}" for i in range(self.workers)]

    def worker_host(self, worker: str) -> str:
        return f"127.0.0.{int(worker.rsplit('-', 1)[1]) + 1}"

    def work_dir(self, worker: str) -> Path:
        return self.root / "workers" / worker

    def local_dir(self, worker: str) -> Path:
        return self.root / "local" / worker

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        daemons = self.root / "daemons"
        daemons.mkdir(parents=True, exist_ok=True)
        out = open(daemons / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
        cmd = [str(Path(spark_home()) / "bin" / "spark-class"), *args]
        self._procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True))
        out.close()

    def start(self) -> StandaloneCluster:
        env = dict(os.environ, SPARK_HOME=spark_home(), SPARK_LOCAL_IP=HOST,
                   SPARK_NO_DAEMONIZE="1")
        self.port, self.ui_port = free_port(), free_port()
        self._spawn("master", ["org.apache.spark.deploy.master.Master", "--host", HOST,
                               "--port", str(self.port), "--webui-port", str(self.ui_port)], env)
        self._wait(0)
        for w in self.worker_names:
            self.work_dir(w).mkdir(parents=True, exist_ok=True)
            self.local_dir(w).mkdir(parents=True, exist_ok=True)
            self._spawn(w, ["org.apache.spark.deploy.worker.Worker", "--host", self.worker_host(w),
                            "--cores", str(self.cores), "--memory", self.memory,
                            "--work-dir", str(self.work_dir(w)), "--webui-port", str(free_port()),
                            self.url], dict(env, SPARK_LOCAL_DIRS=str(self.local_dir(w)),
                                                    SPARK_LOCAL_IP=self.worker_host(w)))
        self._wait(self.workers)
        log.info("standalone cluster up at %s: %d workers x %d cores, %s each (daemon logs in %s)",
                 self.url, self.workers, self.cores, self.memory, self.root / "daemons")
        return self

    def status(self) -> dict[str, object]:
        """The master's JSON status page (workers, applications)."""
        with urllib.request.urlopen(f"http://{HOST}:{self.ui_port}/json/", timeout=5) as r:
            return dict(json.loads(r.read()))

    def alive_workers(self) -> int:
        workers = self.status().get("workers", [])
        assert isinstance(workers, list)
        return sum(1 for w in workers if w.get("state") == "ALIVE")

    def _wait(self, workers: int) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            dead = [p for p in self._procs if p.poll() is not None]
            if dead:
                self.stop()
                raise ClusterError(f"a Spark daemon exited at start (code {dead[0].returncode}); "
                                   f"see {self.root / 'daemons'}")
            try:
                if self.alive_workers() >= workers:
                    return
            except OSError:
                pass  # the master's page is not up yet
            if time.monotonic() > deadline:
                self.stop()
                raise ClusterError(f"the standalone cluster did not come up in {self.start_timeout_s:.0f}s "
                                   f"({workers} workers expected); see {self.root / 'daemons'}")
            time.sleep(0.5)

    def stop(self) -> None:
        for p in reversed(self._procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in self._procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self._procs.clear()

    def __enter__(self) -> StandaloneCluster:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
