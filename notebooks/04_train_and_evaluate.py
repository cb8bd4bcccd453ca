# Databricks notebook source
# MAGIC %md
# MAGIC # Train and evaluate a model
# MAGIC
# MAGIC `logad train` from a pinned version of `sessions`: word2vec template vectors, ATT-GRU (or a
# MAGIC peer) trained across Spark with TorchDistributor, the threshold chosen on validation
# MAGIC sessions, scored on unseen test sessions by the pandas UDF the stream uses. Then the
# MAGIC plots: loss curves, the precision-recall curve, the confusion matrix, and the attention
# MAGIC over the events of the test anomaly the model is surest of.

# COMMAND ----------

from logad.entry import configure_logging
from logad.notebook import show, widget

configure_logging()  # run as a script: logad's progress, and where each plot was saved

warehouse = widget("warehouse", ".logad/demo/warehouse", "Warehouse root")
system = widget("system", "hdfs", "System")
model_kind = widget("model", "att_gru", "Model (att_gru, gru, lstm, att_lstm, transformer_gru)")
unit = widget("unit", "session", "Unit (session or window)")
epochs = int(widget("epochs", "10", "Epochs"))
processes = int(widget("processes", "1", "TorchDistributor processes"))
promote_it = widget("promote", "no", "Promote the new version (yes/no)") == "yes"

# COMMAND ----------

from logad.config import Warehouse
from logad.models.train_job import TrainJob, run_train
from logad.spark_session import get_spark

spark = get_spark("logad-notebook-train")
wh = Warehouse(warehouse)
job = TrainJob(system=system, model=model_kind, unit=unit, epochs=epochs, batch_size=64 if unit == "session" else 2048,
               patience=max(3, epochs // 2), num_processes=processes)
summary = run_train(spark, wh, job)
print(f"{summary['model']} v{summary['version']} from {summary['data_version']}, threshold {summary['threshold']:.4f}")
for part in ("valid", "test", "prefix"):
    m = summary["metrics"]
    if f"{part}_f1" in m:
        print(f"  {part:<6} P {m[part + '_precision']:.4f}  R {m[part + '_recall']:.4f}  F1 {m[part + '_f1']:.4f}  "
              f"AUC {m[part + '_auc']:.4f}")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Loss and validation per epoch

# COMMAND ----------

from logad import report

show(report.loss_curves(summary["history"]), f"{model_kind}_v{summary['version']}_loss")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Test sessions, scored as the stream scores them

# COMMAND ----------

from logad.models.retrain import held_out, score_sessions

models_dir = wh.models()
test = held_out(spark, summary, None)
scored = score_sessions(spark, wh, models_dir, model_kind, summary["version"], test)
threshold = float(scored["threshold"].iloc[0])
print(f"{len(scored)} test sessions, {int(scored['label'].sum())} abnormal, {int(scored['is_anomaly'].sum())} flagged")
show(report.pr_curve(scored["label"], scored["score"], threshold), f"{model_kind}_v{summary['version']}_pr")
show(report.confusion(scored["label"], scored["score"], threshold), f"{model_kind}_v{summary['version']}_confusion")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Attention over the top window of the surest test anomaly

# COMMAND ----------

from logad.models.fit import load_artifact
from logad.live_scoring import top_events
from logad.templates.stream import template_texts

model, meta = load_artifact(summary["artifact"])
hits = scored[(scored["label"] == 1)].sort_values("score", ascending=False)
hits = hits[hits["n_events"] >= 5] if (hits["n_events"] >= 5).any() else hits  # a window worth a look
if len(hits) and model.attention is not None:
    row = hits.iloc[0].to_dict()
    vocab = {t: i + 2 for i, t in enumerate(meta["template_ids"])}
    width = job.window if unit == "window" else job.max_len
    top = top_events(model, vocab, None, [row], unit, job.window, job.max_len, bool(model.config.repeats), width, rank="attention")[0]
    top.sort()  # (event index, attention weight, impact), in session order
    texts = template_texts(spark, wh) or {}
    labels = [f"{i:>3} {texts.get(row['template_ids'][i], '?')}" for i, _, _ in top]
    fig = report.attention_heatmap([w for _, w, _ in top], labels,
                                   f"{row['session_id']} (score {row['score']:.3f})")
    show(fig, f"{model_kind}_v{summary['version']}_attention")
else:
    print("no test anomaly, or a model without attention")

# COMMAND ----------

if promote_it:
    from logad.models.registry import promote

    promote(models_dir, model_kind, summary["version"], "notebook 04")
    print(f"promoted {model_kind} v{summary['version']}")
