"""Score the live stream: closed sessions -> the ``scores`` table and an alerts topic in Kafka.

A streaming query over the ``sessions`` table. Each micro-batch (:class:`ScoreStage`, a
:class:`logad.io.delta.BatchStage`):

1. checks the registry (:mod:`logad.models.registry`): when another version was promoted it is
   read, validated and broadcast, and used from this batch on (logged); a version that does not
   load is refused (logged) and the current one stays;
2. gives each template the model never saw the trained vector of the known template nearest to
   it in word2vec space (its words' vectors are in the artifact, its text in the ``templates``
   table), and counts them per session (``unseen_templates``: a new template is a signal);
3. builds the model inputs on the executors, scores them with the pandas UDF (Iterator form, the
   model loaded once per worker; :mod:`logad.models.inference`), a session's score the max over
   its windows, ``is_anomaly`` = score >= the model's threshold (chosen on validation data);
4. for each anomaly, on the driver: the attention weights over the top window's events, the top
   events with their templates and the Kafka coordinates of their raw lines, sent as a JSON alert
   (key = session id) and flushed before the batch commits. Alerts are at least once (a replayed
   batch sends them again, with the same ``alert_id``); ``scores`` holds each session once: a
   session that is already there (scored by another query, an earlier run, a re-read of
   ``sessions`` under a new checkpoint) is neither scored nor alerted again.

``logad explain SESSION_ID`` prints a scored session's raw lines from ``raw_logs``, the ones that
weighed most highlighted (:func:`explain`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logad.config import Warehouse
from logad.errors import LogadError

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)

SCORES = "scores"
SCORE_COLUMNS = ("session_id", "system", "key", "hosts", "start_ts", "end_ts", "n_events", "model",
                 "model_version", "score", "threshold", "is_anomaly", "unseen_templates", "top_window",
                 "scored_at")


@dataclass
class Loaded:
    """The model a batch scores with."""

    version: int
    path: Path
    model: Any
    meta: dict[str, Any]
    job: dict[str, Any]
    vocab: dict[str, int]
    broadcast: Any
    digest: str
    word_vectors: dict[str, np.ndarray] = field(default_factory=dict)


def _words_vector(words: dict[str, np.ndarray], text: str, dim: int) -> np.ndarray:
    import numpy as np

    from logad.models.vectors import words as split_words

    known = [words[w] for w in split_words(text) if w in words]
    return np.mean(known, axis=0).astype(np.float32) if known else np.zeros(dim, dtype=np.float32)


def event_steps(n_events: int, template_idx: list[int], unit: str, window: int, width: int,
                repeats: bool, top_window: int) -> list[int]:
    """The session's event index behind each step of window ``top_window`` (as
    :func:`logad.models.inputs.inputs` cut it): collapsed runs point at their first event."""
    from logad.models.windows import collapse

    firsts = list(range(n_events))
    if repeats:
        steps, counts = collapse(template_idx)
        firsts, at = [], 0
        for c in counts:
            firsts.append(at)
            at += c
    if unit == "window":
        return firsts[top_window:top_window + window]
    return firsts[-width:]


class ScoreStage:
    """Scores each micro-batch of closed sessions (see the module docstring)."""

    def __init__(self, spark: SparkSession, warehouse: Warehouse, model: str = "att_gru",
                 which: str | int = "promoted", models_dir: str | None = None,
                 bootstrap: str | None = None, alerts_topic: str | None = "logad.alerts", top_k: int = 5,
                 kafka_options: dict[str, str] | None = None) -> None:
        self.spark, self.warehouse, self.name, self.which = spark, warehouse, model, which
        self.models_dir = Path(models_dir or Path(warehouse.root) / "models")
        self.top_k = top_k
        self.alerts_topic = alerts_topic if bootstrap else None
        self.producer = None
        if self.alerts_topic:
            from confluent_kafka import Producer

            from logad.produce import producer_conf

            self.producer = Producer(producer_conf(str(bootstrap), kafka_options))
        self.texts: dict[str, str] = {}
        self.current: Loaded | None = None
        self.swaps: list[tuple[int, int | None, int]] = []  # (batch, from, to)
        self.refused: dict[int, str] = {}
        self._last: DataFrame | None = None
        self.alerts_sent = 0
        self._refresh(-1)
        if self.current is None:
            raise LogadError(f"no usable {model} model: {self.refused}")

    def close(self) -> None:
        """Deliver what is queued, drop the alerts producer and the last batch's cached scores."""
        if self.producer is not None:
            self.producer.flush(30)
            self.producer = None
        if self._last is not None:
            self._last.unpersist()
            self._last = None

    # -- the model ------------------------------------------------------------------------------

    def _refresh(self, batch_id: int) -> None:
        from logad.models.fit import load_artifact
        from logad.models.registry import info, resolve

        try:
            version, path = resolve(self.models_dir, self.name, self.which)
        except LogadError as e:
            if self.current is None:
                raise
            log.error("model registry: %s; scoring goes on with %s v%d", e, self.name, self.current.version)
            return
        if self.current is not None and version == self.current.version:
            return
        if version in self.refused:
            return
        try:
            data = path.read_bytes()
            model, meta = load_artifact(path, data=data)
            job = dict(info(self.models_dir, self.name, version).get("job", {}))
            if len(meta["template_ids"]) + 2 != model.config.vocab_size:
                raise LogadError(f"the model artifact at {path} has {len(meta['template_ids'])} template "
                                 f"ids for a vocabulary of {model.config.vocab_size}")
        except (LogadError, OSError) as e:
            if self.current is None:
                raise LogadError(f"cannot score with {self.name} v{version}: {e}") from e
            self.refused[version] = str(e)
            log.error("model swap refused: %s v%d does not load (%s); scoring goes on with v%d",
                      self.name, version, e, self.current.version)
            return
        words = {w: meta["word_vectors"][i].numpy() for i, w in enumerate(meta.get("words", []))}
        loaded = Loaded(version, path, model, meta, job, {t: i + 2 for i, t in enumerate(meta["template_ids"])},
                        self.spark.sparkContext.broadcast(data), hashlib.sha256(data).hexdigest()[:16], words)
        old = self.current
        self.current = loaded
        self.swaps.append((batch_id, None if old is None else old.version, version))
        if old is None:
            log.info("scoring %s sessions with %s v%d (%s, threshold %.4f)", job.get("system", "all"), self.name,
                     version, path, meta["threshold"])
        else:
            log.info("model swap at batch %d: %s v%d -> v%d", batch_id, self.name, old.version, version)
            old.broadcast.unpersist()

    def _extra(self, ids: set[str]) -> tuple[dict[str, int], np.ndarray | None, set[str]]:
        """Vocabulary with this batch's unseen templates appended, their vectors, and the set."""
        import numpy as np

        cur = self.current
        assert cur is not None
        unseen = sorted(ids - set(cur.vocab))
        if not unseen:
            return cur.vocab, None, set()
        self._texts_for(set(unseen))
        vocab = dict(cur.vocab)
        base = cur.model.config.vocab_size
        for j, t in enumerate(unseen):
            vocab[t] = base + j
        extra = np.stack([self._nearest(self.texts.get(t, "")) for t in unseen])
        return vocab, extra, set(unseen)

    def _texts_for(self, ids: set[str]) -> None:
        """Make sure ``self.texts`` knows ``ids``: the ``templates`` table is read again only when
        one is missing (a template mined since the last read)."""
        from logad.templates.stream import template_texts

        if ids - set(self.texts):
            self.texts = template_texts(self.spark, self.warehouse) or self.texts

    def _nearest(self, text: str) -> np.ndarray:
        """An unseen template's vector: the trained vector of the known template whose word2vec
        vector is closest to its words' (cosine); the unknown row when none of its words is known."""
        import numpy as np

        from logad.models.vectors import UNKNOWN

        cur = self.current
        assert cur is not None
        trained = cur.model.embed.weight[: cur.model.config.vocab_size].detach().cpu().numpy()
        v = _words_vector(cur.word_vectors, text, cur.model.config.embed_dim)
        known = cur.meta["vectors"].numpy()[2:]  # word2vec vectors of the known templates
        if not v.any() or not len(known):
            return np.asarray(trained[UNKNOWN], dtype=np.float32)
        sims = known @ v / (np.linalg.norm(known, axis=1) * np.linalg.norm(v) + 1e-9)
        return np.asarray(trained[2 + int(np.argmax(sims))], dtype=np.float32)

    # -- BatchStage ----------------------------------------------------------------------------

    def schema(self, df: DataFrame) -> DataFrame:
        from pyspark.sql import functions as F

        return (df.withColumn("model", F.lit(None).cast("string"))
                .withColumn("model_version", F.lit(None).cast("int"))
                .withColumn("score", F.lit(None).cast("double"))
                .withColumn("threshold", F.lit(None).cast("double"))
                .withColumn("is_anomaly", F.lit(None).cast("boolean"))
                .withColumn("unseen_templates", F.lit(None).cast("int"))
                .withColumn("top_window", F.lit(None).cast("int"))
                .withColumn("scored_at", F.lit(None).cast("timestamp")))

    def apply(self, batch: DataFrame, batch_id: int, app_id: str) -> DataFrame:
        from pyspark.sql import functions as F

        from logad.io.delta import absent
        from logad.models.inference import ModelRef, score_inputs, session_scores
        from logad.models.inputs import inputs

        if self._last is not None:
            self._last.unpersist()
        self._refresh(batch_id)
        cur = self.current
        assert cur is not None
        job = cur.job
        if job.get("system"):  # a model knows one system's templates: other systems' sessions are not its to score
            batch = batch.where(F.col("system") == job["system"])
        # a session is scored and alerted once, whichever query or re-read brings it again
        batch = absent(self.warehouse.table(SCORES), batch)
        ids = {r[0] for r in batch.select(F.explode("template_ids")).distinct().collect()}
        vocab, extra, unseen = self._extra(ids)
        unit, window, max_len = job.get("unit", "window"), int(job.get("window", 10)), int(job.get("max_len", 512))
        repeats = bool(cur.model.config.repeats)
        rows = inputs(batch, vocab, unit=unit, window=window, max_len=max_len, repeats=repeats, labelled=False)
        ref = ModelRef(f"{cur.digest}:{len(unseen)}:{hashlib.sha256(repr(sorted(unseen)).encode()).hexdigest()[:8]}",
                       str(cur.path), cur.broadcast, extra)
        scored = session_scores(score_inputs(rows, ref)).drop("label", "windows")
        threshold = float(cur.meta["threshold"])
        n_unseen = (F.size(F.array_intersect("template_ids", F.array(*[F.lit(u) for u in sorted(unseen)])))
                    if unseen else F.lit(0))
        out = (batch.join(scored, "session_id")
               .withColumn("model", F.lit(self.name)).withColumn("model_version", F.lit(cur.version))
               .withColumn("threshold", F.lit(threshold)).withColumn("is_anomaly", F.col("score") >= threshold)
               .withColumn("unseen_templates", n_unseen.cast("int"))
               .withColumn("scored_at", F.current_timestamp())).persist()
        self._last = out
        anomalies = out.where("is_anomaly").collect()
        if unseen:
            log.info("score batch %d: %d templates unseen in training (a signal in itself)", batch_id, len(unseen))
        if anomalies and self.producer is not None:
            self._alert(anomalies, vocab, extra, unit, window, max_len, repeats)
        log.info("score batch %d: %s v%d, %d anomalies", batch_id, self.name, cur.version, len(anomalies))
        return out

    # -- alerts --------------------------------------------------------------------------------

    def _alert(self, rows: list[Any], vocab: dict[str, int], extra: np.ndarray | None, unit: str, window: int,
               max_len: int, repeats: bool) -> None:
        from logad.produce import send

        cur = self.current
        assert cur is not None and self.producer is not None
        failed: list[str] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                failed.append(str(err))

        dicts = [r.asDict() for r in rows]
        self._texts_for({t for r in dicts for t in r["template_ids"]})
        tops = top_events(cur.model, vocab, extra, dicts, unit, window, max_len, repeats, self.top_k)
        for r, top in zip(dicts, tops, strict=True):
            alert = build_alert(cur, r, top, self.texts)
            send(self.producer, str(self.alerts_topic), json.dumps(alert, default=str).encode(),
                 key=r["session_id"].encode(), on_delivery=delivered)
        left = self.producer.flush(30)
        if left or failed:
            raise LogadError(f"{left} alerts not delivered to {self.alerts_topic} ({failed[:3]}); the batch "
                             "is retried on restart")
        self.alerts_sent += len(rows)


