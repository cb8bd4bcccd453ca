"""The detector seam: every detector ``logad train`` fits, the registry keeps, ``logad score``
serves, ``logad retrain`` compares and ``logad explain`` reads, named in one table.

Two families. The sequence models (:data:`logad.models.KINDS`: ATT-GRU and its peers) are torch
modules trained by TorchDistributor and scored by the pandas UDF of :mod:`logad.models.inference`.
Every other detector is a *Spark-side detector*, one module with one class that

- ``train(kind, sessions, seed)``: fits on the training sessions (``template_ids``, and
  ``label`` when it is supervised) across the executors, returns the detector;
- ``scores(df)``: ``df`` (with ``template_ids``) plus a ``score`` column, higher = more anomalous;
- ``session_scores(sessions)``: one row per session (``session_id``, ``score``, ``top_window``);
- ``top_events(spark, rows, k)``: per row, its top ``k`` events as (index, weight, impact);
- ``vocabulary`` (the template ids it knows), ``threshold`` (set by the training job);
- ``save(path)`` and ``load(spark, path, threshold, kind)``.

Adding one is that module and a line in :data:`DETECTORS`: the training job, the scoring stage,
``explain``, ``retrain``, the CLI's choices and ``logad evaluate --protocol hdfs-blocks`` take it
from here. ``supervised`` says how the training job picks its threshold: the F1 optimum on the
labelled validation sessions, or (unsupervised) the score that the chosen share of held-out
history sessions reaches (``--false-alarm-rate``), with no label read.

This module imports nothing heavy, so the CLI can list the kinds without Spark or torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from logad.errors import ConfigError


@dataclass(frozen=True)
class DetectorKind:
    """Where a Spark-side detector lives and what it needs."""

    module: str
    cls: str
    artifact: str  # its file or folder inside v<N>/
    supervised: bool
    about: str


DETECTORS: dict[str, DetectorKind] = {
    "tree": DetectorKind("logad.models.counts", "CountDetector", "model", True,
                         "decision tree on event counts (Spark ML)"),
    "logreg": DetectorKind("logad.models.counts", "CountDetector", "model", True,
                           "logistic regression on event counts (Spark ML)"),
    "novelty": DetectorKind("logad.models.normal", "NoveltyDetector", "detector.json", False,
                            "the rarest template of the session in the history it learned (never seen: rarest)"),
    "length": DetectorKind("logad.models.normal", "LengthDetector", "detector.json", False,
                           "how far the session's length is from the history's (robust z of log length)"),
    "pca": DetectorKind("logad.models.normal", "PCADetector", "detector.json", False,
                        "Xu et al.'s PCA: the event-count vector's distance from the history's normal subspace"),
    "nextevent": DetectorKind("logad.models.nextevent", "NextEventDetector", "detector.json", False,
                              "DeepLog's idea: a GRU that predicts the next template; the session's largest surprise"),
}
UNSUPERVISED = tuple(k for k, d in DETECTORS.items() if not d.supervised)


def spec(kind: str) -> DetectorKind:
    """The entry of a Spark-side detector, or a clear error."""
    if kind not in DETECTORS:
        raise ConfigError(f"detector {kind!r}: use one of {', '.join(DETECTORS)}")
    return DETECTORS[kind]


def detector_class(kind: str) -> Any:
    """The class that trains and loads detectors of ``kind``."""
    s = spec(kind)
    return getattr(importlib.import_module(s.module), s.cls)


def supervised(kind: str) -> bool:
    """Whether ``kind`` learns from labels (every sequence model does)."""
    return kind not in DETECTORS or DETECTORS[kind].supervised


def session_scores_of(detector: Any, sessions: Any) -> Any:
    """One row per session: ``session_id``, ``score``, ``top_window`` (0: a detector that reads the
    whole session). The max over rows, as the sequence models' UDF gives a session its max window."""
    from pyspark.sql import functions as F

    return (detector.scores(sessions.select("session_id", "template_ids"))
            .groupBy("session_id").agg(F.max("score").alias("score"))
            .withColumn("top_window", F.lit(0)))


__all__ = ["DETECTORS", "UNSUPERVISED", "DetectorKind", "detector_class", "session_scores_of", "spec", "supervised"]
