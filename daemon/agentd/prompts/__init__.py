"""Prompt templates: package data rendered strictly.

``render("system.md", task=..., ...)`` replaces every ``{{ name }}`` in the
file.  A placeholder without a value is an error, not an empty string, and
values are inserted once (text inside a value is never expanded again).
"""

from __future__ import annotations

import re
from importlib import resources

_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def render(name: str, **values: object) -> str:
    template = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    missing = sorted({m for m in _VAR.findall(template) if m not in values})
    if missing:
        raise KeyError(f"prompt {name}: no value for {', '.join(missing)}")
    return _VAR.sub(lambda m: str(values[m.group(1)]), template)
