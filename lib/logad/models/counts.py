"""Event-count detectors as the product trains and serves them: a decision tree or a logistic
regression on each session's template counts, fitted by Spark ML across the executors.

The simple baselines of :mod:`logad.models.baselines` (scikit-learn, in process) are as good as
the sequence models on HDFS blocks (F1 around 0.99: Landauer et al. 2024, Le and Zhang 2022, and
this project's own figures), so they are detectors in their own right here: ``logad train --model
tree`` fits one on the same sessions, split and validation-chosen threshold as ATT-GRU, registers
it as a version next to the sequence models, and ``logad score`` serves it through the same
stage, alerts and ``explain``.

- The artifact is a Spark ML ``PipelineModel`` (``CountVectorizer`` over ``template_ids`` ->
  ``DecisionTreeClassifier`` or ``LogisticRegression``), saved as the folder ``v<N>/model`` with
  Spark ML's own writer, so it loads wherever Spark runs (no pickles).
- A session's score is P(abnormal) from the classifier; templates the model never saw are not in
  its vocabulary and do not count (the scores table still counts them in ``unseen_templates``).
- Explanations: an event's ``impact`` is how much the score drops when its template is left out
  of the session's counts (every line of it: a count model reads a template's count, and one
  line less rarely crosses a tree's split; one Spark job for all the alerted sessions), its
  ``weight`` the template's importance to the model (the tree's feature importance, the
  regression's absolute coefficient, normalised). The top events are the first lines of the
  templates with the largest impact, one per template, ties by weight. A session flagged for
  what it lacks (a normal template missing) has no template whose removal lowers the score:
  its top events are ranked by weight, impacts 0.

Example:
    >>> det = CountDetector.load(spark, "/data/logad/models/hdfs/v2/model", threshold=0.5)  # doctest: +SKIP
    >>> det.session_scores(sessions).show()  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logad.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import DataFrame, SparkSession

COUNT_KINDS = ("tree", "logreg")
ARTIFACT = "model"  # the PipelineModel folder inside v<N>/
TREE_MAX_DEPTH = 12  # Spark ML's default (5) underfits rare anomaly paths; scikit-learn grows without a limit


def pipeline(kind: str, seed: int) -> Any:
    """The unfitted Spark ML pipeline of a count detector."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import DecisionTreeClassifier, LogisticRegression
    from pyspark.ml.feature import CountVectorizer

    if kind not in COUNT_KINDS:
        raise ConfigError(f"count detector {kind!r}: use one of {', '.join(COUNT_KINDS)}")
    counts = CountVectorizer(inputCol="template_ids", outputCol="counts", minDF=1.0, vocabSize=1 << 18)
    clf = (DecisionTreeClassifier(featuresCol="counts", labelCol="label_d", seed=seed, maxDepth=TREE_MAX_DEPTH)
           if kind == "tree" else LogisticRegression(featuresCol="counts", labelCol="label_d", maxIter=200))
    return Pipeline(stages=[counts, clf])


def fit(kind: str, train: DataFrame, seed: int) -> PipelineModel:
    """Fit on labelled sessions (``template_ids``, ``label``) across the executors."""
    from pyspark.sql import functions as F

    return pipeline(kind, seed).fit(train.select("template_ids", F.col("label").cast("double").alias("label_d")))


@dataclass
class CountDetector:
    """A fitted count detector and the threshold chosen on validation sessions."""

    kind: str
    model: PipelineModel
    threshold: float = 0.5

    @classmethod
    def train(cls, kind: str, sessions: DataFrame, seed: int = 0) -> CountDetector:
        """Fitted on labelled sessions (``template_ids``, ``label``) across the executors."""
        return cls(kind, fit(kind, sessions, seed))

    @classmethod
    def load(cls, spark: SparkSession, path: str | Path, threshold: float = 0.5, kind: str = "") -> CountDetector:
        from pyspark.ml import PipelineModel

        model = PipelineModel.load(str(path))
        return cls(kind or type(model.stages[-1]).__name__, model, threshold)

    def save(self, path: str | Path) -> None:
        self.model.write().overwrite().save(str(path))

    @property
    def vocabulary(self) -> list[str]:
        """The template ids the model knows, in feature order."""
        stage: Any = self.model.stages[0]  # CountVectorizerModel
        return list(stage.vocabulary)

    def importances(self) -> dict[str, float]:
        """Per known template, its weight in the model (sums to 1)."""
        import numpy as np

        clf: Any = self.model.stages[-1]
        raw = (clf.featureImportances.toArray() if hasattr(clf, "featureImportances")
               else np.abs(clf.coefficients.toArray()))
        total = float(raw.sum()) or 1.0
        return {t: float(w) / total for t, w in zip(self.vocabulary, raw, strict=False)}

    def scores(self, df: DataFrame) -> DataFrame:
        """``df`` (with ``template_ids``) with a ``score`` column, P(abnormal)."""
        from pyspark.ml.functions import vector_to_array
        from pyspark.sql import functions as F

        out = self.model.transform(df)
        return out.withColumn("score", vector_to_array(F.col("probability"))[1].cast("double")).drop(
            "counts", "rawPrediction", "probability", "prediction")

    def session_scores(self, sessions: DataFrame) -> DataFrame:
        """One row per session: ``session_id``, ``score``, ``top_window`` (0: the whole session)."""
        from logad.models.detectors import session_scores_of

        return session_scores_of(self, sessions)

    def top_events(self, spark: SparkSession, rows: list[dict[str, Any]], k: int,
                   rank: str = "impact") -> list[list[tuple[int, float, float | None]]]:
        """Per row: (event index, template weight, impact) of its top-``k`` events (see the module
        docstring); ``rank="attention"`` ranks by weight alone."""
        weights = self.importances()
        impacts: dict[tuple[int, str], float] = {}
        if rank == "impact" and rows:
            variants = []
            for j, row in enumerate(rows):
                ids = list(row["template_ids"])
                variants.append((j, "", ids))
                for t in dict.fromkeys(ids):
                    variants.append((j, t, [u for u in ids if u != t]))
            df = spark.createDataFrame(variants, "row int, template string, template_ids array<string>")
            scored = {(r["row"], r["template"]): r["score"]
                      for r in self.scores(df).select("row", "template", "score").collect()}
            impacts = {(j, t): scored[(j, "")] - s for (j, t), s in scored.items() if t}
        out = []
        for j, row in enumerate(rows):
            ids = list(row["template_ids"])
            firsts = {t: ids.index(t) for t in dict.fromkeys(ids)}
            order = sorted(firsts, key=lambda t: (-impacts.get((j, t), 0.0), -weights.get(t, 0.0), firsts[t]))
            out.append([(firsts[t], weights.get(t, 0.0), impacts.get((j, t)) if impacts else None) for t in order[:k]])
        return out


__all__ = ["ARTIFACT", "COUNT_KINDS", "CountDetector", "fit", "pipeline"]
