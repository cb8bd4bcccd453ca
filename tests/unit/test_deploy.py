"""The schedules a team deploys: the README's cron line, the Airflow DAG and the Databricks Asset
Bundle. Each is loaded by its own tool's code where that installs here (Airflow's DagBag,
databricks-bundles' typed models, which refuse unknown fields), and every logad job it starts has
arguments that logad's own parser takes. The cron line also runs for real on YARN
(tests/e2e/test_yarn.py)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import cron_line

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = ("apache-airflow==3.3.2", "apache-airflow-providers-apache-spark==6.3.4")
_JOBS = {"run.py": ["run"], "retrain.py": ["retrain"], "ingest.py": ["ingest"], "score.py": ["score"],
         "train.py": ["train"], "sessions.py": ["sessions", "run"]}


def _parses(job_file: str, args: list[str]) -> None:
    from logad.cli import build_parser

    command = _JOBS[Path(job_file).name]
    build_parser().parse_args([*command, *args])  # exits (SystemExit) on an unknown or bad option


def test_the_readme_cron_line_is_a_schedule_and_a_submit_that_parses():
    line = cron_line()
    fields, command = line.split(None, 5)[:5], line.split(None, 5)[5]
    minute, hour, dom, month, dow = fields
    assert 0 <= int(minute) < 60 and 0 <= int(hour) < 24 and (dom, month, dow) == ("*", "*", "*")
    words = shlex.split(command.split(">>")[0])
    assert words[:3] == ["cd", "/opt/logad", "&&"]
    env, submit = words[3], words[4:]
    assert env.startswith("HADOOP_CONF_DIR=") and submit[0] == "./submit.sh"
    job = submit[submit.index("--") - 1]
    _parses(f"jobs/{job}.py", submit[submit.index("--") + 1:])
    # the wrapper takes the options as written (--dry-run: it prints the spark-submit line, stages nothing)
    dry = [str(ROOT / "submit.sh"), "--dry-run", *submit[1:]]
    out = subprocess.run(dry, capture_output=True, text=True, check=False, timeout=60,
                         env=dict(os.environ, HADOOP_CONF_DIR=str(ROOT / "conf")))
    assert out.returncode == 0, out.stderr
    assert "--master yarn --deploy-mode cluster" in out.stdout and "jobs/retrain.py" in out.stdout


def _bundle_vars(text: str, variables: dict[str, dict[str, str]]) -> str:
    return re.sub(r"\$\{var\.(\w+)\}", lambda m: str(variables[m.group(1)]["default"]), text)


def test_the_databricks_bundle_has_the_stream_and_the_nightly_retrain_and_every_field_is_known():
    import yaml
    from databricks.bundles.jobs import Job

    raw = (ROOT / "databricks.yml").read_text()
    doc = yaml.safe_load(raw)
    assert set(doc) <= {"bundle", "variables", "artifacts", "resources", "targets", "include", "workspace",
                        "sync", "permissions", "run_as", "presets", "experimental"}
    doc = yaml.safe_load(_bundle_vars(raw, doc["variables"]))
    jobs = doc["resources"]["jobs"]
    assert set(jobs) == {"logad_stream", "logad_nightly_retrain"}
    for key, spec in jobs.items():
        Job.from_dict(spec)  # databricks-bundles' model of a job: an unknown or mistyped field raises
        for task in spec["tasks"]:
            if "spark_python_task" in task:
                t = task["spark_python_task"]
                assert (ROOT / t["python_file"]).is_file(), t["python_file"]
                _parses(t["python_file"], t["parameters"])
            if "notebook_task" in task:
                nb = ROOT / task["notebook_task"]["notebook_path"]
                widgets = set(re.findall(r'widget\("(\w+)"', nb.read_text()))
                assert set(task["notebook_task"].get("base_parameters", {})) <= widgets, (key, nb.name)
    assert jobs["logad_stream"]["continuous"]["pause_status"] == "UNPAUSED"
    assert jobs["logad_nightly_retrain"]["schedule"]["quartz_cron_expression"] == "0 30 2 * * ?"
    with pytest.raises(ValueError, match="Unexpected field"):  # the check has teeth
        Job.from_dict({**jobs["logad_stream"], "schedulle": {}})


_DAG_CHECK = r"""
import json, os, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
out = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    out["dags"][dag_id] = {
        "schedule": str(getattr(dag.timetable, "expression", None) or getattr(dag.timetable, "_expression", "")),
        "tasks": {t.task_id: {"type": type(t).__name__, "upstream": sorted(t.upstream_task_ids),
                              "application": getattr(t, "application", None),
                              "args": getattr(t, "application_args", None),
                              "py_files": getattr(t, "py_files", None),
                              "bash": getattr(t, "bash_command", None)} for t in dag.tasks}}
print(json.dumps(out))
"""


def _airflow_python() -> Path:
    """Airflow in a venv of its own under .logad (its pins are not logad's), made on first use."""
    venv = ROOT / ".logad" / "airflow-venv"
    python = venv / "bin" / "python"
    stamp = venv / ("installed-" + "-".join(a.split("==")[1] for a in AIRFLOW))
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        out = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *AIRFLOW],
                             capture_output=True, text=True, timeout=900, check=False)
        if out.returncode != 0:
            pytest.fail(f"installing {' '.join(AIRFLOW)} failed: {out.stderr[-2000:]}")
        stamp.touch()
    return python


def test_the_airflow_dag_loads_in_airflow_and_submits_the_retrain_with_arguments_logad_takes(tmp_path):
    python = _airflow_python()
    env = dict(os.environ, AIRFLOW_HOME=str(tmp_path / "airflow"), LOGAD_HOME="/opt/logad")
    out = subprocess.run([str(python), "-c", _DAG_CHECK, str(ROOT / "deploy" / "airflow")], capture_output=True,
                         text=True, env=env, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["errors"] == {}
    dag = found["dags"]["logad_nightly_retrain"]
    assert dag["schedule"] == "30 2 * * *"
    package, retrain = dag["tasks"]["package"], dag["tasks"]["retrain"]
    assert retrain["type"] == "SparkSubmitOperator" and retrain["upstream"] == ["package"]
    assert retrain["application"] == "/opt/logad/jobs/retrain.py"
    assert retrain["py_files"] == "/opt/logad/.logad/submit/logad.zip" and "submit.sh --dry-run" in package["bash"]
    args = [re.sub(r"\{\{ var\.value\.get\('\w+', '([^']*)'\) \}\}", r"\1", a) for a in retrain["args"]]
    _parses("jobs/retrain.py", args)
