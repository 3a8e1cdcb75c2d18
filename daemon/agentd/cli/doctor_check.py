"""What ``agentd doctor`` says of one thing it checked: a ``Check`` (status, what, fix) and its line."""

from __future__ import annotations

from agentd.recordtype import Record

OK, WARN, FAIL = "OK", "WARN", "FAIL"


class Check(Record):
    status: str  # OK WARN FAIL
    what: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status:<4} {self.what}"
        return text + (f"\n     fix: {self.fix}" if self.fix and self.status != OK else "")
