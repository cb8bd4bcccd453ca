"""Training across Spark with ``pyspark.ml.torch.distributor.TorchDistributor``.

:func:`train_with_distributor` starts ``num_processes`` training processes (on the driver in local
mode, on executors otherwise); each joins a process group (gloo on CPU, NCCL on GPUs), trains its
shard of the examples with DistributedDataParallel (:func:`logad.models.fit.fit`), and every
rank returns rank 0's weights as the same bytes (:func:`rank0_result`). :func:`train_on_rank` is
module-level and imports torch inside, so it is safe to ship to workers; it does no I/O.

A lost executor (a killed container, a lost node) fails the whole barrier stage, and Spark never
runs a barrier ResultStage again; :func:`train_with_distributor` starts the ranks again itself, up
to ``spark.logad.train.maxAttempts`` (3) times, and they resume from the checkpoint. Past that it
raises :class:`~logad.errors.TrainingFailed` (exit code 3). A rank's own error is not retried.

Example:
    >>> result = train_with_distributor(spark, ModelConfig(vocab_size=40), TrainConfig(),
    ...                                 train, valid, vectors, num_processes=2)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from logad.errors import ConfigError, TrainingFailed

if TYPE_CHECKING:
    import numpy as np
    from pyspark.sql import SparkSession

    from logad.models.fit import BatchSource, Example, FitResult, TrainConfig
    from logad.models.sequence import ModelConfig

log = logging.getLogger(__name__)

MAX_ATTEMPTS_CONF = "spark.logad.train.maxAttempts"


def _max_attempts(spark: SparkSession) -> int:
    value = spark.conf.get(MAX_ATTEMPTS_CONF, "3") or "3"
    try:
        attempts = int(value)
    except ValueError:
        attempts = 0
    if attempts < 1:
        raise ConfigError(f"{MAX_ATTEMPTS_CONF}={value!r}: give a whole number of tries, at least 1")
    return attempts


def executor_lost(e: BaseException) -> str | None:
    """Spark's one-line reason when ``e`` is a job that failed because an executor was lost (a
    killed container, a lost node), else None: those are worth running again, other failures
    (a rank's own error) are not."""
    for line in str(e).splitlines():
        at = line.find("ExecutorLostFailure")
        if at >= 0:
            return line[at:at + 300].strip()
    return None


def rank0_result(payload: Any) -> bytes:
    """Rank 0's ``payload`` pickled, returned by every rank as the same bytes.

    In local mode TorchDistributor runs the ranks as processes of one ``torchrun`` and each writes
    its return value to the same output file, which the driver reads: the last rank to finish
    wins. A rank that returns ``None`` can therefore replace rank 0's result (seen in CI as
    "the ranks ended with different parameters: None"). When every rank returns identical bytes,
    any order or overlap of those writes leaves the same file. In cluster mode only rank 0's task
    output is collected, and this costs one broadcast of the payload."""
    import pickle

    import torch.distributed as dist

    mine = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL) if dist.get_rank() == 0 else None
    box: list[bytes | None] = [mine]
    dist.broadcast_object_list(box, src=0)
    assert box[0] is not None
    return box[0]


