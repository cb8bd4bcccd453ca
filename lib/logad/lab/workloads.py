"""The lab's Spark workloads: small versions of what clusters run, each step behind a fault gate.

Each workload is a function ``(spark, ctx) -> None`` running one or more jobs in its own job group
(the group names the workload in the ground truth). ``ctx.gate(df, step)`` puts the fault gate on
a DataFrame step (it runs in whichever stage computes that step); ``ctx.gate_rdd`` on an RDD.

- ``etl_join``: fact table scan, shuffle (sort-merge) join with a dimension, aggregation.
- ``aggregate``: wide group-by with many keys, then a global sort.
- ``cache_broadcast``: a cached table read by two jobs, and a broadcast join.
- ``skew``: a group-by where most rows share one key: one long task per stage, a natural straggler.
- ``narrow_wide``: a narrow map/filter job, then repartition and a window function.
- ``shuffle_reuse``: an RDD ``reduceByKey`` counted twice; between the jobs the lab may delete a
  map output file (``fetch_failure``): the second job's reducers fail to fetch it, Spark reruns
  the lost map task.
- ``parse``: text files parsed by a strict parser; a file with a corrupt record (``corrupt_record``)
  fails its task on every attempt and aborts the job, as a bad input does on a real cluster.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logad.lab.faults import FaultPlan, gate_length, record

if TYPE_CHECKING:
    from pyspark import RDD
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


@dataclass
class LabContext:
    """What a workload needs: the plan, this application's index and id, where faults and inputs go."""

    plan: FaultPlan
    app: int
    app_id: str
    faults_dir: str
    input_dir: str
    local_dirs: tuple[str, ...]
    partitions: int = 12

    def size(self, name: str, base: int) -> int:
        """A reproducible per-application size around ``base`` (0.5x to 1.5x)."""
        return max(1, int(base * (0.5 + self.plan.uniform(self.app, "size", name))))

    def gate(self, df: DataFrame, step: str) -> DataFrame:
        """``df`` with the fault gate of ``step`` on each of its partitions."""
        import pandas as pd
        from pyspark.sql import functions as F
        from pyspark.sql.functions import pandas_udf

        plan, app, app_id, fdir = self.plan.to_json(), self.app, self.app_id, self.faults_dir

        def _gate(x):  # type: ignore[no-untyped-def]
            n = gate_length(FaultPlan.from_json(plan), app, app_id, step, fdir)
            return pd.Series([n] * len(x), dtype="int64")

        # Real annotations (this module's are strings): Spark reads them to pick the UDF kind.
        _gate.__annotations__ = {"x": pd.Series, "return": pd.Series}
        gate = pandas_udf(_gate, "long")  # type: ignore[call-overload]

        first = df.columns[0]
        return (df.withColumn("_pad", gate(F.col(first)))
                .where(F.length(F.expr("repeat('x', cast(_pad as int))")) == F.col("_pad"))
                .drop("_pad"))

    def gate_rdd(self, rdd: RDD[Any], step: str) -> RDD[Any]:
        plan, app, app_id, fdir = self.plan.to_json(), self.app, self.app_id, self.faults_dir

        def _gate(it: Any) -> Any:
            rows = list(it)
            if rows:
                gate_length(FaultPlan.from_json(plan), app, app_id, step, fdir, oom_ok=False)
            return iter(rows)

        return rdd.mapPartitions(_gate)


def etl_join(spark: SparkSession, ctx: LabContext) -> None:
    from pyspark.sql import functions as F

    n, c = ctx.size("etl.rows", 400_000), 5_000
    orders = ctx.gate(spark.range(0, n, 1, ctx.partitions)
                      .select("id", (F.col("id") * 7919 % c).alias("customer"),
                              (F.rand(ctx.app) * 100).alias("amount")), "etl_join.orders")
    customers = spark.range(0, c, 1, 4).select(F.col("id").alias("customer"),
                                                (F.col("id") % 20).alias("region"))
    joined = ctx.gate(orders.hint("merge").join(customers, "customer"), "etl_join.joined")
    joined.groupBy("region").agg(F.sum("amount"), F.count("*")).collect()


def aggregate(spark: SparkSession, ctx: LabContext) -> None:
    from pyspark.sql import functions as F

    n = ctx.size("agg.rows", 500_000)
    df = ctx.gate(spark.range(0, n, 1, ctx.partitions)
                  .select((F.col("id") % 50_000).alias("k"), (F.col("id") % 997).alias("v")), "aggregate.scan")
    agg = ctx.gate(df.groupBy("k").agg(F.count("*").alias("n"), F.avg("v").alias("mean"),
                                       F.max("v").alias("top")), "aggregate.groups")
    agg.orderBy(F.desc("mean")).limit(20).collect()


