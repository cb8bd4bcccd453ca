"""Detectors that learn what normal looks like: trained on history without labels, the threshold
chosen without labels, served by the same scoring stage, alerts and ``explain`` as the supervised
ones (the :mod:`logad.models.detectors` seam).

An operator's cluster has no ``anomaly_label.csv``. What it has is history, mostly normal, with a
few percent of anomalies hidden in it. These detectors fit that history as it is (the labels of
the sessions, when there are any, are never read), score how unusual a session is (higher = more
unusual), and the training job sets the threshold at the score the chosen share of *held-out*
history sessions reaches (:func:`threshold_at_rate`, ``logad train --false-alarm-rate``, default
1%): on history that hides no anomaly that share is the false-alarm rate; where anomalies hide in
it, they take part of the share and the true rate is lower. The three are the simple detectors
Landauer et al. (2024, "A critical review of common log data sets used for evaluation of
sequence-based anomaly detection techniques") found as strong on these data as deep models:

- ``novelty``: the rarest template of the session, by the share of history sessions that hold it
  (``-log10((n_t + 0.5) / (N + 1))``): a template never seen is the rarest of all, and a template
  seen only in the few anomalies hidden in history is still rare.
- ``length``: how far the session's length is from history's, in robust units
  (``|log(1 + n) - median| / (1.4826 MAD)``), both ways (cut short or swollen).
- ``pca``: Xu et al. (SOSP 2009): TF-IDF weighted event-count vectors, the principal subspace
  that keeps 95% of the history's variance, the score the squared prediction error (SPE) of the
  session's vector outside it. The threshold is the false-alarm quantile, not Xu's Q-statistic
  (which assumes Gaussian residuals, and count vectors are not). The vector has the
  ``MAX_TEMPLATES`` most common templates plus one column for every other template (rarer ones and
  those never seen), so a new template shows as a large residual.

Fitting runs on the executors (Spark aggregations; PCA's Gram matrix summed per partition); the
fitted state is a few numbers per template, saved as ``detector.json`` (readable, no pickle) and
shipped with the scoring function to the executors (``mapInPandas``). Explanations: an event's
``impact`` is how much the score drops when its template is left out of the session (every line
of it), its ``weight`` the template's share of what the detector reads (its rarity, its lines,
its share of the residual).

Example:
    >>> det = NoveltyDetector.train("novelty", history)  # doctest: +SKIP
    >>> det.threshold = threshold_at_rate(det.score_lists(held_out_ids), 0.01)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from logad.errors import LogadError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

MAX_TEMPLATES = 500  # PCA's count-vector columns (the Gram matrix is this squared per partition)
PCA_VARIANCE = 0.95


def threshold_at_rate(scores: Sequence[float] | np.ndarray, rate: float) -> float:
    """The lowest score ``t`` at which at most ``rate`` of ``scores`` are ``>= t`` (the stream's
    rule is ``score >= threshold``); above the maximum when ties at the top hold more than that."""
    s = np.sort(np.asarray(scores, dtype=np.float64))
    if not len(s):
        raise LogadError("no held-out sessions to choose a threshold on: use more history or another "
                         "--valid-fraction")
    values = np.unique(s)
    reach = len(s) - np.searchsorted(s, values, side="left")  # how many score >= each value
    ok = values[reach <= rate * len(s) + 1e-9]  # counts, not shares: 1 - 95/100 is above 0.05 in floats
    return float(ok[0]) if len(ok) else float(np.nextafter(s[-1], np.inf))


def _seen(sessions: DataFrame) -> tuple[int, dict[str, int]]:
    """(number of sessions, template id -> sessions that hold it), counted on the executors."""
    from pyspark.sql import functions as F

    n = sessions.count()
    support = {r[0]: int(r[1]) for r in sessions.select(F.explode(F.array_distinct("template_ids")).alias("t"))
               .groupBy("t").count().collect()}
    if not n:
        raise LogadError("no history sessions to learn from")
    return n, support


@dataclass
class NormalDetector:
    """What the three share: state as JSON, scoring in ``mapInPandas``, leave-one-template-out
    explanations. A subclass gives ``train``, ``score_lists`` and ``weights``."""

    kind: str
    state: dict[str, Any]
    threshold: float = math.inf
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def train(cls, kind: str, sessions: DataFrame, seed: int = 0) -> NormalDetector:
        raise NotImplementedError

    def score_lists(self, sessions: Sequence[Sequence[str]]) -> np.ndarray:
        """The score of each session (its template ids, in order)."""
        raise NotImplementedError

    def weights(self, ids: Sequence[str]) -> dict[str, float]:
        """Per distinct template of one session, its share of what the detector reads (sums to 1)."""
        raise NotImplementedError

    @property
    def vocabulary(self) -> list[str]:
        """The template ids seen in the history it learned (the scores table counts the others)."""
        return list(self.state["templates"])

    # -- storage ---------------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        from logad.io import fs

        fs.write_text(str(path), json.dumps({"kind": self.kind, "state": self.state}))

    @classmethod
    def load(cls, spark: SparkSession | None, path: str | Path, threshold: float = math.inf,
             kind: str = "") -> NormalDetector:
        from logad.io import fs

        try:
            doc = json.loads(fs.read_text(str(path)))
            kind = kind or doc["kind"]
            state = dict(doc["state"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise LogadError(f"{path} is not a detector file ({e}); train the version again") from e
        if kind != doc["kind"]:
            raise LogadError(f"{path} holds a {doc['kind']} detector, not {kind}")
        from logad.models.detectors import detector_class

        return detector_class(kind)(kind, state, threshold)  # type: ignore[no-any-return]

    # -- in Spark --------------------------------------------------------------------------------

    def scores(self, df: DataFrame) -> DataFrame:
        """``df`` (with ``template_ids``) with a ``score`` column."""
        from pyspark.sql.types import DoubleType, StructField, StructType

        schema = StructType([*df.schema.fields, StructField("score", DoubleType())])
        score = self.score_lists

        def per_batch(frames: Iterable[Any]) -> Iterator[Any]:
            for pdf in frames:
                yield pdf.assign(score=score([list(ids) for ids in pdf["template_ids"]]))

        return df.mapInPandas(per_batch, schema)

    def session_scores(self, sessions: DataFrame) -> DataFrame:
        from logad.models.detectors import session_scores_of

        return session_scores_of(self, sessions)

    def top_events(self, spark: SparkSession | None, rows: list[dict[str, Any]], k: int,
                   rank: str = "impact") -> list[list[tuple[int, float, float | None]]]:
        """Per row: (first index of the template, its weight, the score drop without it) of its
        top ``k`` templates; ``rank="attention"`` ranks by weight alone, impacts None."""
        out = []
        for row in rows:
            ids = list(row["template_ids"])
            firsts = {t: ids.index(t) for t in dict.fromkeys(ids)}
            w = self.weights(ids) if ids else {}
            impacts: dict[str, float] = {}
            if rank == "impact" and firsts:
                scored = self.score_lists([ids] + [[u for u in ids if u != t] for t in firsts])
                impacts = {t: float(scored[0] - s) for t, s in zip(firsts, scored[1:], strict=True)}
            order = sorted(firsts, key=lambda t: (-impacts.get(t, 0.0), -w.get(t, 0.0), firsts[t]))
            out.append([(firsts[t], w.get(t, 0.0), impacts.get(t) if impacts else None) for t in order[:k]])
        return out


class NoveltyDetector(NormalDetector):
    """The rarest template of a session in the history (see the module docstring)."""

    @classmethod
    def train(cls, kind: str, sessions: DataFrame, seed: int = 0) -> NoveltyDetector:
        n, support = _seen(sessions)
        return cls(kind, {"sessions": n, "support": dict(sorted(support.items())), "templates": sorted(support)})

    def _rarity(self) -> tuple[dict[str, float], float]:
        if "rarity" not in self._cache:
            n = float(self.state["sessions"])
            self._cache["rarity"] = ({t: -math.log10((c + 0.5) / (n + 1)) for t, c in self.state["support"].items()},
                                     -math.log10(0.5 / (n + 1)))
        return self._cache["rarity"]  # type: ignore[no-any-return]

    def score_lists(self, sessions: Sequence[Sequence[str]]) -> np.ndarray:
        rarity, never = self._rarity()
        return np.array([max((rarity.get(t, never) for t in set(ids)), default=0.0) for ids in sessions])

    def weights(self, ids: Sequence[str]) -> dict[str, float]:
        rarity, never = self._rarity()
        r = {t: rarity.get(t, never) for t in dict.fromkeys(ids)}
        total = sum(r.values()) or 1.0
        return {t: v / total for t, v in r.items()}


class LengthDetector(NormalDetector):
    """How unusual a session's length is (see the module docstring)."""

    @classmethod
    def train(cls, kind: str, sessions: DataFrame, seed: int = 0) -> LengthDetector:
        from pyspark.sql import functions as F

        _, support = _seen(sessions)
        lengths = sessions.select(F.log1p(F.size("template_ids")).alias("x"))
        median = float(lengths.agg(F.percentile("x", 0.5)).first()[0])  # type: ignore[index]
        mad = float(lengths.agg(F.percentile(F.abs(F.col("x") - median), 0.5)).first()[0])  # type: ignore[index]
        std = float(lengths.agg(F.stddev("x")).first()[0] or 0.0)  # type: ignore[index]
        scale = 1.4826 * mad or std or 1.0  # MAD 0: more than half the sessions have one length
        return cls(kind, {"median": median, "scale": scale, "templates": sorted(support)})

    def score_lists(self, sessions: Sequence[Sequence[str]]) -> np.ndarray:
        x = np.log1p(np.array([len(ids) for ids in sessions], dtype=np.float64))
        return np.abs(x - float(self.state["median"])) / float(self.state["scale"])

    def weights(self, ids: Sequence[str]) -> dict[str, float]:
        counts = Counter(ids)
        return {t: c / len(ids) for t, c in counts.items()}


