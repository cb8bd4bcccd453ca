# Databricks notebook source
# MAGIC %md
# MAGIC # Events and templates: what the parser made of the lines
# MAGIC
# MAGIC `events` holds every line that parsed (its system, time, level, component, content and the
# MAGIC template id mined from it); `rejects` every line that did not, with the reason; `templates`
# MAGIC one row per template with its count. Run `make demo` first, or point the widget at your
# MAGIC warehouse.

# COMMAND ----------

from logad.entry import configure_logging
from logad.notebook import show, widget

configure_logging()  # run as a script: logad's progress, and where each plot was saved

warehouse = widget("warehouse", ".logad/demo/warehouse", "Warehouse root")
top = int(widget("top", "15", "Templates to show"))

# COMMAND ----------

import matplotlib.pyplot as plt
from pyspark.sql import functions as F

from logad.config import Warehouse
from logad.io.delta import read_small, read_table, table_summary
from logad.spark_session import get_spark

spark = get_spark("logad-notebook-templates")
wh = Warehouse(warehouse)
print(table_summary(wh.table("events")))
events = read_table(spark, wh.table("events"))

# COMMAND ----------

# MAGIC %md
# MAGIC ## Lines per system, host and level

# COMMAND ----------

events.groupBy("system", "host").pivot("level").count().orderBy("system", "host").show(truncate=False)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Rejected lines, by reason (nothing is dropped silently)

# COMMAND ----------

try:
    rejects = read_table(spark, wh.table("rejects"))
    rejects.groupBy("reason", "stage").count().orderBy(F.desc("count")).show(truncate=False)
except Exception as e:  # noqa: BLE001 (no rejects table yet: nothing was rejected)
    print(f"no rejects table: {e}")

# COMMAND ----------

# MAGIC %md
# MAGIC ## The most frequent templates, and how many each system has

# COMMAND ----------

templates = read_small(spark, wh.table("templates")).to_pandas()
print(f"{len(templates)} templates ({templates['merged_into'].notna().sum()} generalized into another)")
used = (events.groupBy("system", "template_id").count().toPandas()
        .merge(templates[["template_id", "text"]], on="template_id", how="left"))
print(used.groupby("system")["template_id"].nunique().rename("templates in use").to_frame().to_string())
head = used.sort_values("count", ascending=False).head(top)
print(head[["system", "count", "text"]].to_string(index=False, max_colwidth=100))

fig, ax = plt.subplots(figsize=(9, 0.3 * len(head) + 1))
ax.barh(range(len(head)), head["count"].to_numpy()[::-1])
ax.set_yticks(range(len(head)), [f"[{s}] {t[:70]}" for s, t in zip(head["system"], head["text"], strict=True)][::-1], fontsize=7)
ax.set_xlabel("events")
ax.set_title("most frequent templates")
fig.tight_layout()
show(fig, "top_templates")

# COMMAND ----------

# MAGIC %md
# MAGIC ## One template's lines (the most frequent WARN/ERROR one)

# COMMAND ----------

bad = (events.where(F.col("level").isin("WARN", "WARNING", "ERROR", "FATAL"))
       .groupBy("template_id").count().orderBy(F.desc("count")).limit(1).collect())
if bad:
    tid = bad[0]["template_id"]
    print(templates.loc[templates["template_id"] == tid, "text"].iloc[0])
    events.where(F.col("template_id") == tid).select("host", "ts", "content").show(5, truncate=100)
else:
    print("no WARN/ERROR lines")
