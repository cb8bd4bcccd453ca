"""Template matching and mining speed, ours vs drain3, on the same lines in the same run.

One process, one core: lines/s per core. Lines: the bundled HDFS sample's contents (20,000
lines, repeated to --lines) and the Spark sample; ours includes masking (drain3 with its
defaults does none). Matching = assign a line to a known template without learning.

    .venv/bin/python bench/templates.py [--lines 200000]

Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time

from _common import ROOT


def contents(lines: int) -> list[str]:
    import re

    from logad.parse.formats import FORMATS

    out = []
    for name, fmt in (("HDFS_first20000.log.gz", "hdfs"), ("Spark_2k.log.gz", "spark")):
        regex = re.compile(FORMATS[fmt].regex)
        content = FORMATS[fmt].fields.index("content") + 1
        for raw in gzip.decompress((ROOT / "data/samples" / name).read_bytes()).decode().splitlines():
            m = regex.match(raw)
            if m:
                out.append(m.group(content))
    return [out[i % len(out)] for i in range(lines)]


def rate(n: int, fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=200_000)
    args = ap.parse_args()

    from logad.templates import make_miner
    from logad.templates.evaluate import drain3_miner
    from logad.templates.masking import DEFAULT_RULES, mask

    lines = contents(args.lines)
    d3 = drain3_miner()
    ours = {name: make_miner(name) for name in ("drain", "swisslog")}

    result: dict[str, object] = {"bench": "templates", "lines": len(lines), "cores": 1}
    result["mine_drain3_lps"] = round(rate(len(lines), lambda: [d3.add_log_message(x) for x in lines]))
    for name, miner in ours.items():
        result[f"mine_{name}_lps"] = round(rate(len(lines), lambda m=miner: [m.add(mask(x, DEFAULT_RULES))
                                                                            for x in lines]))
    result["match_drain3_lps"] = round(rate(len(lines), lambda: [d3.match(x) for x in lines]))
    for name, miner in ours.items():
        result[f"match_{name}_lps"] = round(rate(len(lines), lambda m=miner: [m.match(mask(x, DEFAULT_RULES))
                                                                             for x in lines]))
    cache: dict[str, str | None] = {}
    miner = ours["drain"]

    def cached() -> None:  # what the stream does: one lookup per distinct masked text
        for x in lines:
            key = mask(x, DEFAULT_RULES)
            if key not in cache:
                cache[key] = miner.match(key)

    result["match_drain_cached_lps"] = round(rate(len(lines), cached))
    for k in ("drain", "swisslog"):
        result[f"ratio_match_{k}_vs_drain3"] = round(result[f"match_{k}_lps"] / result["match_drain3_lps"], 2)  # type: ignore[operator]
    result["ratio_match_drain_cached_vs_drain3"] = round(
        result["match_drain_cached_lps"] / result["match_drain3_lps"], 2)  # type: ignore[operator]
    print(f"lines {len(lines):,} (HDFS + Spark contents), one core")
    print(f"{'':28s}{'mine':>12s}{'match':>12s}")
    for k in ("drain3", "drain", "swisslog"):
        print(f"{k:28s}{result[f'mine_{k}_lps']:>12,}{result[f'match_{k}_lps']:>12,}")
    print(f"{'drain, masked-text cache':28s}{'':>12s}{result['match_drain_cached_lps']:>12,}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
