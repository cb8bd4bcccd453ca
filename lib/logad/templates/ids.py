"""Stable template ids: the first 16 hex digits of SHA-256 of the template text (UTF-8).

The same on every executor, every restart and in Spark SQL (:func:`template_id_column`), unlike
Python's ``hash()``, which is salted per process.

Example:
    >>> template_id("Receiving block <*> src: <*> dest: <*>")
    '9a3b1b1e2b1e0f1d'  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column


def template_id(template: str) -> str:
    """The template's stable id."""
    return hashlib.sha256(template.encode("utf-8")).hexdigest()[:16]


def template_id_column(template: Column) -> Column:
    """:func:`template_id` as a Spark SQL expression."""
    from pyspark.sql import functions as F

    return F.substring(F.sha2(template, 256), 1, 16)
