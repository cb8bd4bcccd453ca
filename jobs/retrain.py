"""Scheduled retraining: a candidate trained on the latest ``sessions`` snapshot is compared with
the promoted model on the same held-out sessions and promoted only if it is not worse (the rule:
``spark.logad.retrain.metric`` / ``spark.logad.retrain.maxDrop``); every run, both models'
metrics, the decision and the candidate are recorded in MLflow.

    ./submit.sh --master yarn retrain -- --warehouse hdfs:///logad --system hdfs --mlflow-uri http://mlflow:5000

Exits 2 with one line naming the setting to fix when a setting is wrong, 1 on other failures.
"""

from __future__ import annotations

import sys

from logad.cli import main

if __name__ == "__main__":
    sys.exit(main(["retrain", *sys.argv[1:]]))
