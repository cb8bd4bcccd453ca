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
from typing import TYPE_CHECKING, Any

from logad.config import Warehouse
from logad.errors import LogadError

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)

SCORES, EARLY_SCORES = "scores", "early_scores"
SCORE_COLUMNS = ("session_id", "system", "key", "hosts", "start_ts", "end_ts", "n_events", "model",
                 "model_version", "score", "threshold", "is_anomaly", "unseen_templates", "top_window",
                 "scored_at", "alert")
# an early score keeps the prefix's lines when it was alerted, for `logad explain`
PREFIX_COLUMNS = ("name", "task", "template_ids", "event_ts", "topics", "partitions", "offsets")


@dataclass
class Loaded:
    """The model a batch scores with."""

    version: int
    path: str
    model: Any
    meta: dict[str, Any]
    job: dict[str, Any]
    vocab: dict[str, int]
    broadcast: Any
    digest: str
    word_vectors: dict[str, np.ndarray] = field(default_factory=dict)
    kind: str = "att_gru"  # the detector (model.json's kind): a sequence model or a Spark-side detector
    detector: Any = None  # a Spark-side detector (logad.models.detectors); None: ``model`` is torch


def load_version(spark: SparkSession, models_dir: str, name: str, version: int, path: str,
                 broadcast: bool = True) -> Loaded:
    """A registered version, loaded and checked: a sequence model (``model.pt``: torch, its bytes
    broadcast to the executors) or a Spark-side detector (:mod:`logad.models.detectors`: a count
    detector's Spark ML pipeline, a detector of normal's JSON)."""
    from logad.io import fs
    from logad.models.detectors import DETECTORS, detector_class
    from logad.models.fit import load_artifact
    from logad.models.registry import info

    summary = info(models_dir, name, version)
    job = dict(summary.get("job", {}))
    kind = str(summary.get("kind") or job.get("model") or name)
    if kind in DETECTORS:
        det = detector_class(kind).load(spark, path, float(summary["threshold"]), kind)
        vocab = {t: i for i, t in enumerate(det.vocabulary)}
        meta: dict[str, Any] = {"threshold": det.threshold, "template_ids": det.vocabulary}
        digest = hashlib.sha256(fs.read_bytes(fs.join(fs.parent(path), "model.json"))).hexdigest()[:16]
        return Loaded(version, path, None, meta, job, vocab, None, digest, {}, kind, det)
    data = fs.read_bytes(path)
    model, meta = load_artifact(path, data=data)
    if len(meta["template_ids"]) + 2 != model.config.vocab_size:
        raise LogadError(f"the model artifact at {path} has {len(meta['template_ids'])} template "
                         f"ids for a vocabulary of {model.config.vocab_size}")
    words = {w: meta["word_vectors"][i].numpy() for i, w in enumerate(meta.get("words", []))}
    return Loaded(version, path, model, meta, job, {t: i + 2 for i, t in enumerate(meta["template_ids"])},
                  spark.sparkContext.broadcast(data) if broadcast else None, hashlib.sha256(data).hexdigest()[:16],
                  words, kind)


def _words_vector(words: dict[str, np.ndarray], text: str, dim: int) -> np.ndarray:
    import numpy as np

    from logad.models.vectors import words as split_words

    known = [words[w] for w in split_words(text) if w in words]
    return np.mean(known, axis=0).astype(np.float32) if known else np.zeros(dim, dtype=np.float32)


