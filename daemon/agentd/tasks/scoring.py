"""Scoring: expected value, explained part by part.  See docs/scoring.md.

    score = value × certainty × priority × retry backoff × cost  (+ directive age bonus)

The parts are kept so ``agentd queue`` can show how a score was made, the way
Taskwarrior's ``task info`` breaks down urgency.
"""

from __future__ import annotations

from itertools import repeat
from operator import add, truediv

from agentd.recordtype import Factory, Record

# kind -> (value, certainty) used when a line does not say
DEFAULTS = {
    "task": (5.0, 0.7),
    "command": (5.0, 0.9),
    "experiment": (4.0, 0.9),
    "directive": (8.0, 0.5),
    "critical directive": (10.0, 0.5),
    "blocker": (7.0, 0.3),
}
PRIORITY_FACTOR = {"critical": 1.5, "high": 1.2, "normal": 1.0, "low": 0.7}
FAILURE_FACTOR = 0.5  # per failed attempt
COST_MINUTES = 120.0  # a task estimated at this many minutes counts half
MAX_AGE_DAYS = 10.0


class Score(Record):
    value: float
    certainty: float
    total: float
    parts: list = Factory(list)  # (label, effect)

    def explain(self) -> str:
        return " · ".join(f"{effect} {label}" for label, effect in self.parts) + f" = {self.total:.2f}"


def default_key(kind: str, priority: str) -> str:
    return "critical directive" if kind == "directive" and priority == "critical" else kind


def score(kind: str, priority: str, attrs: dict, failures: int = 0, age_days: float = 0.0,
          age_bonus: float = 0.5) -> Score:
    dv, dc = DEFAULTS[default_key(kind, priority)]
    value = float(attrs["value"]) if attrs.get("value") is not None else dv
    certainty = float(attrs["certainty"]) if attrs.get("certainty") is not None else dc
    total = value * certainty
    src_v = "" if attrs.get("value") is not None else " (default)"
    src_c = "" if attrs.get("certainty") is not None else " (default)"
    parts = [(f"value{src_v}", f"{value:g}"), (f"certainty{src_c}", f"× {certainty:g}")]
    pf = PRIORITY_FACTOR.get(priority, 1.0)
    if pf != 1.0:
        total *= pf
        parts.append((f"{priority} priority", f"× {pf:g}"))
    if failures:
        ff = FAILURE_FACTOR ** failures
        total *= ff
        parts.append((f"after {failures} failed attempt{'s' if failures > 1 else ''}", f"× {ff:g}"))
    minutes = attrs.get("minutes")
    if minutes:
        cf = 1.0 / (1.0 + float(minutes) / COST_MINUTES)
        total *= cf
        parts.append((f"cost ({float(minutes):g} min)", f"× {cf:.2f}"))
    if kind == "directive" and priority != "critical" and age_days > 0 and age_bonus:
        bonus = age_bonus * min(age_days, MAX_AGE_DAYS)
        total += bonus
        parts.append((f"waiting {age_days:.1f} d", f"+ {bonus:.2f}"))
    return Score(value, certainty, round(total, 4), parts)


class Plain:
    """How tasks of one shape score when only their own line counts (no failed attempts, no age
    bonus): ``score`` for such a task, split into what the shape fixes (the kind's defaults, the
    priority, which of value, certainty and minutes the line gives) and the numbers it gives.

    A million tasks may each score differently; the task table keeps each one's numbers, and the
    queue writes its score by putting them into what the shape fixes (``parts`` and ``explain``
    with stand-ins, made once; each number formatted with its ``SPECS``), not from a Score per
    task.  tests/queue/test_scoring.py checks this is ``score``."""

    __slots__ = ("kind", "priority", "has_value", "has_certainty", "has_minutes", "dv", "dc", "pf")
    # how each number is written (``%`` formatting): value, certainty, minutes, the cost factor,
    # the total (in the explanation) and the total (as the score)
    SPECS = ("g", "g", "g", ".2f", ".2f", "r")

    def __init__(self, kind: str, priority: str, has_value: bool, has_certainty: bool, has_minutes: bool):
        self.kind, self.priority = kind, priority
        self.has_value, self.has_certainty, self.has_minutes = has_value, has_certainty, has_minutes
        self.dv, self.dc = DEFAULTS[default_key(kind, priority)]
        self.pf = PRIORITY_FACTOR.get(priority, 1.0)

    @staticmethod
    def shape(kind: str, priority: str, attrs: dict) -> tuple:
        """(kind, priority, has value, has certainty, has minutes): what makes a Plain."""
        return kind, priority, attrs.get("value") is not None, attrs.get("certainty") is not None, \
            bool(attrs.get("minutes"))

    def numbers(self, attrs: dict) -> tuple:
        """(value, certainty, minutes) as the score takes them: floats, the defaults filled in."""
        v, c, m = attrs.get("value"), attrs.get("certainty"), attrs.get("minutes")
        return (self.dv if v is None else float(v), self.dc if c is None else float(c), float(m) if m else 0.0)

    @staticmethod
    def factor(minutes: float) -> float:
        """What a task estimated at ``minutes`` (> 0) counts for."""
        return 1.0 / (1.0 + minutes / COST_MINUTES)

    @staticmethod
    def factors(minutes):
        """``factor`` of each of ``minutes`` (an iterable), the same sums made without a Python call each."""
        return map(truediv, repeat(1.0), map(add, repeat(1.0), map(truediv, minutes, repeat(COST_MINUTES))))

    def total(self, value: float, certainty: float, minutes: float) -> float:
        total = value * certainty
        if self.pf != 1.0:
            total *= self.pf
        if self.has_minutes:
            total *= self.factor(minutes)
        return round(total, 4)

    def slots(self, value: float, certainty: float, minutes: float, total: float) -> tuple:
        """The numbers in ``SPECS`` order."""
        return value, certainty, minutes, self.factor(minutes) if self.has_minutes else 0.0, total, total

    def parts(self, s: tuple) -> list:
        """``Score.parts``, each number given as a string in ``s`` (in ``SPECS`` order), or a stand-in
        (a default is written as it is)."""
        parts = [("value", s[0]) if self.has_value else ("value (default)", f"{self.dv:g}"),
                 ("certainty", f"× {s[1]}") if self.has_certainty else ("certainty (default)", f"× {self.dc:g}")]
        if self.pf != 1.0:
            parts.append((f"{self.priority} priority", f"× {self.pf:g}"))
        if self.has_minutes:
            parts.append((f"cost ({s[2]} min)", f"× {s[3]}"))
        return parts

    def explain(self, s: tuple) -> str:
        return " · ".join(f"{effect} {label}" for label, effect in self.parts(s)) + f" = {s[4]}"

    def score(self, value: float, certainty: float, minutes: float) -> Score:
        total = self.total(value, certainty, minutes)
        s = tuple(f"%{spec}" % x for spec, x in zip(self.SPECS, self.slots(value, certainty, minutes, total)))
        return Score(value, certainty, total, self.parts(s))