def train_on_rank(config: dict[str, Any], train: dict[str, Any], examples: Any,
                  valid: list[tuple[list[int], int, list[int] | None, int | None]], vectors: Any) -> bytes:
    """One rank's work; every rank returns rank 0's weights, history, threshold and every rank's
    parameter digest (so a caller can check that the ranks agree), pickled (:func:`rank0_result`).
    ``examples`` is a list of ``(events, label)`` or a :class:`logad.models.fit.BatchSource`
    (petastorm, opened here)."""
    import hashlib
    import os
    import warnings

    import torch
    import torch.distributed as dist

    from logad.models.fit import Example, TrainConfig, fit
    from logad.models.sequence import ModelConfig

    warnings.filterwarnings("ignore", category=FutureWarning)  # petastorm on pyarrow 14: one per call
    from logad.entry import configure_logging

    configure_logging(prefix="rank " + os.environ.get("RANK", "?"))  # a fresh process: its entry point
    use_cuda = torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))  # object collectives use the current device
    dist.init_process_group("nccl" if use_cuda else "gloo")
    try:
        rank = dist.get_rank()
        device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if use_cuda else "cpu")
        source = examples if hasattr(examples, "batches") else [Example(e, y) for e, y in examples]
        result = fit(ModelConfig(**config), TrainConfig(**train), source,
                     [Example(*v) for v in valid],
                     None if vectors is None else torch.as_tensor(vectors, dtype=torch.float32), device)
        state = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
        digest = hashlib.sha256(b"".join(state[k].numpy().tobytes() for k in sorted(state))).hexdigest()
        digests: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(digests, digest)
        payload = None
        if rank == 0:
            payload = {"state": {k: v.numpy() for k, v in state.items()}, "history": result.history,
                       "threshold": result.threshold, "best_epoch": result.best_epoch, "digests": digests,
                       "device": str(device)}
        return rank0_result(payload)
    finally:
        dist.destroy_process_group()


def train_with_distributor(spark: SparkSession, config: ModelConfig, train: TrainConfig,
                           examples: Sequence[Example] | BatchSource, valid: Sequence[Example],
                           vectors: np.ndarray | None = None, num_processes: int = 2,
                           use_gpu: bool = False, local_mode: bool | None = None) -> FitResult:
    """Train with TorchDistributor; ``local_mode`` defaults to True on a ``local`` master."""
    import pickle
    from dataclasses import asdict

    import torch
    from pyspark.ml.torch.distributor import TorchDistributor

    from logad.models.fit import FitResult
    from logad.models.sequence import SequenceClassifier

    if local_mode is None:
        local_mode = (spark.sparkContext.master or "").startswith("local")
    attempts = _max_attempts(spark)
    log.info("TorchDistributor: %d processes, %s, %s mode", num_processes, "GPU" if use_gpu else "CPU",
             "local" if local_mode else "cluster")
    for attempt in range(1, attempts + 1):
        try:
            blob = TorchDistributor(num_processes=num_processes, local_mode=local_mode, use_gpu=use_gpu).run(
                train_on_rank, config.to_dict(), asdict(train),
                examples if hasattr(examples, "batches") else [(e.events, e.label) for e in examples],
                [(e.events, e.label, e.counts, e.session) for e in valid],
                None if vectors is None else vectors.tolist())
            break
        except Exception as e:
            lost = executor_lost(e)
            if lost is None:
                raise
            resume = (f"the checkpoint {train.checkpoint} keeps the last finished epoch"
                      if train.checkpoint else "there is no checkpoint, so it starts over")
            if attempt == attempts:
                raise TrainingFailed(
                    f"training lost an executor {attempts} time(s), the last: {lost}; {resume}: run the "
                    "same command again to resume (spark.logad.train.maxAttempts sets the tries)") from e
            # Spark never retries a barrier ResultStage (it may have committed output), so the
            # ranks are started again here; each loads the checkpoint rank 0 wrote after an epoch
            log.warning("training attempt %d of %d lost an executor (%s); starting the ranks again: %s",
                        attempt, attempts, lost, resume)
    if not isinstance(blob, bytes):
        raise RuntimeError(f"TorchDistributor returned {type(blob).__name__}, not rank 0's result")
    out = pickle.loads(blob)  # noqa: S301 - bytes made by our own ranks in this run
    if not out or len(set(out["digests"])) != 1:
        raise RuntimeError(f"the ranks ended with different parameters: {out and out['digests']}")
    model = SequenceClassifier(config)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in out["state"].items()})
    result = FitResult(model, out["best_epoch"], out["history"], out["threshold"])
    result.digests = out["digests"]  # type: ignore[attr-defined]
    return result
