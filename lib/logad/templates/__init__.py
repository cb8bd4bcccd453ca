"""Log templates: masking, two miners (Drain and a SwissLog-style dictionary parser), stable ids,
the ``templates`` table and the stream stage that assigns ``template_id`` to events."""

from __future__ import annotations

from logad.errors import ConfigError
from logad.templates.base import Miner, Template
from logad.templates.ids import template_id

PARSERS = ("drain", "swisslog")


def make_miner(name: str, **options: object) -> Miner:
    """A new miner by name (``drain`` or ``swisslog``) with its options."""
    if name == "drain":
        from logad.templates.drain import Drain

        return Drain(**options)  # type: ignore[arg-type]
    if name == "swisslog":
        from logad.templates.swisslog import SwissLog

        return SwissLog(**options)  # type: ignore[arg-type]
    raise ConfigError(f"unknown template parser {name!r}; known: {', '.join(PARSERS)}")


__all__ = ["PARSERS", "Miner", "Template", "make_miner", "template_id"]
