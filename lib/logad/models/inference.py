"""Model inference: the one batched forward pass, and the pandas UDF that runs it in Spark.

- :func:`infer`: P(abnormal) or attention weights of padded inputs, in batches, without
  gradients, on the model's device. Training's validation (:func:`logad.models.fit.predict`),
  the scoring UDF and the explanations of :mod:`logad.live_scoring` all call it.
- :class:`ModelRef`: which model a UDF scores with, by path or by its bytes in a Spark broadcast
  (the stream broadcasts the artifact it validated, so executors cannot read another file), plus
  the vectors of templates the model never saw (rows after its vocabulary, from their words).
- :func:`score_udf` -> a UDF ``(x, length, repeats) -> P(abnormal)``; GPU when the executor has
  one, else CPU. :func:`score_inputs` adds ``score``; :func:`session_scores` takes a session's
  score as the max over its windows and remembers which window that was.

Example:
    >>> scored = session_scores(score_inputs(inputs(sessions, vocab), "models/att_gru/v1/model.pt"))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Tuple  # noqa: UP035 (pyspark reads Tuple, not tuple)

import pandas as pd  # at module level: pyspark resolves the UDF's type hints in these globals

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

log = logging.getLogger(__name__)

_MODELS: dict[str, Any] = {}  # per Python worker: model key -> (model, its own embedding matrix)


@dataclass(frozen=True)
class ModelRef:
    """A model for the UDF: ``path`` (read on the worker) or ``data`` (a broadcast of the file's
    bytes) under ``key``; ``extra``: vectors (n, dim) for indices vocab_size .. vocab_size+n-1."""

    key: str
    path: str
    data: Any = None  # pyspark Broadcast[bytes]
    extra: Any = None  # numpy float32 (n, dim) or None


def load_cached(ref: ModelRef | str) -> Any:
    """The model, loaded once per worker process (a path is reloaded when the file changes), with
    ``ref.extra`` appended to its template vectors for this call."""
    import torch

    from logad.models.fit import load_artifact

    if isinstance(ref, str):
        st = os.stat(ref) if os.path.exists(ref) else None
        ref = ModelRef(f"{ref}:{st.st_mtime if st else 0}:{st.st_size if st else -1}", ref)
    if ref.key not in _MODELS:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        model = load_artifact(ref.path, device, None if ref.data is None else ref.data.value)[0]
        _MODELS.clear()
        _MODELS[ref.key] = (model, model.embed.weight.detach().clone())
        log.info("loaded model %s on %s", ref.path, device)
    model, base = _MODELS[ref.key]
    weight = base if ref.extra is None or not len(ref.extra) else torch.cat(
        [base, torch.as_tensor(ref.extra, dtype=base.dtype, device=base.device)])
    if model.embed.weight.shape != weight.shape or not torch.equal(model.embed.weight, weight):
        model.embed = torch.nn.Embedding.from_pretrained(weight, freeze=True, padding_idx=0)
    return model


def infer(model: Any, x: Any, lengths: Any, repeats: Any = None, *, batch_size: int = 4096,
          output: str = "score") -> Any:
    """Batched inference: ``x`` (N, T) template indices, ``lengths`` (N,), ``repeats`` (N, T) run
    lengths (ignored unless the model was trained on them).

    ``output="score"`` gives P(abnormal) as a float64 array (N,); ``output="weights"`` the
    attention weight of every event, float32 (N, T) (zeros for models without attention).
    """
    import numpy as np
    import torch

    if output not in ("score", "weights"):
        raise ValueError(f"output={output!r}: use score or weights")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    use_repeats = repeats is not None and model.config.repeats
    parts: list[Any] = []
    with torch.no_grad():
        for a in range(0, len(x), batch_size):
            xb = x[a:a + batch_size].to(device)  # (B, T)
            nb = lengths[a:a + batch_size]  # (B,)
            rb = repeats[a:a + batch_size].to(device) if use_repeats else None  # (B, T)
            if output == "weights":
                parts.append(model.weights(xb, nb, rb).float().cpu().numpy())  # (B, T)
            else:
                logits, _ = model(xb, nb, rb)  # (B, 2)
                parts.append(torch.softmax(logits, dim=-1)[:, 1].double().cpu().numpy())  # (B,)
    model.train(was_training)
    if parts:
        return np.concatenate(parts)
    return np.zeros((0, x.shape[1]) if output == "weights" else 0,
                    dtype=np.float32 if output == "weights" else np.float64)


def score_udf(ref: ModelRef | str, batch_size: int = 4096) -> Any:
    """A Scalar Iterator pandas UDF over ``(x, length, repeats)`` columns -> ``double`` score."""
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("double")  # type: ignore[call-overload]
    def score(batches: Iterator[Tuple[pd.Series, pd.Series, pd.Series]]) -> Iterator[pd.Series]:  # noqa: UP006
        import numpy as np
        import torch

        # as many torch threads as the task has cores (spark.task.cpus): torch's default is every
        # core of the machine in each of the executor's Python workers, which oversubscribes the
        # cores the other tasks run on
        from pyspark import TaskContext

        ctx = TaskContext.get()
        torch.set_num_threads(max(1, ctx.cpus() if ctx is not None else 1))
        model = load_cached(ref)  # before the first batch: once per task at most
        for xs, lengths, reps in batches:
            if not len(xs):
                yield pd.Series([], dtype="float64")
                continue
            x = torch.as_tensor(np.stack(xs.to_numpy()), dtype=torch.long)  # (N, T)
            n = torch.as_tensor(lengths.to_numpy(copy=True), dtype=torch.long)  # (N,)
            r = torch.as_tensor(np.stack(reps.to_numpy()), dtype=torch.long)  # (N, T)
            yield pd.Series(infer(model, x, n, r, batch_size=batch_size))

    return score


def score_inputs(rows: DataFrame, ref: ModelRef | str, batch_size: int = 4096) -> DataFrame:
    """``rows`` with a ``score`` column (P(abnormal) per window or session)."""
    udf = score_udf(ref, batch_size)
    cols: list[Column | str] = ["x", "length", "repeats"]
    return rows.withColumn("score", udf(*cols))


def session_scores(scored: DataFrame) -> DataFrame:
    """One row per session: its label, the max score over its windows and that window's index."""
    from pyspark.sql import functions as F

    return scored.groupBy("session_id").agg(F.first("label").alias("label"), F.max("score").alias("score"),
                                            F.max_by("window", "score").alias("top_window"),
                                            F.count("*").alias("windows"))


__all__ = ["ModelRef", "load_cached", "score_inputs", "score_udf", "session_scores"]