def nearest_vector(model: Any, meta: dict[str, Any], word_vectors: dict[str, np.ndarray], text: str) -> np.ndarray:
    """An unseen template's vector: the trained vector of the known template whose word2vec
    vector is closest to its words' (cosine); the unknown row when none of its words is known."""
    import numpy as np

    from logad.models.vectors import UNKNOWN

    trained = model.embed.weight[: model.config.vocab_size].detach().cpu().numpy()
    v = _words_vector(word_vectors, text, model.config.embed_dim)
    known = meta["vectors"].numpy()[2:]  # word2vec vectors of the known templates
    if not v.any() or not len(known):
        return np.asarray(trained[UNKNOWN], dtype=np.float32)
    sims = known @ v / (np.linalg.norm(known, axis=1) * np.linalg.norm(v) + 1e-9)
    return np.asarray(trained[2 + int(np.argmax(sims))], dtype=np.float32)


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
                 kafka_options: dict[str, str] | None = None, once_per_session: bool = True) -> None:
        self.spark, self.warehouse, self.name, self.which = spark, warehouse, model, which
        # False: score every session given (an evaluation, which writes nothing), not only those
        # that are not in ``scores`` yet
        self.once_per_session = once_per_session
        self.models_dir = warehouse.models(models_dir)
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
        self.recent: DataFrame | None = None  # raw lines of the batch in flight, not yet in raw_logs
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
        from logad.models.registry import resolve

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
            loaded = load_version(self.spark, self.models_dir, self.name, version, path)
        except Exception as e:  # noqa: BLE001 (whatever a bad version raises, torch's or the JVM's, the stream goes on)
            if self.current is None:
                raise LogadError(f"cannot score with {self.name} v{version}: {e}") from e
            self.refused[version] = str(e)
            log.error("model swap refused: %s v%d does not load (%s); scoring goes on with v%d",
                      self.name, version, e, self.current.version)
            return
        old = self.current
        self.current = loaded
        self.swaps.append((batch_id, None if old is None else old.version, version))
        if old is None:
            log.info("scoring %s sessions with %s v%d (%s, %s, threshold %.4f)", loaded.job.get("system", "all"),
                     self.name, version, loaded.kind, path, loaded.meta["threshold"])
        else:
            log.info("model swap at batch %d: %s v%d (%s) -> v%d (%s)", batch_id, self.name, old.version, old.kind,
                     version, loaded.kind)
            if old.broadcast is not None:
                old.broadcast.unpersist()

    def _extra(self, ids: set[str]) -> tuple[dict[str, int], np.ndarray | None, set[str]]:
        """Vocabulary with this batch's unseen templates appended, their vectors, and the set."""
        import numpy as np

        cur = self.current
        assert cur is not None
        unseen = sorted(ids - set(cur.vocab))
        if not unseen or cur.detector is not None:  # a Spark-side detector reads template ids, not vectors
            return cur.vocab, None, set(unseen)
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
        cur = self.current
        assert cur is not None
        return nearest_vector(cur.model, cur.meta, cur.word_vectors, text)

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
                .withColumn("scored_at", F.lit(None).cast("timestamp"))
                .withColumn("phase", F.lit("closed"))
                .withColumn("alert", F.lit(None).cast("string")))

    def apply(self, batch: DataFrame, batch_id: int, app_id: str, template_ids: set[str] | None = None) -> DataFrame:
        """Score ``batch`` (see the class); ``template_ids``: every id its sessions hold, when the
        caller knows them (saves a Spark job)."""
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
        # a closed session is scored once, whichever query or re-read brings it again; the
        # prefixes of open sessions (the sessions query's early scoring) every time they grew
        if "phase" not in batch.columns:
            batch = batch.withColumn("phase", F.lit("closed"))
        closed = batch.where(F.col("phase") == "closed")
        if self.once_per_session:
            closed = absent(self.warehouse.table(SCORES), closed)
        batch = closed.unionByName(batch.where(F.col("phase") == "open"))
        import time

        clock = [time.perf_counter()]
        spent: list[str] = []

        def lap(what: str) -> None:
            now = time.perf_counter()
            spent.append(f"{what} {now - clock[0]:.2f}s")
            clock[0] = now

        ids = template_ids if template_ids is not None else \
            {r[0] for r in batch.select(F.explode("template_ids")).distinct().collect()}
        vocab, extra, unseen = self._extra(ids)
        lap("vocabulary")
        unit, window, max_len = job.get("unit", "window"), int(job.get("window", 10)), int(job.get("max_len", 512))
        if cur.detector is not None:
            repeats = False
            scored = cur.detector.session_scores(batch)
        else:
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
        lap("model")
        if unseen:
            log.info("score batch %d: %d templates unseen in training (a signal in itself)", batch_id, len(unseen))
        decided = self._decide(out, anomalies) if self.producer is not None else []
        lap("decide")
        if decided:
            self._alert(decided, vocab, extra, unit, window, max_len, repeats, lap)
        decisions = {r["session_id"]: d for r, d in decided}
        log.info("score batch %d: %s v%d, %d anomalies (%d of them open sessions), %d alerts (%s)", batch_id,
                 self.name, cur.version, len(anomalies), sum(r["phase"] == "open" for r in anomalies), len(decisions),
                 ", ".join(spent))
        if not decisions:
            return out.withColumn("alert", F.lit(None).cast("string"))
        sent = self.spark.createDataFrame(sorted(decisions.items()), "session_id string, alert string")
        return out.join(F.broadcast(sent), "session_id", "left")

    def _decide(self, out: DataFrame, anomalies: list[Any]) -> list[tuple[Any, str]]:
        """The scored rows of the batch that get an alert, with its decision: ``anomaly`` the
        first time a session (a prefix or the closed session) is found anomalous, ``cleared`` when
        a session alerted on a prefix closes normal. Once per session and decision: earlier
        decisions are read from ``early_scores`` (a closed session is scored once)."""
        from pyspark.sql import functions as F

        from logad.io.delta import overlapping

        prior: dict[str, set[str]] = {}
        earlier = overlapping(self.warehouse.table(EARLY_SCORES), out)
        if earlier is not None:
            for r in (earlier.where(F.col("alert").isNotNull()).join(out.select("session_id"), "session_id", "left_semi")
                      .select("session_id", "alert").collect()):
                prior.setdefault(r["session_id"], set()).add(r["alert"])
        decided = [(r, "anomaly") for r in anomalies if "anomaly" not in prior.get(r["session_id"], ())]
        alerted = [sid for sid, d in prior.items() if "anomaly" in d and "cleared" not in d]
        if alerted:
            decided += [(r, "cleared") for r in out.where(~F.col("is_anomaly") & (F.col("phase") == "closed")
                                                          & F.col("session_id").isin(alerted)).collect()]
        return sorted(decided, key=lambda rd: rd[0]["session_id"])

    def _alert(self, decided: list[tuple[Any, str]], vocab: dict[str, int], extra: np.ndarray | None, unit: str,
               window: int, max_len: int, repeats: bool, lap: Callable[[str], None] = lambda _: None) -> None:
        from logad.produce import deliver

        cur = self.current
        assert cur is not None and self.producer is not None
        dicts = [r.asDict() for r, _ in decided]
        self._texts_for({t for r in dicts for t in r["template_ids"]})
        tops = (cur.detector.top_events(self.spark, dicts, self.top_k) if cur.detector is not None
                else top_events(cur.model, vocab, extra, dicts, unit, window, max_len, repeats, self.top_k))
        lap("top events")
        raw = raw_lines(self.spark, self.warehouse, [(r["topics"][i], r["partitions"][i], r["offsets"][i])
                                                     for r, top in zip(dicts, tops, strict=True) for i, _, _ in top],
                        self.recent)
        lap("raw lines")
        deliver(self.producer, str(self.alerts_topic), [
            (r["session_id"].encode(), json.dumps(build_alert(cur, r, top, self.texts, decision, raw), default=str).encode())
            for r, (_, decision), top in zip(dicts, decided, tops, strict=True)])
        lap("send")
        self.alerts_sent += len(decided)


