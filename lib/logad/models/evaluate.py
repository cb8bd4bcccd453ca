"""``logad evaluate``: precision, recall, F1 and ROC-AUC of every model on fixed protocols, several
seeds, mean and spread, as a table (the layout of the first paper's Tables 4-7) and a JSON line.

Protocols (data under ``--data``, default ``$LOGAD_DATA`` or ``../shared/data``):

- ``hdfs-paper``: the papers' setting as far as our copy allows. Balanced training, 6,000
  normal + 6,000 abnormal sessions in the paper; our normal sessions (AIT ``hdfs_train``, 5,583)
  cap it at 70% of them per class (3,908 + 3,908), 10% per class for validation, and a balanced
  test set of the rest. Balanced test sets flatter precision; compare models, not deployments.
- ``hdfs-blocks``: the honest one, and the figure an operator gets. Raw HDFS lines of a random
  2% block sample (5,917 blocks, 171 anomalous, the natural ratio) through the product's
  commands (:func:`hdfs_blocks_product`): ``ingest_files`` (the ingest parser, masking, the
  template stage, ``raw_logs``), ``logad sessions labels``, the batch sessionizer with the
  *default* HDFS rules into the ``sessions`` table, then per seed the training job
  (:func:`logad.models.train_job.run_train`: word2vec, petastorm, TorchDistributor with the job's
  default two processes, the threshold chosen on validation sessions, the held-out test sessions
  scored by the stream's pandas UDF) for each sequence model, and for every Spark-side detector
  (:mod:`logad.models.detectors`): the count detectors ``tree`` and ``logreg`` (Spark ML, the
  same job, split and threshold rule, scored by the same stage as in the stream) and the
  detectors of normal ``novelty``, ``length``, ``pca`` (:mod:`logad.models.normal`: fitted on the
  training blocks with their labels hidden, the threshold at ``false_alarm_rate`` of the
  validation blocks, no label read; the labels only score the test blocks). The split is the
  job's (``logad.models.inputs.split``: by session hash, 60/20/20, so every test block is unseen).
  ``labels="none"`` runs the detectors of normal beside the supervised ATT-GRU and tree. The JSON
  line carries the line accounting of the run (lines in = ``raw_logs`` = ``events`` +
  ``rejects``; sessions per block). Since 2026-12-02 ``pca`` here is the product's unsupervised
  detector; the other protocols keep the in-process PCA of :mod:`logad.models.baselines` (fitted
  on the normal training sessions, Xu's Q-statistic threshold).

The other protocols run the product's ingest and sessionizer (:func:`pipeline_sessions`) and fit
the models in process (:func:`run_once`), because their splits (by time, by application) are not
the training job's session-hash split; ``hdfs-paper`` is the papers' setting on files already
sessionized by their authors.

- ``spark-lab``: Task workflows of a Spark lab corpus (``--data`` is the corpus folder; default
  the committed sample ``data/samples/spark_lab``), labelled by the lab's ground truth (injected
  faults and Spark's task end reasons, not by WARN/ERROR). The executor logs go through the
  real pipeline (``ingest_files``: headers, masking + Drain templates; the batch sessionizer: one
  workflow per TID) in a local Spark session; applications split 60/20/20 by seed, so every test
  workflow comes from an application never seen in training.
- ``bgl-chrono``: BGL split chronologically, as far as our copy allows: the only raw BGL here is
  LogHub's 2k sample (2,000 lines over seven months, 143 alert lines; the full 4.7M-line log is
  not obtainable), so the papers' 3,000 + 3,000 BGL sessions cannot be built. Lines through the
  product's path (:func:`pipeline_sessions`), in event-time order, cut by the sessionizer into
  consecutive windows of 10 lines (the paper's window; ``window_lines=10``, one window series for
  the whole machine), a window abnormal when one of its lines is an alert (the line's own ground
  truth, first token not ``-``); the earliest 60% of the
  windows train, the next 20% validate, the last 20% test. About 200 windows, 40 in test: a
  smoke-level figure, reported with that caveat; seeds vary only the models' initialisation.
- ``spark-lab-prefix``: the same, each workflow cut before its first WARN/ERROR/exception line
  (the line the papers' rule labels by), so a model must see the fault coming or see it without
  the error line; faults that leave no such line keep their whole workflow.

Units: ``session`` (the whole block sequence, up to ``max_len`` events) or ``window`` (sliding
windows of ``config.window`` events carrying their session's label; a session scores the max of
its windows), the paper's.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from logad.errors import LogadError
from logad.models.train_job import TrainJob

log = logging.getLogger(__name__)

SEQUENCE_MODELS = ("att_gru", "att_lstm", "lstm", "gru", "transformer_gru")
BASELINES = ("pca", "logreg", "tree")
PROTOCOLS = ("hdfs-paper", "hdfs-blocks", "bgl-chrono", "spark-lab", "spark-lab-prefix")
BGL_WINDOW = 10


@dataclass
class Split:
    """Sessions as template-id lists, their labels, and the template texts."""

    train: list[tuple[list[str], int]]
    valid: list[tuple[list[str], int]]
    test: list[tuple[list[str], int]]
    templates: dict[str, str]
    note: str


def _need(path: Path) -> Path:
    if not path.exists():
        raise LogadError(f"{path} is missing: point --data (or $LOGAD_DATA) at the shared data folder "
                         "with HDFS/ (see data/samples/PROVENANCE.md for where it comes from)")
    return path


def hdfs_paper(data: Path, seed: int) -> Split:
    from logad.models.data import read_ait, read_ait_templates

    root = data / "HDFS" / "sessions"
    normal = list(read_ait(_need(root / "ait_hdfs_loghub_train.txt")).values())
    abnormal = list(read_ait(_need(root / "ait_hdfs_loghub_abnormal_dev.txt")).values())
    rng = random.Random(seed)
    rng.shuffle(normal)
    rng.shuffle(abnormal)
    n_train = min(6000, int(0.7 * len(normal)))
    n_valid = int(0.1 * len(normal))
    n_test = len(normal) - n_train - n_valid

    def take(a: int, b: int) -> list[tuple[list[str], int]]:
        return [(s, 0) for s in normal[a:b]] + [(s, 1) for s in abnormal[a:b]]

    return Split(take(0, n_train), take(n_train, n_train + n_valid),
                 take(n_train + n_valid, n_train + n_valid + n_test),
                 read_ait_templates(_need(root / "ait_HDFS_templates.txt")),
                 f"balanced: train {n_train}+{n_train}, valid {n_valid}+{n_valid}, test {n_test}+{n_test}")


_PIPELINE_CACHE: dict[tuple[Any, ...], tuple[Any, dict[str, str]]] = {}
# a "maximum" for the rules of a protocol: longer than any of these data sets
_FOREVER_S = 1e9


def pipeline_sessions(files: dict[str, str], rules: Sequence[Any], labels: tuple[str, str] | None = None,
                      fmt: str | None = None) -> tuple[Any, dict[str, str]]:
    """The product's own path on log files, in a local Spark session: ``ingest_files`` (the ingest
    parser, masking and the template stage, ``fmt`` pinned or detected), ``labels`` (system, label
    file) into the ``labels`` table, and the batch sessionizer (the state machine the stream runs).
    Returns the ``sessions`` rows as a pandas DataFrame and the template texts; cached per process."""
    key = (tuple(sorted(files.items())), tuple(rules), labels, fmt)
    if key in _PIPELINE_CACHE:
        return _PIPELINE_CACHE[key]
    import tempfile

    from logad.config import Warehouse
    from logad.io.delta import read_small
    from logad.templates.stream import TEMPLATES

    with tempfile.TemporaryDirectory(prefix="logad-eval-") as tmp:
        wh = Warehouse(str(Path(tmp) / "wh"))
        t0 = time.monotonic()
        spark, _, cut = _through_the_product(wh, files, rules, labels, fmt, raw=False)
        sessions: Any = cut.select("system", "key", "name", "start_ts", "template_ids", "label", "label_source",
                                   "rule_event").toPandas()
        table = read_small(spark, wh.table(TEMPLATES))
        if table is None:
            raise LogadError(f"ingest of {', '.join(files)} mined no templates")
        texts = table.to_pandas()
        log.info("pipeline: %d sessions from %d file(s) in %.0fs", len(sessions), len(files), time.monotonic() - t0)
    _PIPELINE_CACHE[key] = (sessions, dict(zip(texts["template_id"], texts["text"], strict=True)))
    return _PIPELINE_CACHE[key]


def _through_the_product(wh: Any, files: dict[str, str], rules: Sequence[Any], labels: tuple[str, str] | None,
                         fmt: str | None, raw: bool) -> tuple[Any, dict[str, int | None], Any]:
    """The product's ingest of ``files`` into warehouse ``wh`` (``ingest_files``: the parser, ``fmt``
    pinned or detected, masking, the template stage), ``labels`` (system, file; or
    ``("spark-eventlogs", dir)``: ``logad sessions labels --spark-event-logs``) into ``labels``,
    and the batch sessionizer over ``events``: (spark, rows per table, the sessions DataFrame)."""
    from logad.ingest import ingest_files
    from logad.io.delta import read_table
    from logad.parse.headers import Parser
    from logad.sessions.labels import load_labels
    from logad.sessions.spark import read_labels, sessionize
    from logad.spark_session import get_spark

    spark = get_spark("logad-evaluate", master="local[2]", conf={"spark.sql.shuffle.partitions": "4"})
    counts = ingest_files(spark, wh, files, parser=Parser(default=fmt) if fmt else None, raw=raw)
    if labels is not None and labels[0] == "spark-eventlogs":
        from logad.sessions.eventlogs import load_event_log_labels

        load_event_log_labels(spark, wh, labels[1])
    elif labels is not None:
        load_labels(spark, wh, labels[0], labels[1])
    return spark, counts, sessionize(read_table(spark, wh.table("events")), list(rules), read_labels(spark, wh))


def hdfs_block_sessions(log_file: Path, label_file: Path) -> tuple[dict[str, list[str]], dict[str, str], dict[str, int]]:
    """Block id -> template ids, template texts, block id -> label (LogHub's ``BlockId,Label``
    file), of an HDFS log through :func:`pipeline_sessions`, one session per block."""
    from logad.sessions.rules import rules_for

    rules = rules_for("hdfs")  # the default rules: one session per block
    sessions, texts = pipeline_sessions({str(log_file): "hdfs"}, [rules], ("hdfs", str(label_file)), fmt="hdfs")
    labelled = sessions[sessions["label_source"].str.startswith("hdfs:")]
    if labelled["key"].duplicated().any():
        raise LogadError("a block was cut into several sessions: the protocol needs one per block")
    seqs = {k: list(ids) for k, ids in zip(labelled["key"], labelled["template_ids"], strict=True)}
    labels = {k: int(y) for k, y in zip(labelled["key"], labelled["label"], strict=True)}
    return seqs, texts, labels


def hdfs_blocks_product(data: Path, models: Sequence[str], seeds: Sequence[int], epochs: int, unit: str,
                        repeats: bool, batch_size: int, counts: bool, patience: int, false_alarm_rate: float,
                        ) -> tuple[dict[str, list[dict[str, float]]], dict[str, Any], str]:
    """The ``hdfs-blocks`` protocol through the product (see the module docstring): per model the
    test metrics of each seed, the line accounting, and a description of the data."""
    import tempfile

    from pyspark.sql import functions as F

    from logad.config import Warehouse
    from logad.io.delta import read_table, write_table
    from logad.models.detectors import DETECTORS
    from logad.models.train_job import run_train
    from logad.sessions.rules import rules_for

    raw = data / "HDFS" / "raw"
    log_file, label_file = _need(raw / "HDFS_dev_sample.log.gz"), _need(raw / "HDFS_dev_sample.anomaly_label.csv")
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in models}
    with tempfile.TemporaryDirectory(prefix="logad-eval-") as tmp:
        wh = Warehouse(str(Path(tmp) / "wh"))
        t0 = time.monotonic()
        spark, rows, cut = _through_the_product(wh, {str(log_file): "hdfs"}, [rules_for("hdfs")],
                                                  ("hdfs", str(label_file)), "hdfs", raw=True)
        write_table(cut, wh.table("sessions"))
        source = f"hdfs:{label_file.name}"
        sessions = read_table(spark, wh.table("sessions")).where(F.col("label_source") == source)
        per_block = sessions.groupBy("key").count()
        import gzip

        with gzip.open(log_file, "rt", errors="replace") as f:
            lines_in = sum(1 for _ in f)
        n_labels = read_table(spark, wh.table("labels")).count()
        accounting = {"lines_in": lines_in, "raw_logs": rows.get("raw_logs"), "events": rows.get("events"),
                      "rejects": rows.get("rejects"), "blocks_labelled": n_labels,
                      "blocks_with_a_session": per_block.count(), "anomalous": sessions.where("label = 1").count(),
                      "max_sessions_per_block": int((per_block.agg(F.max("count")).first() or [0])[0] or 0)}
        log.info("hdfs-blocks through the product: %s (%.0fs)", accounting, time.monotonic() - t0)
        if accounting["max_sessions_per_block"] != 1:
            raise LogadError(f"a block was cut into several sessions ({accounting}): the protocol needs one per block")
        for seed in seeds:
            for name in models:
                started = time.perf_counter()
                if name not in SEQUENCE_MODELS and name not in DETECTORS:
                    raise LogadError(f"unknown model {name!r}: use {', '.join(SEQUENCE_MODELS + tuple(DETECTORS))}")
                # every one is a detector 'logad train' makes; the unsupervised ones never read a label
                summary = run_train(spark, wh, TrainJob(
                    system="hdfs", model=name, unit=unit, epochs=epochs, batch_size=batch_size, seed=seed,
                    repeats=repeats, counts=counts, patience=patience, label_sources=(source,),
                    false_alarm_rate=false_alarm_rate, models_dir=str(Path(tmp) / "models"), resume=False))
                m = {k: float(summary["metrics"][f"test_{k}"]) for k in ("precision", "recall", "f1", "auc")}
                m.update({k: float(v) for k, v in summary["metrics"].items() if k.endswith("_alarm_rate")})
                m["seconds"] = time.perf_counter() - started
                runs[name].append(m)
                log.info("seed %d %-16s P %.4f R %.4f F1 %.4f AUC %.4f (%.0fs)", seed, name, m["precision"],
                         m["recall"], m["f1"], m["auc"], m["seconds"])
    note = (f"{accounting['blocks_with_a_session']} blocks ({accounting['anomalous']} anomalous), one session "
            "each, through ingest, labels, the "
            f"sessionizer's default rules, the training job and the scoring UDF; split by session hash 60/20/20")
    return runs, accounting, note


def bgl_chrono(data: Path, seed: int, window: int = BGL_WINDOW) -> Split:
    """BGL in event-time order, windows of ``window`` lines cut by the sessionizer, split
    chronologically (see the module docstring); ``seed`` does not change the split."""
    from logad.sessions.rules import rules_for

    full = data / "BGL" / "BGL.log"  # the whole log where a copy exists, else the 2k sample
    path = full if full.exists() else _need(data / "BGL" / "BGL_2k.log")
    rules = rules_for("bgl", window_key="all", window_lines=window, window_s=_FOREVER_S, idle_s=_FOREVER_S,
                      max_duration_s=_FOREVER_S)
    sessions, texts = pipeline_sessions({str(path): "bgl"}, [rules], fmt="bgl")
    sessions = sessions[sessions["label_source"] == "bgl_alert"].sort_values("start_ts", kind="stable")
    wins = [(list(ids), int(y)) for ids, y in zip(sessions["template_ids"], sessions["label"], strict=True)
            if len(ids) == window]  # the last, shorter window is left out, as the paper's windows
    a, b = int(0.6 * len(wins)), int(0.8 * len(wins))
    bad = sum(y for _, y in wins)
    lines = sum(len(w) for w, _ in wins)
    return Split(wins[:a], wins[a:b], wins[b:], texts,
                 f"{path.stem}: {lines} lines, {len(wins)} windows of {window} lines ({bad} with an alert), "
                 f"chronological 60/20/20 (test: the last {len(wins) - b})")


def lab_workflows(corpus: Path, eventlog: bool = False
                  ) -> tuple[list[tuple[str, list[str], int, int | None, int]], dict[str, str]]:
    """(application, template ids, label, first WARN/ERROR/exception index, the lab's truth) of
    every Task workflow of a lab corpus, through :func:`pipeline_sessions`, and the template
    texts. ``eventlog``: the label is Spark's own account (``logad sessions labels
    --spark-event-logs`` on the corpus's ``eventlogs/``, no injection record read); else the
    lab's truth, which the last field always holds."""
    from logad.lab.corpus import read_truth
    from logad.sessions.rules import rules_for

    files = {str(p): p.parent.name for p in sorted(corpus.glob("logs/worker-*/*.log*"))}
    if not files or not (corpus / "truth.csv.gz").exists():
        raise LogadError(f"{corpus} is not a Spark lab corpus (logs/worker-*/ and truth.csv.gz): make one "
                         "with `logad lab corpus`, or use the committed data/samples/spark_lab")
    if eventlog and not list((corpus / "eventlogs").glob("*")):
        raise LogadError(f"{corpus} has no eventlogs/ (the committed sample leaves them out): make a corpus "
                         "with `logad lab run`")
    source = ("spark-eventlogs", str(corpus / "eventlogs")) if eventlog else ("spark", str(corpus / "truth.csv.gz"))
    sessions, texts = pipeline_sessions(files, [rules_for("spark")], source)
    sessions = sessions[sessions["label_source"].str.startswith("spark:")]
    truth = {r["session_key"]: int(r["label"] == "Anomaly") for r in read_truth(corpus) if r["session_key"]}
    out = []
    for k, name, ids, label, cut in zip(sessions["key"], sessions["name"], sessions["template_ids"],
                                        sessions["label"], sessions["rule_event"], strict=True):
        log_name = Path(k.split("|", 1)[1]).name.split(".log", 1)[0]
        app = log_name.split(".exec-", 1)[0]
        out.append((app, list(ids), int(label), None if cut is None or cut != cut else int(cut),
                    truth[f"{log_name}|{name}"]))
    out.sort()
    return out, texts


def spark_lab(corpus: Path, seed: int, prefix: bool = False, eventlog: bool = False) -> Split:
    """Split by application. ``eventlog``: train and validate on Spark's own labels, test on the
    lab's truth (what an operator's model meets: its labels from the cluster, judged on what
    really happened)."""
    flows, texts = lab_workflows(corpus, eventlog)
    apps = sorted({a for a, _, _, _, _ in flows})
    if len(apps) < 3:
        raise LogadError(f"{corpus} has {len(apps)} applications; a split by application needs at least 3")
    random.Random(seed).shuffle(apps)
    n = len(apps)
    a = max(1, min(round(0.6 * n), n - 2))
    b = max(a + 1, min(round(0.8 * n), n - 1))
    parts = {x: 0 for x in apps[:a]} | {x: 1 for x in apps[a:b]} | {x: 2 for x in apps[b:]}
    split: list[list[tuple[list[str], int]]] = [[], [], []]
    for app, ids, label, cut, truth in flows:
        seq = ids[:cut] if prefix and cut else ids
        split[parts[app]].append((seq, truth if parts[app] == 2 else label))
    anomalies = sum(t for *_, t in flows)
    disagree = sum(y != t for _, _, y, _, t in flows)
    return Split(split[0], split[1], split[2], texts,
                 f"{len(flows)} Task workflows ({anomalies} anomalous) of {len(apps)} lab applications, "
                 f"split by application {a}/{b - a}/{len(apps) - b}" + (", cut before the first WARN/ERROR" if prefix else "")
                 + (f"; trained on Spark's event-log labels ({disagree} workflows where they differ from the "
                    "lab's truth), tested on the truth" if eventlog else ""))


def _windows(sessions: list[tuple[list[int], int]], window: int) -> tuple[list[tuple[list[int], int]], list[int]]:
    """Windows with their session's label, and for each window the index of its session."""
    from logad.models.windows import sliding

    out, owner = [], []
    for i, (events, label) in enumerate(sessions):
        for w in sliding(events, window):
            out.append((w, label))
            owner.append(i)
    return out, owner


def run_once(split: Split, models: Sequence[str], seed: int, epochs: int, unit: str,
             repeats: bool = False, embed_dim: int = 32, batch_size: int = 2048, counts: bool = False,
             attention_scale: bool = True) -> dict[str, dict[str, float]]:
    """Every model on one split; P/R/F1/AUC on the test sessions."""
    import torch

    from logad.models.baselines import PCADetector, SklearnBaseline
    from logad.models.fit import Example, TrainConfig, best_threshold, fit, metrics, predict
    from logad.models.sequence import ModelConfig
    from logad.models.vectors import train_vectors

    tv = train_vectors(split.templates, dim=embed_dim, seed=seed)

    def index(part: list[tuple[list[str], int]]) -> list[tuple[list[int], int]]:
        return [([tv.index(t) for t in s], y) for s, y in part]

    train, valid, test = index(split.train), index(split.valid), index(split.test)
    y_test = [y for _, y in test]
    results: dict[str, dict[str, float]] = {}
    for name in models:
        started = time.perf_counter()
        if name in BASELINES:
            base = (PCADetector(tv.size) if name == "pca" else SklearnBaseline(tv.size, name, seed))
            base.fit([s for s, _ in train], [y for _, y in train])
            cut = 0.5 if name == "pca" else best_threshold([y for _, y in valid], base.score([s for s, _ in valid]))
            scores = base.score([s for s, _ in test])
            m = metrics(y_test, scores, cut)
        elif name in SEQUENCE_MODELS:
            config = ModelConfig(kind=name, vocab_size=tv.size, embed_dim=embed_dim, repeats=repeats,
                                 counts=counts, attention_scale=attention_scale,
                                 heads=4 if (embed_dim + repeats) % 4 == 0 else 1)
            tr, va = train, valid
            if unit == "window":
                tr = _windows(train, config.window)[0]
                va = _windows(valid, config.window)[0]
            result = fit(config, TrainConfig(epochs=epochs, seed=seed, patience=5, batch_size=batch_size),
                         [Example(s, y) for s, y in tr], [Example(s, y) for s, y in va],
                         vectors=torch.from_numpy(tv.matrix))
            if unit == "window":
                wins, owner = _windows(test, config.window)
                w_scores = predict(result.model, [Example(s, y) for s, y in wins])
                scores = np.zeros(len(test))
                np.maximum.at(scores, np.asarray(owner), w_scores)
                v_wins, v_owner = _windows(valid, config.window)
                v_scores = np.zeros(len(valid))
                np.maximum.at(v_scores, np.asarray(v_owner), predict(result.model, [Example(s, y) for s, y in v_wins]))
                cut = best_threshold([y for _, y in valid], v_scores)
            else:
                scores = predict(result.model, [Example(s, y) for s, y in test])
                cut = result.threshold
            m = metrics(y_test, scores, cut)
        else:
            raise LogadError(f"unknown model {name!r}: use {', '.join(SEQUENCE_MODELS + BASELINES)}")
        m["seconds"] = time.perf_counter() - started
        results[name] = m
        log.info("seed %d %-16s P %.4f R %.4f F1 %.4f AUC %.4f (%.0fs)", seed, name, m["precision"],
                 m["recall"], m["f1"], m["auc"], m["seconds"])
    return results


ALL_MODELS = ("pca", "logreg", "tree", "att_gru", "att_lstm", "gru", "lstm", "transformer_gru")
UNLABELLED_MODELS = ("novelty", "length", "pca", "nextevent", "att_gru", "tree")  # --labels none: the unsupervised, and two beside


def evaluate(protocol: str, data: str | Path, models: Sequence[str] | None = None, seeds: Sequence[int] = (0, 1, 2),
             epochs: int = 20, unit: str = "session", repeats: bool = False,
             batch_size: int = 128, attention_scale: bool = True, counts: bool = False,
             patience: int = TrainJob.patience, labels: str = "use",
             false_alarm_rate: float = TrainJob.false_alarm_rate) -> dict[str, object]:
    """Run a protocol over seeds; mean and standard deviation per model and metric.

    ``models`` default: :data:`ALL_MODELS`; with ``labels="none"`` (``hdfs-blocks`` only) the
    detectors of normal, which never read a label, beside the supervised ATT-GRU and tree
    (:data:`UNLABELLED_MODELS`). ``batch_size`` 128, not the paper's 2048: on these data sizes 2048
    gives a few steps per epoch.
    """
    from logad.models.detectors import supervised

    if protocol not in PROTOCOLS:
        raise LogadError(f"unknown protocol {protocol!r}: use {', '.join(PROTOCOLS)}")
    if labels not in ("use", "none", "eventlog"):
        raise LogadError(f"labels {labels!r}: use 'use', 'none' or 'eventlog'")
    if labels == "none" and protocol != "hdfs-blocks":
        raise LogadError("--labels none runs on the hdfs-blocks protocol (the detectors of normal are trained by "
                         "the training job, which only that protocol runs)")
    if labels == "eventlog" and not protocol.startswith("spark-lab"):
        raise LogadError("--labels eventlog runs on the spark-lab protocols (Spark's event logs label Task workflows)")
    models = tuple(models or (UNLABELLED_MODELS if labels == "none" else ALL_MODELS))
    def load(root: Path, seed: int) -> Split:
        if protocol.startswith("spark-lab"):
            return spark_lab(root, seed, prefix=protocol == "spark-lab-prefix", eventlog=labels == "eventlog")
        if protocol == "bgl-chrono":
            return bgl_chrono(root, seed)
        return hdfs_paper(root, seed)

    runs: dict[str, list[dict[str, float]]] = {m: [] for m in models}
    note, extra = "", {}
    if protocol == "hdfs-blocks":
        runs, accounting, note = hdfs_blocks_product(Path(data), models, seeds, epochs, unit, repeats, batch_size,
                                                     counts, patience, false_alarm_rate)
        extra = {"path": "product", "accounting": accounting}
    else:
        for seed in seeds:
            split = load(Path(data), seed)
            note = split.note
            for name, m in run_once(split, models, seed, epochs, unit, repeats, batch_size=batch_size,
                                    attention_scale=attention_scale, counts=counts).items():
                runs[name].append(m)
    keys = ("precision", "recall", "f1", "auc", "seconds", "valid_alarm_rate", "test_alarm_rate")
    summary = {name: {"supervised": supervised(name) or name in BASELINES and protocol != "hdfs-blocks",
                      **{k: (float(np.mean([r[k] for r in rs])), float(np.std([r[k] for r in rs])))
                         for k in keys if rs and k in rs[0]}} for name, rs in runs.items()}
    return {"protocol": protocol, "unit": unit, "repeats": repeats, "counts": counts, "patience": patience,
            "labels": labels, "false_alarm_rate": false_alarm_rate, "seeds": list(seeds),
            "epochs": epochs, "batch_size": batch_size, "attention_scale": attention_scale, "data": note,
            **extra, "models": summary}


def table(result: dict[str, object]) -> str:
    """The paper's layout: method, precision, recall, F1 (mean +- std over seeds), plus AUC."""
    lines = [f"{result['protocol']} ({result['unit']}s; {result['data']}; seeds {result['seeds']})",
             f"{'Method':<17}{'Precision':>16}{'Recall':>16}{'F1-measure':>16}{'ROC-AUC':>16}"]
    models = result["models"]
    assert isinstance(models, dict)
    for name, m in models.items():
        cells = "".join(f"{m[k][0]:>9.4f} +-{m[k][1]:.3f}" for k in ("precision", "recall", "f1", "auc"))
        rate = f"   alarms {m['test_alarm_rate'][0]:.2%} of test" if "test_alarm_rate" in m else ""
        lines.append(f"{name.upper().replace('_', '-'):<17}{cells}{rate}")
    return "\n".join(lines)


def to_json(result: dict[str, object]) -> str:
    return json.dumps({"bench": "evaluate", **result})


__all__ = ["BASELINES", "PROTOCOLS", "SEQUENCE_MODELS", "UNLABELLED_MODELS", "evaluate", "table", "to_json"]
