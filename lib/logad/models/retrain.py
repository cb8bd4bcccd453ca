"""Scheduled batch retraining: train a candidate on the latest ``sessions`` snapshot, evaluate it
and the promoted model on the same held-out sessions, promote only if the candidate is not worse,
and record everything in MLflow.

1. The candidate is trained by :func:`logad.models.train_job.run_train` on the latest version of the
   ``sessions`` table (its own split, early stopping, threshold from validation sessions) and
   registered in logad's registry as ``<models>/<name>/v<N>``. Given several kinds (``att_gru``,
   ``tree``, ...), each is trained on the same split as a version of the same name, and the one
   with the best held-out metric is the candidate: the gate picks the detector per system.
2. The held-out set: the candidate's test sessions minus every session the promoted model trained
   or validated on. Those are recomputed from the promoted model's ``model.json`` (its
   ``sessions`` version, by Delta time travel, and its split), so the set is honest for a hash
   split with another seed and for a time split alike, and both models are scored on it.
3. Both are scored the way the stream scores (:class:`logad.live_scoring.ScoreStage`: the pandas UDF,
   templates a model never saw mapped to the nearest one it knows), each at its own threshold.
4. :class:`PromotionRule` (``spark.logad.retrain.metric``, ``spark.logad.retrain.maxDrop`` in
   ``conf/spark-defaults.conf``, or the command line): the candidate is promoted when its
   metric is at least the current model's minus ``max_drop``; the first model is promoted when it
   beats nothing, i.e. always (there is nothing to be worse than). Promotion is logad's atomic
   ``promoted.json`` replace, which a running ``logad score`` picks up at its next micro-batch.
5. MLflow (tracking + registry; ``sqlite:///<models>/mlflow.db`` by default, any server by URI):
   one run per retraining with the job's parameters, the data and code versions, the training
   curve, both models' held-out metrics and the decision; the candidate's ``model.pt`` and
   ``model.json`` as artifacts; a registered model version (tagged with logad's version) and the
   ``champion`` alias moved to it when it is promoted. The stream reads logad's registry, not
   MLflow, so scoring needs no tracking server; MLflow is the record.

Example:
    >>> report = run_retrain(spark, Warehouse("/data/logad"), TrainJob(system="hdfs"), PromotionRule())  # doctest: +SKIP
    >>> report["decision"]  # doctest: +SKIP
    'promoted'
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logad.config import Warehouse
from logad.errors import ConfigError, LogadError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from logad.models.train_job import TrainJob

log = logging.getLogger(__name__)

METRICS = ("f1", "auc", "precision", "recall")
CHAMPION = "champion"


@dataclass(frozen=True)
class PromotionRule:
    """Promote the candidate when ``candidate[metric] >= current[metric] - max_drop``."""

    metric: str = "f1"
    max_drop: float = 0.0

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ConfigError(f"spark.logad.retrain.metric={self.metric!r}: use one of {', '.join(METRICS)}")
        if not (0.0 <= self.max_drop < 1.0) or math.isnan(self.max_drop):
            raise ConfigError(f"spark.logad.retrain.maxDrop={self.max_drop}: use a number in [0, 1)")

    @classmethod
    def from_conf(cls, spark: SparkSession, metric: str | None = None, max_drop: float | None = None) -> PromotionRule:
        """The rule from the command line, else the Spark conf, else the defaults."""
        conf = spark.conf
        m = metric or conf.get("spark.logad.retrain.metric", None) or cls.metric
        raw = conf.get("spark.logad.retrain.maxDrop", None)
        try:
            d = max_drop if max_drop is not None else float(raw) if raw else cls.max_drop
        except ValueError as e:
            raise ConfigError(f"spark.logad.retrain.maxDrop={raw!r} is not a number") from e
        return cls(m, d)

    def decide(self, candidate: dict[str, float], current: dict[str, float] | None) -> tuple[bool, str]:
        """(promote?, why) from the two models' held-out metrics."""
        c = candidate.get(self.metric, math.nan)
        if math.isnan(c):
            return False, f"the candidate has no held-out {self.metric}"
        if current is None:
            return True, f"no promoted model yet; candidate {self.metric} {c:.4f}"
        o = current.get(self.metric, math.nan)
        if math.isnan(o):
            return True, f"the current model has no held-out {self.metric}; candidate {c:.4f}"
        verdict = c >= o - self.max_drop
        return verdict, (f"candidate {self.metric} {c:.4f} {'>=' if verdict else '<'} current {o:.4f}"
                         f"{f' - {self.max_drop:g}' if self.max_drop else ''}")


