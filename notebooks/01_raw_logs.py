# Databricks notebook source
# MAGIC %md
# MAGIC # Raw logs: what arrived from Kafka
# MAGIC
# MAGIC The `raw_logs` Delta table holds one row per Kafka record with its coordinates (topic,
# MAGIC partition, offset), so every later stage can lead back to the raw line. Run `make demo`
# MAGIC first to fill `.logad/demo/warehouse`, or point the widget at your warehouse.

# COMMAND ----------

from logad.notebook import widget

warehouse = widget("warehouse", ".logad/demo/warehouse", "Warehouse root")
sample = int(widget("sample", "10", "Lines to show"))

# COMMAND ----------

from pyspark.sql import functions as F

from logad.config import Warehouse
from logad.io.delta import read_table, table_summary
from logad.spark_session import get_spark

spark = get_spark("logad-notebook-raw-logs")
table = Warehouse(warehouse).table("raw_logs")
print(table_summary(table))
raw = read_table(spark, table)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Per topic and partition: how many lines, which offsets, which time span

# COMMAND ----------

per_partition = (raw.groupBy("topic", "partition")
                 .agg(F.count("*").alias("lines"), F.min("offset").alias("first_offset"),
                      F.max("offset").alias("last_offset"), F.min("kafka_ts").alias("first_ts"),
                      F.max("kafka_ts").alias("last_ts"))
                 .orderBy("topic", "partition"))
per_partition.show(truncate=False)

# COMMAND ----------

# MAGIC %md
# MAGIC ## A sample of lines, in Kafka order

# COMMAND ----------

raw.orderBy("topic", "partition", "offset").select("topic", "offset", "host", "line").show(
    sample, truncate=120)

# COMMAND ----------

# Cleanup: nothing was written; release the cached table listing.
spark.catalog.clearCache()
