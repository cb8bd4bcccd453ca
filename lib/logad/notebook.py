"""Helpers that let a Databricks-source notebook run as a plain Python script too.

On Databricks ``dbutils`` exists and widgets appear at the top of the notebook; elsewhere a
widget's value comes from the environment variable ``LOGAD_<NAME>`` or its default.
"""

from __future__ import annotations

import os
import sys
from typing import Any


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
