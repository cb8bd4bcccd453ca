"""DeepLog's idea as a detector of normal: a GRU that learns, from unlabelled history, which
template comes next, and a session's score is how surprising its most surprising event is.

Du et al. (CCS 2017, "DeepLog") model a log as a language: trained on normal sequences only, the
model predicts the next template from the ones before it, and a session whose events the model
did not expect is anomalous. Here, as for the other detectors of normal
(:mod:`logad.models.normal`), the history is taken as it is, with the few anomalies it hides,
and no label is read:

- the model: template embedding (dim ``EMBED``) -> one-layer GRU (``HIDDEN``) -> a linear layer
  over the vocabulary; input ``[BOS, e_1 .. e_{T-1}]``, target ``[e_1 .. e_T]``, cross-entropy
  (nanoGPT's ``forward(x, targets) -> (logits, loss)``);
- the score: the largest negative log-likelihood of an event given those before it (DeepLog
  flags a session when any event is outside the model's top-g guesses; the largest surprise is
  the continuous form of that rule, so the threshold can be the false-alarm quantile of held-out
  history). A template never seen in history maps to ``UNK``, which the model was never trained
  to predict: the most surprising event there is (capped at ``MAX_NLL``);
- explanations: an event's weight is its share of the session's surprise; its impact the score's
  drop without its template (:class:`logad.models.normal.NormalDetector`).

Training runs on the driver, on the history's template sequences (at most ``MAX_SESSIONS``, a
seeded sample beyond that: a few MB for HDFS's 3,500 training blocks, seconds per epoch on two
cores); scoring runs on the executors in the batch (``mapInPandas``). The weights are stored as
lists in ``detector.json`` (a few thousand numbers; no pickle), and the model is rebuilt from them.

Example:
    >>> det = NextEventDetector.train("nextevent", history)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from logad.models.normal import NormalDetector, _seen

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

EMBED, HIDDEN = 16, 64
EPOCHS, BATCH, LR = 8, 64, 3e-3
MAX_LEN = 512  # events of a session the model reads (HDFS blocks hold up to ~300)
MAX_SESSIONS = 200_000  # history sessions collected to the driver for training
MAX_NLL = 30.0
PAD, BOS, UNK = 0, 1, 2  # template i of the vocabulary is index i + 3


def _module(vocab: int) -> Any:
    import torch
    from torch import nn

    class NextEvent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab + 3, EMBED, padding_idx=PAD)
            self.gru = nn.GRU(EMBED, HIDDEN, batch_first=True)
            self.head = nn.Linear(HIDDEN, vocab + 3)

        def forward(self, x: torch.Tensor, targets: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
            h, _ = self.gru(self.embed(x))  # (B, T, H)
            logits = self.head(h)  # (B, T, V+3)
            loss = None
            if targets is not None:
                loss = nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                                                   ignore_index=PAD)
            return logits, loss

    return NextEvent()


def _batch(seqs: Sequence[Sequence[int]]) -> tuple[Any, Any]:
    """(inputs ``[BOS, e_1 .. e_{T-1}]``, targets ``[e_1 .. e_T]``), padded: (B, T) each."""
    import torch

    t = max((len(s) for s in seqs), default=0) or 1
    x = torch.full((len(seqs), t), PAD, dtype=torch.long)
    y = torch.full((len(seqs), t), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            x[i, 0] = BOS
            x[i, 1:len(s)] = torch.tensor(s[:-1])
            y[i, :len(s)] = torch.tensor(s)
    return x, y


class NextEventDetector(NormalDetector):
    """How surprising a session's events are to a next-template model of history (see the module
    docstring)."""

    @classmethod
    def train(cls, kind: str, sessions: DataFrame, seed: int = 0) -> NextEventDetector:
        import torch

        n, support = _seen(sessions)
        vocab = sorted(support)
        index = {t: i + 3 for i, t in enumerate(vocab)}
        rows = sessions.select("template_ids")
        if n > MAX_SESSIONS:
            rows = rows.sample(fraction=MAX_SESSIONS / n, seed=seed)
        seqs = [[index[t] for t in r[0][:MAX_LEN]] for r in rows.collect()]
        seqs = [s for s in seqs if s]
        torch.manual_seed(seed)
        rng = random.Random(seed)
        model = _module(len(vocab))
        opt = torch.optim.Adam(model.parameters(), lr=LR)
        for epoch in range(EPOCHS):
            order = sorted(range(len(seqs)), key=lambda i: (len(seqs[i]), rng.random()))  # little padding
            batches = [order[i:i + BATCH] for i in range(0, len(order), BATCH)]
            rng.shuffle(batches)
            total, count = 0.0, 0
            for b in batches:
                x, y = _batch([seqs[i] for i in b])
                _, loss = model(x, y)
                assert loss is not None
                opt.zero_grad()
                loss.backward()
                opt.step()
                total, count = total + float(loss.detach()) * len(b), count + len(b)
            log.info("%s: epoch %d/%d  next-template loss %.4f  (%d sessions)", kind, epoch + 1, EPOCHS,
                     total / max(1, count), len(seqs))
        weights = {k: v.detach().numpy().tolist() for k, v in model.state_dict().items()}
        return cls(kind, {"templates": vocab, "sessions": n, "trained_on": len(seqs), "embed": EMBED,
                          "hidden": HIDDEN, "epochs": EPOCHS, "weights": weights})

    def _model(self) -> Any:
        if "model" not in self._cache:
            import torch

            model = _module(len(self.state["templates"]))
            model.load_state_dict({k: torch.tensor(v, dtype=torch.float32) for k, v in self.state["weights"].items()})
            model.eval()
            self._cache["model"] = (model, {t: i + 3 for i, t in enumerate(self.state["templates"])})
        return self._cache["model"]

    def surprise(self, sessions: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """Per session, each event's negative log-likelihood given the events before it."""
        import torch

        model, index = self._model()
        out: list[np.ndarray] = [np.zeros(0)] * len(sessions)
        coded = [[index.get(t, UNK) for t in ids[:MAX_LEN]] for ids in sessions]
        order = sorted(range(len(coded)), key=lambda i: len(coded[i]))
        with torch.no_grad():
            for start in range(0, len(order), 256):
                b = [i for i in order[start:start + 256] if coded[i]]
                if not b:
                    continue
                x, y = _batch([coded[i] for i in b])
                logits, _ = model(x)  # (B, T, V+3)
                logp = torch.log_softmax(logits, dim=-1)  # (B, T, V+3)
                nll = -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)  # (B, T)
                values = nll.clamp(max=MAX_NLL).numpy()
                for j, i in enumerate(b):
                    out[i] = values[j, :len(coded[i])]
        return out

    def score_lists(self, sessions: Sequence[Sequence[str]]) -> np.ndarray:
        return np.array([float(s.max()) if len(s) else 0.0 for s in self.surprise(sessions)])

    def weights(self, ids: Sequence[str]) -> dict[str, float]:
        nll = self.surprise([ids])[0]
        w: dict[str, float] = {}
        for t, v in zip(ids, nll, strict=False):
            w[t] = max(w.get(t, 0.0), float(v))
        total = sum(w.values()) or 1.0
        return {t: v / total for t, v in w.items()}


__all__ = ["MAX_NLL", "NextEventDetector"]
