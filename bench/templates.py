"""Template matching and mining speed, ours vs drain3, on the same lines in the same run.

Lines/s per core. Lines: the bundled HDFS sample's contents (20,000 lines) and the Spark
sample's, repeated to --lines. Matching = assign a line to a known template without learning.

- drain3: default settings (no masking), and with our masking rules as its masking
  instructions (the like-for-like baseline: the same work per line as ours).
- ours in Python: mask + Drain / SwissLog, one process.
- ours in the stream (the path the ingest query runs): masking on the executors with logad's
  JVM scanner (``logad.jvm.Mask``) and a broadcast join of the masked text to its template id
  (:class:`logad.templates.stream.TemplateStage`), Spark ``local[1]`` (one core for tasks),
  lines cached in memory first, written to Spark's ``noop`` sink so every column is computed.
- the same with the ten ``regexp_replace`` (the stream before the scanner, and what a session
  without logad's jar runs), and the ceiling: Spark reading the same cached lines into ``noop``.

    .venv/bin/python bench/templates.py [--lines 1000000]

Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import time

from _common import ROOT, memory_line, peak_memory, session


def contents(lines: int) -> list[str]:
    from logad.parse.formats import content_of

    out = []
    for name, fmt in (("HDFS_first20000.log.gz", "hdfs"), ("Spark_2k.log.gz", "spark")):
        for raw in gzip.decompress((ROOT / "data/samples" / name).read_bytes()).decode().splitlines():
            content = content_of(fmt, raw)  # the ingest parser's regex
            if content is not None:
                out.append(content)
    return [out[i % len(out)] for i in range(lines)]


def rate(n: int, fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t)


def spark_match(lines: list[str], repeats: int = 3, master: str = "local[1]") -> dict[str, object]:
    """Lines/s on one Spark core (best of ``repeats`` warm runs): the stream's matching with the
    JVM scanner and with the regexes, and the ceiling; the peak memory of the run."""
    from pyspark.sql import functions as F

    from logad.config import Warehouse
    from logad.templates.ids import template_id
    from logad.templates.masking import mask_column
    from logad.templates.stream import MASKED, TemplateStage

    spark = session("bench-templates", master)
    parts = 4 * max(1, spark.sparkContext.defaultParallelism)
    df = (spark.createDataFrame([(x,) for x in lines], "content string")
          .withColumn("ts", F.current_timestamp()).repartition(parts).cache())
    df.count()

    def best(out) -> float:  # type: ignore[no-untyped-def]
        top = 0.0
        for _ in range(repeats):
            t = time.perf_counter()
            out.write.format("noop").mode("overwrite").save()
            top = max(top, len(lines) / (time.perf_counter() - t))
        return top

    with tempfile.TemporaryDirectory() as tmp:
        stage = TemplateStage(spark, Warehouse(tmp))
        stage.apply(stage.columns(df), 0, "bench").write.format("noop").mode("overwrite").save()  # learn
        # the join the stream runs once the templates are known: masked text -> id, broadcast
        mapping = spark.createDataFrame([(m, template_id(stage._canonical(t))) for m, t in stage._lookup.items()],
                                        f"{MASKED} string, template_id string")
        native = stage.columns(df).join(F.broadcast(mapping), MASKED, "left")
        assert "logad.jvm.Mask" in native._jdf.queryExecution().toString(), "the JVM scanner is not in the plan"
        regex = (df.withColumn(MASKED, mask_column(F.col("content"), stage.rules))
                 .join(F.broadcast(mapping), MASKED, "left"))
        out: dict[str, object] = {"match_stream_spark_lps": best(native), "match_stream_regex_lps": best(regex),
                                  "ceiling_spark_lps": best(df)}
        missing = native.where("template_id IS NULL").count()
        assert missing == 0, f"{missing} lines without a template"
        out.update(peak_memory())
    spark.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000,
                    help="lines per run; under ~1M a Spark run lasts under a second and its fixed cost shows")
    ap.add_argument("--master", default="local[1]", help="for --stream-only (bench/scaleout.py)")
    ap.add_argument("--stream-only", action="store_true",
                    help="only the stream's matching on --master, one JSON line")
    args = ap.parse_args()
    if args.stream_only:
        out = spark_match(contents(args.lines), master=args.master)
        print(json.dumps({"bench": "templates_stream", "master": args.master, "lines": args.lines,
                          **{k: round(v) if isinstance(v, float) else v for k, v in out.items()}}))
        return

    from logad.templates import make_miner
    from logad.templates.evaluate import drain3_miner
    from logad.templates.masking import DEFAULT_RULES, mask

    lines = contents(args.lines)
    d3 = drain3_miner()
    d3m = drain3_miner(DEFAULT_RULES)
    ours = {name: make_miner(name) for name in ("drain", "swisslog")}

    result: dict[str, object] = {"bench": "templates", "lines": len(lines), "cores": 1}
    result["mine_drain3_lps"] = round(rate(len(lines), lambda: [d3.add_log_message(x) for x in lines]))
    result["mine_drain3_masked_lps"] = round(rate(len(lines), lambda: [d3m.add_log_message(x) for x in lines]))
    for name, miner in ours.items():
        result[f"mine_{name}_lps"] = round(rate(len(lines), lambda m=miner: [m.add(mask(x, DEFAULT_RULES))
                                                                            for x in lines]))
    result["match_drain3_lps"] = round(rate(len(lines), lambda: [d3.match(x) for x in lines]))
    result["match_drain3_masked_lps"] = round(rate(len(lines), lambda: [d3m.match(x) for x in lines]))
    for name, miner in ours.items():
        result[f"match_{name}_lps"] = round(rate(len(lines), lambda m=miner: [m.match(mask(x, DEFAULT_RULES))
                                                                             for x in lines]))
    stream = spark_match(lines)
    result.update({k: round(v) if isinstance(v, float) else v for k, v in stream.items()})
    for k in ("drain", "swisslog", "stream_spark", "stream_regex"):
        result[f"ratio_match_{k}_vs_drain3"] = round(result[f"match_{k}_lps"] / result["match_drain3_lps"], 2)  # type: ignore[operator]
        result[f"ratio_match_{k}_vs_drain3_masked"] = round(
            result[f"match_{k}_lps"] / result["match_drain3_masked_lps"], 2)  # type: ignore[operator]
    print(f"lines {len(lines):,} (HDFS + Spark contents), lines/s on one core")
    print(f"{'':36s}{'mine':>12s}{'match':>12s}")
    names = {"drain3": "drain3 (defaults: no masking)", "drain3_masked": "drain3 + our masking rules",
             "drain": "our Drain (Python, masking)", "swisslog": "our SwissLog (Python, masking)"}
    for k, label in names.items():
        print(f"{label:36s}{result[f'mine_{k}_lps']:>12,}{result[f'match_{k}_lps']:>12,}")
    result["ratio_match_stream_vs_drain3_masked"] = result["ratio_match_stream_spark_vs_drain3_masked"]
    result["ratio_match_stream_vs_regex"] = round(
        result["match_stream_spark_lps"] / result["match_stream_regex_lps"], 2)  # type: ignore[operator]
    result["ratio_match_stream_vs_ceiling"] = round(
        result["match_stream_spark_lps"] / result["ceiling_spark_lps"], 2)  # type: ignore[operator]
    print(f"{'stream: JVM scanner + broadcast join':36s}{'':>12s}{result['match_stream_spark_lps']:>12,}")
    print(f"{'stream: 10 regexp_replace + join':36s}{'':>12s}{result['match_stream_regex_lps']:>12,}")
    print(f"{'ceiling: cached lines -> noop':36s}{'':>12s}{result['ceiling_spark_lps']:>12,}")
    print(f"stream matching vs drain3: {result['ratio_match_stream_spark_vs_drain3']}x (no masking), "
          f"{result['ratio_match_stream_vs_drain3_masked']}x (same masking; target 10x); "
          f"{result['ratio_match_stream_vs_regex']}x the regexes; {result['ratio_match_stream_vs_ceiling']}x the ceiling")
    print(memory_line(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
