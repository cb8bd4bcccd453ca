# Databricks notebook source
# MAGIC %md
# MAGIC # Sessions and Spark Task workflows
# MAGIC
# MAGIC `logad sessions` cuts interleaved events into sessions: a Spark Task's workflow from `Running
# MAGIC task ... (TID n)` to `Finished task` in one executor log, an HDFS block, a BGL window. Each
# MAGIC session keeps its template ids and the Kafka coordinates of its lines, and a label when
# MAGIC one is known (`labels` table or the lab's ground truth). Here: how many, how long, how
# MAGIC interleaved, and one anomalous workflow's raw lines.

# COMMAND ----------

from logad.entry import configure_logging
from logad.notebook import show, widget

configure_logging()  # run as a script: logad's progress, and where each plot was saved

warehouse = widget("warehouse", ".logad/demo/warehouse", "Warehouse root")
system = widget("system", "spark", "System")

# COMMAND ----------

import matplotlib.pyplot as plt
from pyspark.sql import functions as F

from logad.config import Warehouse
from logad.io.delta import read_table, table_summary
from logad.spark_session import get_spark

spark = get_spark("logad-notebook-sessions")
wh = Warehouse(warehouse)
print(table_summary(wh.table("sessions")))
sessions = read_table(spark, wh.table("sessions"))
sessions.groupBy("system", "close_reason", "label").count().orderBy("system", "close_reason", "label").show(truncate=False)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Workflows per executor log, and their length by label

# COMMAND ----------

mine = sessions.where(F.col("system") == system).persist()
mine.groupBy("key").agg(F.count("*").alias("workflows"), F.sum("label").alias("anomalous"),
                        F.avg("n_events").alias("mean_events")).orderBy("key").show(10, truncate=80)
pdf = mine.select("n_events", "label").toPandas()
fig, ax = plt.subplots(figsize=(6, 3))
for lab, name in ((0, "normal"), (1, "anomaly"), (None, "unlabelled")):
    part = pdf[pdf["label"].isna()] if lab is None else pdf[pdf["label"] == lab]
    if len(part):
        ax.hist(part["n_events"], bins=30, alpha=0.6, label=f"{name} ({len(part)})")
ax.set(xlabel="events per session", ylabel="sessions", title=f"{system} session length")
ax.legend()
fig.tight_layout()
show(fig, f"{system}_session_length")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Interleaving: how many other workflows of the same log were open at the same time

# COMMAND ----------

a, b = mine.select("session_id", "key", "start_ts", "end_ts").alias("a"), mine.select("session_id", "key", "start_ts", "end_ts").alias("b")
overlap = (a.join(b, (F.col("a.key") == F.col("b.key")) & (F.col("a.session_id") != F.col("b.session_id"))
                  & (F.col("a.start_ts") <= F.col("b.end_ts")) & (F.col("b.start_ts") <= F.col("a.end_ts")), "left")
           .groupBy("a.session_id").agg(F.count("b.session_id").alias("concurrent")))
overlap.agg(F.avg("concurrent").alias("mean concurrent"), F.max("concurrent").alias("max"),
            F.avg((F.col("concurrent") > 0).cast("int")).alias("share interleaved")).show()

# COMMAND ----------

# MAGIC %md
# MAGIC ## One anomalous workflow, line by line (from `raw_logs` by Kafka coordinates)

# COMMAND ----------

# a workflow that failed with an exception if there is one, else the longest anomaly, else any
first = [(F.col("close_reason") != "exception").cast("int"), F.desc("n_events")]
pick = mine.where("label = 1").orderBy(*first).limit(1).collect() or mine.orderBy(*first).limit(1).collect()
if pick:
    s = pick[0]
    print(f"{s['session_id']}  {s['key']}  {s['name']}  label {s['label']} ({s['label_source']})  "
          f"{s['n_events']} events, closed by {s['close_reason']}")
    coords = spark.createDataFrame(list(zip(s["topics"], s["partitions"], s["offsets"], range(s["n_events"]), strict=True)),
                                   "topic string, partition int, offset long, idx int")
    raw = read_table(spark, wh.table("raw_logs")).join(F.broadcast(coords), ["topic", "partition", "offset"])
    for r in raw.orderBy("idx").select("idx", "line").collect():
        print(f"{r['idx']:>4}  {r['line'][:160]}")
mine.unpersist()
