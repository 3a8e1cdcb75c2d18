"""Scoring: expected value, explained part by part.  See docs/scoring.md.

    score = value × certainty × priority × retry backoff × cost  (+ directive age bonus)
                                                                 (+ exploration bonus)

With this host's history (``Evidence``, from ``store.history``), certainty is a posterior (the
prior worth ``PRIOR_WEIGHT`` attempts), an untyped ``minutes`` is the median of past runs, and a task
with little evidence gets a bounded exploration bonus; with none, every score is as before.

The parts are kept so ``agentd queue`` can show how a score was made, the way
Taskwarrior's ``task info`` breaks down urgency.
"""

from __future__ import annotations

from itertools import repeat
from math import log, sqrt
from operator import add, mul, truediv

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
PRIOR_WEIGHT = 2  # the prior certainty counts as this many attempts against this host's history
EXPLORE = 1.0  # the exploration bonus, in score points: EXPLORE × √(ln N / (n + 1)) ...
EXPLORE_CAP = 1.0  # ... at most this


class Evidence(Record):
    """What this host's history says about a task: the counted runs of the task itself when it has
    any, else of its kind on this host (``store.history`` says what counts)."""
    done: int = 0
    attempts: int = 0
    of: str = ""  # what the runs were, as the why says it: "directive runs on this host", "runs of this task"
    runs: int = 0  # N: attempts on this host, all kinds
    minutes: float = 0.0  # the median duration of ``timed`` runs, 0 when none
    timed: int = 0
    timed_of: str = ""

    def certainty(self, prior: float) -> float:
        """The posterior: (prior × PRIOR_WEIGHT + done) / (PRIOR_WEIGHT + attempts)."""
        return (prior * PRIOR_WEIGHT + self.done) / (PRIOR_WEIGHT + self.attempts)

    def bonus(self) -> float:
        """min(EXPLORE_CAP, EXPLORE × √(ln N / (n + 1))), 0 with fewer than 2 runs on this host."""
        if self.runs < 2:
            return 0.0
        return min(EXPLORE_CAP, EXPLORE * sqrt(log(self.runs) / (self.attempts + 1)))

    def learned(self) -> bool:
        """Whether it changes a score at all."""
        return bool(self.attempts or self.minutes or self.bonus())


def certainty_label(prior: float, typed: bool, ev: Evidence) -> str:
    return (f"certainty = prior {prior:g} ({'typed' if typed else 'default'}, weight {PRIOR_WEIGHT}) with "
            f"{ev.done} of {ev.attempts} {ev.of} done")


def minutes_label(ev: Evidence) -> str:
    return f"cost ({ev.minutes:.3g} min, median of {ev.timed} {ev.timed_of})"


def bonus_label(ev: Evidence) -> str:
    capped = " (capped)" if EXPLORE * sqrt(log(ev.runs) / (ev.attempts + 1)) > EXPLORE_CAP else ""
    return f"exploring: {EXPLORE:g} × √(ln {ev.runs} runs on this host / ({ev.attempts} + 1)){capped}"


def evidence_json(prior: float, ev: "Evidence | None") -> dict:
    return {"prior": prior, "prior_weight": PRIOR_WEIGHT, "done": ev.done if ev else 0,
            "attempts": ev.attempts if ev else 0}


class Score(Record):
    value: float
    certainty: float
    total: float
    parts: list = Factory(list)  # (label, effect)
    evidence: dict = Factory(dict)  # {prior, prior_weight, done, attempts}: what ``certainty`` was made of

    def explain(self) -> str:
        return " · ".join(f"{effect} {label}" for label, effect in self.parts) + f" = {self.total:.2f}"


def default_key(kind: str, priority: str) -> str:
    return "critical directive" if kind == "directive" and priority == "critical" else kind


def score(kind: str, priority: str, attrs: dict, failures: int = 0, age_days: float = 0.0,
          age_bonus: float = 0.5, evidence: Evidence | None = None) -> Score:
    dv, dc = DEFAULTS[default_key(kind, priority)]
    ev = evidence if evidence is not None and evidence.learned() else None
    value = float(attrs["value"]) if attrs.get("value") is not None else dv
    typed = attrs.get("certainty") is not None
    prior = float(attrs["certainty"]) if typed else dc
    certainty = ev.certainty(prior) if ev and ev.attempts else prior
    total = value * certainty
    src_v = "" if attrs.get("value") is not None else " (default)"
    src_c = "" if typed else " (default)"
    parts = [(f"value{src_v}", f"{value:g}"),
             (certainty_label(prior, typed, ev), f"× {certainty:.2f}") if ev and ev.attempts
             else (f"certainty{src_c}", f"× {certainty:g}")]
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
    elif ev and ev.minutes:
        cf = 1.0 / (1.0 + ev.minutes / COST_MINUTES)
        total *= cf
        parts.append((minutes_label(ev), f"× {cf:.2f}"))
    if kind == "directive" and priority != "critical" and age_days > 0 and age_bonus:
        bonus = age_bonus * min(age_days, MAX_AGE_DAYS)
        total += bonus
        parts.append((f"waiting {age_days:.1f} d", f"+ {bonus:.2f}"))
    explore = ev.bonus() if ev else 0.0
    if explore:
        total += explore
        parts.append((bonus_label(ev), f"+ {explore:.2f}"))
    return Score(value, certainty, round(total, 4), parts, evidence_json(prior, ev))