IMPACT_MAX_EVENTS = 128  # leave-one-out costs one forward pass per event: longer inputs rank by attention


def top_events(model: Any, vocab: dict[str, int], extra: np.ndarray | None, rows: list[dict[str, Any]], unit: str,
               window: int, max_len: int, repeats: bool, k: int,
               rank: str = "impact") -> list[list[tuple[int, float, float | None]]]:
    """Per row: (event index in the session, attention weight, impact) of the top-``k`` events of
    the window that scored highest (``top_window``).

    ``impact`` is how much the window's score drops when that one event is left out (a
    leave-one-out occlusion, one batched forward pass for all the variants of all rows): the
    events the decision rests on, which are the ones that differ from normal; attention weights
    say where the model looked, and on HDFS they often sit on the block's common lines. Events
    are ranked by impact, ties by weight (``rank="attention"``: by weight alone, no impact);
    inputs longer than ``IMPACT_MAX_EVENTS`` rank by weight, impact None (models without
    attention: weights 0)."""
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
    with torch.no_grad():
        base = model.embed.weight[: model.config.vocab_size]
        if extra is not None and len(extra):  # this batch's unseen templates after the vocabulary
            model.embed = torch.nn.Embedding.from_pretrained(
                torch.cat([base, torch.as_tensor(extra, dtype=base.dtype)]), freeze=True, padding_idx=0)
        elif model.embed.weight.shape[0] != model.config.vocab_size:
            model.embed = torch.nn.Embedding.from_pretrained(base.clone(), freeze=True, padding_idx=0)
    weights: list[Any] = []
    for c in range(0, len(seqs), 4096):
        x, n = pad(seqs[c:c + 4096])
        r = pad(runs[c:c + 4096])[0]
        w_ = infer(model, x, n, r if repeats else None, batch_size=4096, output="weights")  # (B, T)
        weights += [w_[j, : int(n[j])] for j in range(len(x))]
    # leave-one-out: every row's full window, then the window without each of its events
    variants, vruns, owner = [], [], []
    for j, (seq, run) in enumerate(zip(seqs, runs, strict=True)):
        if rank == "impact" and 1 < len(seq) <= IMPACT_MAX_EVENTS:
            for i in range(-1, len(seq)):
                variants.append(seq if i < 0 else seq[:i] + seq[i + 1:])
                vruns.append(run if i < 0 else run[:i] + run[i + 1:])
                owner.append(j)
    impacts: dict[int, Any] = {}
    if variants:
        x, n = pad(variants)
        scores = infer(model, x, n, pad(vruns)[0] if repeats else None, batch_size=4096, output="score")
        at = 0
        for j in sorted(set(owner)):
            m = len(seqs[j])
            impacts[j] = scores[at] - scores[at + 1: at + 1 + m]
            at += m + 1
    out: list[list[tuple[int, float, float | None]]] = []
    for j, (wt, st) in enumerate(zip(weights, steps, strict=True)):
        imp = impacts.get(j)
        if imp is not None:
            order = np.lexsort((-wt, -imp))[:k]
        else:
            order = np.argsort(-wt, kind="stable")[:k] if wt.any() else np.arange(min(k, len(st)))
        out.append([(st[int(i)], float(wt[int(i)]), None if imp is None else float(imp[int(i)]))
                    for i in order if int(i) < len(st)])
    return out


