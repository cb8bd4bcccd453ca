"""The CLI reference page, generated from the parser: ``python -m logad.cli.reference > docs/cli.md``.

A test regenerates it and compares, so the page cannot drift from the commands.
"""

from __future__ import annotations

import argparse
import sys

HEADER = """# Command-line reference

Generated from the parser by `python -m logad.cli.reference > docs/cli.md`; `tests/unit/test_cli.py`
fails when this page and the commands differ. Every command is also a job: `./submit.sh JOB -- ARGS`
runs `jobs/JOB.py`, which calls the same parser (see [Operating logad](operate.md)).
"""


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    out: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out.append((name, sub))
    return out


def _walk(parser: argparse.ArgumentParser, path: list[str], out: list[str]) -> None:
    subs = _subcommands(parser)
    if path:
        level = "#" * min(len(path) + 1, 4)
        out.append(f"\n{level} `logad {' '.join(path)}`\n")
        out.append("```text")
        out.append(parser.format_help().rstrip())
        out.append("```")
    for name, sub in subs:
        _walk(sub, [*path, name], out)


def render() -> str:
    """The whole page as Markdown (a fixed terminal width, so it is the same on every machine)."""
    import os

    from logad.cli import build_parser

    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        parser = build_parser()
        out = [HEADER, "```text", parser.format_help().rstrip(), "```"]
        _walk(parser, [], out)
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
