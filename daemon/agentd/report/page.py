"""``render(data)``: the report's one HTML page, from ``report/data.gather``'s dict (docs/report.md).

Self-contained: the plots are inline SVG (``report/svg.py``), the style sheet is inline, there is no
script, and a Content-Security-Policy meta forbids the page to load anything (``CSP``).  It reads
without JavaScript and prints.  Under each plot, the numbers it draws, in a table a person can copy;
every number on the page also sits in a ``data-v`` attribute as JSON, so a test can read it back.

Top to bottom: the host; every host of the fleet (``report --fleet``); what needs a person; runs per day
and the success rate; spend per day against the daily budget, and tokens by provider; each metric series; the recurring tasks' reliability;
the queue with each task's why; the last runs, each linking to its entry's text further down.

Every text in ``data`` (titles, outputs, whys: what a person or a model wrote) goes through ``svg.esc``.
The page is bounded whatever ``data`` holds: at most the caps below of each list.
"""

from __future__ import annotations

import re

from agentd.report import fleet, svg
from agentd.times import parse

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
MAX_DAYS, MAX_SERIES, MAX_POINTS, MAX_RUNS, MAX_ROWS = 400, 20, 500, 50, 200
MAX_TEXT, MAX_WHY, MAX_ENTRY = 200, 400, 4000

STYLE = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1b1b1b;
       background: #fff; max-width: 1100px; margin: 0 auto; padding: 1rem 1.5rem 3rem; }
