"""Scoring in Spark: a pandas UDF in the Iterator form over model inputs
(:func:`logad.models.inputs.inputs`), the model loaded once per Python worker and batched.

- :func:`score_udf` (artifact path) -> a UDF ``(x, length, repeats) -> P(abnormal)``; GPU when
  the executor has one, else CPU.
- :func:`score_inputs` adds ``score`` to an inputs DataFrame; :func:`session_scores` takes a
  session's score as the max over its windows.

Example:
    >>> scored = session_scores(score_inputs(inputs(sessions, vocab), "models/att_gru/v1/model.pt"))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Tuple  # noqa: UP035 (pyspark reads Tuple, not tuple)

import pandas as pd  # at module level: pyspark resolves the UDF's type hints in these globals

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

log = logging.getLogger(__name__)

_MODELS: dict[tuple[str, float, int], Any] = {}  # per Python worker: (path, mtime, size) -> model


def load_cached(path: str) -> Any:
    """The artifact's model, loaded once per worker process (and again when the file changes)."""
    import torch

    from logad.models.train import load_artifact

    st = os.stat(path) if os.path.exists(path) else None
    key = (path, st.st_mtime if st else 0.0, st.st_size if st else -1)
    if key not in _MODELS:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        _MODELS.clear()
        _MODELS[key] = load_artifact(path, device)[0]
        log.info("loaded model %s on %s", path, device)
    return _MODELS[key]


def score_udf(artifact: str, batch_size: int = 4096) -> Any:
    """A Scalar Iterator pandas UDF over ``(x, length, repeats)`` columns -> ``double`` score."""
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("double")  # type: ignore[call-overload]
    def score(batches: Iterator[Tuple[pd.Series, pd.Series, pd.Series]]) -> Iterator[pd.Series]:  # noqa: UP006
        import numpy as np
        import torch

        model = load_cached(artifact)  # before the first batch: once per task at most
        device = next(model.parameters()).device
        for xs, lengths, reps in batches:
            out = np.zeros(len(xs), dtype=np.float64)
            for a in range(0, len(xs), batch_size):
                x = torch.as_tensor(np.stack(xs.iloc[a:a + batch_size].to_numpy()), dtype=torch.long)
                n = torch.as_tensor(lengths.iloc[a:a + batch_size].to_numpy(copy=True), dtype=torch.long)
                r = torch.as_tensor(np.stack(reps.iloc[a:a + batch_size].to_numpy()), dtype=torch.long)
                with torch.no_grad():
                    logits, _ = model(x.to(device), n, r.to(device) if model.config.repeats else None)
                out[a:a + len(x)] = torch.softmax(logits, dim=-1)[:, 1].cpu().numpy()
            yield pd.Series(out)

    return score


def score_inputs(rows: DataFrame, artifact: str, batch_size: int = 4096) -> DataFrame:
    """``rows`` with a ``score`` column (P(abnormal) per window or session)."""
    udf = score_udf(artifact, batch_size)
    cols: list[Column | str] = ["x", "length", "repeats"]
    return rows.withColumn("score", udf(*cols))


def session_scores(scored: DataFrame) -> DataFrame:
    """One row per session: its label and the max score over its windows."""
    from pyspark.sql import functions as F

    return scored.groupBy("session_id").agg(F.first("label").alias("label"), F.max("score").alias("score"),
                                            F.count("*").alias("windows"))


__all__ = ["load_cached", "score_inputs", "score_udf", "session_scores"]
