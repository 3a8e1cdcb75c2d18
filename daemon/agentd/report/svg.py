"""The report's plots: inline SVG written by hand, stdlib only (docs/report.md, "How the plots are drawn").

Each plot is one ``<svg>`` with a ``<title>`` and a ``<desc>`` (what a screen reader says), axes with a few
tick labels, and its marks as real elements: a ``<rect>``, ``<circle>``, ``<path>`` or ``<polyline>`` of
class ``mark`` for each number drawn, carrying the number (``data-v``, as JSON) and what it is (``data-day``,
``data-key``, ``data-run``), with a ``<title>`` a browser shows on hover.  Lines that are not data (grid,
gates, the budget, changes) are ``<line>``.  No script, no style sheet: colours are attributes, so a plot
copied out of the page keeps them.

Every text that reaches a plot goes through ``esc``: terminal escapes and control characters written
visible (``escapes.safe``), then HTML-escaped.
"""

from __future__ import annotations

import html
import json
import math
import time

from agentd.escapes import safe

W, H = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 20, 30, 40

COLOURS = {"done": "#2e7d32", "failed": "#c62828", "blocked": "#ef6c00", "other": "#9e9e9e",
           "usd": "#1565c0", "over": "#c62828", "budget": "#6a1b9a", "input_tokens": "#1565c0",
           "output_tokens": "#00897b", "line": "#1565c0", "gate": "#6a1b9a", "change": "#ef6c00"}


MAX_STR = 300  # characters of any one text on the page, unless a caller gives its own bound


def esc(text, limit: int = MAX_STR) -> str:
    """``text`` shown as what it is: ``escapes.safe`` (cut to ``limit``, ``MAX_STR`` unless given: no text
    reaches the page whole whatever its length), then HTML-escaped, quotes too."""
    return html.escape(safe("" if text is None else str(text), limit or MAX_STR), quote=True)


def finite(v):
    """``v`` with every infinite or NaN number None, through dicts and lists: JSON has none (``json.dumps``
    would print ``Infinity``), a plot can't place one (``y="nan"``), and only a tampered store holds one."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: finite(x) for k, x in v.items()}
    if isinstance(v, list):
        return [finite(x) for x in v]
    return v


def num(v) -> float:
    """A value to draw: a finite number, else 0 (drawn as nothing)."""
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else 0.0


def jv(v) -> str:
    """A number as a ``data-v`` attribute holds it: JSON, which reads back equal."""
    return esc(json.dumps(v))


def fmt(v, unit: str = "") -> str:
    """A number for a person: thousands separated, a few significant digits; ``unit`` "usd" gives $."""
    if v is None:
        return "—"
    if unit == "usd":
        return f"${v:,.2f}" if v == 0 or abs(v) >= 0.01 else f"${v:.4f}"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int) or (math.isfinite(v) and v == int(v) and abs(v) < 1e15):
        return f"{int(v):,}"
    if not math.isfinite(v):
        return str(v)
    a = abs(v)
    return f"{v:,.1f}" if a >= 100 else f"{v:.2f}" if a >= 1 else f"{v:.3g}"


def ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    """About ``n`` round values (1, 2 or 5 times a power of ten apart) covering ``lo``..``hi``."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 12) for i in range(int((hi - first) / step + 1e-9) + 1)]


def ceiling(top: float) -> float:
    """The round value a y axis from 0 ends at: the first tick at or above ``top`` (1 when ``top`` is 0)."""
    if not top or top <= 0:
        return 1.0
    t = ticks(0, top)
    step = t[1] - t[0] if len(t) > 1 else top
    return t[-1] if t[-1] >= top else round(t[-1] + step, 12)


