"""Model inputs from ``sessions`` rows, built by Spark on the executors: template ids -> vector
rows, collapsed repeats, sliding windows (or whole sessions), fixed-width padded arrays that
petastorm hands to PyTorch and the scoring UDF reads. One function for training, evaluation and
scoring, so what a model is trained on is what it scores.

Splits are by session (a hash of the session id and the seed, so a session is in one part only
and every test block is unseen) or by time (sessions ordered by start, the earliest part for
training: the honest protocol for BGL).

Example:
    >>> rows = inputs(sessions, vocab, unit="window", window=10)  # doctest: +SKIP
    >>> rows.columns
    ['session_id', 'label', 'window', 'x', 'length', 'repeats']
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from logad.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

INPUT_SCHEMA = ("session_id string, label int, window int, x array<int>, length int, "
                "repeats array<int>")
SPLITS = ("session", "time")


def split(sessions: DataFrame, how: str = "session", seed: int = 0,
          fractions: tuple[float, float] = (0.6, 0.2)) -> DataFrame:
    """Add ``part``: ``train`` / ``valid`` / ``test`` by session hash or by start time."""
    from pyspark.sql import functions as F

    if how not in SPLITS:
        raise ConfigError(f"split {how!r}: use one of {', '.join(SPLITS)}")
    a, b = fractions
    if not (0 < a and 0 <= b and a + b < 1):
        raise ConfigError(f"split fractions {fractions}: train > 0, valid >= 0, and some left for test")
    if how == "session":
        u = F.pmod(F.xxhash64("session_id", F.lit(seed)), F.lit(1_000_000)) / 1_000_000
    else:  # chronological: rank by start time (ties by id), earliest first
        from pyspark.sql.window import Window

        u = F.percent_rank().over(Window.orderBy("start_ts", "session_id"))
    return sessions.withColumn("part", F.when(u < a, "train").when(u < a + b, "valid").otherwise("test"))


def _rows(pdf: pd.DataFrame, vocab: Mapping[str, int], unit: str, window: int, width: int,
          repeats: bool, prefix: bool) -> pd.DataFrame:
    import pandas as pd

    from logad.models.vectors import UNKNOWN
    from logad.models.windows import collapse

    out: dict[str, list[object]] = {k: [] for k in ("session_id", "label", "window", "x", "length", "repeats")}
    for sid, label, ids, cut in zip(pdf["session_id"], pdf["label"], pdf["template_ids"],
                                    pdf["label_event"] if prefix else [None] * len(pdf), strict=True):
        events = [vocab.get(t, UNKNOWN) for t in ids]
        if prefix and cut is not None and not pd.isna(cut):
            events = events[: int(cut)]  # only what came before the line that defines the label
        if not events:
            continue
        counts = [1] * len(events)
        if repeats:
            events, counts = collapse(events)
        if unit == "window":
            starts = range(max(1, len(events) - window + 1))  # as windows.sliding cuts them
            pieces = [(events[i:i + window], counts[i:i + window]) for i in starts]
        else:
            pieces = [(events[-width:], counts[-width:])]
        for n, (ev, cn) in enumerate(pieces):
            out["session_id"].append(sid)
            out["label"].append(None if label is None or pd.isna(label) else int(label))
            out["window"].append(n)
            out["x"].append(ev + [0] * (width - len(ev)))
            out["length"].append(len(ev))
            out["repeats"].append(cn + [0] * (width - len(cn)))
    return pd.DataFrame(out)


def inputs(sessions: DataFrame, vocab: Mapping[str, int], *, unit: str = "window", window: int = 10,
           max_len: int = 512, repeats: bool = False, prefix: bool = False, labelled: bool = True) -> DataFrame:
    """One row per window (``unit="window"``, ``window`` events, one step apart) or per session
    (its last ``max_len`` events), padded with 0 to one width; label = the session's label.

    ``prefix`` keeps only the events before ``label_event`` (the first line that defines the
    label), so a model cannot read the line that made the label; sessions with nothing before it
    drop out. Unknown template ids map to :data:`logad.models.vectors.UNKNOWN`. ``labelled``
    keeps labelled sessions only (training); scoring takes every session (label may be null).
    """
    from pyspark.sql import functions as F

    if unit not in ("window", "session"):
        raise ConfigError(f"unit {unit!r}: use window or session")
    if window < 1 or max_len < 1:
        raise ConfigError(f"window and max_len must be >= 1, got {window} and {max_len}")
    if unit == "window":
        width = window
    else:
        longest = sessions.agg(F.max(F.size("template_ids"))).first()
        width = max(1, min(max_len, int(longest[0] or 1) if longest else 1))
    vocab = dict(vocab)
    cols = ["session_id", "label", "template_ids"] + (["label_event"] if prefix else [])

    def build(pdfs: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in pdfs:
            yield _rows(pdf, vocab, unit, window, width, repeats, prefix)

    if labelled:
        sessions = sessions.where("label is not null")
    elif "label" not in sessions.columns:
        sessions = sessions.withColumn("label", F.lit(None).cast("int"))
    return sessions.select(*cols).mapInPandas(build, INPUT_SCHEMA)  # type: ignore[arg-type]


__all__ = ["INPUT_SCHEMA", "SPLITS", "inputs", "split"]