class Plain:
    """How tasks of one shape score when only their own line and their kind's history count (no
    failed attempts, no age bonus, no runs of their own): ``score`` for such a task, split into what
    the shape fixes (the kind's defaults, the priority, which of value, certainty and minutes the
    line gives, the kind's ``Evidence``) and the numbers it gives.

    A million tasks may each score differently; the task table keeps each one's numbers, and the
    queue writes its score by putting them into what the shape fixes (``parts`` and ``explain``
    with stand-ins, made once; each number formatted with its ``SPECS``), not from a Score per
    task.  tests/queue/test_scoring.py checks this is ``score``.  A shape whose line gives its
    certainty, with evidence of attempts, scores each row differently in a way the stand-ins can't
    write (the posterior of each row's own prior): ``per_row``, and the queue works those rows out
    one by one (``queue.learned``)."""

    __slots__ = ("kind", "priority", "has_value", "has_certainty", "has_minutes", "dv", "dc", "pf", "ev", "cert",
                 "hist_cf", "bonus", "per_row")
    # how each number is written (``%`` formatting): value, certainty, minutes, the cost factor,
    # the total (in the explanation), the total (as the score) and the certainty (in JSON)
    SPECS = ("g", "g", "g", ".2f", ".2f", "r", "r")

    def __init__(self, kind: str, priority: str, has_value: bool, has_certainty: bool, has_minutes: bool,
                 evidence: Evidence | None = None):
        self.kind, self.priority = kind, priority
        self.has_value, self.has_certainty, self.has_minutes = has_value, has_certainty, has_minutes
        self.dv, self.dc = DEFAULTS[default_key(kind, priority)]
        self.pf = PRIORITY_FACTOR.get(priority, 1.0)
        ev = self.ev = evidence if evidence is not None and evidence.learned() else None
        self.bonus = ev.bonus() if ev else 0.0
        self.hist_cf = self.factor(ev.minutes) if ev and ev.minutes and not has_minutes else None
        self.cert = ev.certainty(self.dc) if ev and ev.attempts and not has_certainty else None
        self.per_row = bool(ev and ev.attempts and has_certainty)

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
        if self.cert is not None:
            certainty = self.cert
        elif self.per_row:
            certainty = self.ev.certainty(certainty)
        total = value * certainty
        if self.pf != 1.0:
            total *= self.pf
        if self.has_minutes:
            total *= self.factor(minutes)
        elif self.hist_cf is not None:
            total *= self.hist_cf
        if self.bonus:
            total += self.bonus
        return round(total, 4)

    def totals(self, values, certainties, minutes):
        """``total`` of each row (three iterables), the same sums in the same order made a column at a
        time, without a Python call per row (a million rows re-scored with their kind's evidence)."""
        if self.cert is not None:
            certainties = repeat(self.cert)
        elif self.per_row:
            certainties = map(self.ev.certainty, certainties)
        out = map(mul, values, certainties)
        if self.pf != 1.0:
            out = map(mul, out, repeat(self.pf))
        if self.has_minutes:
            out = map(mul, out, self.factors(minutes))
        elif self.hist_cf is not None:
            out = map(mul, out, repeat(self.hist_cf))
        if self.bonus:
            out = map(add, out, repeat(self.bonus))
        return map(round, out, repeat(4))

    def slots(self, value: float, certainty: float, minutes: float, total: float) -> tuple:
        """The numbers in ``SPECS`` order."""
        return value, certainty, minutes, self.factor(minutes) if self.has_minutes else 0.0, total, total, certainty

    def parts(self, s: tuple) -> list:
        """``Score.parts``, each number given as a string in ``s`` (in ``SPECS`` order), or a stand-in
        (a default, and what the kind's evidence makes, is written as it is)."""
        ev = self.ev
        parts = [("value", s[0]) if self.has_value else ("value (default)", f"{self.dv:g}"),
                 (certainty_label(self.dc, False, ev), f"× {self.cert:.2f}") if self.cert is not None
                 else ("certainty", f"× {s[1]}") if self.has_certainty
                 else ("certainty (default)", f"× {self.dc:g}")]
        if self.pf != 1.0:
            parts.append((f"{self.priority} priority", f"× {self.pf:g}"))
        if self.has_minutes:
            parts.append((f"cost ({s[2]} min)", f"× {s[3]}"))
        elif self.hist_cf is not None:
            parts.append((minutes_label(ev), f"× {self.hist_cf:.2f}"))
        if self.bonus:
            parts.append((bonus_label(ev), f"+ {self.bonus:.2f}"))
        return parts

    def certainty_json(self, s: tuple) -> str:
        """The JSON of ``"certainty": ..., "certainty_evidence": {...}`` (``Task.to_json``), numbers as
        in ``parts``."""
        ev = self.ev
        cert, prior = ((repr(self.cert), repr(self.dc)) if self.cert is not None
                       else (s[6], s[6]) if self.has_certainty else (repr(self.dc), repr(self.dc)))
        return (f'"certainty": {cert}, "certainty_evidence": {{"prior": {prior}, "prior_weight": {PRIOR_WEIGHT}, '
                f'"done": {ev.done if ev else 0}, "attempts": {ev.attempts if ev else 0}}}')

    def explain(self, s: tuple) -> str:
        return " · ".join(f"{effect} {label}" for label, effect in self.parts(s)) + f" = {s[4]}"

    def score(self, value: float, certainty: float, minutes: float) -> Score:
        total = self.total(value, certainty, minutes)
        if self.per_row:  # (its rows are worked out one by one: this is only for completeness)
            attrs = {"value": value if self.has_value else None, "certainty": certainty,
                     "minutes": minutes if self.has_minutes else None}
            return score(self.kind, self.priority, attrs, evidence=self.ev)
        s = tuple(f"%{spec}" % x for spec, x in zip(self.SPECS, self.slots(value, certainty, minutes, total)))
        return Score(value, self.dc if self.cert is None and not self.has_certainty else
                     self.cert if self.cert is not None else certainty, total, self.parts(s),
                     evidence_json(certainty if self.has_certainty else self.dc, self.ev))
