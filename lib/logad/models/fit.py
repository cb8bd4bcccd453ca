"""Training and evaluation of the sequence models: one loop for one process and for every rank of
a TorchDistributor run (DistributedDataParallel over gloo on CPU, NCCL on GPUs).

- :func:`fit` trains on ``(sequence, label)`` examples with Adam and cross-entropy (Table 2:
  lr 1e-3, batch 2048), logs epoch, loss and validation F1 and loss, keeps the weights of the
  epoch with the best validation F1 (the lowest validation loss among epochs tied on it), stops
  early after ``patience`` epochs without a better one, and resumes from a checkpoint.
- :func:`best_threshold` puts the score cut in the middle of the best validation F1's interval.
- :func:`metrics` computes precision, recall, F1 (from P and R) and ROC-AUC.
- :func:`save_artifact` / :func:`load_artifact` write and read the versioned model file:
  weights, config, vocabulary and template vectors, threshold, metrics, data and code versions.
  Loading uses ``torch.load(weights_only=True)``: no pickled code is ever run.

Example:
    >>> result = fit(ModelConfig(vocab_size=tv.size), TrainConfig(epochs=5), train, valid,
    ...              vectors=torch.from_numpy(tv.matrix))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from logad.errors import ConfigError, LogadError
from logad.models.sequence import ModelConfig, SequenceClassifier
from logad.models.windows import collapse, pad

log = logging.getLogger(__name__)

ARTIFACT_FORMAT = 1


@dataclass(frozen=True)
class TrainConfig:
    """How to train (the paper's Table 2 where it says)."""

    epochs: int = 30
    batch_size: int = 2048
    lr: float = 1e-3
    patience: int = 5  # epochs without a better validation F1 (or loss at that F1) before stopping
    seed: int = 0
    max_len: int = 512  # longer sequences keep their last max_len events
    balanced: bool = True  # weight the loss by inverse class frequency (anomalies are rare)
    checkpoint: str | None = None  # a file to resume from and save to after every epoch

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.max_len < 1:
            raise ConfigError(f"TrainConfig: epochs, batch_size, max_len >= 1 and lr > 0: {self}")


@dataclass
class Example:
    """One training example: template indices (already mapped to vector rows) and a label;
    ``counts`` when the events are already collapsed runs (the run lengths)."""

    events: list[int]
    label: int
    counts: list[int] | None = None
    session: int | None = None  # windows of one session share it; validation scores its max


@dataclass
class FitResult:
    model: SequenceClassifier
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    threshold: float = 0.5


def encode(examples: Sequence[Example], config: ModelConfig, max_len: int
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """(x, lengths, repeats, y) tensors; runs collapsed when ``config.repeats``."""
    seqs: list[list[int]] = []
    runs: list[list[int]] = []
    for ex in examples:
        events = list(ex.events)
        counts = list(ex.counts) if ex.counts is not None else [1] * len(events)
        if config.repeats and ex.counts is None:
            events, counts = collapse(events)
        seqs.append(events[-max_len:])
        runs.append(counts[-max_len:])
    x, lengths = pad(seqs)
    repeats = pad(runs)[0] if config.repeats else None
    y = torch.tensor([ex.label for ex in examples], dtype=torch.long)
    return x, lengths, repeats, y


def metrics(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray,
            threshold: float = 0.5) -> dict[str, float]:
    """Precision, recall, F1 (= 2PR/(P+R)), ROC-AUC, and the confusion counts."""
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    pred = s >= threshold
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    tn = int(np.sum(~pred & (y == 0)))
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f1, "auc": roc_auc(y, s),
            "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def roc_auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC-AUC by ranks (ties share their mean rank); NaN with one class only."""
    pos, neg = int(np.sum(y == 1)), int(np.sum(y == 0))
    if not pos or not neg:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average rank over ties
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def predict(model: SequenceClassifier, examples: Sequence[Example], batch_size: int = 4096,
            max_len: int = 512) -> np.ndarray:
    """P(abnormal) per example, in order (:func:`logad.models.inference.infer`)."""
    from logad.models.inference import infer

    out: list[np.ndarray] = []
    for start in range(0, len(examples), batch_size):  # encoded a batch at a time: bounded memory
        x, lengths, repeats, _ = encode(examples[start:start + batch_size], model.config, max_len)
        out.append(infer(model, x, lengths, repeats, batch_size=batch_size))
    return np.concatenate(out) if out else np.zeros(0)


def best_threshold(labels: Sequence[int], scores: np.ndarray) -> float:
    """The score cut that maximises F1 on validation data (stored with the model).

    Every cut between two neighbouring distinct scores gives the same F1, so the best F1 holds on
    an interval of cuts; this returns the middle of the widest such interval (in log-odds when
    the scores are probabilities), not its edge. The edge is the lowest-scoring validation
    anomaly's score, so any unseen normal session above it is flagged (seen on HDFS, seed 0:
    cut 0.070, three unseen normal blocks at 0.17)."""
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    values = np.unique(s)  # ascending; the cut t flags scores >= t
    if not len(values):
        return 0.5
    # F1 at every cut at once: tp and fp are the positives and negatives scoring >= the cut
    pos, neg = np.sort(s[y == 1]), np.sort(s[y == 0])
    tp = len(pos) - np.searchsorted(pos, values, side="left")
    fp = len(neg) - np.searchsorted(neg, values, side="left")
    precision = np.divide(tp, tp + fp, out=np.zeros(len(values)), where=tp + fp > 0)
    recall = tp / len(pos) if len(pos) else np.zeros(len(values))
    # as metrics() computes it, so that equal F1s tie the same way
    f1s = np.divide(2 * precision * recall, precision + recall, out=np.zeros(len(values)),
                    where=precision + recall > 0)
    top = f1s.max()
    probability = bool(np.all((s >= 0) & (s <= 1)))

    def to_space(v: float) -> float:  # log-odds for probabilities
        if not probability:
            return v
        v = min(max(v, 1e-7), 1 - 1e-7)
        return float(np.log(v / (1 - v)))

    def from_space(z: float) -> float:
        return float(1 / (1 + np.exp(-z))) if probability else z

    # a run i..j of candidates that all reach the best F1 covers the cuts (values[i-1], values[j]]
    best: tuple[float, float, float] | None = None  # (width, lo, hi)
    i = 0
    while i < len(values):
        if f1s[i] != top:
            i += 1
            continue
        j = i
        while j + 1 < len(values) and f1s[j + 1] == top:
            j += 1
        hi = float(values[j])
        lo = float(values[i - 1]) if i > 0 else (0.0 if probability else hi - 1.0)
        width = to_space(hi) - to_space(lo)
        if best is None or width > best[0]:
            best = (width, lo, hi)
        i = j + 1
    assert best is not None
    _, lo, hi = best
    mid = from_space((to_space(lo) + to_space(hi)) / 2)
    return mid if lo < mid <= hi else hi


class BatchSource(Protocol):
    """Training batches for one rank: how many examples there are across all ranks, how many of
    each class (for the loss weights), and each epoch's ``steps`` batches of this rank's shard."""

    size: int
    label_counts: list[int]

    def batches(self, epoch: int, steps: int, rank: int, world: int, batch_size: int
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]]: ...

    def close(self) -> None: ...


class MemoryBatches:
    """Batches from examples held in memory; each rank reads every ``world``-th example, shuffled
    per epoch by the seed, cycling when its shard is shorter than ``steps`` batches."""

    def __init__(self, examples: Sequence[Example], config: ModelConfig, max_len: int, seed: int = 0) -> None:
        self.examples, self.config, self.max_len, self.seed = list(examples), config, max_len, seed
        self.size = len(self.examples)
        labels = [e.label for e in self.examples]
        self.label_counts = [labels.count(c) for c in range(config.classes)]

    def batches(self, epoch: int, steps: int, rank: int, world: int, batch_size: int
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]]:
        shard = self.examples[rank::world] or self.examples[:1]
        order = torch.randperm(len(shard), generator=torch.Generator().manual_seed(self.seed + epoch))
        for step in range(steps):
            idx = order[(step * batch_size) % len(shard):][:batch_size]
            yield encode([shard[int(i)] for i in idx], self.config, self.max_len)

    def close(self) -> None:
        pass