class Frame:
    """The plotting area: data x ``x0``..``x1`` and y ``y0``..``y1`` onto the SVG's pixels."""

    def __init__(self, x0: float, x1: float, y0: float, y1: float, h: int = H):
        self.x0, self.x1, self.y0, self.y1, self.h = x0, x1 if x1 > x0 else x0 + 1, y0, y1 if y1 > y0 else y0 + 1, h

    def x(self, v: float) -> float:
        return round(LEFT + (v - self.x0) / (self.x1 - self.x0) * (W - LEFT - RIGHT), 2)

    def y(self, v: float) -> float:
        return round(self.h - BOTTOM - (v - self.y0) / (self.y1 - self.y0) * (self.h - TOP - BOTTOM), 2)

    def yaxis(self, unit: str = "") -> str:
        out = [f'<line x1="{LEFT}" y1="{self.h - BOTTOM}" x2="{W - RIGHT}" y2="{self.h - BOTTOM}" stroke="#444"/>']
        ts = ticks(self.y0, self.y1)
        step = ts[1] - ts[0] if len(ts) > 1 else 1
        places = max(0, -math.floor(math.log10(step) + 1e-9)) if step < 1 else 0  # one form for every label
        for t in ts:
            y = self.y(t)
            out.append(f'<line x1="{LEFT}" y1="{y}" x2="{W - RIGHT}" y2="{y}" stroke="#ddd"/>'
                       f'<text x="{LEFT - 6}" y="{y + 4}" text-anchor="end" font-size="11">'
                       f'{"$" if unit == "usd" else ""}{t:,.{places if unit != "usd" else max(places, 2)}f}</text>')
        return "".join(out)

    def xlabels(self, labels: list[tuple[float, str]]) -> str:
        return "".join(f'<text x="{self.x(v)}" y="{self.h - BOTTOM + 16}" text-anchor="middle" font-size="11">'
                       f'{esc(s)}</text>' for v, s in labels)


def _svg(title: str, desc: str, body: str, h: int = H, legend: list[tuple[str, str]] = ()) -> str:
    keys = "".join(f'<rect x="{W - RIGHT - 110 * (len(legend) - i)}" y="6" width="10" height="10" fill="{c}"/>'
                   f'<text x="{W - RIGHT - 110 * (len(legend) - i) + 14}" y="15" font-size="11">{esc(s)}</text>'
                   for i, (s, c) in enumerate(legend))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {h}" role="img" class="plot" '
            f'font-family="sans-serif"><title>{esc(title)}</title><desc>{esc(desc, 1000)}</desc>'
            f'<text x="{LEFT}" y="16" font-size="13" font-weight="bold">{esc(title)}</text>{keys}{body}</svg>')


def _day_labels(f: Frame, days: list[str]) -> str:
    """A day's label is its month and day, with the year where the days cross into another year."""
    step = max(1, math.ceil(len(days) / 8))
    cut = 0 if days and days[0][:4] != days[-1][:4] else 5
    return f.xlabels([(i + 0.5, d[cut:]) for i, d in enumerate(days) if i % step == 0])


def stacked_bars(title: str, desc: str, days: list[str], layers: list[tuple[str, str, list]], unit: str = "") -> str:
    """A bar per day, its ``layers`` (key, label, values by day) stacked from the bottom; a zero draws nothing."""
    top = max((sum(num(vals[i]) for _, _, vals in layers) for i in range(len(days))), default=0)
    f = Frame(0, len(days), 0, ceiling(top))
    bw = max(1.0, round((f.x(1) - f.x(0)) * 0.8, 2))
    marks = []
    for i, day in enumerate(days):
        base = 0.0
        for key, label, vals in layers:
            v = num(vals[i])
            if v <= 0:
                continue
            y1, y0 = f.y(base + v), f.y(base)
            marks.append(f'<rect class="mark" data-day="{esc(day)}" data-key="{esc(key)}" data-v="{jv(vals[i])}" '
                         f'x="{round(f.x(i) + (f.x(1) - f.x(0) - bw) / 2, 2)}" y="{y1}" width="{bw}" '
                         f'height="{round(max(y0 - y1, 0.5), 2)}" fill="{COLOURS.get(key, "#555")}">'
                         f'<title>{esc(day)}: {esc(label)} {esc(fmt(v, unit))}</title></rect>')
            base += v
    legend = [(label, COLOURS.get(key, "#555")) for key, label, _ in layers] if len(layers) > 1 else []
    return _svg(title, desc, f.yaxis(unit) + _day_labels(f, days) + "".join(marks), legend=legend)


