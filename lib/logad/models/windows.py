"""From a session's template sequence to model inputs: collapsed repeats, sliding windows,
padded batches. Pure Python and torch, the same on the driver, in a Spark task and in a test.

Example:
    >>> collapse([5, 5, 5, 22, 11, 11])
    ([5, 22, 11], [3, 1, 2])
    >>> sliding([1, 2, 3, 4], window=3)
    [[1, 2, 3], [2, 3, 4]]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def collapse(events: Sequence[int]) -> tuple[list[int], list[int]]:
    """Consecutive repeats of one template become one step and its count (the second paper's
    treatment of long repetitive workflows)."""
    steps: list[int] = []
    counts: list[int] = []
    for e in events:
        if steps and steps[-1] == e:
            counts[-1] += 1
        else:
            steps.append(e)
            counts.append(1)
    return steps, counts


def sliding(events: Sequence[int], window: int, step: int = 1) -> list[list[int]]:
    """Windows of ``window`` events, ``step`` apart; a shorter session is one (short) window."""
    if len(events) <= window:
        return [list(events)]
    return [list(events[i:i + window]) for i in range(0, len(events) - window + 1, step)]


def pad(seqs: Sequence[Sequence[int]], length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (B, T) indices with 0, and the (B,) lengths. Empty sequences get one padding
    event (length 1) so every row has something to read."""
    n = max(1, length or max((len(s) for s in seqs), default=1))
    out = torch.zeros((len(seqs), n), dtype=torch.long)  # (B, T)
    lengths = torch.ones(len(seqs), dtype=torch.long)  # (B,)
    for i, s in enumerate(seqs):
        s = list(s)[:n]
        if s:
            out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
            lengths[i] = len(s)
    return out, lengths
