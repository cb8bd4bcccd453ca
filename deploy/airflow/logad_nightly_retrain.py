"""logad's nightly retrain as an Airflow DAG: package the library, then submit the retrain job to
YARN with Airflow's SparkSubmitOperator.

Copy (or link) this file into the DAGs folder of an Airflow that has
``apache-airflow-providers-apache-spark``, and set:

- ``LOGAD_HOME``: the logad checkout on the Airflow worker (default ``/opt/logad``);
- a Spark connection ``spark_yarn`` (Admin -> Connections): host ``yarn``, and
  ``{"deploy-mode": "cluster"}`` as extra; the worker's ``HADOOP_CONF_DIR`` points at the cluster;
- the Airflow Variables ``logad_warehouse`` (default ``hdfs:///logad``), ``logad_system``
  (``hdfs``) and ``logad_mlflow_uri`` (``http://mlflow:5000``).

The job exits 0 when it ran, promoted or not; a failure fails the task, and Airflow's retry policy
applies. ``tests/unit/test_deploy.py`` loads this file with Airflow's own DagBag (no import
error) and parses the job's arguments with logad's parser.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

LOGAD_HOME = os.environ.get("LOGAD_HOME", "/opt/logad")

with DAG(
    dag_id="logad_nightly_retrain",
    description="train a candidate on the latest sessions; promote it if not worse on held-out sessions",
    schedule="30 2 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=30)},
    tags=["logad"],
) as dag:
    # submit.sh builds .logad/submit/logad.zip (the library for --py-files); --dry-run stops there
    package = BashOperator(
        task_id="package",
        bash_command=f"cd {LOGAD_HOME} && ./submit.sh --dry-run retrain",
    )
    retrain = SparkSubmitOperator(
        task_id="retrain",
        conn_id="spark_yarn",
        name="logad-retrain",
        application=f"{LOGAD_HOME}/jobs/retrain.py",
        py_files=f"{LOGAD_HOME}/.logad/submit/logad.zip",
        properties_file=f"{LOGAD_HOME}/conf/spark-defaults.conf",
        conf={"spark.executor.instances": "2", "spark.executor.cores": "1"},
        application_args=[
            "--warehouse", "{{ var.value.get('logad_warehouse', 'hdfs:///logad') }}",
            "--system", "{{ var.value.get('logad_system', 'hdfs') }}",
            "--num-processes", "2",
            "--mlflow-uri", "{{ var.value.get('logad_mlflow_uri', 'http://mlflow:5000') }}",
        ],
        execution_timeout=timedelta(hours=6),
    )
    package >> retrain
