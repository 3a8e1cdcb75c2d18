"""QC gates: ``{expect: {tflops: ">= 100", runaway_rate: "< 0.05", tokens_per_s: ">= 0.9 baseline"}}``.

A gate is ``<op> <rhs>``: ``op`` one of ``< <= > >= ==``; ``rhs`` a number, or ``[<factor> [×|x|*]] baseline``,
or ``[<factor> [×|x|*]] peak``.  ``baseline`` is the median of the metric's values in this task's last
passing runs on this host (``baseline_window``, 10 unless the task says); ``peak`` is the device's spec
figure for that metric where agentd knows it.  The parser below is hand-written: nothing is evaluated.

Each gate ends ``pass``, ``FAIL`` or ``inconclusive`` and says its working, as the finding shows it::

    tokens_per_s 41.2 >= 0.9 × baseline 47.0 = 42.3: FAIL
    tflops 80 >= 100: FAIL

A metric no run measured, one only an agent claimed (unless the task allows claimed ones), a baseline
with fewer than ``MIN_BASELINE`` runs behind it, or a peak agentd doesn't know: ``inconclusive``, never pass.
"""

from __future__ import annotations

import math

from agentd.lazyre import lazy
from agentd.metrics.metric import CLAIMED, MEASURED, name_problem, number
from agentd.recordtype import Record

OPS = ("<=", ">=", "==", "<", ">")
REFS = ("baseline", "peak")
TIMES = ("×", "x", "*")
PASS, FAIL, INCONCLUSIVE = "pass", "FAIL", "inconclusive"
WINDOW = 10  # passing runs the baseline is the median of, unless the task's baseline_window says
MIN_BASELINE = 3  # runs a baseline needs before a gate can be decided on it
MAX_WINDOW = 1000
MAX_GATES = 100
_NUM = lazy(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?![0-9_.]|[A-Za-wyz])")
_WORD = lazy(r"[A-Za-z_][A-Za-z0-9_]*")
# the look-alikes people type, and what they meant
_MEANT = {"=>": ">=", "=<": "<=", "≥": ">=", "≤": "<=", "=": "==", "!=": None, "<>": None, "===": "==",
         "<<": None, ">>": None, "~": None}
SHAPE = '"<op> <number>", "<op> [<factor> ×] baseline" or "<op> [<factor> ×] peak", op one of < <= > >= =='


class GateError(ValueError):
    """A condition that can't be read; the message names the key and what is wrong."""


class Gate(Record):
    name: str  # the metric
    op: str
    ref: str = ""  # "" (a number), "baseline" or "peak"
    factor: float = 1.0  # the rhs number when ref is "", else what the baseline or peak is multiplied by
    factor_text: str = ""  # the factor as written ("" when none was)
    text: str = ""  # the condition as written


class Verdict(Record):
    gate: Gate
    result: str  # PASS, FAIL or INCONCLUSIVE
    line: str  # the working, as the finding shows it
    value: float | None = None
    threshold: float | None = None
    cause: str = ""  # for an inconclusive one: "missing", "claimed", "baseline" or "peak"


def _op(text: str, key: str) -> tuple[str, str]:
    for op in OPS:
        if text.startswith(op) and not (op in ("<", ">") and text[1:2] in ("=", "<", ">")):
            if op == "==" and text.startswith("==="):
                break
            return op, text[len(op):].strip()
    for bad, meant in sorted(_MEANT.items(), key=lambda kv: -len(kv[0])):
        if text.startswith(bad):
            hint = f": did you mean {meant}?" if meant else ""
            raise GateError(f"expect: {key}: {text!r}: unknown operator {bad!r} (use < <= > >= ==){hint}")
    raise GateError(f"expect: {key}: {text!r}: it must start with an operator: {SHAPE}")


