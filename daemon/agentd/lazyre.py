"""Regular expressions compiled on first use, not at import.

A CLI command that never parses a line (``agentd queue`` on an unchanged
worklog) then never pays for compiling the parser's patterns.
"""

from __future__ import annotations


class LazyPattern:
    __slots__ = ("_args", "_pattern")

    def __init__(self, *args):
        self._args = args
        self._pattern = None

    def __getattr__(self, name):
        if self._pattern is None:
            import re

            self._pattern = re.compile(*self._args)
        return getattr(self._pattern, name)


def lazy(*args) -> LazyPattern:
    return LazyPattern(*args)
