"""Baselines on event-count vectors: PCA (Xu et al., SOSP 2009), logistic regression and a
decision tree. Recent studies (Landauer et al. 2024; Le and Zhang 2022) find such simple models
reach F1 around 0.99 on HDFS, so every sequence model is reported beside them.

Each baseline has ``fit(sequences, labels)`` and ``score(sequences) -> P(abnormal)`` (PCA gives
0/1). PCA follows Xu et al.: TF-IDF-weighted, centred count vectors, the principal subspace that
keeps 95% of the variance, and the squared prediction error against the Q-statistic threshold
(Jackson and Mudholkar, alpha = 0.001). Unlike the original, which is unsupervised over all
data, it is fitted on the *normal* training sequences only (the protocols here train on
balanced sets, and a subspace fitted to half anomalies describes anomalies as normal).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def count_vectors(seqs: Sequence[Sequence[int]], size: int) -> np.ndarray:
    """(N, size) counts of each template index per sequence."""
    out = np.zeros((len(seqs), size), dtype=np.float64)
    for i, s in enumerate(seqs):
        for e in s:
            if 0 <= e < size:
                out[i, e] += 1
    return out


class PCADetector:
    """Xu et al.'s PCA detector on count vectors (see the module docstring)."""

    def __init__(self, size: int, variance: float = 0.95, c_alpha: float = 3.2905) -> None:
        self.size, self.variance, self.c_alpha = size, variance, c_alpha

    def _tfidf(self, x: np.ndarray) -> np.ndarray:
        return x * self.idf

    def fit(self, seqs: Sequence[Sequence[int]], labels: Sequence[int]) -> PCADetector:
        x = count_vectors([s for s, y in zip(seqs, labels, strict=True) if y == 0], self.size)
        df = np.maximum(1, (x > 0).sum(axis=0))
        self.idf = np.log(len(x) / df)
        x = self._tfidf(x)
        self.mean = x.mean(axis=0)
        x = x - self.mean
        cov = x.T @ x / max(1, len(x) - 1)
        eig, vec = np.linalg.eigh(cov)
        eig, vec = eig[::-1], vec[:, ::-1]
        eig = np.clip(eig, 0, None)
        total = eig.sum() or 1.0
        k = int(np.searchsorted(np.cumsum(eig) / total, self.variance) + 1)
        k = min(k, len(eig))
        p = vec[:, :k]
        self.residual = np.eye(self.size) - p @ p.T
        lam = eig[k:]
        phi = [float(np.sum(lam ** i)) for i in (1, 2, 3)]
        if phi[0] <= 0 or phi[1] <= 0:
            self.threshold = 0.0
        else:
            h0 = 1 - 2 * phi[0] * phi[2] / (3 * phi[1] ** 2)
            self.threshold = phi[0] * (self.c_alpha * np.sqrt(2 * phi[1] * h0 ** 2) / phi[0]
                                       + 1 + phi[1] * h0 * (h0 - 1) / phi[0] ** 2) ** (1 / h0)
        return self

    def score(self, seqs: Sequence[Sequence[int]]) -> np.ndarray:
        x = self._tfidf(count_vectors(seqs, self.size)) - self.mean
        spe = np.sum((x @ self.residual) ** 2, axis=1)
        return (spe > self.threshold + 1e-12).astype(np.float64)


class SklearnBaseline:
    """Logistic regression or a decision tree on count vectors."""

    def __init__(self, size: int, kind: str = "logreg", seed: int = 0) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.tree import DecisionTreeClassifier

        self.size = size
        self.model = (LogisticRegression(max_iter=2000, random_state=seed) if kind == "logreg"
                      else DecisionTreeClassifier(random_state=seed))

    def fit(self, seqs: Sequence[Sequence[int]], labels: Sequence[int]) -> SklearnBaseline:
        self.model.fit(count_vectors(seqs, self.size), np.asarray(labels))
        return self

    def score(self, seqs: Sequence[Sequence[int]]) -> np.ndarray:
        proba = self.model.predict_proba(count_vectors(seqs, self.size))
        return proba[:, 1] if proba.shape[1] == 2 else np.zeros(len(seqs))
