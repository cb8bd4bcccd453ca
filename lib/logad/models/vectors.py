"""Template vectors: word2vec (gensim) over the words of the templates, a template's vector the
mean of its words' vectors, so a template never seen in training still gets a meaningful vector
from the words it shares with known ones (the first paper's word2vec layer).

Index 0 is padding (zeros); index 1 stands for "a template with no known word". A
:class:`TemplateVectors` holds the vocabulary (template id -> index) and the matrix, and is saved
inside the model artifact and as the ``template_vectors`` table.

Example:
    >>> tv = train_vectors({"a1": "Receiving block <*> src: <*>", "b2": "Deleting block <*> file <*>"}, dim=8)
    >>> tv.index("a1"), tv.vector_of_text("Received block <*>").shape  # doctest: +SKIP
    (2, (8,))
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

PAD, UNKNOWN = 0, 1
_WORD = re.compile(r"[A-Za-z]+")


def words(template: str) -> list[str]:
    """The words of a template: letters only, camelCase split, lower case; ``<*>`` dropped."""
    out: list[str] = []
    for w in _WORD.findall(template.replace("<*>", " ")):
        out.extend(p.lower() for p in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+", w) if p)
    return out


@dataclass
class TemplateVectors:
    """Template id -> row of ``matrix`` (rows 0 and 1 reserved), and the word vectors behind it."""

    dim: int
    ids: list[str] = field(default_factory=list)  # row i + 2 is ids[i]
    matrix: np.ndarray = field(default_factory=lambda: np.zeros((2, 1), dtype=np.float32))
    word_vectors: dict[str, np.ndarray] = field(default_factory=dict)
    unseen: int = 0  # templates looked up that were not in training (a signal in itself)

    def __post_init__(self) -> None:
        self._index = {t: i + 2 for i, t in enumerate(self.ids)}

    @property
    def size(self) -> int:
        return len(self.ids) + 2

    def index(self, template_id: str) -> int:
        """The row of a template; :data:`UNKNOWN` for one never seen (counted in ``unseen``)."""
        i = self._index.get(template_id)
        if i is None:
            self.unseen += 1
            return UNKNOWN
        return i

    def vector_of_text(self, template: str) -> np.ndarray:
        """A template's vector from its words (zeros when none of them is known)."""
        known = [self.word_vectors[w] for w in words(template) if w in self.word_vectors]
        if not known:
            return np.zeros(self.dim, dtype=np.float32)
        return np.mean(known, axis=0).astype(np.float32)

    def add(self, template_id: str, template: str) -> int:
        """Give a template unseen in training its own row, from its words (scoring time)."""
        if template_id in self._index:
            return self._index[template_id]
        self.ids.append(template_id)
        self._index[template_id] = len(self.ids) + 1
        self.matrix = np.vstack([self.matrix, self.vector_of_text(template)[None, :]])
        return self._index[template_id]


def train_vectors(templates: Mapping[str, str], dim: int = 32, seed: int = 0, epochs: int = 50,
                  window: int = 5) -> TemplateVectors:
    """word2vec over the templates' words (one sentence per template), one vector per template.

    ``templates`` maps template id -> text. Deterministic for a seed (one worker thread).
    """
    from gensim.models import Word2Vec

    ids = sorted(templates)
    sentences = [words(templates[t]) or ["<none>"] for t in ids]
    model = Word2Vec(sentences=sentences, vector_size=dim, window=window, min_count=1, sg=1,
                     workers=1, seed=seed, epochs=epochs)
    word_vectors = {w: model.wv[w].astype(np.float32) for w in model.wv.index_to_key}
    tv = TemplateVectors(dim=dim, ids=ids, word_vectors=word_vectors)
    rows = [np.zeros(dim, dtype=np.float32), np.zeros(dim, dtype=np.float32)]
    rows += [tv.vector_of_text(templates[t]) for t in ids]
    tv.matrix = np.stack(rows)
    log.info("template vectors: %d templates, %d words, dim %d", len(ids), len(word_vectors), dim)
    return tv
