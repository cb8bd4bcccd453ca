"""Templates in the stream: every event gets a ``template_id``; new templates are mined once.

Per micro-batch (:class:`TemplateStage`, a :class:`logad.io.delta.BatchStage` of the ingest query):

1. On the executors, at JVM speed: ``content`` is masked (:func:`logad.templates.masking.mask_column`:
   one ``logad.jvm.Mask`` call per line, the same rules the miners use), and the batch is
   grouped by masked text: one row per distinct masked text with its line count and time span.
2. On the driver: each distinct masked text is looked up in a dict (masked text -> template).
   Only texts never seen before go to the miner (Drain or SwissLog), in a fixed order, so the
   result does not depend on how Spark partitioned the batch.
3. New lookup entries are appended to ``template_lookup`` and the whole ``templates`` table is
   rewritten (one row per template: it is small), both before any event is written.
4. On the executors again: the batch is joined with a broadcast of this batch's masked text ->
   ``template_id`` (only the texts the batch has, not the whole lookup), so every parsed line
   gets an id. A line never waits for the miner more than once per distinct masked text.

Ids are :func:`logad.templates.ids.template_id` of the template text. When a template
generalizes (Drain widens a position to ``<*>``, SwissLog merges two groups), its row stays
with ``merged_into`` set to the new id: events already written keep the old id and resolve
through the table; new events get the new id.

Restart: the stage reloads both tables, puts the miner's patterns back as they were
(:meth:`logad.templates.base.Miner.restore`) and knows the last batch it committed, so a batch
Spark replays after a crash is neither mined nor counted twice. One writer per warehouse: run one
ingest query with templates per ``templates`` table.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from logad.config import Warehouse
from logad.errors import ConfigError
from logad.templates import make_miner
from logad.templates.ids import template_id
from logad.templates.masking import MaskRule, mask_column, rules_for

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

TEMPLATES, TEMPLATE_LOOKUP = "templates", "template_lookup"
MASKED = "masked"


def templates_schema() -> pa.Schema:
    """The ``templates`` table: one row per template text ever handed out."""
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    return pa.schema([
        ("template_id", pa.string()), ("text", pa.string()), ("parser", pa.string()),
        ("count", pa.int64()),  # events written with this id
        ("first_seen", ts), ("last_seen", ts),  # event time (Kafka time when the line has none)
        ("merged_into", pa.string()),  # the id that replaced this one, null while current
        ("patterns", pa.list_(pa.string())),  # the miner's own form, for a restart
        ("first_batch", pa.int64()),
        ("app_id", pa.string()), ("batch_id", pa.int64()),  # the micro-batch of this snapshot
    ])


def lookup_schema() -> pa.Schema:
    """The ``template_lookup`` table: masked text -> the id it was given (append-only)."""
    import pyarrow as pa

    return pa.schema([("masked", pa.string()), ("template_id", pa.string()), ("parser", pa.string()),
                      ("app_id", pa.string()), ("batch_id", pa.int64())])


@dataclass
class _Known:
    count: int
    first_seen: dt.datetime | None
    last_seen: dt.datetime | None
    first_batch: int


def _utc(micros: int | None) -> dt.datetime | None:
    if micros is None:
        return None
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)


def _min(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    return b if a is None else a if b is None else max(a, b)


def template_texts(spark: SparkSession, warehouse: Warehouse) -> dict[str, str] | None:
    """template id -> text from the ``templates`` table (every id, merged ones too); None when
    there is no such table yet."""
    from logad.io.delta import read_small

    table = read_small(spark, warehouse.table(TEMPLATES))
    if table is None:
        return None
    return dict(zip(table.column("template_id").to_pylist(), table.column("text").to_pylist(), strict=True))


class TemplateStage:
    """Assigns ``template_id`` to the events of each micro-batch; owns ``templates`` and
    ``template_lookup`` in ``warehouse``.

    Args:
        spark: the session of the query.
        warehouse: where the two tables live.
        parser: ``drain`` or ``swisslog``; a table mined by one cannot be continued by the other.
        rules: masking rules (default: :func:`rules_for` ``(None)``).
        content: the column to mask and mine.

    Example:
        >>> stage = TemplateStage(spark, Warehouse("/data/logad"))  # doctest: +SKIP
        >>> tagged = stage.apply(stage.columns(parsed_batch), batch_id=0, app_id="backfill")  # doctest: +SKIP
    """

    def __init__(self, spark: SparkSession, warehouse: Warehouse, parser: str = "drain",
                 rules: Sequence[MaskRule] | None = None, content: str = "content") -> None:
        self.spark = spark
        self.parser = parser
        self.rules = tuple(rules if rules is not None else rules_for(None))
        self.content = content
        self.templates_uri = warehouse.table(TEMPLATES)
        self.lookup_uri = warehouse.table(TEMPLATE_LOOKUP)
        self.miner = make_miner(parser)
        self._lookup: dict[str, str] = {}  # masked text -> template text when it was mined
        self._known: dict[str, _Known] = {}  # every template text handed out
        self._merged: dict[str, str] = {}  # generalizations from before the last start
        self._done: tuple[str, int] | None = None  # (app_id, batch_id) of the last commit
        self._pending: tuple[list[tuple[str, str]], int, str, dict[str, str]] | None = None
        self._load()
        from logad.io.delta import create_small

        create_small(spark, self.templates_uri, templates_schema())
        create_small(spark, self.lookup_uri, lookup_schema())

    # -- the BatchStage protocol -------------------------------------------------------------

    def columns(self, parsed: DataFrame) -> DataFrame:
        """Adds ``masked`` (null for rejected records): pure Spark SQL, streaming or batch."""
        from pyspark.sql import functions as F

        masked = mask_column(F.coalesce(F.col(self.content), F.lit("")), self.rules, self.spark)
        if "reject_reason" in parsed.columns:
            masked = F.when(F.col("reject_reason").isNull(), masked)
        return parsed.withColumn(MASKED, masked)

    def schema(self, df: DataFrame) -> DataFrame:
        from pyspark.sql import functions as F

        return df.withColumn("template_id", F.lit(None).cast("string"))

    def apply(self, batch: DataFrame, batch_id: int, app_id: str, defer_commit: bool = False) -> DataFrame:
        """``batch`` (with :meth:`columns`) plus ``template_id``, mining and committing first;
        ``defer_commit``: the tables' commit is left to :meth:`commit_pending`, for a caller that
        writes it beside its other tables (safe in any order: a batch replayed after a crash is
        mined again from the last committed state, deterministically, or found committed)."""
        from pyspark.sql import functions as F

        when = F.coalesce(F.col("ts"), F.col("kafka_ts")) if "kafka_ts" in batch.columns else F.col("ts")
        micros = F.unix_micros(when)  # not collect()'s local-time datetimes
        rows = [{MASKED: r[0], "n": r[1], "first": _utc(r[2]), "last": _utc(r[3])}
                for r in batch.where(F.col(MASKED).isNotNull()).groupBy(MASKED)
                .agg(F.count(F.lit(1)), F.min(micros), F.max(micros)).collect()]
        replay = self._done is not None and self._done[0] == app_id and batch_id <= self._done[1]
        if replay:
            log.info("templates: batch %d of %s is already in %s; not counted again",
                     batch_id, app_id, self.templates_uri)
        mined = self._mine(rows, batch_id)
        generalized = self.miner.generalized
        ids: dict[str, str] = {}
        for r in rows:
            text = self._canonical(self._lookup[r[MASKED]], generalized)
            ids[r[MASKED]] = template_id(text)
            if not replay:
                known = self._known.setdefault(text, _Known(0, r["first"], r["last"], batch_id))
                known.count += r["n"]
                known.first_seen = _min(known.first_seen, r["first"])
                known.last_seen = _max(known.last_seen, r["last"])
        if rows and (not replay or mined):
            commit = (mined, batch_id, app_id, dict(generalized))
            if defer_commit:
                self._pending = commit
            else:
                self._commit(*commit)
        if not ids:
            return self.schema(batch)
        mapping = self.spark.createDataFrame(list(ids.items()), f"{MASKED} string, template_id string")
        return batch.join(F.broadcast(mapping), MASKED, "left")

    def commit_pending(self) -> None:
        """Commit what :meth:`apply` left with ``defer_commit`` (nothing when it left nothing)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self._commit(*pending)

    # -- state --------------------------------------------------------------------------------

    def _mine(self, rows: list[dict[str, Any]], batch_id: int) -> list[tuple[str, str]]:
        """Mine the masked texts never seen before, earliest first; returns (masked, text)."""
        epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
        fresh = sorted((r for r in rows if r[MASKED] not in self._lookup),
                       key=lambda r: (r["first"] or epoch, r[MASKED]))
        mined = []
        for r in fresh:
            text = self.miner.add(r[MASKED])
            self._lookup[r[MASKED]] = text
            mined.append((r[MASKED], text))
            if text not in self._known:
                self._known[text] = _Known(0, r["first"], r["first"], batch_id)
        if mined:
            log.info("templates: %d new masked texts in batch %d -> %d templates known",
                     len(mined), batch_id, sum(1 for t in self._known if self._canonical(t) == t))
        return mined

    def _canonical(self, text: str, generalized: dict[str, str] | None = None) -> str:
        generalized = self.miner.generalized if generalized is None else generalized
        for _ in range(256):  # generalization only adds <*>, so chains end; the bound is a guard
            nxt = generalized.get(text) or self._merged.get(text)
            if nxt is None or nxt == text:
                return text
            text = nxt
        return text

    def _commit(self, mined: list[tuple[str, str]], batch_id: int, app_id: str,
                generalized: dict[str, str]) -> None:
        import pyarrow as pa

        from logad.io.delta import write_small

        if mined:  # lookup first: its rows only count once their template is in ``templates``
            write_small(self.spark, self.lookup_uri, pa.Table.from_pylist(
                [{"masked": m, "template_id": template_id(t), "parser": self.parser,
                  "app_id": app_id, "batch_id": batch_id} for m, t in mined], lookup_schema()))
        patterns = self.miner.patterns()
        for text in list(self._known):  # a new general text inherits the first sighting
            canon = self._canonical(text, generalized)
            if canon != text:
                target = self._known.setdefault(canon, _Known(0, None, None, batch_id))
                target.first_seen = _min(target.first_seen, self._known[text].first_seen)
        rows = []
        for text, k in self._known.items():
            canon = self._canonical(text, generalized)
            rows.append({"template_id": template_id(text), "text": text, "parser": self.parser,
                         "count": k.count, "first_seen": k.first_seen, "last_seen": k.last_seen,
                         "merged_into": template_id(canon) if canon != text else None,
                         "patterns": patterns.get(text, []) if canon == text else [],
                         "first_batch": k.first_batch, "app_id": app_id, "batch_id": batch_id})
        write_small(self.spark, self.templates_uri, pa.Table.from_pylist(rows, templates_schema()),
                    mode="overwrite")
        self._done = (app_id, batch_id)

    def _load(self) -> None:
        from logad.io.delta import read_small

        table = read_small(self.spark, self.templates_uri)
        if table is None or table.num_rows == 0:
            return
        rows = table.to_pylist()
        parsers = {r["parser"] for r in rows}
        if parsers != {self.parser}:
            raise ConfigError(f"the templates table at {self.templates_uri} was mined by "
                              f"{', '.join(sorted(parsers))}, not {self.parser}: use that parser "
                              "or a new warehouse")
        by_id = {r["template_id"]: r["text"] for r in rows}
        for r in sorted(rows, key=lambda r: (r["first_batch"], r["text"])):
            self._known[r["text"]] = _Known(r["count"], r["first_seen"], r["last_seen"], r["first_batch"])
            if r["merged_into"]:
                self._merged[r["text"]] = by_id[r["merged_into"]]
            for pattern in r["patterns"] or ():
                self.miner.restore(r["text"], pattern)
        self._done = (rows[0]["app_id"], rows[0]["batch_id"])
        lookup = read_small(self.spark, self.lookup_uri)
        dropped = 0
        for r in sorted(lookup.to_pylist() if lookup is not None else [], key=lambda r: r["batch_id"]):
            text = by_id.get(r["template_id"])
            if text is None:  # written by a batch whose templates commit never happened
                dropped += 1
                continue
            self._lookup[r["masked"]] = text
        log.info("templates: %d templates and %d masked texts from %s (last batch %s of %s)%s",
                 sum(1 for r in rows if not r["merged_into"]), len(self._lookup), self.templates_uri,
                 self._done[1], self._done[0], f"; {dropped} lookup rows without a template" if dropped else "")

    def ids_as_of(self, pairs: set[tuple[str, int]]) -> dict[tuple[str, int], str]:
        """``(masked text, batch id) -> template_id`` that :meth:`apply` gave that masked text's
        lines in that batch: its template then, following only the generalizations known by the
        end of that batch's mining (a generalized text's ``first_batch``). For the one-query
        pipeline, whose sessions keep masked texts until they close (:mod:`logad.pipeline`);
        batch -1 means now. Every masked text must have been through :meth:`apply`."""
        out = {}
        generalized = self.miner.generalized
        for masked, batch in pairs:
            text = self._lookup.get(masked)
            if text is None:
                raise ConfigError(f"templates: masked text {masked[:80]!r} was never mined in {self.templates_uri}; "
                                  "the pipeline's state and the templates table disagree (was one of them replaced?)")
            for _ in range(256):
                nxt = generalized.get(text) or self._merged.get(text)
                if nxt is None or nxt == text:
                    break
                known = self._known.get(nxt)
                if batch >= 0 and known is not None and known.first_batch > batch:
                    break  # generalized after that batch: its lines kept the older id
                text = nxt
            out[(masked, batch)] = template_id(text)
        return out

    def texts(self) -> dict[str, str]:
        """Template id -> text of every template handed out (merged ones too), from memory: what
        the ``templates`` table holds once this batch is committed."""
        return {template_id(t): t for t in self._known}

    def current(self) -> dict[str, str]:
        """Template id -> text of the templates in use now (not merged into another)."""
        return {template_id(t): t for t in self._known if self._canonical(t) == t}


def read_templates(uri: str) -> list[dict[str, Any]]:
    """Every row of the ``templates`` table at ``uri``, most frequent first: read with delta-rs
    on a local disk (no SparkSession), with the active SparkSession elsewhere."""
    from logad.errors import DeltaError
    from logad.io import fs
    from logad.io.delta import table_exists

    if not table_exists(uri):
        raise DeltaError(f"no templates table at {uri}: run 'logad ingest' first (or check --warehouse)")
    if fs.is_local(uri):
        from deltalake import DeltaTable

        rows: list[dict[str, Any]] = DeltaTable(fs.local_path(uri)).to_pyarrow_table().to_pylist()
    else:
        from pyspark.sql import SparkSession

        from logad.spark_session import get_spark

        spark = SparkSession.getActiveSession() or get_spark("logad-templates")
        rows = [r.asDict(recursive=True) for r in spark.read.format("delta").load(uri).collect()]
    return sorted(rows, key=lambda r: -r["count"])
