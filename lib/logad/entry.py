"""What an entry point sets up before it runs: logging handlers.

Library modules only get loggers (``logging.getLogger(__name__)``) and never configure logging or
print. The processes that start work configure it once, through :func:`configure_logging`: the
``logad`` command (and so the jobs, which call it), the notebooks when run as scripts, and the two
child processes logad starts itself, a lab application's driver and a TorchDistributor rank.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

# libraries that log every call at INFO
_NOISY = ("py4j", "urllib3", "gensim", "petastorm")


def configure_logging(verbose: bool = False, prefix: str = "", stream: TextIO | None = None) -> None:
    """One handler on the root logger, ``HH:MM:SS LEVEL name: message`` (``prefix`` after the
    time, e.g. ``rank 1``), DEBUG when ``verbose``; the chatty libraries at WARNING."""
    fmt = "%(asctime)s " + (prefix + " " if prefix else "") + "%(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=fmt, datefmt="%H:%M:%S",
                        stream=stream or sys.stderr)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
