"""Change detection over a metric's series: is a run's new value a change beyond the series' own noise,
in the direction that is worse?  Two tests, both robust to a single odd point, stdlib only (the method
and why: docs/metrics.md):

- **step**: the new value against the median and MAD of the ``STEP_WINDOW`` values before it (a robust
  z-score, the MAD scaled to a standard deviation).  Flagged when the new value alone is ``Z_STEP`` scales
  away (more for a short window: ``z_step``), or when it and the ``SHIFT_RUN - 1`` values before it are all ``Z_SHIFT`` scales away from the
  window before them (a shift that held), and the change is at least ``MIN_STEP`` of the level.
- **drift**: over the last ``DRIFT_WINDOW`` values (the new one last), a Mann–Kendall trend test
  (one-sided p below ``DRIFT_P``) and a Theil–Sen slope whose change across the window is at least
  ``MIN_DRIFT`` of the level: a slow creep that no single step shows.

Below ``MIN_POINTS`` earlier values (``MIN_DRIFT_POINTS`` for a drift) it says nothing.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter

from agentd.recordtype import Record

MIN_POINTS = 5
MIN_DRIFT_POINTS = 8
STEP_WINDOW = 20
DRIFT_WINDOW = 20
Z_STEP = 5.0
Z_SHIFT = 3.0
SHIFT_RUN = 3
MIN_STEP = 0.02  # of the median's size
MIN_DRIFT = 0.05
DRIFT_P = 0.001
MAD_TO_SD = 1.4826  # the MAD of normal noise times this is its standard deviation
NOISE_FLOOR = 1e-3  # of the median's size: the least noise a series is taken to have (a constant one has none)

HIGHER, LOWER = "higher", "lower"  # which way is better
_HIGHER_WORDS = frozenset(("tflops", "gflops", "flops", "throughput", "acceptance", "accepted", "accuracy", "acc",
                           "fraction", "score", "speedup", "bandwidth", "yield", "f1", "auc", "tps", "qps",
                           "pass", "passed", "hits", "util", "utilization", "efficiency"))
_LOWER_WORDS = frozenset(("latency", "ttft", "mem", "memory", "rss", "vram", "rate", "loss", "error", "errors",
                          "time", "duration", "seconds", "s", "ms", "us", "ns", "sec", "mib", "gib", "mb", "gb",
                          "bytes", "cost", "usd", "leak", "leakage", "perplexity", "ppl", "runaway", "failures",
                          "failed", "tokens", "code", "wait", "load"))


class Change(Record):
    kind: str  # "step" or "drift"
    text: str  # one line for the finding
    worse: bool | None  # True: the worse way; None: agentd doesn't know which way is worse for this name


def better(name: str, op: str | None = None) -> str | None:
    """Which way is better for a metric: from its gate's operator (``>=``: higher), else from its name
    (``tflops``, ``tokens_per_s``, ``*acceptance*``: higher; ``*_s``, ``latency``, ``ttft``, ``mem``,
    ``rate``: lower), else None."""
    if op in (">", ">="):
        return HIGHER
    if op in ("<", "<="):
        return LOWER
    if op == "==":
        return None
    for part in name.lower().split("."):
        if "per_s" in part or "per_sec" in part or "_per_" in part or part.endswith("_per_second"):
            return HIGHER
        words = set(part.split("_"))
        if words & _HIGHER_WORDS:
            return HIGHER
        if words & _LOWER_WORDS:
            return LOWER
    return None


def _median(xs):
    return statistics.median(xs)


def _scale(xs, m: float) -> float:
    """The series' noise: its MAD as a standard deviation, at least NOISE_FLOOR of the level."""
    mad = _median([abs(x - m) for x in xs]) * MAD_TO_SD
    return max(mad, NOISE_FLOOR * abs(m), 1e-12)


def _pct(new: float, m: float) -> str:
    return f"{abs(new - m) / abs(m):.1%}" if m else f"{abs(new - m):.4g}"


def _way(delta: float, want: str | None) -> bool | None:
    """Is a move by ``delta`` the worse way (None: unknown)?"""
    if want is None:
        return None
    return (delta < 0) if want == HIGHER else (delta > 0)