def bars_under_line(title: str, desc: str, days: list[str], key: str, values: list, line: float | None,
                    line_label: str, unit: str = "") -> str:
    """A bar per day (``key``), and a dashed horizontal line at ``line`` (a budget): bars above it drawn red."""
    values, line = [num(v) for v in values], line if line is not None and num(line) == line else None
    top = max([v for v in values] + [line or 0])
    f = Frame(0, len(days), 0, ceiling(top))
    bw = max(1.0, round((f.x(1) - f.x(0)) * 0.8, 2))
    marks = []
    for i, (day, v) in enumerate(zip(days, values)):
        if not v or v <= 0:
            continue
        over = line is not None and v > line
        y1, y0 = f.y(v), f.y(0)
        marks.append(f'<rect class="mark{" over" if over else ""}" data-day="{esc(day)}" data-key="{esc(key)}" '
                     f'data-v="{jv(v)}" x="{round(f.x(i) + (f.x(1) - f.x(0) - bw) / 2, 2)}" y="{y1}" width="{bw}" '
                     f'height="{round(max(y0 - y1, 0.5), 2)}" fill="{COLOURS["over" if over else key]}">'
                     f'<title>{esc(day)}: {esc(fmt(v, unit))}{" (over the budget)" if over else ""}</title></rect>')
    body = f.yaxis(unit) + _day_labels(f, days) + "".join(marks)
    if line is not None:
        y = f.y(line)
        body += (f'<line class="budget" data-v="{jv(line)}" x1="{LEFT}" y1="{y}" x2="{W - RIGHT}" y2="{y}" '
                 f'stroke="{COLOURS["budget"]}" stroke-width="2" stroke-dasharray="6 4"/>'
                 f'<text x="{W - RIGHT}" y="{y - 4}" text-anchor="end" font-size="11" fill="{COLOURS["budget"]}">'
                 f'{esc(line_label)}</text>')
    legend = [("spend", COLOURS[key])] + ([(line_label.split(" ")[0], COLOURS["budget"])] if line is not None else [])
    return _svg(title, desc, body, legend=legend)


def hbars(title: str, desc: str, groups: list[tuple[str, list[tuple[str, str, float]]]], unit: str = "") -> str:
    """Horizontal bars: a row per group (a provider), a bar per (key, label, value) in it."""
    n = max(1, sum(len(bars) for _, bars in groups))
    h = TOP + BOTTOM + 18 * n + 8 * len(groups)
    groups = [(name, [(k, label, num(v)) for k, label, v in bars]) for name, bars in groups]
    top = max((v for _, bars in groups for _, _, v in bars), default=0)
    left, right = LEFT + 90, W - RIGHT - 60
    span = ceiling(top)
    out, y = [], TOP + 4
    for name, bars in groups:
        out.append(f'<text x="{left - 8}" y="{y + 13}" text-anchor="end" font-size="12">{esc(name, 24)}</text>')
        for key, label, v in bars:
            if v and v > 0:
                out.append(f'<rect class="mark" data-key="{esc(key)}" data-group="{esc(name)}" data-v="{jv(v)}" '
                           f'x="{left}" y="{y}" width="{round(max((v / span) * (right - left), 0.5), 2)}" '
                           f'height="14" fill="{COLOURS.get(key, "#555")}"><title>{esc(name)}: {esc(label)} '
                           f'{esc(fmt(v, unit))}</title></rect>')
            out.append(f'<text x="{left + 4 + (max(v or 0, 0) / span) * (right - left)}" y="{y + 11}" font-size="10">'
                       f'{esc(fmt(v, unit))}</text>')
            y += 18
        y += 8
    axis = "".join(f'<text x="{round(left + t / span * (right - left), 2)}" y="{h - BOTTOM + 16}" '
                   f'text-anchor="middle" font-size="11">{esc(fmt(t, unit))}</text>' for t in ticks(0, span))
    legend = [(label, COLOURS.get(key, "#555")) for key, label, _ in (groups[0][1] if groups else [])]
    return _svg(title, desc, "".join(out) + axis, h=h, legend=legend)