def raw_lines(spark: SparkSession, warehouse: Warehouse, coords: list[tuple[str, int, int]],
              recent: DataFrame | None = None) -> dict[tuple[str, int, int], dict[str, Any]]:
    """``(topic, partition, offset) -> {host, source, line}`` from ``raw_logs`` for the given
    Kafka coordinates. One filter per (topic, partition) with the offsets' range, so Delta skips
    the files outside it by their statistics (a join would scan the whole table); ``{}`` when
    there is no ``raw_logs`` (a warehouse ingested with ``raw=False``). ``recent``: rows with the
    same columns not written yet (the micro-batch in flight of the one-query pipeline), looked in
    first."""
    from functools import reduce

    from pyspark.sql import functions as F

    from logad.io.delta import read_table, table_exists

    def where(coords: list[tuple[str, int, int]]) -> Any:
        by_part: dict[tuple[str, int], set[int]] = {}
        for t, p, o in coords:
            by_part.setdefault((t, int(p)), set()).add(int(o))
        return reduce(lambda a, b: a | b, [
            (F.col("topic") == t) & (F.col("partition") == p) & F.col("offset").between(min(os_), max(os_))
            & F.col("offset").isin(sorted(os_)) for (t, p), os_ in by_part.items()])

    def found(df: DataFrame, coords: list[tuple[str, int, int]]) -> dict[tuple[str, int, int], dict[str, Any]]:
        rows = df.where(where(coords)).select("topic", "partition", "offset", "host", "source", "line").collect()
        return {(r["topic"], r["partition"], r["offset"]): {"host": r["host"], "source": r["source"],
                                                            "line": r["line"]} for r in rows}

    out = found(recent, coords) if recent is not None and coords else {}
    rest = [c for c in coords if (c[0], int(c[1]), int(c[2])) not in out]
    uri = warehouse.table("raw_logs")
    if rest and table_exists(uri):
        out.update(found(read_table(spark, uri), rest))
    return out