def top_events(model: Any, vocab: dict[str, int], extra: np.ndarray | None, rows: list[dict[str, Any]], unit: str,
               window: int, max_len: int, repeats: bool, k: int) -> list[list[tuple[int, float]]]:
    """Per row: (event index in the session, attention weight) of the top-``k`` events of the
    window that scored highest (``top_window``), from one batched forward pass per 4,096 rows;
    without attention (gru, lstm) the window's events in order, weight 0."""
    import numpy as np
    import torch

    from logad.models.inference import infer
    from logad.models.vectors import UNKNOWN
    from logad.models.windows import collapse, pad

    seqs, runs, steps = [], [], []
    for row in rows:
        idx = [vocab.get(t, UNKNOWN) for t in row["template_ids"]]
        counts = [1] * len(idx)
        if repeats:
            idx, counts = collapse(idx)
        w = int(row.get("top_window") or 0)
        a, b = (w, w + window) if unit == "window" else (max(0, len(idx) - max_len), len(idx))
        seqs.append(idx[a:b])
        runs.append(counts[a:b])
        steps.append(event_steps(len(row["template_ids"]), [vocab.get(t, UNKNOWN) for t in row["template_ids"]],
                                 unit, window, max_len, repeats, w))
    out: list[list[tuple[int, float]]] = []
    with torch.no_grad():
        base = model.embed.weight[: model.config.vocab_size]
        if extra is not None and len(extra):  # this batch's unseen templates after the vocabulary
            model.embed = torch.nn.Embedding.from_pretrained(
                torch.cat([base, torch.as_tensor(extra, dtype=base.dtype)]), freeze=True, padding_idx=0)
        elif model.embed.weight.shape[0] != model.config.vocab_size:
            model.embed = torch.nn.Embedding.from_pretrained(base.clone(), freeze=True, padding_idx=0)
    for c in range(0, len(seqs), 4096):
        x, n = pad(seqs[c:c + 4096])
        r = pad(runs[c:c + 4096])[0]
        weights = infer(model, x, n, r if repeats else None, batch_size=4096, output="weights")  # (B, T)
        for j in range(len(x)):
            wt, st = weights[j, : int(n[j])], steps[c + j]
            order = np.argsort(-wt, kind="stable")[:k] if wt.any() else np.arange(min(k, len(st)))
            out.append([(st[int(i)], float(wt[int(i)])) for i in order if int(i) < len(st)])
    return out