def _data_version(spec: str) -> tuple[str, int]:
    """``<table uri>@v<V>`` -> (uri, V)."""
    uri, _, v = spec.rpartition("@v")
    if not uri or not v.isdigit():
        raise LogadError(f"model.json data_version {spec!r} is not <table>@v<N>")
    return uri, int(v)


def _parts(spark: SparkSession, uri: str, version: int, job: dict[str, Any]) -> DataFrame:
    """The labelled sessions of a training job's data (as ``logad train`` read them), with its
    ``part`` column."""
    from logad.models.inputs import split
    from logad.models.train_job import labelled_sessions

    df = labelled_sessions(spark, uri, version, job["system"], job.get("label_sources") or (),
                           job.get("model", "att_gru"), job.get("labels", "use"))
    return split(df, job.get("split", "session"), int(job.get("seed", 0)),
                 (float(job.get("train_fraction", 0.6)), float(job.get("valid_fraction", 0.2))))


def held_out(spark: SparkSession, candidate: dict[str, Any], current: dict[str, Any] | None) -> DataFrame:
    """The candidate's labelled test sessions that the current model never trained or validated on
    (the models are compared on labels, also where a detector of normal trained without them)."""
    uri, version = _data_version(candidate["data_version"])
    test = _parts(spark, uri, version, candidate["job"]).where("part = 'test' and label is not null").drop("part")
    if current is None:
        return test
    cur_uri, cur_version = _data_version(current["data_version"])
    seen = (_parts(spark, cur_uri, cur_version, current["job"]).where("part != 'test'").select("session_id"))
    return test.join(seen, "session_id", "left_anti")


def score_sessions(spark: SparkSession, warehouse: Warehouse, models_dir: str | Path, model: str,
                   version: int | str, sessions: DataFrame) -> Any:
    """A registered version (or ``promoted``/``latest``) scored on ``sessions`` as the stream scores
    them: a pandas frame with the sessions' columns plus ``score``, ``threshold``, ``is_anomaly``,
    ``top_window``, ``model_version``."""
    from logad.live_scoring import ScoreStage

    stage = ScoreStage(spark, warehouse, model, version, str(models_dir), bootstrap=None, alerts_topic=None,
                       once_per_session=False)  # every given session, also those the stream scored already
    try:
        return stage.apply(sessions, -1, f"batch-score-{model}-v{version}").toPandas()
    finally:
        stage.close()


def evaluate_version(spark: SparkSession, warehouse: Warehouse, models_dir: str, model: str, version: int,
                     sessions: DataFrame) -> dict[str, float]:
    """A registered version's P/R/F1/AUC on ``sessions``, at its own threshold."""
    from logad.models.train_job import _labelled_metrics

    pdf = score_sessions(spark, warehouse, models_dir, model, version, sessions.select(
        "session_id", "system", "label", "template_ids"))
    return _labelled_metrics(pdf, float(pdf["threshold"].iloc[0])) if not pdf.empty else {}


