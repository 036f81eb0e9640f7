"""Every server-side Lua script of the package, each a ``.lua`` file beside this module.

A script is read once, when the module that runs it is imported, and identified by the SHA1 of
its text, which is what ``EVALSHA`` takes; adapters fall back to ``EVAL`` after ``NOSCRIPT``, so a
``SCRIPT FLUSH`` or a server restart costs one extra round trip and nothing else. A file may pull
in shared code with a first line ``--! include name.lua``: the loader inlines it, so the server
always receives one self-contained script.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources

_INCLUDE = "--! include "


@dataclass(frozen=True, slots=True)
class Script:
    """One loaded script: its name (for errors), its whole text and the SHA1 that runs it."""

    name: str
    source: str = field(repr=False)
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


def _text(name: str) -> str:
    text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    included = [_text(line[len(_INCLUDE) :].strip()) for line in lines if line.startswith(_INCLUDE)]
    body = [line for line in lines if not line.startswith(_INCLUDE)]
    return "".join([*included, *body])


def load(name: str) -> Script:
    """The script in ``<name>.lua``, with its includes inlined."""
    return Script(name, _text(f"{name}.lua"))