def fit(config: ModelConfig, train: TrainConfig, examples: Sequence[Example] | BatchSource,
        valid: Sequence[Example], vectors: torch.Tensor | None = None,
        device: str | torch.device = "cpu") -> FitResult:
    """Train a model; under ``torch.distributed`` each rank trains on its shard (DDP).

    ``examples`` is a list of :class:`Example` or a :class:`BatchSource` (a petastorm reader in
    :mod:`logad.models.train_job`). Validation runs on every rank over the same ``valid`` list.
    """
    import torch.distributed as dist

    distributed = dist.is_available() and dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    source = (MemoryBatches(examples, config, train.max_len, train.seed)
              if isinstance(examples, Sequence) else examples)
    if not source.size:
        raise LogadError("no training examples")
    torch.manual_seed(train.seed)  # the same initial weights on every rank
    model = SequenceClassifier(config, vectors).to(device)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=train.lr)
    start_epoch, best_f1, best_epoch, history = 0, -1.0, -1, []
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if train.checkpoint and Path(train.checkpoint).exists():
        ck = torch.load(train.checkpoint, map_location=device, weights_only=True)
        if ck["config"] != config.to_dict():
            raise ConfigError(f"checkpoint {train.checkpoint} is for another model config; "
                              "delete it or use the same config")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        best_state = ck["best"]
        start_epoch, best_f1, best_epoch = ck["epoch"] + 1, ck["best_f1"], ck["best_epoch"]
        history = list(ck["history"])
        log.info("resumed from %s at epoch %d (best F1 %.4f at epoch %d)", train.checkpoint,
                 start_epoch, best_f1, best_epoch)
    net: torch.nn.Module = model
    if distributed:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=None if str(device) == "cpu" else [device])
    weight = None
    if train.balanced:
        counts = torch.tensor(source.label_counts, dtype=torch.float32)
        weight = (counts.sum() / (config.classes * counts.clamp(min=1))).to(device)  # (C,)
    per_rank_batch = max(1, train.batch_size // world)
    # the same number of steps on every rank (DDP all-reduces each one)
    steps = max(1, math.ceil(source.size / (world * per_rank_batch)))
    try:
        for epoch in range(start_epoch, train.epochs):
            started = time.perf_counter()
            model.train()
            total, seen = 0.0, 0
            for x, lengths, repeats, y in source.batches(epoch, steps, rank, world, per_rank_batch):
                logits, _ = net(x.to(device), lengths, None if repeats is None else repeats.to(device))
                loss = torch.nn.functional.cross_entropy(logits, y.to(device), weight=weight)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.item()) * len(y)
                seen += len(y)
            best_f1, best_epoch, stop = _end_epoch(model, opt, train, config, valid, history, epoch, best_f1,
                                                   best_epoch, best_state, total / max(1, seen), seen * world, started, rank)
            if stop:
                break
    finally:
        source.close()
    model.load_state_dict(best_state)
    threshold = best_threshold(*session_max(valid, predict(model, valid, max_len=train.max_len))) if valid else 0.5
    return FitResult(model, best_epoch, history, threshold)


