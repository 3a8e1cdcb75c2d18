"""``Metric``: one named number a run produced, where it came from, and the checks every source shares."""

from __future__ import annotations

from agentd.lazyre import lazy
from agentd.recordtype import Record

MEASURED = "measured"  # agentd read it: the process's stdout, a file it wrote, an experiment's result, the run itself
CLAIMED = "claimed"  # an agent said so (a record_metric tool): gates ignore it unless the task allows it
SOURCES = (MEASURED, CLAIMED)

NAME = lazy(r"[A-Za-z_][A-Za-z0-9_.]{0,63}")
UNIT = lazy(r"[A-Za-z%/_][A-Za-z0-9%/_.*^-]{0,31}")
# A decimal number as people and programs print it; no "nan", "inf", "0x", "1_000" (float() takes those).
NUMBER = lazy(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
LIMIT = 1e300  # |value| above this is refused: it is an overflow or a sentinel, not a measurement


class Metric(Record):
    name: str
    value: float
    unit: str = ""
    source: str = MEASURED


def name_problem(name) -> str | None:
    """Why ``name`` can't be a metric's name, or None."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        shown = name[:40] + "..." if isinstance(name, str) and len(name) > 40 else name
        return (f"{shown!r} is not a metric name (a letter or _, then letters, digits, _ or ., "
                "at most 64 characters)")
    return None


def value_problem(value) -> str | None:
    """Why ``value`` (already a float or int) can't be a metric's value, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{type(value).__name__} is not a number"
    if isinstance(value, int) and abs(value) > 10**300:
        return "too large (more than 1e300)"
    if value != value:
        return "NaN is not a number agentd keeps"
    if value in (float("inf"), float("-inf")):
        return "infinite (or too large: it overflows to infinity)"
    if abs(value) > LIMIT:
        return "too large (more than 1e300)"
    return None


def number(text: str) -> tuple[float | None, str | None]:
    """``text`` as a finite float, or (None, why not)."""
    if len(text) > 64:
        return None, f"{text[:20]!r}... is too long for a number"
    if not NUMBER.fullmatch(text):
        low = text.lower().lstrip("+-")
        if low in ("nan", "inf", "infinity"):
            return None, f"{text!r} is not a finite number"
        return None, f"{text!r} is not a number"
    value = float(text)
    why = value_problem(value)
    return (None, f"{text!r} is {why}") if why else (value, None)