def build_alert(cur: Loaded, row: dict[str, Any], top: list[tuple[int, float]], texts: dict[str, str]) -> dict[str, Any]:
    """The alert for one anomalous scored session with its top events (see the module docstring)."""

    def event(i: int, weight: float) -> dict[str, Any]:
        t = row["template_ids"][i]
        return {"index": i, "weight": round(weight, 4), "template_id": t, "template": texts.get(t),
                "unseen": t not in cur.vocab, "ts": row["event_ts"][i], "topic": row["topics"][i],
                "partition": row["partitions"][i], "offset": row["offsets"][i]}

    return {
        "alert_id": hashlib.sha256(f"{row['session_id']}|{cur.version}".encode()).hexdigest()[:20],
        "session_id": row["session_id"], "system": row["system"], "key": row["key"], "name": row.get("name"),
        "task": row.get("task"), "hosts": row["hosts"],
        "start": row["start_ts"], "end": row["end_ts"], "n_events": row["n_events"],
        "score": row["score"], "threshold": row["threshold"], "model": row["model"],
        "model_version": row["model_version"], "unseen_templates": row["unseen_templates"],
        "top_events": [event(i, w) for i, w in top],
        "lines": [{"topic": row["topics"][i], "partition": row["partitions"][i], "offset": row["offsets"][i]}
                  for i in range(len(row["template_ids"]))],
        "scored_at": dt.datetime.now(dt.UTC).isoformat(),
    }


