"""Scoring: expected value, explained part by part.  See docs/scoring.md.

    score = value × certainty × priority × retry backoff × cost  (+ directive age bonus)

The parts are kept so ``agentd queue`` can show how a score was made, the way
Taskwarrior's ``task info`` breaks down urgency.
"""

from __future__ import annotations

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
