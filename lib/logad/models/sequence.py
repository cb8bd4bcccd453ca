"""Sequence classifiers over template vectors: ATT-GRU (Fang et al. 2023) and its peers.

One :class:`ModelConfig` builds every kind:

- ``att_gru``: the first paper's model. Additive attention over the events of a window,
  ``alpha_n = softmax_n(V^T tanh(W x_n + U q))`` with a learned query ``q`` (formulas (1), (2)),
  each event scaled by its weight, ``y_m = alpha_m x_m`` (10), *before* a bidirectional 2-layer
  GRU (11), then a fully connected layer with ReLU and a 2-way output (softmax in the loss).
- ``att_lstm``: the same with an LSTM (the paper's ATT-LSTM row).
- ``gru``, ``lstm``: the ablations without attention.
- ``transformer_gru``: the second paper's model: a Transformer encoder (self-attention over the
  window, learned positions) feeding the GRU.

What the paper leaves open, and what we chose:

- Table 2 lists ``input_size 1``: one number per event (the template index), which would make
  word2vec pointless; we feed each event's template vector (``embed_dim``), as its Section 3.3
  describes.
- The GRU's output for classification: the last hidden state of each direction of the top layer,
  concatenated (the usual reading of "the output of the GRU network").
- ``y_m = alpha_m x_m`` as written makes every input shrink with the sequence length (weights
  sum to one): on whole HDFS sessions the paper-exact model did not learn at all (test ROC-AUC
  0.44 after 20 epochs, 1 seed, frozen vectors, ``logad evaluate --protocol hdfs-blocks``) while
  the scaled form ``y_m = T alpha_m x_m`` (uniform weights are then the identity) reached 0.94 on
  the same split. The default is therefore ``attention_scale=True``; ``False`` is the paper's.
- The word2vec vectors initialise the embedding and are fine-tuned (``freeze_embeddings=False``):
  HDFS's templates share most of their words, and with the vectors frozen a GRU reached test F1
  0.46 (AUC 0.69) where the same run fine-tuned reached 0.95 (AUC 0.999), 8 epochs, seed 1.
  Templates unseen in training still get a vector from their words at scoring time.
- Repeats (the second paper): ``repeats=True`` adds ``log1p(count)`` of a collapsed run of one
  template as an extra input dimension (see :func:`logad.models.windows.collapse`).
- Counts (neither paper): ``counts=True`` adds the sequence's event-count vector, ``log1p`` of
  how often each template occurs in it, through a linear layer into the fully connected layer
  beside the GRU's output. The HDFS blocks ATT-GRU missed were anomalous by a count of normal
  templates (15 ``Got exception while serving`` where normal blocks have up to 3), scored 0.001
  with the threshold at 0.77. The event-count tree catches exactly these (docs/models.md).

``forward(x, lengths, repeats, targets) -> (logits, loss)``; padding is masked out of the
attention and packed away from the recurrent layers, so a padded batch scores like the unpadded
sessions one by one.

Example:
    >>> cfg = ModelConfig(vocab_size=30, embed_dim=16)
    >>> model = SequenceClassifier(cfg)
    >>> logits, loss = model(torch.randint(0, 30, (4, 10)))  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence

from logad.errors import ConfigError
from logad.models import KINDS  # declared there: the CLI reads it without loading torch


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model from its checkpoint (paper defaults: Table 2)."""

    kind: str = "att_gru"
    vocab_size: int = 2  # template indices, 0 = padding, 1 = a template never seen in training
    embed_dim: int = 32  # word2vec dimension of template vectors
    hidden: int = 64
    layers: int = 2
    bidirectional: bool = True
    fc: int = 64  # width of the fully connected layer before the output
    classes: int = 2
    dropout: float = 0.1
    window: int = 10
    repeats: bool = False  # one extra input dimension: log1p of a collapsed run's length
    attention_scale: bool = True  # y_m = T alpha_m x_m; False is the paper's y_m = alpha_m x_m
    heads: int = 4  # transformer_gru only
    encoder_layers: int = 1  # transformer_gru only
    max_len: int = 512  # transformer_gru positions; longer sessions are cut by the data side
    freeze_embeddings: bool = False  # True keeps the word2vec vectors as they are (see docs/models.md)
    counts: bool = False  # add the sequence's event-count vector to the classifier (see the module doc)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"ModelConfig.kind {self.kind!r}: use one of {', '.join(KINDS)}")
        if self.vocab_size < 2 or self.embed_dim < 1 or self.hidden < 1 or self.layers < 1:
            raise ConfigError(f"ModelConfig: sizes must be positive (vocab_size >= 2): {self}")
        if self.kind == "transformer_gru" and self.input_dim % self.heads:
            raise ConfigError(f"transformer_gru: input width {self.input_dim} is not divisible by "
                              f"heads={self.heads}")

    @property
    def input_dim(self) -> int:
        return self.embed_dim + (1 if self.repeats else 0)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class AdditiveAttention(nn.Module):
    """``alpha = softmax(V^T tanh(W x + U q))`` over the valid events of each window."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.W = nn.Linear(dim, hidden, bias=False)
        self.U = nn.Linear(dim, hidden, bias=True)
        self.V = nn.Linear(hidden, 1, bias=False)
        self.query = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        scores = self.V(torch.tanh(self.W(x) + self.U(self.query))).squeeze(-1)  # (B, T)
        scores = scores.masked_fill(~valid, float("-inf"))  # (B, T)
        return torch.softmax(scores, dim=-1)  # (B, T), each row sums to 1 over valid events


class SequenceClassifier(nn.Module):
    """Every kind in :data:`KINDS`; see the module docstring."""

    def __init__(self, config: ModelConfig, vectors: torch.Tensor | None = None) -> None:
        super().__init__()
        self.config = config
        c = config
        self.embed = nn.Embedding(c.vocab_size, c.embed_dim, padding_idx=0)
        if vectors is not None:
            if tuple(vectors.shape) != (c.vocab_size, c.embed_dim):
                raise ConfigError(f"template vectors are {tuple(vectors.shape)}, the config says "
                                  f"({c.vocab_size}, {c.embed_dim})")
            with torch.no_grad():
                self.embed.weight.copy_(vectors)
        self.embed.weight.requires_grad = not c.freeze_embeddings
        d = c.input_dim
        self.attention = AdditiveAttention(d, c.hidden) if c.kind.startswith("att_") else None
        if c.kind == "transformer_gru":
            self.positions = nn.Embedding(c.max_len, d)
            layer = nn.TransformerEncoderLayer(d, c.heads, dim_feedforward=4 * d, dropout=c.dropout,
                                               batch_first=True)
            self.encoder: nn.TransformerEncoder | None = nn.TransformerEncoder(
                layer, c.encoder_layers, enable_nested_tensor=False)
        else:
            self.encoder = None
        rnn = nn.LSTM if c.kind.endswith("lstm") else nn.GRU
        self.rnn = rnn(d, c.hidden, num_layers=c.layers, batch_first=True,
                       bidirectional=c.bidirectional, dropout=c.dropout if c.layers > 1 else 0.0)
        directions = 2 if c.bidirectional else 1
        self.fc = nn.Linear(directions * c.hidden, c.fc)
        self.bag = nn.Linear(c.vocab_size, c.fc, bias=False) if c.counts else None
        self.out = nn.Linear(c.fc, c.classes)

    def inputs(self, x: torch.Tensor, repeats: torch.Tensor | None) -> torch.Tensor:
        h = self.embed(x)  # (B, T, E)
        if self.config.repeats:
            if repeats is None:
                repeats = (x > 0).float()  # no runs collapsed: each event once
            h = torch.cat([h, torch.log1p(repeats.float()).unsqueeze(-1)], dim=-1)  # (B, T, E+1)
        return h

    def weights(self, x: torch.Tensor, lengths: torch.Tensor | None = None,
                repeats: torch.Tensor | None = None) -> torch.Tensor:
        """The attention weight of each event (B, T); zeros for kinds without attention."""
        if self.attention is None:
            return torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        return self.attention(self.inputs(x, repeats), self._valid(x, lengths))

    def _valid(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        if lengths is None:
            return torch.ones(x.shape, dtype=torch.bool, device=x.device)  # (B, T)
        positions = torch.arange(x.shape[1], device=x.device)  # (T,)
        return positions.unsqueeze(0) < lengths.to(x.device).unsqueeze(1)  # (B, T)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None,
                repeats: torch.Tensor | None = None,
                targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x`` (B, T) template indices, ``lengths`` (B,) valid events (None: all T),
        ``repeats`` (B, T) run lengths, ``targets`` (B,) class ids."""
        B, T = x.shape
        valid = self._valid(x, lengths)  # (B, T)
        h = self.inputs(x, repeats)  # (B, T, D)
        if self.attention is not None:
            alpha = self.attention(h, valid)  # (B, T)
            scale = valid.sum(dim=1, keepdim=True).float() if self.config.attention_scale else 1.0
            h = h * (alpha * scale).unsqueeze(-1)  # (B, T, D): y_m = alpha_m x_m
        if self.encoder is not None:
            if T > self.config.max_len:
                raise ConfigError(f"transformer_gru: a sequence of {T} events is longer than "
                                  f"max_len={self.config.max_len}")
            h = h + self.positions(torch.arange(T, device=x.device)).unsqueeze(0)  # (B, T, D)
            h = self.encoder(h, src_key_padding_mask=~valid)  # (B, T, D)
        n = valid.sum(dim=1).clamp(min=1).cpu()  # (B,)
        packed = pack_padded_sequence(h, n, batch_first=True, enforce_sorted=False)
        _, state = self.rnn(packed)
        last = state[0] if isinstance(state, tuple) else state  # (layers * dirs, B, H)
        if self.config.bidirectional:
            top = torch.cat([last[-2], last[-1]], dim=-1)  # (B, 2H): both directions, top layer
        else:
            top = last[-1]  # (B, H)
        z = self.fc(top)  # (B, F)
        if self.bag is not None:  # log1p of each template's count in the sequence, runs included
            per_event = (repeats.float() if repeats is not None else torch.ones_like(x, dtype=torch.float32))
            per_event = per_event * valid  # (B, T): padding counts nothing
            V = self.config.vocab_size  # templates unseen in training (vectors appended at scoring) count as 1
            known = torch.where(x < V, x, torch.ones_like(x))  # (B, T)
            bag = torch.zeros(B, V, device=x.device).scatter_add_(1, known, per_event)  # (B, V)
            z = z + self.bag(torch.log1p(bag))  # (B, F)
        logits = self.out(F.relu(z))  # (B, C)
        loss = F.cross_entropy(logits, targets) if targets is not None else None
        return logits, loss
