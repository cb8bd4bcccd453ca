"""``logad evaluate``: precision, recall, F1 and ROC-AUC of every model on fixed protocols, several
seeds, mean and spread, as a table (the layout of the first paper's Tables 4-7) and a JSON line.

Protocols (data under ``--data``, default ``$LOGAD_DATA`` or ``../shared/data``):

- ``hdfs-paper``: the papers' setting as far as our copy allows. Balanced training, 6,000
  normal + 6,000 abnormal sessions in the paper; our normal sessions (AIT ``hdfs_train``, 5,583)
  cap it at 70% of them per class (3,908 + 3,908), 10% per class for validation, and a balanced
  test set of the rest. Balanced test sets flatter precision; compare models, not deployments.
- ``hdfs-blocks``: the honest one. Raw HDFS lines of a random 2% block sample (5,917 blocks,
  171 anomalous, the natural ratio), parsed with our masking + Drain, one session per block,
  blocks split 60/20/20 into train / validation / test by seed, so every test block is unseen.

- ``spark-lab``: Task workflows of a Spark lab corpus (``--data`` is the corpus folder; default
  the committed sample ``data/samples/spark_lab``), labelled by the lab's ground truth (injected
  faults and Spark's task end reasons, not by WARN/ERROR). The executor logs go through the
  real pipeline (``ingest_files``: headers, masking + Drain templates; the batch sessionizer: one
  workflow per TID) in a local Spark session; applications split 60/20/20 by seed, so every test
  workflow comes from an application never seen in training.
- ``bgl-chrono``: BGL split chronologically, as far as our copy allows: the only raw BGL here is
  LogHub's 2k sample (2,000 lines over seven months, 143 alert lines; the full 4.7M-line log is
  not obtainable), so the papers' 3,000 + 3,000 BGL sessions cannot be built. Lines in time
  order, masked + Drain, cut into consecutive windows of 10 lines (the paper's window), a window
  abnormal when one of its lines is an alert (first token not ``-``); the earliest 60% of the
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


_BLOCK_CACHE: dict[Path, tuple[dict[str, list[str]], dict[str, str], dict[str, int]]] = {}


def hdfs_blocks(data: Path, seed: int) -> Split:
    from logad.models.data import block_sessions, read_labels

    raw = data / "HDFS" / "raw"
    key = raw.resolve()
    if key not in _BLOCK_CACHE:
        import gzip

        with gzip.open(_need(raw / "HDFS_dev_sample.log.gz"), "rt", encoding="utf-8") as f:
            seqs, texts = block_sessions(f)
        _BLOCK_CACHE[key] = (seqs, texts, read_labels(_need(raw / "HDFS_dev_sample.anomaly_label.csv")))
    seqs, texts, labels = _BLOCK_CACHE[key]
    blocks = sorted(b for b in seqs if b in labels)
    random.Random(seed).shuffle(blocks)
    a, b = int(0.6 * len(blocks)), int(0.8 * len(blocks))

    def part(bs: list[str]) -> list[tuple[list[str], int]]:
        return [(seqs[x], labels[x]) for x in bs]

    anomalies = sum(labels[x] for x in blocks)
    return Split(part(blocks[:a]), part(blocks[a:b]), part(blocks[b:]), texts,
                 f"{len(blocks)} blocks ({anomalies} anomalous), split by block 60/20/20")


def bgl_chrono(data: Path, seed: int, window: int = BGL_WINDOW) -> Split:
    """BGL_2k in time order, windows of ``window`` lines, split chronologically (see the module
    docstring); ``seed`` does not change the split."""
    from logad.templates import make_miner, template_id
    from logad.templates.masking import DEFAULT_RULES, mask

    full = data / "BGL" / "BGL.log"  # the whole log where a copy exists, else the 2k sample
    path = full if full.exists() else _need(data / "BGL" / "BGL_2k.log")
    from logad.parse.formats import FORMATS, header

    bgl = FORMATS["bgl"]  # the ingest parser's regex and its fields
    regex, at = header("bgl"), {name: i + 1 for i, name in enumerate(bgl.fields)}
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines()):
        m = regex.match(line.rstrip("\r"))
        if m:
            rows.append((int(m.group(at["epoch"])), n, int(m.group(at[str(bgl.truth)]) != "-"),
                         mask(m.group(at["content"]), DEFAULT_RULES)))
    rows.sort()
    miner = make_miner("drain")
    for r in rows:
        miner.add(r[3])
    texts: dict[str, str] = {}
    ids = []
    for r in rows:
        text = miner.match(r[3]) or r[3]
        ids.append(template_id(text))
        texts[ids[-1]] = text
    wins = [(ids[i:i + window], int(any(r[2] for r in rows[i:i + window])))
            for i in range(0, len(rows) - window + 1, window)]
    a, b = int(0.6 * len(wins)), int(0.8 * len(wins))
    bad = sum(y for _, y in wins)
    return Split(wins[:a], wins[a:b], wins[b:], texts,
                 f"{path.stem}: {len(rows)} lines, {len(wins)} windows of {window} lines ({bad} with an alert), "
                 f"chronological 60/20/20 (test: the last {len(wins) - b})")


_LAB_CACHE: dict[Path, tuple[list[tuple[str, list[str], int, int | None]], dict[str, str]]] = {}


def lab_workflows(corpus: Path) -> tuple[list[tuple[str, list[str], int, int | None]], dict[str, str]]:
    """(application, template ids, label, first WARN/ERROR/exception index) of every Task workflow
    of a lab corpus, through ingest and the batch sessionizer, and the template texts."""
    key = corpus.resolve()
    if key in _LAB_CACHE:
        return _LAB_CACHE[key]
    import tempfile

    from logad.config import Warehouse
    from logad.ingest import ingest_files
    from logad.io.delta import read_small, read_table
    from logad.sessions.labels import load_labels
    from logad.sessions.rules import rules_for
    from logad.sessions.spark import read_labels, sessionize
    from logad.spark_session import get_spark
    from logad.templates.stream import TEMPLATES

    files = {str(p): p.parent.name for p in sorted(corpus.glob("logs/worker-*/*.log*"))}
    if not files or not (corpus / "truth.csv.gz").exists():
        raise LogadError(f"{corpus} is not a Spark lab corpus (logs/worker-*/ and truth.csv.gz): make one "
                         "with `logad lab corpus`, or use the committed data/samples/spark_lab")
    spark = get_spark("logad-evaluate", master="local[2]", conf={"spark.sql.shuffle.partitions": "4"})
    with tempfile.TemporaryDirectory(prefix="logad-eval-") as tmp:
        wh = Warehouse(str(Path(tmp) / "wh"))
        ingest_files(spark, wh, files, raw=False)
        load_labels(spark, wh, "spark", str(corpus / "truth.csv.gz"))
        sessions: Any = (sessionize(read_table(spark, wh.table("events")), [rules_for("spark")], read_labels(spark, wh))
                    .where("label_source like 'spark:%'")
                    .select("key", "template_ids", "label", "rule_event").toPandas())
        table = read_small(spark, wh.table(TEMPLATES))
        if table is None:
            raise LogadError(f"ingest of {corpus} mined no templates")
        texts = table.to_pandas()
    out = []
    for k, ids, label, cut in zip(sessions["key"], sessions["template_ids"], sessions["label"],
                                  sessions["rule_event"], strict=True):
        app = Path(k.split("|", 1)[1]).name.split(".exec-", 1)[0]
        out.append((app, list(ids), int(label), None if cut is None or cut != cut else int(cut)))
    out.sort()
    _LAB_CACHE[key] = (out, dict(zip(texts["template_id"], texts["text"], strict=True)))
    return _LAB_CACHE[key]


def spark_lab(corpus: Path, seed: int, prefix: bool = False) -> Split:
    flows, texts = lab_workflows(corpus)
    apps = sorted({a for a, _, _, _ in flows})
    if len(apps) < 3:
        raise LogadError(f"{corpus} has {len(apps)} applications; a split by application needs at least 3")
    random.Random(seed).shuffle(apps)
    n = len(apps)
    a = max(1, min(round(0.6 * n), n - 2))
    b = max(a + 1, min(round(0.8 * n), n - 1))
    parts = {x: 0 for x in apps[:a]} | {x: 1 for x in apps[a:b]} | {x: 2 for x in apps[b:]}
    split: list[list[tuple[list[str], int]]] = [[], [], []]
    for app, ids, label, cut in flows:
        seq = ids[:cut] if prefix and cut else ids
        split[parts[app]].append((seq, label))
    anomalies = sum(y for _, _, y, _ in flows)
    return Split(split[0], split[1], split[2], texts,
                 f"{len(flows)} Task workflows ({anomalies} anomalous) of {len(apps)} lab applications, "
                 f"split by application {a}/{b - a}/{len(apps) - b}" + (", cut before the first WARN/ERROR" if prefix else ""))


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
             repeats: bool = False, embed_dim: int = 32, batch_size: int = 2048,
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
                                 attention_scale=attention_scale,
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


def evaluate(protocol: str, data: str | Path, models: Sequence[str], seeds: Sequence[int],
             epochs: int, unit: str = "session", repeats: bool = False,
             batch_size: int = 2048, attention_scale: bool = True) -> dict[str, object]:
    """Run a protocol over seeds; mean and standard deviation per model and metric."""
    if protocol not in PROTOCOLS:
        raise LogadError(f"unknown protocol {protocol!r}: use {', '.join(PROTOCOLS)}")
    def load(root: Path, seed: int) -> Split:
        if protocol.startswith("spark-lab"):
            return spark_lab(root, seed, prefix=protocol == "spark-lab-prefix")
        if protocol == "bgl-chrono":
            return bgl_chrono(root, seed)
        return hdfs_paper(root, seed) if protocol == "hdfs-paper" else hdfs_blocks(root, seed)

    runs: dict[str, list[dict[str, float]]] = {m: [] for m in models}
    note = ""
    for seed in seeds:
        split = load(Path(data), seed)
        note = split.note
        for name, m in run_once(split, models, seed, epochs, unit, repeats, batch_size=batch_size,
                                       attention_scale=attention_scale).items():
            runs[name].append(m)
    summary = {name: {k: (float(np.mean([r[k] for r in rs])), float(np.std([r[k] for r in rs])))
                      for k in ("precision", "recall", "f1", "auc", "seconds")} for name, rs in runs.items()}
    return {"protocol": protocol, "unit": unit, "repeats": repeats, "seeds": list(seeds),
            "epochs": epochs, "batch_size": batch_size, "attention_scale": attention_scale, "data": note, "models": summary}


def table(result: dict[str, object]) -> str:
    """The paper's layout: method, precision, recall, F1 (mean +- std over seeds), plus AUC."""
    lines = [f"{result['protocol']} ({result['unit']}s; {result['data']}; seeds {result['seeds']})",
             f"{'Method':<17}{'Precision':>16}{'Recall':>16}{'F1-measure':>16}{'ROC-AUC':>16}"]
    models = result["models"]
    assert isinstance(models, dict)
    for name, m in models.items():
        cells = "".join(f"{m[k][0]:>9.4f} +-{m[k][1]:.3f}" for k in ("precision", "recall", "f1", "auc"))
        lines.append(f"{name.upper().replace('_', '-'):<17}{cells}")
    return "\n".join(lines)


def to_json(result: dict[str, object]) -> str:
    return json.dumps({"bench": "evaluate", **result})


__all__ = ["BASELINES", "PROTOCOLS", "SEQUENCE_MODELS", "evaluate", "table", "to_json"]
