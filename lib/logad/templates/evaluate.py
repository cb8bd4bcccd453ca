"""Parsing accuracy on the LogHub 2k benchmark (16 systems, corrected ground truth).

Metrics, as defined by Zhu et al. (ICSE-SEIP 2019) and Jiang et al. (ISSTA 2024):

- GA, grouping accuracy: share of lines whose predicted group holds exactly the lines of their
  true group.
- PA, parsing accuracy: share of lines whose predicted template text equals the true one.
- FGA: F1 of groups (a predicted group is correct when it is exactly one true group).
- FTA: F1 of templates (a predicted template is correct when its group is and its text is too).

Template texts are compared after one normalisation applied to both sides: whitespace runs
become one space and runs of ``<*>`` joined only by spaces become one ``<*>``. Nothing else is
rewritten, so PA stays strict about what a parser masks.

Parsers see the ``Content`` column (the header already split off, as in every published
evaluation). ``drain3`` runs with its default configuration (no masking, sim 0.4, depth 4).
"""

from __future__ import annotations

import csv
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logad.errors import ConfigError
from logad.templates.masking import mask, rules_for

SYSTEMS = ("Android", "Apache", "BGL", "HDFS", "HPC", "Hadoop", "HealthApp", "Linux", "Mac",
           "OpenSSH", "OpenStack", "Proxifier", "Spark", "Thunderbird", "Windows", "Zookeeper")

_RUNS = re.compile(r"<\*>(?:\s*<\*>)+")


def normalize(template: str) -> str:
    return _RUNS.sub("<*>", " ".join(template.split()))


@dataclass(frozen=True)
class Scores:
    ga: float
    pa: float
    fga: float
    fta: float
    templates: int
    seconds: float


def score(truth: list[str], predicted: list[str]) -> tuple[float, float, float, float]:
    """(GA, PA, FGA, FTA) of ``predicted`` template texts against ``truth``, line by line."""
    n = len(truth)
    true_groups: dict[str, set[int]] = defaultdict(set)
    pred_groups: dict[str, set[int]] = defaultdict(set)
    for i, (t, p) in enumerate(zip(truth, predicted, strict=True)):
        true_groups[normalize(t)].add(i)
        pred_groups[normalize(p)].add(i)
    true_by_lines = {frozenset(v): k for k, v in true_groups.items()}
    grouped_lines = correct_groups = correct_templates = 0
    for text, lines in pred_groups.items():
        true_text = true_by_lines.get(frozenset(lines))
        if true_text is not None:
            grouped_lines += len(lines)
            correct_groups += 1
            correct_templates += text == true_text
    pa = sum(normalize(t) == normalize(p) for t, p in zip(truth, predicted, strict=True)) / n

    def f1(correct: int) -> float:
        precision, recall = correct / len(pred_groups), correct / len(true_groups)
        return 2 * precision * recall / (precision + recall) if correct else 0.0

    return grouped_lines / n, pa, f1(correct_groups), f1(correct_templates)


def load(root: Path, system: str) -> tuple[list[str], list[str]]:
    """(contents, true templates) of one system's 2k set, from its corrected ground truth."""
    for sub in ("loghub2.0_corrected", "logparser_corrected"):
        path = root / system / sub / f"{system}_2k.log_structured_corrected.csv"
        if path.exists():
            with path.open(newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
            return [r["Content"] for r in rows], [r["EventTemplate"] for r in rows]
    raise ConfigError(f"no corrected ground truth for {system} under {root}")


def run_ours(parser: str, system: str, contents: Iterable[str]) -> list[str]:
    from logad.templates import make_miner

    miner = make_miner(parser)
    rules = rules_for(system)
    masked = [mask(c, rules) for c in contents]
    for line in masked:
        miner.add(line)
    # Final templates: a line's template is its cluster's text at the end (later lines may have
    # generalized it), as every batch evaluation reports; match returns the current text.
    out = []
    for line in masked:
        text = miner.match(line)
        assert text is not None, line
        out.append(text)
    return out


def drain3_miner(rules: Iterable[Any] = ()) -> Any:
    """drain3 with its default configuration (profiling off), plus masking ``rules`` if given."""
    from drain3 import TemplateMiner  # type: ignore[import-untyped]
    from drain3.masking import MaskingInstruction  # type: ignore[import-untyped]
    from drain3.template_miner_config import TemplateMinerConfig  # type: ignore[import-untyped]

    config = TemplateMinerConfig()
    config.profiling_enabled = False
    config.masking_instructions = [MaskingInstruction(r.pattern, "*") for r in rules]
    return TemplateMiner(config=config)


def run_drain3(_system: str, contents: Iterable[str]) -> list[str]:
    miner = drain3_miner()
    ids = [miner.add_log_message(c)["cluster_id"] for c in contents]
    final = {c.cluster_id: c.get_template() for c in miner.drain.clusters}
    return [final[i] for i in ids]


def evaluate(root: Path, parsers: Iterable[str] = ("drain3", "drain", "swisslog"),
             systems: Iterable[str] = SYSTEMS,
             progress: Callable[[str], None] | None = None) -> dict[str, dict[str, Scores]]:
    """Scores per parser and system."""
    results: dict[str, dict[str, Scores]] = {p: {} for p in parsers}
    for system in systems:
        contents, truth = load(root, system)
        for parser in results:
            started = time.perf_counter()
            predicted = (run_drain3(system, contents) if parser == "drain3"
                         else run_ours(parser, system, contents))
            seconds = time.perf_counter() - started
            ga, pa, fga, fta = score(truth, predicted)
            results[parser][system] = Scores(ga, pa, fga, fta, len(set(predicted)), seconds)
            if progress:
                progress(f"{system:12s} {parser:9s} GA {ga:.3f} PA {pa:.3f} FGA {fga:.3f} FTA {fta:.3f}")
    return results


def averages(per_system: dict[str, Scores]) -> dict[str, float]:
    n = len(per_system)
    return {m: round(sum(getattr(s, m) for s in per_system.values()) / n, 4)
            for m in ("ga", "pa", "fga", "fta")}