h1 { font-size: 1.6rem; margin: .2rem 0; } h2 { font-size: 1.25rem; margin-top: 2.2rem;
       border-bottom: 1px solid #ccc; } h3 { font-size: 1.05rem; margin: 1.4rem 0 .3rem; }
nav a { margin-right: .8rem; } .muted { color: #555; } .empty { font-size: 1.1rem; padding: .6rem .9rem;
       background: #fff8e1; border-left: 4px solid #ef6c00; }
.plot { width: 100%; max-width: 720px; height: auto; display: block; }
table { border-collapse: collapse; margin: .4rem 0; font-size: .9rem; }
th, td { border: 1px solid #ccc; padding: .2rem .45rem; text-align: left; vertical-align: top; }
td[data-v] { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f3f3f3; } td.word { white-space: nowrap; } .why { max-width: 36rem; } .wrap { overflow-wrap: anywhere; }
details { margin: .3rem 0 1rem; } summary { cursor: pointer; color: #1565c0; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #f7f7f7; padding: .6rem; font-size: .85rem; }
.st-done { color: #2e7d32; } .st-failed { color: #c62828; } .st-blocked { color: #ef6c00; }
dl.summary { display: grid; grid-template-columns: max-content auto; gap: .1rem 1rem; }
dl.summary dt { color: #555; } dl.summary dd { margin: 0; }
article { border-top: 1px dotted #bbb; margin-top: .8rem; }
@media print { nav, .back { display: none; } body { max-width: none; padding: 0; font-size: 11pt; }
  a { color: inherit; text-decoration: none; } h2 { break-after: avoid; } svg, table, article { break-inside: avoid; }
  details > summary { color: inherit; } }
@page { margin: 1.5cm; }
"""


def esc(text, limit: int = svg.MAX_STR) -> str:
    return svg.esc(text, limit)


def _get(row: dict, key: str):
    for part in key.split("."):
        row = row.get(part) if isinstance(row, dict) else None
    return row


def when(text) -> str:
    """An ISO time as a person reads it (``2026-12-07 05:00 UTC``); anything else shown as it is."""
    if isinstance(text, str) and parse(text) is not None and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text):
        return f"{text[:10]} {text[11:16]} UTC"
    return esc(text, MAX_TEXT)


def duration(s) -> str:
    if s is None:
        return "—"
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(int(round(s)), 60)
    return f"{m}m {sec:02d}s" if m < 60 else f"{m // 60}h {m % 60:02d}m"


def cell(kind: str, v) -> str:
    """One ``<td>``: a number keeps its value in ``data-v`` (JSON) and shows it for a person."""
    if v is None and kind in ("text", "why", "status"):
        return '<td class="none">—</td>'
    if kind == "text":
        return f'<td class="wrap">{esc(v, MAX_TEXT)}</td>'
    if kind == "word":
        return f'<td class="word">{esc(v, 40)}</td>'
    if kind == "why":
        return f'<td class="why">{esc(v, MAX_WHY)}</td>'
    if kind == "time":
        return f"<td>{when(v)}</td>" if v else "<td>—</td>"
    if kind == "status":
        return f'<td class="st-{esc(v, 20)}">{esc(v, 40)}</td>'
    if kind == "bool":
        return f'<td data-v="{svg.jv(v)}">{"yes" if v else "no"}</td>'
    shown = duration(v) if kind == "s" else svg.fmt(v, "usd" if kind == "usd" else "")
    if kind == "rate" and v is not None:
        shown = f"{v:.0%}"
    return f'<td data-v="{svg.jv(v)}">{shown}</td>'


def table(name: str, cols: list[tuple[str, str, str]], rows: list[dict], link=None) -> str:
    """A table of ``rows`` by ``cols`` (key, header, kind); ``link(i, row)`` may give the first cell's anchor."""
    head = "".join(f'<th data-col="{esc(k)}">{esc(h)}</th>' for k, h, _ in cols)
    body = []
    for i, r in enumerate(rows):
        cells = [cell(kind, _get(r, k)) for k, _, kind in cols]
        if link:
            cells[0] = cells[0].replace(">", f'><a href="#{link(i, r)}">', 1).replace("</td>", "</a></td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table data-table="{esc(name)}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def behind(summary: str, inner: str) -> str:
    return f"<details><summary>{esc(summary)}</summary>{inner}</details>"


def more(rows: list, cap: int, what: str) -> str:
    return f'<p class="muted">… and {len(rows) - cap:,} more {esc(what)}, not shown.</p>' if len(rows) > cap else ""


def key(name: str, v, shown: str | None = None) -> str:
    return f'<span data-key="{esc(name)}" data-v="{svg.jv(v)}">{shown if shown is not None else svg.fmt(v)}</span>'


def entry_id(i: int, r: dict) -> str:
    return f"entry-{i}-" + re.sub(r"[^A-Za-z0-9_-]", "_", str(r.get("run") or ""))[:40]


# -- the sections, top to bottom ------------------------------------------------------------------------

def _header(d: dict) -> str:
    t, s = d.get("totals") or {}, d.get("success") or {}
    out = [f"<header><h1>agentd report: {esc(d.get('host'), 80)}</h1>",
           f'<p class="muted">From {when(d.get("since"))} to {when(d.get("until"))}; '
           f'written {when(d.get("generated_at"))}.</p>']
    if d.get("worklog_problem"):
        out.append(f'<p class="empty" data-key="worklog_problem"><strong>The worklog could not be read:</strong> '
                   f'{esc(d["worklog_problem"], MAX_WHY)}. The queue, the blocked tasks and the standing rules '
                   "below come from it, and are unknown.</p>")
    if d.get("since_asked"):
        out.append(f'<p class="empty" data-key="since_asked">The report covers at most {MAX_DAYS} days: asked from '
                   f'{when(d.get("since_asked"))}, it starts at {when(d.get("since"))}.</p>')
    if not t.get("runs"):
        out.append(f'<p class="empty" data-key="no-runs">No runs yet: agentd has run no task on this host between '
                   f'{when(d.get("since"))} and {when(d.get("until"))}. Add a task to the worklog, or run '
                   f'<code>agentd wake --now</code>; the plots appear once runs are recorded.</p>')
    rate = s.get("rate")
    out.append('<dl class="summary">'
               f'<dt>runs</dt><dd>{key("totals.runs", t.get("runs", 0))}</dd>'
               f'<dt>success</dt><dd>{key("success.done", s.get("done", 0))} done of '
               f'{key("success.ended", s.get("ended", 0))} ended '
               f'({key("success.rate", rate, "no run ended" if rate is None else f"{rate:.0%}")})</dd>'
               f'<dt>spend</dt><dd>{key("totals.usd", t.get("usd", 0), svg.fmt(t.get("usd", 0), "usd"))}</dd>'
               f'<dt>tokens</dt><dd>{key("totals.input_tokens", t.get("input_tokens", 0))} in, '
               f'{key("totals.output_tokens", t.get("output_tokens", 0))} out</dd></dl></header>')
    out.append('<nav>' + ('<a href="#fleet">The fleet</a>' if isinstance(d.get("fleet"), dict) else "")
               + '<a href="#attention">Needs a person</a><a href="#runs">Runs</a><a href="#spend">Spend</a>'
               '<a href="#metrics">Metrics</a><a href="#reliability">Reliability</a><a href="#queue">Queue</a>'
               '<a href="#last-runs">Last runs</a></nav>')
    return "".join(out)


def _fleet(d: dict) -> str:
    """Every host of the fleet (``report --fleet``; nothing without it), as `agentd fleet status` says it."""
    f = d.get("fleet")
    if not isinstance(f, dict):
        return ""
    rows = fleet.rows(f)
    out = ['<section id="fleet"><h2>The fleet</h2>',
           f'<p class="muted">{esc(f.get("remote") or "no remote", MAX_TEXT)}: {len(rows):,} host(s); this host '
           "live, the others as their last sync left their <code>hosts/&lt;host&gt;.json</code> in the clone.</p>"]
    out.append(table("fleet", [("host", "host", "text"), ("synced", "synced", "text"), ("wake", "last wake", "text"),
                               ("last_run", "last run", "text"), ("running", "running", "text"),
                               ("queue_top", "queue top", "why"), ("usd", "spent today", "usd")], rows[:MAX_ROWS]))
    total = f.get("hosts_total")
    if isinstance(total, int) and total > len(rows):
        out.append(f'<p class="muted">… and {total - len(rows):,} more hosts, not shown.</p>')
    out.append(f'<p data-key="fleet.budget">{esc(fleet.budget_line(f), MAX_WHY)}</p>')
    out += [f'<p class="muted">warning: {esc(w, MAX_WHY)}</p>' for w in (f.get("warnings") or [])[:20]]
    return "".join(out) + "</section>"


def _attention(d: dict) -> str:
    a = d.get("attention") or {}
    ap, bl, ru = a.get("approvals") or [], a.get("blocked") or [], a.get("rules") or []
    out = ['<section id="attention"><h2>What needs a person</h2>']
    if d.get("worklog_problem"):
        out.append(f"<p>{'No approval is asked' if not ap else 'Approvals asked are below'}; the blocked tasks and "
                   "the standing rules are unknown: the worklog could not be read (see the top of the page).</p>")
    elif not (ap or bl or ru):
        out.append("<p>Nothing waits on a person: no approval is asked, no task is blocked, no standing rule.</p>")
    if ap:
        out.append(f"<h3>Approvals asked ({len(ap):,})</h3><p>Answer with <code>agentd approve ID</code> or "
                   "<code>agentd deny ID</code>.</p>" + table("approvals", [
                       ("id", "id", "text"), ("task", "task", "text"), ("what", "what", "why"),
                       ("asked_at", "asked", "time"), ("expires_at", "expires", "time")], ap[:MAX_ROWS])
                   + more(ap, MAX_ROWS, "approvals"))
    if bl:
        out.append(f"<h3>Blocked tasks ({len(bl):,})</h3>" + table("blocked", [
            ("task", "task", "text"), ("title", "title", "text"), ("reason", "reason", "why")], bl[:MAX_ROWS])
                   + more(bl, MAX_ROWS, "blocked tasks"))
    if ru:
        out.append(f"<h3>Standing rules ({len(ru):,})</h3>" + table("rules", [
            ("id", "id", "text"), ("text", "rule", "why"), ("critical", "critical", "bool")], ru[:MAX_ROWS])
                   + more(ru, MAX_ROWS, "rules"))
    return "".join(out) + "</section>"


def _runs(d: dict) -> str:
    rows = (d.get("runs_per_day") or [])[-MAX_DAYS:]
    out = ['<section id="runs"><h2>Runs per day</h2>']
    s = d.get("success") or {}
    if s.get("rate") is not None:
        out.append(f"<p>Success rate: {s['rate']:.0%} ({s.get('done', 0):,} done of {s.get('ended', 0):,} runs "
                   "that ended done, failed or blocked).</p>")
    if not any(r.get(k) for r in rows for k in ("done", "failed", "blocked", "other")):
        return "".join(out) + "<p>No runs in this range.</p></section>"
    days = [r["day"] for r in rows]
    layers = [(k, k, [r.get(k) or 0 for r in rows]) for k in ("done", "failed", "blocked", "other")]
    total = int(sum(sum(map(svg.num, v)) for _, _, v in layers))
    out.append(svg.stacked_bars("Runs per day, by status", f"{total:,} runs over {len(days)} days, stacked by "
                                "status: done, failed, blocked, other.", days, layers))
    out.append(behind("The numbers behind this plot", table("runs_per_day", [
        ("day", "day", "text"), ("done", "done", "n"), ("failed", "failed", "n"), ("blocked", "blocked", "n"),
        ("other", "other", "n")], rows)))
    return "".join(out) + "</section>"


def _spend(d: dict) -> str:
    rows = (d.get("spend_per_day") or [])[-MAX_DAYS:]
    budget = d.get("budget_usd_per_day")
    out = ['<section id="spend"><h2>Spend per day</h2>',
           '<p class="muted">Dollars come from the budget ledger of this state directory: every model call\'s '
           "cost on the UTC day it was made, whole days, for every host sharing this state directory (what the "
           "daily budget is checked against). Tokens, and the tokens and dollars by provider, are this host's "
           "runs started in the range.</p>", "<p>Daily budget: "
           + (key("budget_usd_per_day", budget, svg.fmt(budget, "usd")) if budget is not None else
              key("budget_usd_per_day", None, "none set")) + ".</p>"]
    if not any(r.get("usd") for r in rows):
        out.append("<p>No spend recorded in this range (command tasks and experiments cost nothing).</p>")
    else:
        days = [r["day"] for r in rows]
        total = sum(r.get("usd") or 0 for r in rows)
        label = f"budget {svg.fmt(budget, 'usd')}/day" if budget is not None else ""
        out.append(svg.bars_under_line("Spend per day (USD)", f"{svg.fmt(total, 'usd')} over {len(days)} days"
                                       + (f", against a daily budget of {svg.fmt(budget, 'usd')}" if budget else "")
                                       + ".", days, "usd", [r.get("usd") or 0 for r in rows], budget, label, "usd"))
    if rows:
        out.append(behind("The numbers behind this plot", table("spend_per_day", [
            ("day", "day", "text"), ("usd", "USD", "usd"), ("input_tokens", "tokens in", "n"),
            ("output_tokens", "tokens out", "n")], rows)))
    prov = (d.get("by_provider") or [])[:MAX_ROWS]
    out.append("<h3>Tokens by provider</h3>")
    if not any(p.get("input_tokens") or p.get("output_tokens") for p in prov):
        out.append("<p>No tokens spent in this range.</p>")
    else:
        groups = [(p.get("provider") or "?", [("input_tokens", "in", p.get("input_tokens") or 0),
                                             ("output_tokens", "out", p.get("output_tokens") or 0)]) for p in prov[:20]]
        out.append(svg.hbars("Tokens in and out, by provider", "Input and output tokens per provider over the "
                             "range.", groups))
    if prov:
        out.append(behind("The numbers behind this plot", table("by_provider", [
            ("provider", "provider", "text"), ("usd", "USD", "usd"), ("input_tokens", "tokens in", "n"),
            ("output_tokens", "tokens out", "n")], prov)))
    return "".join(out) + "</section>"


def _metric(i: int, m: dict, t0: float, t1: float) -> str:
    raw = [p for p in (m.get("points") or []) if isinstance(p.get("value"), (int, float)) and parse(p.get("at"))]
    pts = [{**p, "t": parse(p["at"])} for p in raw[-MAX_POINTS:]]
    changes = [{**c, "t": parse(c["at"])} for c in (m.get("changes") or [])[-MAX_POINTS:] if parse(c.get("at"))]
    gates = (m.get("gates") or [])[:10]
    unit = m.get("unit") or ""
    name = f"{m.get('name')}" + (f" ({unit})" if unit else "")
    out = [f'<h3 id="metric-{i}">{esc(name, 80)} <span class="muted">· task {esc(m.get("task"), 80)}</span></h3>']
    if not pts:
        return out[0] + "<p>No points in this range.</p>"
    failed = sum(1 for p in pts if p.get("failed"))
    notes = [f"{len(pts):,} point{'s' if len(pts) > 1 else ''}" + (f", {failed:,} failing a QC gate" if failed else "")
             + (f", {len(changes):,} changes detected" if changes else "") + "."]
    if len(pts) == 1:
        notes.append("One point so far: no trend yet.")
    notes += [f"The gate {esc(g.get('text'), 60)} is relative to the series' baseline, not known yet: not drawn."
              for g in gates if g.get("value") is None]
    out.append(f"<p>{' '.join(notes)}</p>")
    gtext = ", ".join(str(g.get("text")) for g in gates)
    out.append(svg.series(f"{name}, task {m.get('task')}"[:120], f"{len(pts)} values of {name} over time"
                          + (f"; QC gates {gtext}" if gates else "") + f"; {failed} failed.", pts, gates, changes,
                          t0, t1, unit))
    inner = table(f"metric-{i}", [("at", "at", "text"), ("value", "value", "n"), ("run", "run", "text"),
                                  ("failed", "QC failed", "bool")], pts)
    if changes:
        inner += "<p>Changes detected:</p>" + table(f"changes-{i}", [("at", "at", "text"), ("run", "run", "text"),
                                                                    ("text", "change", "why")], changes)
    out.append(behind("The numbers behind this plot", inner) + more(raw, MAX_POINTS, "older points"))
    return "".join(out)


def _metrics(d: dict) -> str:
    ms = d.get("metrics") or []
    out = ['<section id="metrics"><h2>Metrics</h2>']
    if not ms:
        return out[0] + "<p>No metric recorded in this range (a run reports one with a <code>METRIC name=value</code> " \
                        "line).</p></section>"
    t0, t1 = parse(d.get("since")) or 0, parse(d.get("until")) or 0
    out += [_metric(i, m, t0, t1) for i, m in enumerate(ms[:MAX_SERIES])]
    return "".join(out) + more(ms, MAX_SERIES, "series") + "</section>"


def _reliability(d: dict) -> str:
    rows = d.get("reliability") or []
    out = ['<section id="reliability"><h2>Reliability per task</h2>']
    if not rows:
        return out[0] + "<p>No task has run in this range.</p></section>"
    k = (rows[0].get("pass_k") or {}).get("k", 3)
    out.append(f"<p>Recurring tasks (<code>{{every: …}}</code>) first. pass^{k}: the chance that {k} runs in a row "
               "all end done, from the runs so far.</p>")
    out.append(table("reliability", [("task", "task", "text"), ("title", "title", "text"), ("every", "every", "text"),
                                     ("runs", "runs", "n"), ("done", "done", "n"),
                                     ("pass_k.value", f"pass^{k}", "rate"), ("median_s", "median duration", "s")],
                     rows[:MAX_ROWS]) + more(rows, MAX_ROWS, "tasks"))
    return "".join(out) + "</section>"


def _queue(d: dict) -> str:
    rows = d.get("queue") or []
    out = ['<section id="queue"><h2>The queue, as the next wake sees it</h2>']
    if not rows and d.get("worklog_problem"):
        return out[0] + "<p>The queue is unknown: the worklog could not be read (see the top of the page).</p></section>"
    if not rows:
        return out[0] + "<p>The queue is empty: no task is waiting to run.</p></section>"
    out.append(table("queue", [("id", "id", "text"), ("title", "title", "text"), ("kind", "kind", "word"),
                               ("score", "score", "n"), ("waits", "waits", "bool"), ("why", "why", "why")],
                     rows[:MAX_ROWS]) + more(rows, MAX_ROWS, "tasks"))
    return "".join(out) + "</section>"


def _last_runs(d: dict) -> str:
    rows = (d.get("last_runs") or [])[:MAX_RUNS]
    out = ['<section id="last-runs"><h2>Last runs</h2>']
    if not rows:
        return out[0] + "<p>No runs yet.</p></section>"
    out.append("<p>Newest first; a run's id links to its entry below.</p>")
    out.append(table("last_runs", [("run", "run", "text"), ("task", "task", "text"), ("title", "title", "text"),
                                   ("status", "status", "status"), ("started_at", "started", "time"),
                                   ("duration_s", "duration", "s"), ("cost_usd", "cost", "usd")], rows, link=entry_id))
    out.append("<h3>Their entries</h3>")
    for i, r in enumerate(rows):
        text = str(r.get("entry") or "")
        cut = len(text) > MAX_ENTRY
        body = "\n".join(esc(line, MAX_ENTRY) for line in text[:MAX_ENTRY].split("\n")) + ("\n…" if cut else "")
        out.append(f'<article id="{entry_id(i, r)}"><h4>{esc(r.get("run"), 60)} · {esc(r.get("task"), 80)} · '
                   f'<span class="st-{esc(r.get("status"), 20)}">{esc(r.get("status"), 40)}</span></h4>'
                   f'<pre>{body or "(no entry text)"}</pre><p class="back"><a href="#last-runs">back to the '
                   "runs</a></p></article>")
    return "".join(out) + "</section>"


def render(data: dict) -> str:
    """The whole page, as one string."""
    data = svg.finite(data)  # (an infinite or NaN number, from a tampered store, shows as none)
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>agentd report: {esc(data.get('host'), 80)}</title><style>{STYLE}</style></head><body>"
            + _header(data) + _fleet(data) + _attention(data) + _runs(data) + _spend(data) + _metrics(data) + _reliability(data)
            + _queue(data) + _last_runs(data) + "</body></html>\n")
