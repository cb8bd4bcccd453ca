"""Faults the lab injects into real Spark tasks, decided by a seeded plan and recorded as they happen.

A :class:`FaultPlan` decides, from ``(seed, app, step, partition)`` alone, which fault (if any) a
task gets, so a run with the same seed injects the same faults into the same steps and partitions
(which TID runs them is the scheduler's business). The decision is made on the executor, in a
*gate* placed in each workload step (a pandas UDF that sees ``TaskContext``), and each injection
is appended to ``<faults>/<app-id>.jsonl`` with the task's TID before the fault acts.

Kinds, and what Spark does with them (checked against the event log by the tests):

=================  ======================================================  ==========================
kind               how                                                     Spark's task end reason
=================  ======================================================  ==========================
``exception``      the task raises (first attempt only; the retry passes)  ExceptionFailure
``kill``           the driver kills the attempt (``killTaskAttempt``)      TaskKilled
``executor_lost``  the executor JVM is killed (SIGKILL) mid-task           ExecutorLostFailure
``oom``            the task builds a string larger than the JVM heap       ExceptionFailure (OOM),
                   (``repeat``); the executor dies with exit code 52       then executor lost
``slow``           the attempt sleeps; speculation launches a copy         Success or TaskKilled
``fetch_failure``  a map output file is deleted between two jobs           FetchFailed (reducers)
``corrupt_record`` an input file gets a malformed record; the parse step   ExceptionFailure on
                   fails on every attempt, the job aborts                  every attempt
=================  ======================================================  ==========================

``kill``, ``slow`` and ``executor_lost`` leave no WARN/ERROR line in the failing task's own
workflow (the executor's last lines, or INFO kill lines): the faults a WARN/ERROR rule cannot see.
Disk full is not injected: it needs a size-limited filesystem (a loop mount or tmpfs, root).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logad.errors import ConfigError

KINDS = ("exception", "kill", "executor_lost", "oom", "slow", "fetch_failure", "corrupt_record")
GATED = ("exception", "kill", "executor_lost", "oom", "slow")  # decided per task in a gate
KILLS_EXECUTOR = ("executor_lost", "oom")
DEFAULT_RATES: Mapping[str, float] = {
    "exception": 0.02, "kill": 0.005, "executor_lost": 0.004, "oom": 0.003, "slow": 0.02,
    "fetch_failure": 0.3, "corrupt_record": 0.1,
}
OOM_CHARS = 1_500_000_000  # more than an executor heap of a few hundred MiB can hold


@dataclass(frozen=True)
class FaultPlan:
    """Which fault each (app, step, partition) gets. ``rates``: probability per gated task, and
    per application for ``fetch_failure`` and ``corrupt_record`` (per input file).

    At most one executor-killing fault (``executor_lost``, ``oom``) per application step: the
    lowest such partition keeps it, so a step cannot take every executor down at once.
    """

    seed: int = 0
    rates: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_RATES))
    slow_s: float = 8.0

    def __post_init__(self) -> None:
        bad = [k for k in self.rates if k not in KINDS]
        if bad:
            raise ConfigError(f"unknown fault kind {bad[0]!r}; known: {', '.join(KINDS)}")
        out = [k for k, r in self.rates.items() if not 0.0 <= r <= 1.0]
        if out:
            raise ConfigError(f"fault rate of {out[0]} must be in [0, 1], got {self.rates[out[0]]}")
        if sum(self.rates.get(k, 0.0) for k in GATED) > 1.0:
            raise ConfigError("the per-task fault rates add up to more than 1")

    def uniform(self, *key: object) -> float:
        """A uniform number in [0, 1) from the seed and ``key`` (stable across processes)."""
        h = hashlib.blake2b("|".join(map(str, (self.seed, *key))).encode(), digest_size=8)
        return int.from_bytes(h.digest(), "big") / 2.0**64

    def _gated(self, app: int, step: str, partition: int) -> str | None:
        u, acc = self.uniform(app, step, partition), 0.0
        for kind in GATED:
            acc += self.rates.get(kind, 0.0)
            if u < acc:
                return kind
        return None

    def task_fault(self, app: int, step: str, partition: int) -> str | None:
        """The gated fault of one task's first attempt (``None``: none)."""
        kind = self._gated(app, step, partition)
        if kind in KILLS_EXECUTOR and any(self._gated(app, step, p) in KILLS_EXECUTOR
                                          for p in range(partition)):
            return None
        return kind

    def app_fault(self, app: int, kind: str, index: int = 0) -> bool:
        """Whether an application-level fault (``fetch_failure``, ``corrupt_record`` of input
        file ``index``) happens in application ``app``."""
        return self.uniform(app, kind, index) < self.rates.get(kind, 0.0)

    def to_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "rates": dict(self.rates), "slow_s": self.slow_s}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> FaultPlan:
        return cls(int(d["seed"]), dict(d["rates"]), float(d.get("slow_s", 8.0)))


def record(faults_dir: str, app_id: str, **fields: Any) -> None:
    """Append one injection record (one ``write`` of one line: whole under concurrent appends)."""
    line = (json.dumps({"app_id": app_id, "at": time.time(), **fields}) + "\n").encode()
    fd = os.open(os.path.join(faults_dir, f"{app_id}.jsonl"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def executor_pid() -> int | None:
    """The executor JVM above this Python worker (``CoarseGrainedExecutorBackend``)."""
    pid = os.getppid()
    while pid > 1:
        try:
            if b"CoarseGrainedExecutorBackend" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return None


_GATED_TASKS: set[int] = set()  # task attempts this Python worker has already gated


def gate_length(plan: FaultPlan, app: int, app_id: str, step: str, faults_dir: str,
                oom_ok: bool = True) -> int:
    """Run in a task (first call per task attempt acts): inject this task's fault, if any.
    Returns the number of characters the step must build (``OOM_CHARS`` for ``oom``, else 0);
    a step that cannot build them (``oom_ok=False``: an RDD step) gets no ``oom``."""
    from pyspark import TaskContext

    tc = TaskContext.get()
    if tc is None:
        return 0
    tid = tc.taskAttemptId()
    if tid in _GATED_TASKS:
        return 0
    _GATED_TASKS.add(tid)
    if tc.attemptNumber() != 0:
        return 0
    kind = plan.task_fault(app, step, tc.partitionId())
    if kind is None or (kind == "oom" and not oom_ok):
        return 0
    record(faults_dir, app_id, fault=kind, step=step, partition=tc.partitionId(), tid=tid,
           stage=tc.stageId(), attempt=tc.attemptNumber())
    if kind == "exception":
        raise RuntimeError(f"record batch {tc.partitionId()} of {step} failed")
    if kind == "kill":
        Path(faults_dir, "kill").mkdir(exist_ok=True)
        Path(faults_dir, "kill", f"{app_id}.{tid}").touch()
        time.sleep(120)  # the driver kills this attempt within a second or so
    elif kind == "slow":
        time.sleep(plan.slow_s)
    elif kind == "executor_lost":
        pid = executor_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            time.sleep(60)  # the worker is torn down with its executor
    elif kind == "oom":
        return OOM_CHARS
    return 0
