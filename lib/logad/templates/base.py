"""What every template miner offers, and the record of a template."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from logad.templates.ids import template_id
from logad.templates.masking import WILDCARD


@dataclass(frozen=True)
class Template:
    """A template as the ``templates`` table keeps it."""

    template_id: str
    text: str
    count: int


def tokens(text: str) -> list[str]:
    """Whitespace tokens: what both miners compare position by position."""
    return text.split()


def join(toks: list[str]) -> str:
    """Tokens back to template text, with runs of ``<*>`` folded into one."""
    out: list[str] = []
    for t in toks:
        if t == WILDCARD and out and out[-1] == WILDCARD:
            continue
        out.append(t)
    return " ".join(out)


class Miner(Protocol):
    """A template miner. ``add`` learns from a masked line and returns its template text;
    ``match`` only looks (None when no template fits); ``generalized`` maps every template
    text that was replaced by a more general one to its replacement.

    ``patterns`` and ``restore`` let a miner be rebuilt from the ``templates`` table after a
    restart: a pattern is the miner's own form of a template (tokens before ``<*>`` runs are
    folded, so its length still routes lines), and ``restore`` puts one back as it was, without
    comparing or merging it with the others."""

    name: str

    def add(self, masked: str) -> str: ...

    def match(self, masked: str) -> str | None: ...

    def templates(self) -> list[Template]: ...

    def patterns(self) -> dict[str, list[str]]: ...

    def restore(self, text: str, pattern: str) -> None: ...

    @property
    def generalized(self) -> dict[str, str]: ...


def record(text: str, count: int) -> Template:
    return Template(template_id(text), text, count)
