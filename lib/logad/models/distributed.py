"""Training across Spark with ``pyspark.ml.torch.distributor.TorchDistributor``.

:func:`train_with_distributor` starts ``num_processes`` training processes (on the driver in local
mode, on executors otherwise); each joins a process group (gloo on CPU, NCCL on GPUs), trains its
shard of the examples with DistributedDataParallel (:func:`logad.models.train.fit`), and rank 0
returns the weights. :func:`train_on_rank` is module-level and imports torch inside, so it is
safe to ship to workers; it does no I/O.

Example:
    >>> result = train_with_distributor(spark, ModelConfig(vocab_size=40), TrainConfig(),
    ...                                 train, valid, vectors, num_processes=2)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from pyspark.sql import SparkSession

    from logad.models.sequence import ModelConfig
    from logad.models.train import BatchSource, Example, FitResult, TrainConfig

log = logging.getLogger(__name__)


def train_on_rank(config: dict[str, Any], train: dict[str, Any], examples: Any,
                  valid: list[tuple[list[int], int, list[int] | None, int | None]], vectors: Any) -> dict[str, Any] | None:
    """One rank's work; rank 0 returns weights, history, threshold and every rank's parameter
    digest (so a caller can check that the ranks agree). ``examples`` is a list of
    ``(events, label)`` or a :class:`logad.models.train.BatchSource` (petastorm, opened here)."""
    import hashlib
    import logging
    import os
    import warnings

    import torch
    import torch.distributed as dist

    from logad.models.sequence import ModelConfig
    from logad.models.train import Example, TrainConfig, fit

    warnings.filterwarnings("ignore", category=FutureWarning)  # petastorm on pyarrow 14: one per call
    logging.basicConfig(level=logging.INFO, format="%(asctime)s rank " + os.environ.get("RANK", "?")
                        + " %(name)s: %(message)s")
    for noisy in ("petastorm", "gensim"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    use_cuda = torch.cuda.is_available()
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
        if rank != 0:
            return None
        return {"state": state, "history": result.history, "threshold": result.threshold,
                "best_epoch": result.best_epoch, "digests": digests, "device": str(device)}
    finally:
        dist.destroy_process_group()


def train_with_distributor(spark: SparkSession, config: ModelConfig, train: TrainConfig,
                           examples: Sequence[Example] | BatchSource, valid: Sequence[Example],
                           vectors: np.ndarray | None = None, num_processes: int = 2,
                           use_gpu: bool = False, local_mode: bool | None = None) -> FitResult:
    """Train with TorchDistributor; ``local_mode`` defaults to True on a ``local`` master."""
    from dataclasses import asdict

    from pyspark.ml.torch.distributor import TorchDistributor

    from logad.models.sequence import SequenceClassifier
    from logad.models.train import FitResult

    if local_mode is None:
        local_mode = (spark.sparkContext.master or "").startswith("local")
    log.info("TorchDistributor: %d processes, %s, %s mode", num_processes, "GPU" if use_gpu else "CPU",
             "local" if local_mode else "cluster")
    out = TorchDistributor(num_processes=num_processes, local_mode=local_mode, use_gpu=use_gpu).run(
        train_on_rank, config.to_dict(), asdict(train),
        examples if hasattr(examples, "batches") else [(e.events, e.label) for e in examples],
        [(e.events, e.label, e.counts, e.session) for e in valid], None if vectors is None else vectors.tolist())
    if not out or len(set(out["digests"])) != 1:
        raise RuntimeError(f"the ranks ended with different parameters: {out and out['digests']}")
    model = SequenceClassifier(config)
    model.load_state_dict(out["state"])
    result = FitResult(model, out["best_epoch"], out["history"], out["threshold"])
    result.digests = out["digests"]  # type: ignore[attr-defined]
    return result
