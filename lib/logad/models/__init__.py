"""Anomaly models: template vectors (word2vec), sequence models behind one ``ModelConfig``
(ATT-GRU and its peers), and the windows they read.

``KINDS`` needs no torch; the model classes import it when first asked for, so the command line
and the library's Spark-only paths start without loading torch.
"""

from __future__ import annotations

from typing import Any

# the sequence models one ModelConfig builds (logad.models.sequence)
KINDS = ("att_gru", "att_lstm", "gru", "lstm", "transformer_gru")

__all__ = ["KINDS", "ModelConfig", "SequenceClassifier"]


def __getattr__(name: str) -> Any:
    if name in ("ModelConfig", "SequenceClassifier"):
        from logad.models import sequence

        return getattr(sequence, name)
    raise AttributeError(f"module 'logad.models' has no attribute {name!r}")