def tracking_uri(models_dir: str, uri: str | None) -> str:
    """``uri``, else ``$MLFLOW_TRACKING_URI``, else a SQLite store next to the models."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    from logad.io import fs

    if not fs.is_local(models_dir):
        raise ConfigError(f"the models are at {models_dir}, where no SQLite MLflow store can live: give "
                          "--mlflow-uri (an MLflow server, or sqlite:///a/local/file.db)")
    return f"sqlite:///{Path(fs.local_path(models_dir)).absolute() / 'mlflow.db'}"


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError as e:
        raise ConfigError("logad retrain records runs in MLflow, which is not installed: "
                          "pip install 'logad[registry]' (or mlflow>=3.17)") from e
    return mlflow


def record(uri: str, experiment: str, registered: str, report: dict[str, Any], artifact_dir: Path) -> dict[str, Any]:
    """One MLflow run for the retraining; the candidate registered; ``champion`` if promoted.

    Everything goes through one ``MlflowClient`` for ``uri``: MLflow's fluent API would set the
    process-wide tracking URI, and with it ``$MLFLOW_TRACKING_URI``, so a second retraining in
    the same process (a notebook, a test session) for another warehouse recorded into the first
    one's store."""
    _mlflow()
    import time

    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    for name in ("mlflow", "alembic", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    client = MlflowClient(uri, uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        location = None
        if uri.startswith("sqlite:///"):
            location = (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").absolute().as_uri()
        exp_id = client.create_experiment(experiment, artifact_location=location)
    else:
        exp_id = exp.experiment_id
    cand = report["candidate"]
    job = cand["job"]
    tags = {"logad.model": cand["model"], "logad.kind": str(cand.get("kind", cand["model"])),
            "logad.version": str(cand["version"]),
            "logad.data_version": cand["data_version"], "logad.code_version": cand["code_version"],
            "logad.decision": report["decision"], "logad.reason": report["reason"],
            "logad.current_version": str(report["current_version"])}
    run = client.create_run(exp_id, run_name=f"retrain {cand['model']} v{cand['version']}", tags=tags)
    run_id = run.info.run_id
    now = int(time.time() * 1000)
    params = {**{k: v for k, v in job.items() if k not in ("models_dir",)},
              "rule_metric": report["rule"]["metric"], "rule_max_drop": report["rule"]["max_drop"]}
    metrics: list[Metric] = []

    def add(values: dict[str, Any], prefix: str = "", step: int = 0) -> None:
        metrics.extend(Metric(f"{prefix}{k}", float(v), now, step) for k, v in values.items()
                       if isinstance(v, int | float) and not isinstance(v, bool))

    for i, h in enumerate(cand.get("history", [])):
        add({k: v for k, v in h.items() if k != "epoch"}, step=i)
    add(cand.get("metrics", {}), "train_")
    add(report["candidate_metrics"], "candidate_")
    for c in report.get("candidates", []) if len(report.get("candidates", [])) > 1 else []:
        add(c["metrics"], f"{c['kind']}_v{c['version']}_")
    if report["current_metrics"] is not None:
        add(report["current_metrics"], "current_")
    try:
        client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
        for a in range(0, len(metrics), 1000):  # MLflow's limit per batch
            client.log_batch(run_id, metrics=metrics[a:a + 1000])
        client.log_dict(run_id, report, "retrain.json")
        client.log_artifacts(run_id, str(artifact_dir), "model")
    except Exception:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id)
    source = f"{run.info.artifact_uri}/model"
    try:
        client.get_registered_model(registered)
    except Exception:  # noqa: BLE001 (MLflow raises its own RestException for "not found")
        client.create_registered_model(registered, description="logad session classifier (logad retrain)")
    mv = client.create_model_version(registered, source, run_id=run_id,
                                     tags={"logad.version": str(cand["version"]), "logad.decision": report["decision"]})
    if report["decision"] == "promoted":
        client.set_registered_model_alias(registered, CHAMPION, mv.version)
    return {"tracking_uri": uri, "experiment": experiment, "run_id": run_id,
            "registered_model": registered, "registered_version": int(mv.version)}


def run_retrain(spark: SparkSession, warehouse: Warehouse, job: TrainJob, rule: PromotionRule,
                mlflow_uri: str | None = None, experiment: str | None = None,
                registered_model: str | None = None, kinds: Sequence[str] = ()) -> dict[str, Any]:
    """Train a candidate of each of ``kinds`` (default ``job.model``) as versions of one registry
    entry (``job.registered``), score them and the promoted version on the same held-out
    sessions, keep the best candidate by the rule's metric, promote it unless it is worse than the
    promoted version, record the run in MLflow; returns the report (also in MLflow)."""
    from logad.models import registry
    from logad.models.train_job import run_train

    if job.version is not None:
        raise ConfigError("logad retrain trains on the latest sessions snapshot: drop --version "
                          "(use 'logad train --version N' to train on a pinned one)")
    kinds = tuple(dict.fromkeys(kinds or (job.model,)))
    name = job.name or (job.model if len(kinds) == 1 else job.system)
    models_dir = warehouse.models(job.models_dir)
    uri = tracking_uri(models_dir, mlflow_uri)
    _mlflow()  # fail before hours of training, not after
    jobs = [replace(job, model=k, name=name) for k in kinds]  # each kind is checked before any trains
    current_version = registry.promoted(models_dir, name)
    current = registry.info(models_dir, name, current_version) if current_version is not None else None
    if current is not None and current.get("job", {}).get("system") != job.system:
        raise ConfigError(f"the promoted {name} v{current_version} scores {current['job'].get('system')} "
                          f"sessions, not {job.system}: retrain with --system {current['job'].get('system')} "
                          "or use another --models-dir")
    log.info("retrain %s (%s) on %s: current %s", name, ", ".join(kinds), job.system,
             f"v{current_version} ({current.get('kind') or current['job'].get('model')})" if current else "none promoted")
    trained = [run_train(spark, warehouse, j) for j in jobs]
    held = held_out(spark, trained[0], current).persist()  # one split for all: same data, seed, fractions
    n_held = held.count()
    n_bad = held.where("label = 1").count()
    log.info("held-out: %d sessions (%d abnormal) the current model never trained on", n_held, n_bad)
    if n_held == 0 or n_bad == 0 or n_bad == n_held:
        held.unpersist()
        raise LogadError(f"the held-out set has {n_held} sessions, {n_bad} abnormal: both classes are needed "
                         f"to compare the models; {name} v{', v'.join(str(t['version']) for t in trained)} "
                         "were trained and are not promoted")
    scored = [(t, evaluate_version(spark, warehouse, models_dir, name, t["version"], held)) for t in trained]
    cur_m = (evaluate_version(spark, warehouse, models_dir, name, current_version, held)
             if current_version is not None else None)
    held.unpersist()
    # the best candidate by the rule's metric (the first listed on a tie)
    candidate, cand_m = max(scored, key=lambda tm: (tm[1].get(rule.metric, -math.inf), -trained.index(tm[0])))
    ok, why = rule.decide(cand_m, cur_m)
    if len(scored) > 1:
        why = f"{candidate['kind']} best of {', '.join(kinds)}; {why}"
    decision = "promoted" if ok else "rejected"
    if ok:
        registry.promote(models_dir, name, candidate["version"], f"logad retrain: {why}")
    log.info("retrain %s v%d (%s) %s: %s", name, candidate["version"], candidate["kind"], decision, why)
    report: dict[str, Any] = {
        "model": name, "kind": candidate["kind"], "system": job.system, "candidate_version": candidate["version"],
        "current_version": current_version,
        "current_kind": (current.get("kind") or current["job"].get("model")) if current else None,
        "decision": decision, "reason": why, "rule": asdict(rule),
        "held_out": {"sessions": n_held, "abnormal": n_bad},
        "candidates": [{"kind": t["kind"], "version": t["version"], "metrics": m} for t, m in scored],
        "candidate_metrics": cand_m, "current_metrics": cur_m, "candidate": candidate,
    }
    from logad.io import fs

    version_dir = fs.parent(candidate["artifact"])
    with tempfile.TemporaryDirectory(prefix="logad-retrain-") as tmp:  # MLflow logs local files
        local = fs.get(version_dir, Path(tmp) / "model")
        report["mlflow"] = record(uri, experiment or f"logad-{name}-{job.system}",
                                  registered_model or f"logad-{name}-{job.system}", report, local)
    fs.write_text(fs.join(version_dir, "retrain.json"), json.dumps(report, indent=2, default=str))
    return report


__all__ = ["CHAMPION", "METRICS", "PromotionRule", "evaluate_version", "held_out", "record", "run_retrain",
           "score_sessions", "tracking_uri"]