class PCADetector(NormalDetector):
    """Xu et al.'s PCA on event-count vectors, fitted on unlabelled history (see the module
    docstring)."""

    @classmethod
    def train(cls, kind: str, sessions: DataFrame, seed: int = 0) -> PCADetector:
        n, support = _seen(sessions)
        columns = sorted(support, key=lambda t: (-support[t], t))[:MAX_TEMPLATES]
        index = {t: i for i, t in enumerate(columns)}
        other = len(columns)
        df = np.array([support[t] for t in columns] + [0], dtype=np.float64)
        rest = [t for t in support if t not in index]
        if rest:  # sessions holding any template beyond the columns (the "other" column's document frequency)
            from pyspark.sql import functions as F

            df[other] = sessions.where(F.exists("template_ids", lambda t: ~t.isin(*columns))).count()
        idf = np.log(n / np.maximum(1.0, df))

        def partial(rows: Iterable[Any]) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
            count, total, gram = 0, np.zeros(other + 1), np.zeros((other + 1, other + 1))
            for r in rows:
                x = np.zeros(other + 1)
                for t in r[0]:
                    x[index.get(t, other)] += 1.0
                x *= idf
                count, total, gram = count + 1, total + x, gram + np.outer(x, x)
            yield count, total, gram

        count, total, gram = sessions.select("template_ids").rdd.mapPartitions(partial).treeReduce(
            lambda a, b: (a[0] + b[0], a[1] + b[1], a[2] + b[2]))
        mean = total / count
        cov = (gram - count * np.outer(mean, mean)) / max(1, count - 1)
        eig, vec = np.linalg.eigh(cov)
        eig, vec = np.clip(eig[::-1], 0.0, None), vec[:, ::-1]
        total_var = float(eig.sum()) or 1.0
        k = min(len(eig), int(np.searchsorted(np.cumsum(eig) / total_var, PCA_VARIANCE) + 1))
        return cls(kind, {"templates": sorted(support), "columns": columns, "idf": idf.tolist(),
                          "mean": mean.tolist(), "components": vec[:, :k].T.tolist(),
                          "variance": PCA_VARIANCE, "explained": float(eig[:k].sum() / total_var)})

    def _arrays(self) -> tuple[dict[str, int], np.ndarray, np.ndarray, np.ndarray]:
        if "arrays" not in self._cache:
            self._cache["arrays"] = ({t: i for i, t in enumerate(self.state["columns"])},
                                     np.asarray(self.state["idf"]), np.asarray(self.state["mean"]),
                                     np.asarray(self.state["components"]).reshape(-1, len(self.state["idf"])))
        return self._cache["arrays"]  # type: ignore[no-any-return]

    def _residuals(self, sessions: Sequence[Sequence[str]]) -> np.ndarray:
        index, idf, mean, comp = self._arrays()
        other = len(index)
        x = np.zeros((len(sessions), other + 1))
        for i, ids in enumerate(sessions):
            for t in ids:
                x[i, index.get(t, other)] += 1.0
        x = x * idf - mean  # (B, V+1)
        return x - (x @ comp.T) @ comp  # (B, V+1): the part outside the normal subspace

    def score_lists(self, sessions: Sequence[Sequence[str]]) -> np.ndarray:
        if not len(sessions):
            return np.zeros(0)
        return np.sum(self._residuals(sessions) ** 2, axis=1)

    def weights(self, ids: Sequence[str]) -> dict[str, float]:
        index = self._arrays()[0]
        r2 = self._residuals([ids])[0] ** 2
        distinct = list(dict.fromkeys(ids))
        others = [t for t in distinct if t not in index]
        w = {t: float(r2[index[t]]) for t in distinct if t in index}
        w.update({t: float(r2[-1]) / len(others) for t in others})
        total = sum(w.values()) or 1.0
        return {t: v / total for t, v in w.items()}


__all__ = ["LengthDetector", "NormalDetector", "NoveltyDetector", "PCADetector", "threshold_at_rate"]