def session_max(examples: Sequence[Example], scores: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Labels and scores per session when the examples are windows (``session`` set): a session
    scores the max of its windows. Examples without a session stand for themselves."""
    if not examples or examples[0].session is None:
        return [e.label for e in examples], scores
    keys = {s: i for i, s in enumerate(dict.fromkeys(e.session for e in examples))}
    out = np.full(len(keys), -np.inf)
    idx = np.asarray([keys[e.session] for e in examples])
    np.maximum.at(out, idx, scores)
    labels = [0] * len(keys)
    for e, i in zip(examples, idx, strict=True):
        labels[int(i)] = e.label
    return labels, out


def balanced_log_loss(labels: Sequence[int], scores: np.ndarray) -> float:
    """Cross-entropy of P(abnormal) per class, averaged over the classes present (as the
    training loss weighs them), so a few anomalies count as much as many normal sessions."""
    y = np.asarray(labels, dtype=np.int64)
    p = np.clip(np.asarray(scores, dtype=np.float64), 1e-7, 1 - 1e-7)
    parts = [float(-np.mean(np.log(p[y == 1])))] if np.any(y == 1) else []
    parts += [float(-np.mean(np.log(1 - p[y == 0])))] if np.any(y == 0) else []
    return float(np.mean(parts)) if parts else math.inf


def _end_epoch(model: SequenceClassifier, opt: torch.optim.Optimizer, train: TrainConfig, config: ModelConfig,
               valid: Sequence[Example], history: list[dict[str, float]], epoch: int, best_f1: float,
               best_epoch: int, best_state: dict[str, torch.Tensor], loss: float, seen: int, started: float,
               rank: int) -> tuple[float, int, bool]:
    """Validate, log, keep the best weights (in ``best_state``), checkpoint; True to stop early."""
    labels, scores = session_max(valid, predict(model, valid, max_len=train.max_len))
    m = metrics(labels, scores)
    val_loss = balanced_log_loss(labels, scores)
    row = {"epoch": epoch, "loss": loss, "val_f1": m["f1"], "val_precision": m["precision"],
           "val_recall": m["recall"], "val_loss": val_loss, "examples": seen,
           "seconds": time.perf_counter() - started}
    best_loss = next((h.get("val_loss", math.inf) for h in history if h["epoch"] == best_epoch), math.inf)
    history.append(row)
    # a small validation set saturates F1 (1.0 on HDFS by epoch ~9) long before the model
    # separates the classes well; among epochs with the best F1 the lower validation loss wins
    improved = m["f1"] > best_f1 or (m["f1"] == best_f1 and val_loss < best_loss)
    if improved:
        best_f1, best_epoch = m["f1"], epoch
        best_state.update({k: v.detach().clone() for k, v in model.state_dict().items()})
    if rank == 0:
        log.info("epoch %d/%d  loss %.4f  val P %.4f R %.4f F1 %.4f%s  (%d examples, %.1fs)", epoch + 1,
                 train.epochs, loss, m["precision"], m["recall"], m["f1"], "  best" if improved else "",
                 seen, row["seconds"])
        if train.checkpoint:
            tmp = f"{train.checkpoint}.tmp"
            Path(train.checkpoint).parent.mkdir(parents=True, exist_ok=True)
            torch.save({"config": config.to_dict(), "model": model.state_dict(),
                        "optimizer": opt.state_dict(), "best": best_state, "epoch": epoch,
                        "best_f1": best_f1, "best_epoch": best_epoch, "history": history}, tmp)
            os.replace(tmp, train.checkpoint)
    stop = epoch - best_epoch >= train.patience
    if stop and rank == 0:
        log.info("early stop: no better validation F1 (or loss at the same F1) for %d epochs", train.patience)
    return best_f1, best_epoch, stop


def save_artifact(path: str | Path, result: FitResult, *, template_ids: Sequence[str],
                  vectors: np.ndarray, metrics_: dict[str, Any], data_version: object = None,
                  code_version: str | None = None, word_vectors: dict[str, np.ndarray] | None = None) -> Path:
    """One file with everything scoring needs; plain tensors and lists (``weights_only`` safe).
    ``word_vectors`` (word2vec's words) let scoring give a template unseen in training a vector."""
    from logad import __version__

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": ARTIFACT_FORMAT,
        "config": result.model.config.to_dict(),
        "weights": result.model.state_dict(),
        "template_ids": list(template_ids),
        "vectors": torch.from_numpy(np.asarray(vectors, dtype=np.float32)),
        "words": sorted(word_vectors or {}),
        "word_vectors": torch.from_numpy(np.stack([word_vectors[w] for w in sorted(word_vectors)]).astype(np.float32)
                                         if word_vectors else np.zeros((0, len(vectors[0]) if len(vectors) else 0),
                                                                       dtype=np.float32)),
        "threshold": float(result.threshold),
        "metrics": {k: float(v) for k, v in metrics_.items()},
        "history": result.history,
        "data_version": str(data_version) if data_version is not None else None,
        "code_version": code_version or __version__,
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_artifact(path: str | Path, device: str | torch.device = "cpu", data: bytes | None = None
                  ) -> tuple[SequenceClassifier, dict[str, Any]]:
    """The model (eval mode) and the artifact's other fields; clear errors for a bad file.
    ``data``: the file's bytes, already read (``path`` then only names it in errors)."""
    import io

    path = Path(path)
    if data is None and not path.exists():
        raise LogadError(f"no model artifact at {path}")
    try:
        payload = torch.load(io.BytesIO(data) if data is not None else path, map_location=device, weights_only=True)
    except Exception as e:
        raise LogadError(f"the model artifact at {path} cannot be read ({e}); it is not a logad "
                         "model file or it is damaged") from e
    if not isinstance(payload, dict) or payload.get("format") != ARTIFACT_FORMAT:
        raise LogadError(f"the file at {path} is not a logad model artifact (format {ARTIFACT_FORMAT})")
    try:
        config = ModelConfig(**payload["config"])
        model = SequenceClassifier(config).to(device)
        model.load_state_dict(payload["weights"])
    except (TypeError, RuntimeError, KeyError) as e:
        raise LogadError(f"the model artifact at {path} does not match its config: {e}") from e
    model.eval()
    return model, {k: v for k, v in payload.items() if k != "weights"}

