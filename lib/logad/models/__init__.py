"""Anomaly models: template vectors (word2vec), sequence models behind one ``ModelConfig``
(ATT-GRU and its peers), and the windows they read."""

from logad.models.sequence import KINDS, ModelConfig, SequenceClassifier

__all__ = ["KINDS", "ModelConfig", "SequenceClassifier"]