def alert_id(session_id: str, version: int, decision: str = "anomaly") -> str:
    """The alert's stable id, for consumers to deduplicate (the Kafka sink is at least once)."""
    text = f"{session_id}|{version}" + ("" if decision == "anomaly" else f"|{decision}")
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def build_alert(cur: Loaded, row: dict[str, Any], top: list[tuple[int, float, float | None]], texts: dict[str, str],
                decision: str = "anomaly", raw: dict[tuple[str, int, int], dict[str, Any]] | None = None) -> dict[str, Any]:
    """The alert for one scored session with its top events (see the module docstring):
    ``decision`` ``anomaly``, or ``cleared`` for a session alerted on a prefix that closed normal;
    ``phase`` ``open`` when the session was still growing (scored on its prefix)."""

    from logad.parse.formats import node_of

    def event(i: int, weight: float, impact: float | None) -> dict[str, Any]:
        t = row["template_ids"][i]
        coord = (row["topics"][i], row["partitions"][i], row["offsets"][i])
        line = (raw or {}).get(coord, {})
        text = line.get("line")
        return {"index": i, "weight": round(weight, 4), "impact": None if impact is None else round(impact, 4),
                "template_id": t, "template": texts.get(t),
                "unseen": t not in cur.vocab, "ts": row["event_ts"][i], "topic": coord[0],
                "partition": coord[1], "offset": coord[2], "host": line.get("host"),
                "node": node_of(row["system"], text) if text else None, "line": text}

    events = [event(i, w, imp) for i, w, imp in top]

    return {
        "alert_id": alert_id(row["session_id"], cur.version, decision), "decision": decision,
        "phase": row.get("phase", "closed"), "session_id": row["session_id"], "system": row["system"], "key": row["key"], "name": row.get("name"),
        "task": row.get("task"), "hosts": row["hosts"],
        "start": row["start_ts"], "end": row["end_ts"], "n_events": row["n_events"],
        "score": row["score"], "threshold": row["threshold"], "model": row["model"],
        "model_version": row["model_version"], "detector": cur.kind, "unseen_templates": row["unseen_templates"],
        "nodes": list(dict.fromkeys(e["node"] or e["host"] for e in events if e["node"] or e["host"])),
        "top_events": events,
        "lines": [{"topic": row["topics"][i], "partition": row["partitions"][i], "offset": row["offsets"][i]}
                  for i in range(len(row["template_ids"]))],
        "scored_at": dt.datetime.now(dt.UTC).isoformat(),
    }


def score_outputs(warehouse: Warehouse, early: bool = False) -> dict[str, tuple[str, Callable[[DataFrame], DataFrame]]]:
    """The ``scores`` table (closed sessions, once each) as an output of
    :func:`logad.io.delta.write_stream_tables`, for the scoring query and for scoring chained in
    the sessions query; with ``early``, ``early_scores`` too (a row per prefix scored, its lines
    kept when it was alerted)."""
    from pyspark.sql import functions as F

    outputs = {SCORES: (warehouse.table(SCORES),
                        lambda df: df.where(F.col("phase") == "closed").select(*SCORE_COLUMNS))}
    if early:
        outputs[EARLY_SCORES] = (warehouse.table(EARLY_SCORES), lambda df: df.where(F.col("phase") == "open").select(
            *SCORE_COLUMNS, *(F.when(F.col("alert").isNotNull(), F.col(c)).alias(c) for c in PREFIX_COLUMNS)))
    return outputs