def _time_labels(f: Frame) -> list[tuple[float, str]]:
    span = f.x1 - f.x0
    form = "%H:%M" if span < 2 * 86400 else "%m-%d"
    if time.gmtime(f.x0).tm_year != time.gmtime(f.x1).tm_year:
        form = "%Y-%m-%d" if span >= 2 * 86400 else "%Y-%m-%d %H:%M"
    return [(f.x0 + span * i / 4, time.strftime(form, time.gmtime(f.x0 + span * i / 4))) for i in range(5)]


def series(title: str, desc: str, points: list[dict], gates: list[dict], changes: list[dict],
           t0: float, t1: float, unit: str = "") -> str:
    """A metric over time: a line through its points (``at`` as epoch seconds in ``t``), each a circle,
    a failed one (its QC gate failed) red with a cross; each gate with a value a dashed horizontal line;
    each change a vertical line with a triangle on top."""
    points = [p for p in points if num(p.get("value")) == p.get("value") and math.isfinite(p.get("t", math.nan))]
    gates = [g for g in gates if g.get("value") is None or num(g["value"]) == g["value"]]
    changes = [c for c in changes if math.isfinite(c.get("t", math.nan))]
    vals = [p["value"] for p in points] + [g["value"] for g in gates if g.get("value") is not None]
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.1 or 1.0
    tk = ticks(lo - pad, hi + pad)
    f = Frame(min([t0] + [p["t"] for p in points]), max([t1] + [p["t"] for p in points]),
              min(tk[0], lo - pad), max(tk[-1], hi + pad))
    out = [f.yaxis(), f.xlabels(_time_labels(f))]
    for g in gates:
        if g.get("value") is None:
            continue
        y = f.y(g["value"])
        out.append(f'<line class="gate" data-v="{jv(g["value"])}" x1="{LEFT}" y1="{y}" x2="{W - RIGHT}" y2="{y}" '
                   f'stroke="{COLOURS["gate"]}" stroke-dasharray="6 4" stroke-width="1.5"/>'
                   f'<text x="{W - RIGHT}" y="{y - 4}" text-anchor="end" font-size="11" fill="{COLOURS["gate"]}">'
                   f'gate {esc(g.get("text"), 40)}</text>')
    for c in changes:
        x = f.x(c["t"])
        out.append(f'<line class="change" x1="{x}" y1="{TOP}" x2="{x}" y2="{H - BOTTOM}" stroke="{COLOURS["change"]}" '
                   f'stroke-dasharray="2 3"/><path class="mark change" data-run="{esc(c.get("run"))}" '
                   f'd="M{x - 6} {TOP} L{x + 6} {TOP} L{x} {TOP + 9} Z" fill="{COLOURS["change"]}">'
                   f'<title>{esc(c.get("at"))}: {esc(c.get("text"), 300)}</title></path>')
    if len(points) > 1:
        pts = " ".join(f"{f.x(p['t'])},{f.y(p['value'])}" for p in points)
        out.append(f'<polyline class="mark line" points="{pts}" fill="none" stroke="{COLOURS["line"]}" '
                   f'stroke-width="1.5"/>')
    for p in points:
        x, y, bad = f.x(p["t"]), f.y(p["value"]), bool(p.get("failed"))
        tip = f'<title>{esc(p.get("at"))}: {esc(fmt(p["value"]))}{esc(" " + unit) if unit else ""}' \
              f'{" (QC gate failed)" if bad else ""} · run {esc(p.get("run"))}</title>'
        out.append(f'<circle class="mark point{" failed" if bad else ""}" data-run="{esc(p.get("run"))}" '
                   f'data-v="{jv(p["value"])}" cx="{x}" cy="{y}" r="{4.5 if bad else 3}" '
                   f'fill="{COLOURS["failed"] if bad else COLOURS["line"]}">{tip}</circle>')
        if bad:
            out.append(f'<path class="mark cross" d="M{x - 6} {y - 6} L{x + 6} {y + 6} M{x - 6} {y + 6} L{x + 6} {y - 6}" '
                       f'stroke="{COLOURS["failed"]}" stroke-width="1.5">{tip}</path>')
    legend = [("value", COLOURS["line"])] + ([("QC failed", COLOURS["failed"])] if any(
        p.get("failed") for p in points) else []) + ([("change", COLOURS["change"])] if changes else [])
    return _svg(title, desc, "".join(out), legend=legend)