def z_step(n: int) -> float:
    """The robust z a single new value must reach against ``n`` earlier ones: higher for few, whose MAD
    is a rough guess of the noise (``Z_STEP`` × sqrt(1 + 8/n): 8.1 at 5 runs, 6.7 at 10, 5.9 at 20)."""
    return Z_STEP * math.sqrt(1 + 8 / n)


def step(history, new: float, want: str | None, name: str = "value") -> Change | None:
    if len(history) < MIN_POINTS:
        return None
    window = list(history)[-STEP_WINDOW:]
    m = _median(window)
    s = _scale(window, m)
    z = (new - m) / s
    worse = _way(new - m, want)
    if worse is False or abs(new - m) < MIN_STEP * abs(m):
        return None
    alone = abs(z) >= z_step(len(window))
    held = False
    if not alone and len(history) >= MIN_POINTS + SHIFT_RUN - 1:
        before = list(history)[: len(history) - (SHIFT_RUN - 1)][-STEP_WINDOW:]
        bm = _median(before)
        bs = _scale(before, bm)
        recent = list(history)[len(history) - (SHIFT_RUN - 1):] + [new]
        held = all((x - bm) / bs * (1 if z > 0 else -1) >= Z_SHIFT for x in recent)
        if held:
            m, z = bm, (new - bm) / bs
    if not (alone or held):
        return None
    way = "below" if new < m else "above"
    how = ("the worse way" if worse else "a change (which way is worse is not known for this name)")
    held_text = f", and so were the {SHIFT_RUN - 1} runs before it" if held else ""
    return Change("step", f"{name} {new:.6g} is {_pct(new, m)} {way} the median {m:.6g} of the {len(window)} runs "
                  f"before it (robust z {z:+.1f}){held_text}: a step, {how}", worse)


def mann_kendall(xs) -> tuple[int, float]:
    """The Mann–Kendall S statistic of ``xs`` and its normal-approximation z (ties accounted for)."""
    n = len(xs)
    s = sum((xs[j] > xs[i]) - (xs[j] < xs[i]) for i in range(n - 1) for j in range(i + 1, n))
    ties = sum(t * (t - 1) * (2 * t + 5) for t in Counter(xs).values() if t > 1)
    var = (n * (n - 1) * (2 * n + 5) - ties) / 18
    if var <= 0 or s == 0:
        return s, 0.0
    return s, (s - (1 if s > 0 else -1)) / math.sqrt(var)


def theil_sen(xs) -> float:
    """The median of the slopes between every pair of points (per run)."""
    n = len(xs)
    return _median([(xs[j] - xs[i]) / (j - i) for i in range(n - 1) for j in range(i + 1, n)])


def drift(history, new: float, want: str | None, name: str = "value") -> Change | None:
    if len(history) < MIN_DRIFT_POINTS:
        return None
    xs = list(history)[-(DRIFT_WINDOW - 1):] + [new]
    _, z = mann_kendall(xs)
    p = 0.5 * math.erfc(abs(z) / math.sqrt(2))  # one-sided, in the direction it moved
    slope = theil_sen(xs)
    level = _median(xs)
    total = slope * (len(xs) - 1)
    worse = _way(total, want)
    if worse is False or p >= DRIFT_P or abs(total) < MIN_DRIFT * abs(level) or slope == 0:
        return None
    way = "fell" if total < 0 else "rose"
    how = "the worse way" if worse else "a change (which way is worse is not known for this name)"
    size = f"{abs(total) / abs(level):.1%}" if level else f"{abs(total):.4g}"
    return Change("drift", f"{name} {way} {size} over the last {len(xs)} runs (Theil–Sen {slope:+.4g} per run, "
                  f"Mann–Kendall p={p:.2g}): a drift, {how}", worse)


def detect(history, new: float, want: str | None = None, name: str = "value") -> Change | None:
    """A step or a drift at ``new``, the point after ``history`` (oldest first), or None.  ``want``: which
    way is better (``better()``); None flags a change either way and says the direction is not known."""
    history = [float(x) for x in history]
    return step(history, float(new), want, name) or drift(history, float(new), want, name)