def start_scoring(spark: SparkSession, warehouse: Warehouse, stage: ScoreStage, trigger: str = "5 seconds",
                  query_name: str = "score", starting_version: int = 0) -> StreamingQuery:
    """Start the streaming query ``sessions`` -> ``scores`` (+ alerts)."""
    from logad.io.delta import read_stream, write_stream_tables

    sessions = read_stream(spark, warehouse.table("sessions"), starting_version)
    query = write_stream_tables(sessions, score_outputs(warehouse), warehouse.checkpoint(query_name), query_name=query_name,
                                trigger=trigger, stage=stage)
    log.info("query %s: sessions -> %s%s", query_name, warehouse.table(SCORES),
             f" + alerts to {stage.alerts_topic}" if stage.alerts_topic else "")
    return query


def explain(spark: SparkSession, warehouse: Warehouse, session_id: str, models_dir: str | None = None,
            top_k: int = 5) -> tuple[dict[str, Any], list[tuple[int, str, float | None]]]:
    """A scored session and its raw lines: (score row, [(event index, raw line, weight or None)])."""
    from pyspark.sql import functions as F

    from logad.io.delta import read_table, table_exists
    from logad.models.registry import resolve

    scores = read_table(spark, warehouse.table(SCORES)).where(F.col("session_id") == session_id) \
        .orderBy(F.col("scored_at").desc()).limit(1).collect()
    if scores:
        s = scores[0].asDict()
        sess = read_table(spark, warehouse.table("sessions")).where(F.col("session_id") == session_id).limit(1).collect()
        if not sess:
            raise LogadError(f"session {session_id} is not in {warehouse.table('sessions')}")
        row = {**sess[0].asDict(), **s}
    else:  # still open: the prefix it was alerted on
        early = (read_table(spark, warehouse.table(EARLY_SCORES)).where(
            (F.col("session_id") == session_id) & F.col("template_ids").isNotNull())
            .orderBy(F.col("scored_at").desc()).limit(1).collect()) if table_exists(warehouse.table(EARLY_SCORES)) else []
        if not early:
            raise LogadError(f"session {session_id} has no score in {warehouse.table(SCORES)} and no alerted "
                             f"prefix in {warehouse.table(EARLY_SCORES)}")
        s = row = {**early[0].asDict(), "open": True}
    root = warehouse.models(models_dir)
    _, path = resolve(root, s["model"], int(s["model_version"]))
    cur = load_version(spark, root, s["model"], int(s["model_version"]), path, broadcast=False)
    job = cur.job
    if cur.detector is not None:
        found = cur.detector.top_events(spark, [row], top_k)[0]
    else:
        # templates the model never saw get the vectors the scoring stage gave them (nearest known)
        model, meta, vocab = cur.model, cur.meta, dict(cur.vocab)
        extra = None
        unseen = sorted(set(row["template_ids"]) - set(vocab))
        if unseen:
            import numpy as np

            from logad.templates.stream import template_texts

            texts = template_texts(spark, warehouse) or {}
            for j, t in enumerate(unseen):
                vocab[t] = model.config.vocab_size + j
            extra = np.stack([nearest_vector(model, meta, cur.word_vectors, texts.get(t, "")) for t in unseen])
        found = top_events(model, vocab, extra, [row], job.get("unit", "window"), int(job.get("window", 10)),
                           int(job.get("max_len", 512)), bool(model.config.repeats), top_k)[0]
    # the marked lines are the alert's top events; the figure shown is the impact (score drop
    # without the line) where it was computed, else the weight
    top = {i: (w if imp is None else imp) for i, w, imp in found}
    coords = list(zip(row["topics"], row["partitions"], row["offsets"], strict=True))
    raw = raw_lines(spark, warehouse, coords)
    return s, [(i, raw.get(c, {}).get("line", "<raw line not in raw_logs>"), top.get(i)) for i, c in enumerate(coords)]


__all__ = ["EARLY_SCORES", "SCORES", "Loaded", "ScoreStage", "alert_id", "build_alert", "event_steps", "explain",
           "load_version", "raw_lines",
           "score_outputs", "start_scoring", "top_events"]
