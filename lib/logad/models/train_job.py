"""``logad train``: a model from a pinned version of the ``sessions`` table, trained across Spark.

1. Read version V of ``sessions`` (the latest unless pinned) for one system; ``templates`` gives
   each template's text, word2vec turns them into vectors (:mod:`logad.models.vectors`).
2. Split by session (hash of id and seed: every test session is unseen) or by time (earliest
   part for training), build windows or whole sessions on the executors
   (:func:`logad.models.inputs.inputs`).
3. petastorm (``make_spark_converter``) writes the training rows once as Parquet under the
   warehouse; each of ``num_processes`` TorchDistributor ranks reads its shard through a torch
   DataLoader, trains with DDP (gloo on CPU, NCCL on GPUs), validates every epoch, stops early,
   checkpoints every epoch and resumes from the checkpoint when it is run again on the same data.
4. The model is scored on the validation and test sessions by the same pandas UDF the stream
   uses (:mod:`logad.models.inference`); the threshold is the validation F1 optimum over sessions;
   test P/R/F1/AUC, and on the prefix before each session's first label-defining line when the
   labels come with one.
5. Rank 0's weights go into a versioned artifact ``<models>/<model>/v<N>/model.pt`` (weights,
   config, vocabulary and vectors, word vectors, threshold, metrics, ``sessions@vV``, git commit)
   with a readable ``model.json``; the vectors also go to the ``template_vectors`` table.

Every other detector (:data:`logad.models.detectors.DETECTORS`) takes steps 1-2 and 4-5 on the
same split, fitted by its own ``train`` instead of step 3 (no vectors, no epochs), and is
registered with its artifact (``v<N>/model``, a Spark ML folder, for the count detectors ``tree``
and ``logreg``; ``v<N>/detector.json`` for the detectors of normal). The unsupervised ones
(``novelty``, ``length``, ``pca``) read every session of the system, labelled or not, never read
a label to fit or to choose the threshold (the score ``false_alarm_rate`` of the held-out
validation sessions reach), and report test metrics only where labels happen to exist;
``labels="none"`` drops the labels altogether. ``name`` chooses the registry entry (default
the kind), so one name can hold versions of several kinds (``logad retrain --model att_gru,tree``).

Example:
    >>> summary = run_train(spark, Warehouse("/data/logad"), TrainJob(system="hdfs", epochs=10))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logad.config import Warehouse
from logad.errors import ConfigError, LogadError
from logad.io import fs

if TYPE_CHECKING:
    import torch
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

TEMPLATE_VECTORS = "template_vectors"


@dataclass(frozen=True)
class TrainJob:
    """What to train on and how (model defaults: the first paper's Table 2)."""

    system: str = "hdfs"
    table: str = "sessions"
    version: int | None = None  # the sessions table version; None = the latest, recorded
    model: str = "att_gru"  # a sequence model (logad.models.KINDS) or a detector (models.detectors.DETECTORS)
    name: str | None = None  # the registry entry <models>/<name>/v<N>; None = the model kind
    unit: str = "window"  # window (the paper's) or session
    window: int = 10
    split: str = "session"  # session (hash) or time (chronological)
    train_fraction: float = 0.6
    valid_fraction: float = 0.2
    seed: int = 0
    epochs: int = 30
    batch_size: int = 2048
    lr: float = 1e-3
    patience: int = 5
    embed_dim: int = 32
    repeats: bool = False
    counts: bool = False  # sequence models: the event-count vector beside the GRU (ModelConfig.counts)
    max_len: int = 512
    num_processes: int = 2
    use_gpu: bool = False
    label_sources: tuple[str, ...] = ()  # keep sessions labelled by these (e.g. hdfs:<file>); () = all
    labels: str = "use"  # "none": no label is read (only for the unsupervised detectors)
    false_alarm_rate: float = 0.01  # unsupervised detectors: the share of held-out history that alarms
    models_dir: str | None = None  # default <warehouse>/models; a path or any Hadoop filesystem URI
    # a folder every training process reads and writes with Python (petastorm's cache and the
    # resume checkpoint): local disk on one node, a shared mount on a cluster; None: the models
    # folder when that is local, else <tmp>/logad-scratch
    scratch: str | None = None
    resume: bool = True

    def __post_init__(self) -> None:
        from logad.models import KINDS
        from logad.models.detectors import DETECTORS, UNSUPERVISED, supervised

        if self.num_processes < 1:
            raise ConfigError(f"num_processes must be >= 1, got {self.num_processes}")
        if self.model not in KINDS + tuple(DETECTORS):
            raise ConfigError(f"model {self.model!r}: use one of {', '.join(KINDS + tuple(DETECTORS))}")
        if self.labels not in ("use", "none"):
            raise ConfigError(f"labels {self.labels!r}: use 'use' or 'none'")
        if self.labels == "none" and supervised(self.model):
            raise ConfigError(f"{self.model} learns from labels; with labels none use one of "
                              f"{', '.join(UNSUPERVISED)}")
        if not 0.0 < self.false_alarm_rate < 1.0:
            raise ConfigError(f"false_alarm_rate must lie in (0, 1), got {self.false_alarm_rate}")

    @property
    def registered(self) -> str:
        """The registry entry the trained version goes to."""
        return self.name or self.model


def reader_seed(seed: int, rank: int) -> int:
    """The petastorm reader's seed for a job's seed and a rank: distinct per rank, never 0 (see
    :meth:`PetastormBatches.loader`)."""
    return seed * 1009 + rank + 1


class PetastormBatches:
    """A :class:`logad.models.fit.BatchSource` over a petastorm Spark converter; picklable, so
    it travels to the TorchDistributor ranks, each of which opens its own shard's DataLoader."""

    def __init__(self, converter: Any, size: int, label_counts: list[int], repeats: bool, seed: int) -> None:
        self.converter, self.size, self.label_counts = converter, size, label_counts
        self.repeats, self.seed = repeats, seed
        self._ctx: Any = None
        self._it: Iterator[dict[str, Any]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_ctx", "_it")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _ctx=None, _it=None)

    def batches(self, epoch: int, steps: int, rank: int, world: int, batch_size: int
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]]:
        if self._it is None:  # one endless shuffled reader per rank, opened on first use
            warnings.filterwarnings("ignore", category=FutureWarning)
            self._ctx = self.loader(rank, world, batch_size)
            self._it = iter(self._ctx.__enter__())
        for _ in range(steps):
            b = next(self._it)
            yield (b["x"].long(), b["length"].long(), b["repeats"].long() if self.repeats else None,
                   b["label"].long())

    def loader(self, rank: int, world: int, batch_size: int, num_epochs: int | None = None) -> Any:
        """This rank's petastorm DataLoader (a context manager).

        Shards are row groups by index modulo the rank count (the reader's ``seed`` only orders
        them), so the ranks read disjoint rows that cover the training set. The loader's shuffling
        buffer draws from numpy's global generator, which petastorm never seeds: seeded here per
        rank, so a seed reads the same batches, and trains the same model, on every run. The
        reader's seed is never 0: petastorm takes 0 for "no seed" and then shuffles the row groups
        with numpy's global generator in its ventilator thread, which races the buffer's draws in
        this one (seed 0, rank 0 trained a different model on each run)."""
        import numpy as np

        np.random.seed(self.seed * 1009 + rank)
        return self.converter.make_torch_dataloader(
            batch_size=batch_size, num_epochs=num_epochs, workers_count=1, cur_shard=rank, shard_count=world,
            shuffling_queue_capacity=4 * batch_size, seed=reader_seed(self.seed, rank))

    def close(self) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
            self._ctx = self._it = None


def code_version() -> str:
    """The git commit of the library (``+dirty`` with local changes), else the package version."""
    from logad import __version__

    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return f"{__version__}+g{sha}{'.dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return __version__


def _file_url(path: str) -> str:
    return path if "://" in path else Path(path).absolute().as_uri()


def _next_version(root: str) -> int:
    taken = [int(v[1:]) for v in fs.listdir(root) if v.startswith("v") and v[1:].isdigit()]
    return max(taken, default=0) + 1


def scratch_dir(job: TrainJob, models: str) -> Path:
    """Where the training processes keep petastorm's cache and the resume checkpoint (a local
    path: torch and petastorm open it with Python on every process)."""
    if job.scratch:
        if not fs.is_local(job.scratch):
            raise ConfigError(f"--scratch {job.scratch}: the training processes open it with Python, so "
                              "it must be a local or mounted path, the same on every executor")
        return Path(fs.local_path(job.scratch)).absolute()
    if fs.is_local(models):
        return Path(fs.local_path(models)).absolute()
    import tempfile

    path = Path(tempfile.gettempdir()) / "logad-scratch"
    log.warning("models on %s: petastorm's cache and the checkpoint go to %s, which only a one-node "
                "cluster shares; give --scratch a folder every executor mounts", models, path)
    return path


def labelled_sessions(spark: SparkSession, uri: str, version: int, system: str,
                      label_sources: Sequence[str] = (), model: str = "att_gru", labels: str = "use") -> DataFrame:
    """What a training job of ``model`` learns from: version ``version`` of the sessions table at
    ``uri``, one system, of ``label_sources`` when given; labelled sessions only for a supervised
    model, every session for an unsupervised one (``labels="none"``: with the labels nulled)."""
    from pyspark.sql import functions as F

    from logad.io.delta import read_table
    from logad.models.detectors import supervised

    df = read_table(spark, uri, version).where(F.col("system") == system)
    if supervised(model):
        df = df.where("label is not null")
    if label_sources:
        df = df.where(F.col("label_source").isin(*label_sources))
    if labels == "none":
        df = df.withColumn("label", F.lit(None).cast("int")).withColumn("label_event", F.lit(None).cast("int"))
    return df


def _sessions(spark: SparkSession, warehouse: Warehouse, job: TrainJob) -> tuple[DataFrame, int]:
    from logad.io.delta import table_version

    uri = warehouse.table(job.table)
    version = job.version if job.version is not None else table_version(uri)
    return labelled_sessions(spark, uri, version, job.system, job.label_sources, job.model, job.labels), version


def _templates(spark: SparkSession, warehouse: Warehouse, used: set[str]) -> dict[str, str]:
    from logad.templates.stream import template_texts

    texts = template_texts(spark, warehouse)
    if texts is None:
        raise LogadError(f"no templates table under {warehouse.root}: run 'logad ingest' first")
    missing = used - set(texts)
    if missing:
        log.warning("%d template ids in the sessions are not in the templates table; they get no "
                    "word vector (e.g. %s)", len(missing), sorted(missing)[:3])
    return {t: texts.get(t, "") for t in used | set(texts)}


def _session_metrics(scored: DataFrame, threshold: float | None = None) -> tuple[dict[str, float], float]:
    """Metrics over sessions (max window score); the threshold is chosen here when not given."""
    from logad.models.inference import session_scores

    return _metrics_of(session_scores(scored).toPandas(), threshold)


def _deterministic_files(rows: DataFrame, n_files: int) -> DataFrame:
    """``rows`` dealt into ``n_files`` partitions the same way on every run: sorted by (session,
    window), the i-th row to partition i mod n, sorted inside it. Every partition gets rows (each
    rank's shard has data), and the petastorm files, hence the batches a seed draws, do not depend
    on the order Spark happened to read the sessions in. (A round-robin ``repartition`` did: the
    same seed trained a different model each run, test F1 0.969 and 0.985.)"""
    ordered = rows.orderBy("session_id", "window")
    dealt = (ordered.rdd.zipWithIndex().map(lambda row_i: (row_i[1] % n_files, row_i[0]))
             .partitionBy(n_files, lambda k: k).values())
    return rows.sparkSession.createDataFrame(dealt, ordered.schema).sortWithinPartitions("session_id", "window")


def _metrics_of(pdf: Any, threshold: float | None = None) -> tuple[dict[str, float], float]:
    """P/R/F1/AUC of per-session ``label`` and ``score`` (a pandas frame); the threshold is the
    F1 optimum when not given."""
    from logad.models.fit import best_threshold, metrics

    if pdf.empty:
        return {}, threshold if threshold is not None else 0.5
    labels, scores = pdf["label"].to_numpy(), pdf["score"].to_numpy()
    cut = best_threshold(list(labels), scores) if threshold is None else threshold
    m = metrics(labels, scores, cut)
    m["sessions"], m["anomalies"] = float(len(pdf)), float(labels.sum())
    return m, cut


def _part_metrics(valid: dict[str, float], test: dict[str, float], prefix: dict[str, float]) -> dict[str, float]:
    """One metrics dict: ``valid_*``, ``test_*`` and ``prefix_*`` (the test sessions cut before
    the line that defines their label)."""
    return {**{f"valid_{k}": v for k, v in valid.items()}, **{f"test_{k}": v for k, v in test.items()},
            **{f"prefix_{k}": v for k, v in prefix.items()}}


def _register(root: str, staging: str, job: TrainJob, artifact: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Give a staged model (``staging/<artifact>``, in the registry's filesystem) the next
    version of ``root``: ``model.json`` written beside it, then one rename, so a reader of the
    registry never sees half a version. Returns what ``model.json`` holds."""
    n = _next_version(root)
    final = fs.join(root, f"v{n}")
    summary = {"model": job.registered, "kind": job.model, "version": n, "artifact": fs.join(final, artifact),
               "job": asdict(job), **fields}
    fs.write_text(fs.join(staging, "model.json"), json.dumps(summary, indent=2, default=str))
    fs.rename(staging, final)
    m = summary["metrics"]
    log.info("%s v%d (%s): test P %.4f R %.4f F1 %.4f AUC %.4f (threshold %.4f) -> %s", job.registered, n,
             job.model, m.get("test_precision", math.nan), m.get("test_recall", math.nan),
             m.get("test_f1", math.nan), m.get("test_auc", math.nan), summary["threshold"], final)
    return summary


def _train_detector(spark: SparkSession, warehouse: Warehouse, job: TrainJob, parts: DataFrame,
                    counts: dict[tuple[str, Any], int], version: int, started: float) -> dict[str, Any]:
    """A Spark-side detector (:mod:`logad.models.detectors`) on the same split as the sequence
    models: fitted by its ``train`` on the training sessions, the threshold from the validation
    sessions (the F1 optimum when supervised, the false-alarm quantile when not), test (and
    prefix) metrics where labels exist, registered as ``<models>/<name>/v<N>/<artifact>`` +
    ``model.json``."""
    from pyspark.sql import functions as F

    from logad.models.detectors import detector_class, spec
    from logad.models.normal import threshold_at_rate

    kind = spec(job.model)

    def part(name: str) -> DataFrame:
        return parts.where(F.col("part") == name)

    detector = detector_class(job.model).train(job.model, part("train"), job.seed)
    trained_s = time.perf_counter() - started

    def scored(df: DataFrame, prefix: bool = False) -> Any:
        if prefix:  # only the events before the line that defines the label
            df = (df.where("label_event is not null and label_event > 0")
                  .withColumn("template_ids", F.slice("template_ids", 1, F.col("label_event"))))
        return detector.scores(df.select("session_id", "label", "template_ids")).select("label", "score").toPandas()

    valid = scored(part("valid"))
    rates: dict[str, float] = {}
    if kind.supervised:
        valid_m, detector.threshold = _metrics_of(valid)
    else:  # no label read: the score the chosen share of held-out history reaches
        detector.threshold = threshold_at_rate(valid["score"].to_numpy(), job.false_alarm_rate)
        valid_m = _labelled_metrics(valid, detector.threshold)
        rates["valid_alarm_rate"] = float((valid["score"] >= detector.threshold).mean())
    test = scored(part("test"))
    test_m = _labelled_metrics(test, detector.threshold)
    if not kind.supervised:
        rates["test_alarm_rate"] = float((test["score"] >= detector.threshold).mean()) if len(test) else math.nan
    has_events = parts.where("part = 'test' and label = 1 and label_event is not null").limit(1).count() > 0
    prefix_m = _labelled_metrics(scored(part("test"), prefix=True), detector.threshold) if has_events else {}
    root = fs.join(warehouse.models(job.models_dir), job.registered)
    fs.mkdirs(root)
    staging = fs.join(root, f".staging-{uuid.uuid4().hex[:8]}")
    detector.save(fs.join(staging, kind.artifact))
    return _register(root, staging, job, kind.artifact, {
        "data_version": f"{warehouse.table(job.table)}@v{version}", "code_version": code_version(),
        "config": {"kind": job.model, "templates": len(detector.vocabulary), "supervised": kind.supervised,
                   **({} if kind.supervised else {"false_alarm_rate": job.false_alarm_rate})},
        "threshold": detector.threshold, "best_epoch": 0, "history": [],
        "metrics": {**_part_metrics(valid_m, test_m, prefix_m), **rates}, "template_ids": detector.vocabulary,
        "sessions": _session_counts(counts), "train_examples": sum(c for (p, _), c in counts.items() if p == "train"),
        "templates": len(detector.vocabulary), "train_seconds": trained_s,
        "seconds": time.perf_counter() - started, "digests": None,
    })


def _labelled_metrics(pdf: Any, threshold: float) -> dict[str, float]:
    """P/R/F1/AUC at ``threshold`` over the sessions that carry a label (none: no metrics)."""
    labelled = pdf[pdf["label"].notna()]
    if labelled.empty:
        return {}
    return _metrics_of(labelled.assign(label=labelled["label"].astype(int)), threshold)[0]


def _session_counts(counts: dict[tuple[str, Any], int]) -> dict[str, int]:
    """``{part}_{normal|abnormal|unlabelled}``: sessions per part and label."""
    name = {0: "normal", 1: "abnormal", None: "unlabelled"}
    return {f"{p}_{name.get(y, str(y))}": c for (p, y), c in counts.items()}


def run_train(spark: SparkSession, warehouse: Warehouse, job: TrainJob) -> dict[str, Any]:
    """Train, evaluate and register one model; returns what ``model.json`` holds."""
    from petastorm.spark import SparkDatasetConverter, make_spark_converter
    from pyspark.sql import functions as F

    from logad.io.delta import write_small
    from logad.models.detectors import DETECTORS, supervised
    from logad.models.distributed import train_with_distributor
    from logad.models.fit import Example, TrainConfig, save_artifact
    from logad.models.inputs import inputs, split
    from logad.models.sequence import ModelConfig
    from logad.models.vectors import train_vectors

    started = time.perf_counter()
    sessions, version = _sessions(spark, warehouse, job)
    parts = split(sessions, job.split, job.seed, (job.train_fraction, job.valid_fraction)).persist()
    counts = {(r["part"], r["label"]): r["count"] for r in parts.groupBy("part", "label").count().collect()}
    log.info("sessions v%d of %s, system %s: %s (normal+abnormal%s)", version, job.table, job.system,
             ", ".join(f"{p} {counts.get((p, 0), 0)}+{counts.get((p, 1), 0)}"
                       + (f"+{counts[(p, None)]}" if counts.get((p, None)) else "") for p in ("train", "valid", "test")),
             "+unlabelled" if any(y is None for _, y in counts) else "")
    for p in ("train", "valid", "test"):
        if not supervised(job.model):
            if p != "test" and not sum(c for (q, _), c in counts.items() if q == p):
                raise LogadError(f"the {p} part has no {job.system} sessions in {job.table} v{version}: use "
                                 "more history or other --train-fraction/--valid-fraction")
        elif not counts.get((p, 1)) or not counts.get((p, 0)):
            raise LogadError(f"the {p} part has {counts.get((p, 0), 0)} normal and {counts.get((p, 1), 0)} "
                             f"abnormal {job.system} sessions in {job.table} v{version}: both are needed; "
                             "use more data or other --train-fraction/--valid-fraction")
    if job.model in DETECTORS:
        try:
            return _train_detector(spark, warehouse, job, parts, counts, version, started)
        finally:
            parts.unpersist()
    used = {r[0] for r in parts.select(F.explode("template_ids")).distinct().collect()}
    texts = _templates(spark, warehouse, used)
    tv = train_vectors(texts, dim=job.embed_dim, seed=job.seed)
    vocab = {t: i + 2 for i, t in enumerate(tv.ids)}
    heads = 4 if (job.embed_dim + job.repeats) % 4 == 0 else 1
    config = ModelConfig(kind=job.model, vocab_size=tv.size, embed_dim=job.embed_dim, window=job.window,
                         repeats=job.repeats, heads=heads, max_len=job.max_len, counts=job.counts)

    def rows(part: str, prefix: bool = False) -> DataFrame:
        return inputs(parts.where(F.col("part") == part), vocab, unit=job.unit, window=job.window,
                      max_len=job.max_len, repeats=job.repeats, prefix=prefix)

    models = warehouse.models(job.models_dir)
    root = fs.join(models, job.registered)
    fs.mkdirs(root)
    scratch = scratch_dir(job, models)
    spark.conf.set(SparkDatasetConverter.PARENT_CACHE_DIR_URL_CONF, _file_url(str(scratch / "_petastorm")))
    warnings.filterwarnings("ignore", category=FutureWarning, module="petastorm")
    n_files = max(job.num_processes * 2, spark.sparkContext.defaultParallelism)
    train_rows = _deterministic_files(rows("train"), n_files).select("x", "length", "repeats", "label")
    converter = make_spark_converter(train_rows)
    label_counts = [int(r["count"]) for r in sorted(train_rows.groupBy("label").count().collect(),
                                                   key=lambda r: r["label"])]
    sid: dict[str, int] = {}
    # in (session, window) order: Spark's shuffles give the rows in another order on each run, and
    # the validation loss that breaks ties between epochs is a float sum over them
    valid = [Example(list(r.x[:r.length]), int(r.label), list(r.repeats[:r.length]) if job.repeats else None,
                     sid.setdefault(r.session_id, len(sid)))
             for r in sorted(rows("valid").collect(), key=lambda r: (r.session_id, r.window))]
    log.info("%s: %d training %ss (petastorm, %d files), %d validation; %d templates, %d processes%s",
             job.model, len(converter), job.unit, n_files, len(valid), len(tv.ids), job.num_processes,
             " on GPUs" if job.use_gpu else "")
    checkpoint = scratch / job.registered / f"checkpoint-{job.model}-{job.table}-v{version}-{job.system}-seed{job.seed}.pt"
    if not job.resume and checkpoint.exists():
        checkpoint.unlink()
    train = TrainConfig(epochs=job.epochs, batch_size=job.batch_size, lr=job.lr, patience=job.patience,
                        seed=job.seed, max_len=job.max_len, checkpoint=str(checkpoint))
    source = PetastormBatches(converter, len(converter), label_counts, job.repeats, job.seed)
    try:
        result = train_with_distributor(spark, config, train, source, valid,
                                        vectors=tv.matrix, num_processes=job.num_processes, use_gpu=job.use_gpu)
    finally:
        converter.delete()
    trained_s = time.perf_counter() - started

    import tempfile

    from logad.models.inference import ModelRef, score_inputs

    data_version = f"{warehouse.table(job.table)}@v{version}"
    commit = code_version()
    with tempfile.TemporaryDirectory(prefix="logad-model-") as tmp:
        artifact = Path(tmp) / "model.pt"

        def save(metrics_: dict[str, float]) -> bytes:
            save_artifact(artifact, result, metrics_=metrics_, template_ids=tv.ids, vectors=tv.matrix,
                          word_vectors=tv.word_vectors, data_version=data_version, code_version=commit)
            return artifact.read_bytes()

        # scored by the stream's UDF, the model's bytes broadcast (the executors need no path to it)
        data = spark.sparkContext.broadcast(save({}))
        ref = ModelRef(f"staged:{uuid.uuid4().hex}", "staged model.pt", data)
        try:
            valid_m, result.threshold = _session_metrics(score_inputs(rows("valid"), ref))
            test_m, _ = _session_metrics(score_inputs(rows("test"), ref), result.threshold)
            has_events = parts.where("part = 'test' and label = 1 and label_event is not null").limit(1).count() > 0
            prefix_m = (_session_metrics(score_inputs(rows("test", prefix=True), ref), result.threshold)[0]
                        if has_events else {})
        finally:
            data.destroy()
        metrics_ = _part_metrics(valid_m, test_m, prefix_m)
        save(metrics_)
        staging = fs.join(root, f".staging-{uuid.uuid4().hex[:8]}")
        fs.mkdirs(staging)
        fs.put(artifact, fs.join(staging, "model.pt"))
    summary = _register(root, staging, job, "model.pt", {
        "data_version": data_version, "code_version": commit, "config": config.to_dict(),
        "threshold": result.threshold, "best_epoch": result.best_epoch, "history": result.history,
        "metrics": metrics_, "sessions": _session_counts(counts),
        "train_examples": len(converter), "templates": len(tv.ids), "train_seconds": trained_s,
        "seconds": time.perf_counter() - started, "digests": getattr(result, "digests", None),
    })
    n = summary["version"]
    checkpoint.unlink(missing_ok=True)
    import pyarrow as pa

    vec = pa.table({"template_id": tv.ids, "text": [texts[t] for t in tv.ids],
                    "vector": [list(map(float, tv.matrix[i + 2])) for i in range(len(tv.ids))],
                    "model": [job.registered] * len(tv.ids), "model_version": [n] * len(tv.ids)})
    write_small(spark, warehouse.table(TEMPLATE_VECTORS), vec)
    parts.unpersist()
    return summary


__all__ = ["TEMPLATE_VECTORS", "PetastormBatches", "TrainJob", "code_version", "labelled_sessions", "reader_seed", "run_train"]
