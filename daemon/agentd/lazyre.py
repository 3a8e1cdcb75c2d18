"""Regular expressions compiled on first use, not at import.

A CLI command that never parses a line (``agentd queue`` on an unchanged
worklog) then never pays for compiling the parser's patterns.
"""

from __future__ import annotations


_METHODS = ("match", "search", "fullmatch", "sub", "subn", "split", "findall", "finditer")


class LazyPattern:
    # The pattern's common methods become slots once it is compiled, so a call costs what a call on
    # the compiled pattern costs (a parser calls them several times per worklog line).
    __slots__ = ("_args", "_pattern") + _METHODS

    def __init__(self, *args):
        self._args = args
        self._pattern = None

    def __getattr__(self, name):  # only for what is not set yet: before the first compile, or a rare attribute
        if self._pattern is None:
            import re  # lazy: the point of this module: re is compiled on first use

            self._pattern = re.compile(*self._args)
            for m in _METHODS:
                setattr(self, m, getattr(self._pattern, m))
        return getattr(self._pattern, name)


def lazy(*args) -> LazyPattern:
    return LazyPattern(*args)
