"""Helpers that let a Databricks-source notebook run as a plain Python script too.

On Databricks ``dbutils`` exists and widgets appear at the top of the notebook; elsewhere a
widget's value comes from the environment variable ``LOGAD_<NAME>`` or its default. Figures are
displayed in a notebook and saved as PNG files (``$LOGAD_PLOTS``, default ``.logad/notebooks``)
when run as a script.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _dbutils() -> Any:
    main = sys.modules.get("__main__")
    found = getattr(main, "dbutils", None)
    if found is None:
        try:
            from IPython import get_ipython  # type: ignore[attr-defined]

            shell = get_ipython()
            found = shell.user_ns.get("dbutils") if shell is not None else None
        except ImportError:
            found = None
    return found


def widget(name: str, default: str, label: str | None = None) -> str:
    """A text widget's value (Databricks), else ``$LOGAD_<NAME>``, else ``default``.

    Example:
        >>> widget("warehouse", ".logad/demo/warehouse")  # doctest: +SKIP
        '.logad/demo/warehouse'
    """
    dbutils = _dbutils()
    if dbutils is not None:
        dbutils.widgets.text(name, default, label or name)
        return str(dbutils.widgets.get(name))
    return os.environ.get(f"LOGAD_{name.upper()}", default)


def show(fig: Any, name: str) -> str | None:
    """Display a matplotlib figure (Databricks / Jupyter), or save it as ``<plots>/<name>.png``
    and print the path when running as a script; returns the path when saved."""
    main = sys.modules.get("__main__")
    display = getattr(main, "display", None)
    if _dbutils() is not None and display is not None:
        display(fig)
        return None
    from logad.report import png

    out = Path(os.environ.get("LOGAD_PLOTS", ".logad/notebooks")) / f"{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png(fig))
    log.info("plot: %s", out)
    return str(out)