def parse(key: str, text) -> Gate:
    """One condition, ``expect``'s ``key: text``, as a Gate; GateError says what is wrong."""
    why = name_problem(key)
    if why:
        raise GateError(f"expect: {why}")
    if isinstance(text, bool) or not isinstance(text, str):
        raise GateError(f"expect: {key}: {text!r} is not a condition: write it as a quoted string, {SHAPE}")
    cond = text.strip()
    if len(cond) > 200:
        raise GateError(f"expect: {key}: the condition is longer than 200 characters")
    if not cond:
        raise GateError(f"expect: {key}: the condition is empty: {SHAPE}")
    op, rest = _op(cond, key)
    if not rest:
        raise GateError(f"expect: {key}: {cond!r}: nothing after {op}: {SHAPE}")
    tokens = _tokens(rest, key, cond)
    kinds = "".join(k for k, _ in tokens)  # n: a number, r: baseline or peak, t: ×
    if kinds == "n":
        value, why = number(tokens[0][1])
        if why:
            raise GateError(f"expect: {key}: {cond!r}: {why}")
        return Gate(key, op, "", value, tokens[0][1], text)
    if kinds not in ("r", "nr", "ntr"):
        raise GateError(f"expect: {key}: {cond!r}: after {op} comes a number, or [<factor> ×] baseline or peak: "
                        f"{SHAPE}")
    ref = tokens[-1][1]
    if kinds == "r":
        return Gate(key, op, ref, 1.0, "", text)
    factor, why = number(tokens[0][1])
    if why:
        raise GateError(f"expect: {key}: {cond!r}: the factor {why}")
    if factor <= 0:
        raise GateError(f"expect: {key}: {cond!r}: the factor must be more than 0")
    return Gate(key, op, ref, factor, tokens[0][1], text)


def _tokens(rest: str, key: str, cond: str) -> list:
    """The right-hand side as (kind, text) tokens: n a number, r baseline or peak, t × (or x or *)."""
    out, i = [], 0
    while i < len(rest):
        c = rest[i]
        if c.isspace():
            i += 1
            continue
        if c in "×*":
            out.append(("t", c))
            i += 1
            continue
        m = _NUM.match(rest, i)
        if m:
            out.append(("n", m.group()))
            i = m.end()
            continue
        m = _WORD.match(rest, i)
        if not m and (c.isdigit() or c in "+-."):
            bad = rest[i:].split()[0]
            raise GateError(f"expect: {key}: {cond!r}: {bad[:40]!r} is not a number")
        if not m:
            raise GateError(f"expect: {key}: {cond!r}: {c!r} is not part of a condition: {SHAPE}")
        word = m.group()
        if word in REFS:
            out.append(("r", word))
        elif word == "x":
            out.append(("t", word))
        else:
            import difflib  # lazy: difflib only for a misspelt word's hint; keeps queue's start-up

            close = difflib.get_close_matches(word.lower(), REFS, 1, 0.6)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise GateError(f"expect: {key}: {cond!r}: {word[:40]!r} is not a number, baseline or peak{hint}")
        i = m.end()
    return out


def parse_expect(expect) -> tuple[list, list]:
    """A task's ``expect:`` attr as (gates, problems): every problem, each naming its key."""
    if not isinstance(expect, dict):
        return [], [f"expect: must be a mapping of metric to condition, like {{tflops: \">= 100\"}}, "
                    f"not {type(expect).__name__}"]
    if not expect:
        return [], ["expect: names no metric"]
    if len(expect) > MAX_GATES:
        return [], [f"expect: has {len(expect)} conditions, more than the {MAX_GATES} agentd takes"]
    gates, problems = [], []
    for key, text in expect.items():
        try:
            gates.append(parse(str(key), text))
        except GateError as e:
            problems.append(str(e))
    return gates, problems


def window_problem(value) -> str | None:
    """Why a task's ``baseline_window:`` can't be used, or None."""
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_BASELINE <= value <= MAX_WINDOW:
        return f"baseline_window: must be a whole number of runs, {MIN_BASELINE}..{MAX_WINDOW}, not {value!r}"
    return None


# -- evaluation -------------------------------------------------------------------------------------------

def compare(op: str, value: float, threshold: float) -> bool:
    """``value op threshold``; within a relative 1e-9 the two count as equal (0.9 × 47.0 is 42.300000000000004)."""
    close = math.isclose(value, threshold, rel_tol=1e-9, abs_tol=1e-12)
    if op == "==":
        return close
    if op == "<":
        return value < threshold and not close
    if op == ">":
        return value > threshold and not close
    if op == "<=":
        return value <= threshold or close
    return value >= threshold or close  # ">="