def cache_broadcast(spark: SparkSession, ctx: LabContext) -> None:
    from pyspark.sql import functions as F

    n = ctx.size("cache.rows", 300_000)
    facts = ctx.gate(spark.range(0, n, 1, ctx.partitions)
                     .select("id", (F.col("id") % 100).alias("d"), (F.col("id") % 13).alias("v")),
                     "cache_broadcast.facts").cache()
    facts.count()
    dim = spark.range(0, 100).select(F.col("id").alias("d"), (F.col("id") % 7).alias("group"))
    ctx.gate(facts.join(F.broadcast(dim), "d"), "cache_broadcast.joined").groupBy("group").sum("v").collect()
    facts.where("v > 6").count()
    facts.unpersist()


def skew(spark: SparkSession, ctx: LabContext) -> None:
    from pyspark.sql import functions as F

    n = ctx.size("skew.rows", 400_000)
    df = spark.range(0, n, 1, ctx.partitions).select(
        F.when(F.col("id") % 10 < 6, F.lit(0)).otherwise(F.col("id") % 1000).alias("k"), "id")
    ctx.gate(df.groupBy("k").agg(F.sum("id"), F.countDistinct(F.col("id") % 5000)),
             "skew.groups").collect()


def narrow_wide(spark: SparkSession, ctx: LabContext) -> None:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    n = ctx.size("nw.rows", 300_000)
    df = ctx.gate(spark.range(0, n, 1, ctx.partitions).select("id", (F.col("id") % 300).alias("k")),
                  "narrow_wide.scan")
    df.where(F.col("id") % 3 == 0).count()
    w = Window.partitionBy("k").orderBy(F.desc("id"))
    ranked = ctx.gate(df.repartition(ctx.partitions, "k").withColumn("r", F.row_number().over(w)),
                      "narrow_wide.ranked")
    ranked.where("r <= 3").count()


def shuffle_reuse(spark: SparkSession, ctx: LabContext) -> None:
    n = ctx.size("reuse.rows", 200_000)
    pairs = ctx.gate_rdd(spark.sparkContext.parallelize(range(n), ctx.partitions), "shuffle_reuse.map")
    counts = pairs.map(lambda x: (x % 500, 1)).reduceByKey(lambda a, b: a + b, ctx.partitions)
    counts.count()
    if ctx.plan.app_fault(ctx.app, "fetch_failure"):
        lost = delete_map_output(ctx.local_dirs)
        record(ctx.faults_dir, ctx.app_id, fault="fetch_failure", step="shuffle_reuse.map",
               partition=None, tid=None, detail=lost)
    counts.count()


def delete_map_output(local_dirs: tuple[str, ...]) -> str | None:
    """Delete one map output (``shuffle_<id>_<map>_0.data``) of the newest shuffle; its path."""
    files = [f for d in local_dirs for f in glob.glob(os.path.join(d, "**", "shuffle_*.data"), recursive=True)]
    if not files:
        return None
    newest = max(int(Path(f).name.split("_")[1]) for f in files)
    victim = sorted(f for f in files if int(Path(f).name.split("_")[1]) == newest)[0]
    os.remove(victim)
    return victim


def parse(spark: SparkSession, ctx: LabContext) -> None:
    files = ctx.size("parse.files", 8)
    folder = Path(ctx.input_dir) / ctx.app_id
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        rows = [f"{i * 10_000 + j},user{j % 97},{(j * 37) % 1000}.{j % 100:02d}" for j in range(5_000)]
        if ctx.plan.app_fault(ctx.app, "corrupt_record", i):
            rows[len(rows) // 2] = f"{i * 10_000},user0,12x4.O0"  # a corrupt amount
        (folder / f"part-{i:03d}.csv").write_text("\n".join(rows) + "\n")
    app_id, fdir = ctx.app_id, ctx.faults_dir

    def strict(lines: Any) -> Any:
        from pyspark import TaskContext

        out = []
        for line in lines:
            key, user, amount = line.split(",")
            try:
                out.append((user, float(amount)))
            except ValueError:
                tc = TaskContext.get()
                assert tc is not None  # in a task
                record(fdir, app_id, fault="corrupt_record", step="parse.read", partition=tc.partitionId(),
                       tid=tc.taskAttemptId(), stage=tc.stageId(), attempt=tc.attemptNumber())
                raise
        return iter(out)

    sc = spark.sparkContext
    rdd = sc.textFile(str(folder), minPartitions=files).mapPartitions(strict)
    try:
        rdd.reduceByKey(lambda a, b: a + b).count()
    except Exception as e:  # noqa: BLE001 - an aborted job is this workload's expected outcome
        log.warning("parse job aborted (a corrupt input record): %s", str(e).splitlines()[0][:200])


WORKLOADS: dict[str, Callable[[SparkSession, LabContext], None]] = {
    "etl_join": etl_join, "aggregate": aggregate, "cache_broadcast": cache_broadcast,
    "skew": skew, "narrow_wide": narrow_wide, "shuffle_reuse": shuffle_reuse, "parse": parse,
}
