#!/usr/bin/env bash
# Run a logad job with spark-submit on local[*], a standalone master or YARN.
#
#   ./submit.sh [options] JOB [-- JOB_ARGS...]
#
#   JOB                 a file in jobs/ without .py: ingest, ...
#   --master URL        local[*] (default), spark://host:7077, yarn
#   --deploy-mode M     client (default) or cluster
#   --venv ARCHIVE      a packed Python environment (venv-pack / conda-pack; a local file or a
#                       URI on the cluster's filesystem) shipped with --archives and used by the
#                       driver and executors; without it the cluster's own Python must have
#                       logad's dependencies installed
#   --venv auto         YARN: pack this checkout's .venv once (cached by what is installed),
#                       upload it once to the cluster's filesystem and ship that
#   --no-yarn-archive   YARN: let spark-submit upload Spark's jars for every application instead
#                       of staging them once as spark.yarn.archive
#   --cached-jars       pass the connector jars from logad's jar cache (resolved by Ivy once,
#                       ~/.cache/logad) as --jars instead of spark.jars.packages: no Maven
#                       lookup at submit time (machines that reached Maven once)
#   --no-packages       leave out spark.jars.packages and Delta's extension/catalog from
#                       conf/spark-defaults.conf (clusters whose classpath has both: Databricks)
#   --conf K=V          extra Spark settings (repeatable)
#   --dry-run           print the spark-submit line, run nothing
#
# The library ships as a zip (--py-files); conf/spark-defaults.conf is the properties file.
# Example:
#   ./submit.sh --master yarn --deploy-mode cluster --venv logad-env.tar.gz ingest -- \
#       --bootstrap kafka1:9092 --warehouse hdfs:///logad
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

master="local[*]"; deploy="client"; venv=""; packages=1; dry=0; confs=(); yarn_archive=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --master) master="$2"; shift 2 ;;
    --deploy-mode) deploy="$2"; shift 2 ;;
    --venv) venv="$2"; shift 2 ;;
    --no-packages) packages=0; shift ;;
    --cached-jars) packages=2; shift ;;
    --no-yarn-archive) yarn_archive=0; shift ;;
    --conf) confs+=(--conf "$2"); shift 2 ;;
    --dry-run) dry=1; shift ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    --) shift; break ;;
    -*) echo "submit.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) job="$1"; shift; [[ "${1:-}" == "--" ]] && shift; break ;;
  esac
done
[[ -n "${job:-}" ]] || { echo "submit.sh: name a job: $(cd "$here/jobs" && ls ./*.py | sed 's|./||; s|\.py||' | tr '\n' ' ')" >&2; exit 2; }
entry="$here/jobs/$job.py"
[[ -f "$entry" ]] || { echo "submit.sh: no job $job (no $entry)" >&2; exit 2; }
[[ "$deploy" == client || "$deploy" == cluster ]] || { echo "submit.sh: --deploy-mode is client or cluster" >&2; exit 2; }

if [[ -x "$here/.venv/bin/spark-submit" ]]; then submit="$here/.venv/bin/spark-submit"
elif [[ -n "${SPARK_HOME:-}" ]]; then submit="$SPARK_HOME/bin/spark-submit"
else submit="$(command -v spark-submit)" || { echo "submit.sh: spark-submit not found: set SPARK_HOME" >&2; exit 2; }
fi
python="${PYSPARK_PYTHON:-$here/.venv/bin/python}"
[[ -x "$python" ]] || python="python3"

build="$here/.logad/submit"; mkdir -p "$build"
# The library as a zip for --py-files (executors import logad from it).
(cd "$here/lib" && "$python" -c "import sys, zipfile, pathlib
with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:
    for p in sorted(pathlib.Path('logad').rglob('*')):
        if p.is_file() and '__pycache__' not in p.parts: z.write(p)" "$build/logad.zip")

props="$here/conf/spark-defaults.conf"
extra=()
if [[ $packages == 0 ]]; then
  grep -vE '^(spark\.jars\.packages|spark\.sql\.extensions|spark\.sql\.catalog\.spark_catalog)\b' \
    "$props" > "$build/spark-defaults.conf"
  props="$build/spark-defaults.conf"
elif [[ $packages == 2 ]]; then
  jars="$(PYTHONPATH="$here/lib" "$python" -c 'from logad import jars
print(",".join(jars.resolve(jars.connectors(), purpose="spark-connectors")))')" || exit 2
  grep -vE '^spark\.jars\.packages\b' "$props" > "$build/spark-defaults.conf"
  props="$build/spark-defaults.conf"
  extra=(--jars "$jars")
fi

# logad's JVM module (jvm/, the masking scanner), built by Maven on first use; without it the
# jobs run the same rules as regexes, slower.
if jvmjar="$(PYTHONPATH="$here/lib" "$python" -m logad.jvm build 2>"$build/jvm-build.log")"; then
  if [[ ${#extra[@]} -gt 0 ]]; then extra=(--jars "${extra[1]},$jvmjar"); else extra=(--jars "$jvmjar"); fi
else
  echo "submit.sh: could not build logad's JVM module (see $build/jvm-build.log); masking runs as regexes" >&2
fi

args=(--master "$master" --deploy-mode "$deploy" --properties-file "$props" --name "logad-$job"
      --py-files "$build/logad.zip" "${extra[@]}")
if [[ "$master" == yarn ]]; then
  [[ -n "${HADOOP_CONF_DIR:-}${YARN_CONF_DIR:-}" ]] || {
    echo "submit.sh: --master yarn needs HADOOP_CONF_DIR (the cluster's Hadoop configuration; for the" \
         "local one: eval \"\$(logad hadoop env)\")" >&2; exit 2; }
  stage() { PYTHONPATH="$here/lib" "$python" -m logad.yarn "$@"; }
  if [[ $yarn_archive == 1 && $dry == 0 ]] && ! printf '%s\n' "${confs[@]}" | grep -q '^spark\.yarn\.\(archive\|jars\)='; then
    archive="$(stage jars)" || exit 2
    args+=(--conf "spark.yarn.archive=$archive")
  fi
  if [[ "$venv" == auto ]]; then
    [[ $dry == 1 ]] && venv="<packed .venv>" || { venv="$(stage env "$here/.venv")" || exit 2; }
  fi
elif [[ "$venv" == auto ]]; then
  echo "submit.sh: --venv auto is for --master yarn; give a packed archive, or none to use $python" >&2; exit 2
fi
if [[ -n "$venv" ]]; then
  args+=(--archives "$venv#environment" --conf spark.pyspark.python=./environment/bin/python)
  [[ "$deploy" == cluster ]] && args+=(--conf spark.yarn.appMasterEnv.PYSPARK_PYTHON=./environment/bin/python)
  [[ "$deploy" == client ]] && args+=(--conf "spark.pyspark.driver.python=$python")
else
  export PYSPARK_PYTHON="$python"
  args+=(--conf "spark.pyspark.python=$python")
fi
[[ "$master" == local* ]] && args+=(--conf spark.driver.host=127.0.0.1 --conf spark.driver.bindAddress=127.0.0.1)
args+=("${confs[@]}" "$entry" "$@")

printf 'spark-submit line:\n  %q' "$submit"; printf ' %q' "${args[@]}"; printf '\n'
[[ $dry == 1 ]] && exit 0
exec "$submit" "${args[@]}"