def pick(name: str, metrics, allow_claimed: bool = False) -> tuple[float | None, str]:
    """The value a gate decides on: the run's measured one (or a claimed one, when allowed), and
    the cause when there is none ("missing" or "claimed")."""
    claimed = None
    for m in metrics:
        if m.name != name:
            continue
        if m.source == MEASURED:
            return m.value, ""
        if m.source == CLAIMED:
            claimed = m.value
    if claimed is not None:
        return (claimed, "") if allow_claimed else (None, "claimed")
    return None, "missing"


def baseline_of(values, window: int = WINDOW) -> tuple[float | None, int]:
    """The median of the last ``window`` values (oldest first), or None when fewer than MIN_BASELINE; and
    how many there were."""
    # lazy: statistics (fractions, decimal, random) only when a gate is evaluated; keeps queue's start-up
    import statistics

    recent = list(values)[-window:]
    if len(recent) < MIN_BASELINE:
        return None, len(recent)
    return statistics.median(recent), len(recent)


def peak_of(peaks: dict, name: str) -> float | None:
    """The device's spec figure for ``name``, or None where agentd knows none (a peak of 0 is none)."""
    peak = peaks.get(name)
    return peak if peak else None


def plain(x: float) -> str:
    """A number as written, every digit kept (what was measured is shown as it was read, never
    rounded): 80, 41.2, 0.05, 123456789, 100000.4."""
    x = float(x)
    if x.is_integer() and abs(x) < 1e16:
        return str(int(x))
    return repr(x)


def derived(x: float) -> str:
    """A number agentd worked out (a baseline, a threshold): 47.0, 42.3."""
    text = f"{x:.6g}"
    return text if any(c in text for c in ".en") else text + ".0"


def evaluate(gates, metrics, history: dict | None = None, peaks: dict | None = None, window: int = WINDOW,
             allow_claimed: bool = False) -> list:
    """Each gate's Verdict.  ``metrics``: the run's Metrics; ``history``: metric name -> its values in this
    task's passing runs on this host, oldest first (the run itself not among them); ``peaks``: metric
    name -> the device's spec figure."""
    history, peaks = history or {}, peaks or {}
    out = []
    for g in gates:
        rhs = ((g.factor_text + " × ") if g.factor_text else "") + g.ref if g.ref else g.factor_text
        value, cause = pick(g.name, metrics, allow_claimed)
        if value is None:
            why = ("only an agent claimed it, and gates decide on measured values" if cause == "claimed"
                   else "no value: the run did not measure it")
            out.append(Verdict(g, INCONCLUSIVE, f"{g.name} {g.op} {rhs}: inconclusive ({why})", cause=cause))
            continue
        if g.ref == "baseline":
            base, n = baseline_of(history.get(g.name, ()), window)
            if base is None:
                out.append(Verdict(g, INCONCLUSIVE, f"{g.name} {plain(value)} {g.op} {rhs}: inconclusive "
                                   f"(a baseline needs at least {MIN_BASELINE} passing runs, has {n} of {MIN_BASELINE})",
                                   value=value, cause="baseline"))
                continue
            ref_text, threshold = f"{rhs} {derived(base)}", g.factor * base
        elif g.ref == "peak":
            peak = peak_of(peaks, g.name)
            if peak is None:
                out.append(Verdict(g, INCONCLUSIVE, f"{g.name} {plain(value)} {g.op} {rhs}: inconclusive "
                                   f"(agentd knows no peak for {g.name} on this device)", value=value, cause="peak"))
                continue
            ref_text, threshold = f"{rhs} {plain(peak)}", g.factor * peak
        else:
            ref_text, threshold = g.factor_text, g.factor
        if g.ref and g.factor_text:
            ref_text += f" = {derived(threshold)}"
        result = PASS if compare(g.op, value, threshold) else FAIL
        out.append(Verdict(g, result, f"{g.name} {plain(value)} {g.op} {ref_text}: {result}", value=value,
                           threshold=threshold))
    return out


def failing(verdicts) -> list:
    return [v for v in verdicts if v.result == FAIL]


def qc_reason(verdicts) -> str | None:
    """The reason a run whose command succeeded is failed for its gates: ``QC: <each failing gate>``, or None."""
    bad = failing(verdicts)
    return ("QC: " + "; ".join(v.line for v in bad)) if bad else None
