"""Plots of a trained model and its scores (matplotlib, no display needed), shared by the notebooks
and the demo's HTML report.

Every function returns a ``matplotlib.figure.Figure``; :func:`html` puts figures and tables in one
self-contained HTML file (PNG data URIs).

Example:
    >>> fig = loss_curves(info(models, "att_gru", 1)["history"])  # doctest: +SKIP
    >>> Path("report.html").write_text(html("logad", [("Training", fig)]))  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html as _html
import io
from collections.abc import Sequence
from typing import Any

import numpy as np


def _plt() -> Any:
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_curves(history: Sequence[dict[str, float]]) -> Any:
    """Training loss and validation P/R/F1 per epoch."""
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    epochs = [int(h["epoch"]) + 1 for h in history]
    a.plot(epochs, [h["loss"] for h in history], marker="o")
    a.set(title="training loss", xlabel="epoch", ylabel="cross-entropy")
    for key in ("val_precision", "val_recall", "val_f1"):
        b.plot(epochs, [h.get(key, np.nan) for h in history], marker=".", label=key[4:])
    b.set(title="validation (sessions)", xlabel="epoch", ylim=(0, 1.02))
    b.legend(loc="lower right")
    fig.tight_layout()
    return fig


def pr_points(labels: Sequence[int], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, threshold) at every distinct score, highest threshold first."""
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    y, s = y[order], s[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # the last row of each distinct score
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / max(int(y.sum()), 1)
    return precision, recall, s[last]


def pr_curve(labels: Sequence[int], scores: Sequence[float], threshold: float | None = None) -> Any:
    """Precision-recall over the scores, the chosen threshold marked."""
    plt = _plt()
    p, r, t = pr_points(labels, scores)
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    ax.plot(r, p, drawstyle="steps-post")
    if threshold is not None and len(t):
        i = int(np.argmin(np.abs(t - threshold)))
        ax.scatter([r[i]], [p[i]], color="red", zorder=3, label=f"threshold {threshold:.3f}")
        ax.legend(loc="lower left")
    ax.set(title="precision-recall (test sessions)", xlabel="recall", ylabel="precision",
           xlim=(0, 1.02), ylim=(0, 1.02))
    fig.tight_layout()
    return fig


def confusion(labels: Sequence[int], scores: Sequence[float], threshold: float) -> Any:
    """The 2x2 confusion matrix at ``threshold``."""
    plt = _plt()
    y = np.asarray(labels, dtype=np.int64)
    pred = np.asarray(scores, dtype=np.float64) >= threshold
    m = np.array([[np.sum(~pred & (y == 0)), np.sum(pred & (y == 0))],
                  [np.sum(~pred & (y == 1)), np.sum(pred & (y == 1))]])
    fig, ax = plt.subplots(figsize=(3.6, 3.2))
    ax.imshow(m, cmap="Blues")
    for i in range(2):
        for j in range(2):
            ax.text(j, i, str(int(m[i, j])), ha="center", va="center",
                    color="white" if m[i, j] > m.max() / 2 else "black")
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["normal", "anomaly"], yticklabels=["normal", "anomaly"],
           xlabel="predicted", ylabel="true", title=f"confusion at {threshold:.3f}")
    fig.tight_layout()
    return fig


def attention_heatmap(weights: Sequence[float], labels: Sequence[str], title: str = "attention") -> Any:
    """One window's attention weights over its events (one row per event, its template as label)."""
    plt = _plt()
    w = np.asarray(weights, dtype=np.float64).reshape(-1, 1)
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(w) + 1.2))
    ax.imshow(w, cmap="Reds", aspect="auto", vmin=0)
    ax.set_yticks(range(len(labels)), [f"{lab[:90]}" for lab in labels], fontsize=7)
    ax.set_xticks([])
    for i, v in enumerate(w[:, 0]):
        ax.text(0, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                color="white" if v > w.max() / 2 else "black")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def png(fig: Any) -> bytes:
    """The figure as PNG bytes (and closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    _plt().close(fig)
    return buf.getvalue()


def html(title: str, sections: Sequence[tuple[str, Any]]) -> str:
    """A self-contained HTML page: each section a heading and a figure, a text block or a table
    (a list of dicts)."""
    parts = [f"<!doctype html><meta charset='utf-8'><title>{_html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}pre{background:#f6f6f6;"
             "padding:.6em;overflow-x:auto;font-size:12px}table{border-collapse:collapse;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:2px 6px}.hot{background:#fdd}</style>",
             f"<h1>{_html.escape(title)}</h1>"]
    for head, body in sections:
        parts.append(f"<h2>{_html.escape(head)}</h2>")
        if isinstance(body, str):
            parts.append(f"<pre>{_html.escape(body)}</pre>")
        elif isinstance(body, list):
            cols = list(body[0]) if body else []
            rows = "".join("<tr>" + "".join(f"<td>{_html.escape(str(r.get(c, '')))}</td>" for c in cols) + "</tr>"
                           for r in body)
            parts.append("<table><tr>" + "".join(f"<th>{_html.escape(c)}</th>" for c in cols) + f"</tr>{rows}</table>")
        else:
            data = base64.b64encode(png(body)).decode()
            parts.append(f"<img src='data:image/png;base64,{data}'>")
    return "\n".join(parts)


__all__ = ["attention_heatmap", "confusion", "html", "loss_curves", "png", "pr_curve", "pr_points"]
