"""Drain (He et al., ICWS 2017): a fixed-depth prefix tree over token count and leading tokens,
then the most similar cluster in the leaf, generalized position by position.

Our own implementation rather than ``drain3``: the same algorithm with masking applied by the
caller (rules from config), templates that are plain text with stable ids, a record of every
generalization (old text -> new text) so ids that were handed out keep resolving, and a
``match`` that never learns, for the stream's fast path. ``bench/templates.py`` and
``logad templates evaluate`` measure both side by side.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from logad.templates.base import Template, join, record, tokens
from logad.templates.masking import WILDCARD

_DIGIT = re.compile(r"\d+")


@dataclass
class _Cluster:
    toks: list[str]
    count: int = 0

    @property
    def text(self) -> str:
        return join(self.toks)


@dataclass
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    clusters: list[_Cluster] = field(default_factory=list)


class Drain:
    """Drain template miner.

    Args:
        depth: tree depth including the root and the token-count level (Drain's ``depth``; 4
            means two leading tokens route a line).
        sim_threshold: least share of equal tokens for a line to join a cluster.
        max_children: children per inner node; further tokens share a ``<*>`` child.
        max_clusters: clusters per leaf; past it a line joins the most similar cluster even
            below ``sim_threshold``, so lines that are all unmasked variables cannot grow the
            template count (and the per-line scan) without bound.

    Example:
        >>> d = Drain()
        >>> d.add("Receiving block <*> src: <*> dest: <*>")
        'Receiving block <*> src: <*> dest: <*>'
    """

    name = "drain"

    def __init__(self, depth: int = 4, sim_threshold: float = 0.5, max_children: int = 100,
                 max_clusters: int = 100) -> None:
        if depth < 3:
            raise ValueError("Drain depth must be >= 3")
        self.depth = depth
        self.sim_threshold = sim_threshold
        self.max_children = max_children
        self.max_clusters = max_clusters
        self._root = _Node()
        self._clusters: list[_Cluster] = []
        self._generalized: dict[str, str] = {}

    @property
    def generalized(self) -> dict[str, str]:
        return self._generalized

    def _leaf(self, toks: list[str], create: bool) -> _Node | None:
        node = self._root.children.get(str(len(toks)))
        if node is None:
            if not create:
                return None
            node = self._root.children.setdefault(str(len(toks)), _Node())
        for tok in toks[: self.depth - 2]:
            key = WILDCARD if any(c.isdigit() for c in tok) else tok
            nxt = node.children.get(key)
            if nxt is None and create and len(node.children) < self.max_children:
                nxt = node.children[key] = _Node()
            if nxt is None:  # unknown token, or the node is full: the shared <*> child
                nxt = node.children.get(WILDCARD)
                if nxt is None:
                    if not create:
                        return None
                    nxt = node.children[WILDCARD] = _Node()
            node = nxt
        return node

    @staticmethod
    def _similarity(template: list[str], toks: list[str]) -> tuple[float, int]:
        same = params = 0
        for t, s in zip(template, toks, strict=True):
            if t == WILDCARD:
                params += 1
                same += s == WILDCARD  # both masked: the same variable slot
            elif t == s or (_DIGIT.search(s) and _DIGIT.sub("", t) == _DIGIT.sub("", s)):
                same += 1  # the same token but for its digits (v12, v13): a variable masking missed
        return same / len(toks) if toks else 1.0, params

    def _best(self, leaf: _Node, toks: list[str], threshold: float) -> _Cluster | None:
        best, best_key = None, (-1.0, -1)
        for cluster in leaf.clusters:
            key = self._similarity(cluster.toks, toks)
            if key > best_key:
                best, best_key = cluster, key
        return best if best is not None and best_key[0] >= threshold else None

    def add(self, masked: str) -> str:
        toks = tokens(masked)
        leaf = self._leaf(toks, create=True)
        assert leaf is not None
        full = len(leaf.clusters) >= self.max_clusters
        cluster = self._best(leaf, toks, -1.0 if full else self.sim_threshold)
        if cluster is None:
            cluster = _Cluster(list(toks))
            leaf.clusters.append(cluster)
            self._clusters.append(cluster)
        else:
            merged = [t if t == s else WILDCARD for t, s in zip(cluster.toks, toks, strict=True)]
            if merged != cluster.toks:
                old = cluster.text
                cluster.toks = merged
                if cluster.text != old:
                    self._generalized[old] = cluster.text
        cluster.count += 1
        return cluster.text

    def match(self, masked: str) -> str | None:
        """The template that fits every constant token of the line, without learning."""
        toks = tokens(masked)
        leaf = self._leaf(toks, create=False)
        if leaf is None:
            return None
        for cluster in leaf.clusters:
            if all(t == WILDCARD or t == s for t, s in zip(cluster.toks, toks, strict=True)):
                return cluster.text
        return None

    def patterns(self) -> dict[str, list[str]]:
        """Template text -> the clusters' token patterns behind it (several when lengths differ)."""
        out: dict[str, list[str]] = {}
        for c in self._clusters:
            out.setdefault(c.text, []).append(" ".join(c.toks))
        return out

    def restore(self, text: str, pattern: str) -> None:
        """Put back a cluster from :meth:`patterns` as it was (no similarity, no merging)."""
        toks = tokens(pattern)
        leaf = self._leaf(toks, create=True)
        assert leaf is not None
        if not any(c.toks == toks for c in leaf.clusters):
            cluster = _Cluster(toks)
            leaf.clusters.append(cluster)
            self._clusters.append(cluster)

    def templates(self) -> list[Template]:
        """One record per template text (clusters of different lengths can fold to one text)."""
        counts: dict[str, int] = {}
        for c in self._clusters:
            counts[c.text] = counts.get(c.text, 0) + c.count
        return [record(text, n) for text, n in counts.items()]
