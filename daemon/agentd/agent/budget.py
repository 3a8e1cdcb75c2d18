"""The limits on one agent run, and the daily ledger that spans wakes.

Checked before every model call: model turns (``max_steps``), wall clock
(``run_timeout``, counted from the start of this process's attempt at the
run), tokens and dollars per run and per UTC day.  A call already under way
is finished, so a run can overshoot a token or dollar limit by one call.
Tokens are prompt tokens (cached ones included) plus output tokens.  A run
stopped by a per-run limit ends ``blocked`` with a reason such as
``budget: usd_per_run 2.0 reached``; one stopped by a daily limit ends
``deferred`` until the next UTC midnight, and until then the queue holds every
agent task back (``daily_reason``), as it does for a rate limit.  ``Budget.check`` says
which (``Limit.cause``: ``Cause.BUDGET`` or ``Cause.DAILY_LIMIT``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from agentd.recordtype import Record
from agentd.statuses import Cause

if TYPE_CHECKING:
    from agentd.providers.base import Usage


def utc_day(t: float | None = None) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(t))


def daily_reason(cfg, store) -> str | None:
    """The daily limit today's runs have reached (UTC day), as a reason, or None."""
    lim = cfg["budget"]
    day_tokens, day_usd = store.ledger_day(utc_day())
    if day_tokens >= lim["tokens_per_day"]:
        return f"budget: tokens_per_day {lim['tokens_per_day']} reached ({day_tokens} used today, UTC)"
    if day_usd > 0 and day_usd >= lim["usd_per_day"]:
        return f"budget: usd_per_day {lim['usd_per_day']} reached (${day_usd:.4f} spent today, UTC)"
    return None


class Limit(Record):
    """A limit a run has reached: its reason (text, for people) and its cause (for agentd)."""
    reason: str
    cause: str = Cause.BUDGET  # or Cause.DAILY_LIMIT


class Budget:
    def __init__(self, cfg, store, run_id: str, clock=time.monotonic):
        self.cfg, self.store, self.run_id, self.clock = cfg, store, run_id, clock
        self.limits = cfg["budget"]
        self.max_steps = cfg["max_steps"]
        self.run_timeout = cfg.duration("run_timeout")
        self.deadline = clock() + self.run_timeout
        row = store.run(run_id) if run_id else None
        row = row if row and row["run_id"] == run_id else {}
        self.input_tokens = int(row.get("input_tokens") or 0)  # earlier attempts at this run count too
        self.output_tokens = int(row.get("output_tokens") or 0)
        self.usd = float(row.get("cost_usd") or 0)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def time_left(self) -> float:
        return self.deadline - self.clock()

    def check(self, turns: int) -> Limit | None:
        """The limit this run has reached, or None."""
        lim = self.limits
        if turns >= self.max_steps:
            return Limit(f"budget: max_steps {self.max_steps} reached")
        if self.time_left() <= 0:
            return Limit(f"budget: run_timeout {self.cfg['run_timeout']} reached")
        if self.tokens >= lim["tokens_per_run"]:
            return Limit(f"budget: tokens_per_run {lim['tokens_per_run']} reached ({self.tokens} used)")
        if self.usd > 0 and self.usd >= lim["usd_per_run"]:
            return Limit(f"budget: usd_per_run {lim['usd_per_run']} reached (${self.usd:.4f} spent)")
        daily = daily_reason(self.cfg, self.store)
        return Limit(daily, Cause.DAILY_LIMIT) if daily else None

    def charge(self, usage: Usage, cost: float) -> None:
        """Record one call's use on the run row and in the daily ledger."""
        self.input_tokens += usage.prompt
        self.output_tokens += usage.output
        self.usd += cost
        self.store.add_usage(self.run_id, usage.prompt, usage.output, cost)
        self.store.ledger_add(utc_day(), self.run_id, usage.total, cost)
