# Databricks notebook source
# MAGIC %md
# MAGIC # Investigate an alert: from a score back to the raw lines
# MAGIC
# MAGIC Every alert names a session; `scores` holds its score and the window that scored highest,
# MAGIC `sessions` the Kafka coordinates of its lines, `raw_logs` the lines. This notebook takes an
# MAGIC alerted session (the widget, or the highest-scored anomaly) and prints its lines with the
# MAGIC ones the model weighed most marked, as `logad explain SESSION_ID` does. When the warehouse
# MAGIC has no scores yet it runs the scoring query once over `sessions` (no alerts sent).

# COMMAND ----------

from logad.entry import configure_logging
from logad.notebook import show, widget

configure_logging()  # run as a script: logad's progress, and where each plot was saved

warehouse = widget("warehouse", ".logad/demo/warehouse", "Warehouse root")
session_id = widget("session_id", "", "Session id (empty: the top anomaly)")
model_kind = widget("model", "att_gru", "Model")
which = widget("model_version", "promoted", "Model version for scoring (promoted, latest or N)")
top_k = int(widget("top_k", "5", "Events to highlight"))

# COMMAND ----------

from pyspark.sql import functions as F

from logad.config import Warehouse
from logad.io.delta import read_table, table_exists
from logad.spark_session import get_spark

spark = get_spark("logad-notebook-alert")
wh = Warehouse(warehouse)
if not table_exists(wh.table("scores")):
    from logad.ingest import run
    from logad.live_scoring import ScoreStage, start_scoring

    stage = ScoreStage(spark, wh, model_kind, which if which in ("promoted", "latest") else int(which),
                       bootstrap=None, alerts_topic=None)
    run(start_scoring(spark, wh, stage, trigger="1 second", query_name="score-notebook"), once=True)
    stage.close()
scores = read_table(spark, wh.table("scores"))
scores.groupBy("model", "model_version", "is_anomaly").count().orderBy("model_version", "is_anomaly").show()

# COMMAND ----------

if not session_id:
    top = scores.where("is_anomaly").orderBy(F.desc("score")).limit(1).collect()
    if not top:
        raise SystemExit("no anomaly scored yet")
    session_id = top[0]["session_id"]
scores.where(F.col("session_id") == session_id).select("session_id", "system", "key", "start_ts", "end_ts",
                                                       "n_events", "score", "threshold", "unseen_templates").show(truncate=False)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Its raw lines, the ones that weighed most marked `>>`

# COMMAND ----------

from logad.live_scoring import explain

score, lines = explain(spark, wh, session_id, top_k=top_k)
print(f"{session_id}: score {score['score']:.4f} (threshold {score['threshold']:.4f}), "
      f"{score['model']} v{score['model_version']}")
for i, line, weight in lines:
    mark = f">> {weight:.3f}" if weight is not None else "        "
    print(f"{mark} {i:>4}  {line[:160]}")

# COMMAND ----------

from logad import report

marked = [(i, w) for i, _, w in lines if w is not None]
if marked:
    fig = report.attention_heatmap([w for _, w in marked], [f"{i:>4} {lines[i][1][:80]}" for i, _ in marked],
                                   f"top events of {session_id}")
    show(fig, "alert_top_events")