def score_outputs(warehouse: Warehouse) -> dict[str, tuple[str, Callable[[DataFrame], DataFrame]]]:
    """The ``scores`` table as an output of :func:`logad.io.delta.write_stream_tables`, for the
    scoring query and for scoring chained in the sessions query."""
    return {SCORES: (warehouse.table(SCORES), lambda df: df.select(*SCORE_COLUMNS))}


def start_scoring(spark: SparkSession, warehouse: Warehouse, stage: ScoreStage, trigger: str = "5 seconds",
                  query_name: str = "score", starting_version: int = 0) -> StreamingQuery:
    """Start the streaming query ``sessions`` -> ``scores`` (+ alerts)."""
    from logad.io.delta import read_stream, write_stream_tables

    sessions = read_stream(spark, warehouse.table("sessions"), starting_version)
    query = write_stream_tables(sessions, score_outputs(warehouse), warehouse.checkpoint(query_name), query_name=query_name,
                                trigger=trigger, stage=stage, unique={SCORES: "session_id"})
    log.info("query %s: sessions -> %s%s", query_name, warehouse.table(SCORES),
             f" + alerts to {stage.alerts_topic}" if stage.alerts_topic else "")
    return query


def explain(spark: SparkSession, warehouse: Warehouse, session_id: str, models_dir: str | None = None,
            top_k: int = 5) -> tuple[dict[str, Any], list[tuple[int, str, float | None]]]:
    """A scored session and its raw lines: (score row, [(event index, raw line, weight or None)])."""
    from pyspark.sql import functions as F

    from logad.io.delta import read_table
    from logad.models.fit import load_artifact
    from logad.models.registry import info, resolve

    scores = read_table(spark, warehouse.table(SCORES)).where(F.col("session_id") == session_id) \
        .orderBy(F.col("scored_at").desc()).limit(1).collect()
    if not scores:
        raise LogadError(f"session {session_id} has no score in {warehouse.table(SCORES)}")
    s = scores[0].asDict()
    sess = read_table(spark, warehouse.table("sessions")).where(F.col("session_id") == session_id).limit(1).collect()
    if not sess:
        raise LogadError(f"session {session_id} is not in {warehouse.table('sessions')}")
    row = {**sess[0].asDict(), **s}
    root = Path(models_dir or Path(warehouse.root) / "models")
    _, path = resolve(root, s["model"], int(s["model_version"]))
    model, meta = load_artifact(path)
    job = info(root, s["model"], int(s["model_version"])).get("job", {})
    vocab = {t: i + 2 for i, t in enumerate(meta["template_ids"])}
    top = dict(top_events(model, vocab, None, [row], job.get("unit", "window"), int(job.get("window", 10)),
                          int(job.get("max_len", 512)), bool(model.config.repeats), top_k)[0])
    coords = spark.createDataFrame(
        [(t, p, o, i) for i, (t, p, o) in enumerate(zip(row["topics"], row["partitions"], row["offsets"], strict=True))],
        "topic string, partition int, offset long, idx int")
    raw = read_table(spark, warehouse.table("raw_logs")).join(F.broadcast(coords), ["topic", "partition", "offset"])
    lines = {r["idx"]: r["line"] for r in raw.select("idx", "line").collect()}
    return s, [(i, lines.get(i, "<raw line not in raw_logs>"), top.get(i)) for i in range(len(row["topics"]))]


__all__ = ["SCORES", "ScoreStage", "build_alert", "event_steps", "explain", "score_outputs", "start_scoring", "top_events"]
