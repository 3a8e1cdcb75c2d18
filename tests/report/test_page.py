"""report/page.py without a browser: the page stays bounded whatever the data holds, and every text in it is
escaped, terminal escapes and controls included."""

from __future__ import annotations

import re

import reportdata

from agentd.report import page, svg


def test_the_page_is_bounded_whatever_the_data_holds():
    d = reportdata.full()
    pts = d["metrics"][0]["points"]
    d["metrics"] = [{**d["metrics"][0], "name": f"m{i}", "points": (pts * 200)[:4000]} for i in range(60)]
    d["last_runs"] = [{**d["last_runs"][0], "run": f"r{i}", "entry": "x" * 100_000} for i in range(1000)]
    d["queue"] = d["queue"] * 5000
    d["attention"]["blocked"] = d["attention"]["blocked"] * 5000
    d["days"] = [f"d{i}" for i in range(3000)]
    d["runs_per_day"] = [{**d["runs_per_day"][1], "day": f"d{i}"} for i in range(3000)]
    html = page.render(d)
    assert html.count("<svg") == 3 + page.MAX_SERIES  # runs, spend, tokens; 20 series of the 60
    plots = re.findall(r"<svg.*?</svg>", html)
    assert max(p.count("<circle") for p in plots) == page.MAX_POINTS  # the newest 500 of 4,000 points
    assert html.count('<article id="entry-') == page.MAX_RUNS
    assert "… and 9,800 more tasks, not shown." in html and "… and 40 more series, not shown." in html
    assert len(re.findall(r'<tr><td class="wrap">d\d+</td>', html)) == page.MAX_DAYS
    assert len(html) < 6_000_000, len(html)


def test_every_text_is_escaped_for_html_and_for_the_terminal():
    assert svg.esc('<b a="1">\x1b[31m\x07\u202e') == "&lt;b a=&quot;1&quot;&gt;\\x1b[31m\\x07\\u202e"
    d = reportdata.full('<script>alert(1)</script>\x1b]0;t\x07')
    d["last_runs"][0]["entry"] = "line one\n<img src=x onerror=alert(1)>\x1b[2J\nline three"
    html = page.render(d)
    assert "<script" not in html and "<img" not in html and "\x1b" not in html and "\x07" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\\x1b]0;t\\x07" in html
    assert "line one\n&lt;img src=x onerror=alert(1)&gt;\\x1b[2J\nline three" in html


def test_a_host_with_no_runs_gets_no_plot_but_says_so():
    html = page.render(reportdata.empty())
    assert "<svg" not in html and "No runs yet" in html and "No runs in this range." in html


def test_a_range_cut_to_400_days_says_so_at_the_top():
    d = reportdata.full()
    assert 'data-key="since_asked"' not in page.render(d)
    d["since_asked"] = "1926-12-07T05:00:00Z"
    html = page.render(d)
    assert "covers at most 400 days: asked from 1926-12-07 05:00 UTC" in html


def test_non_finite_numbers_draw_nothing_and_write_no_nan():
    """A tampered store's inf or NaN once gave the SVG `y="nan"`."""
    nan, inf = float("nan"), float("inf")
    d = reportdata.full()
    pts = d["metrics"][0]["points"]
    pts[3]["value"], pts[4]["value"], pts[5]["value"] = nan, inf, -inf
    d["metrics"][0]["gates"][0]["value"] = nan
    d["metrics"][1]["points"][0]["value"] = inf
    d["spend_per_day"][2]["usd"], d["spend_per_day"][3]["usd"] = nan, inf
    d["runs_per_day"][1]["done"] = inf
    d["budget_usd_per_day"] = inf
    d["by_provider"][0]["input_tokens"] = nan
    d["reliability"][0]["median_s"], d["last_runs"][0]["duration_s"], d["last_runs"][1]["cost_usd"] = nan, inf, nan
    html = page.render(d)
    assert not re.search(r'(?i)="[^"]*\b(nan|-?inf(inity)?)\b', html), re.search(r'(?i)="[^"]*\b(nan|inf)', html)
    assert not re.search(r"(?i)\b(nan|infinity)\b", html)
    plots = re.findall(r"<svg.*?</svg>", html)
    assert plots[3].count("<circle") == 21 - 3  # the three points that are no number are not drawn


def test_every_string_is_cut_to_a_bound_on_the_page():
    """A 200,000-character provider name once gave a 1.5 MB page: titles, names, units, run ids, data-* all cut."""
    big = "x" * 200_000
    times = {"at", "asked_at", "expires_at", "started_at", "since", "until", "generated_at", "day"}

    def blow(v, key=""):
        if isinstance(v, dict):
            return {k: blow(x, k) for k, x in v.items()}
        if isinstance(v, list):
            return [blow(x, key) for x in v]
        return big if isinstance(v, str) and key not in times else v

    normal = len(page.render(reportdata.full()))
    d = blow(reportdata.full())
    d["days"] = reportdata.full()["days"]
    html = page.render(d)
    assert len(html) < normal + 400_000, (normal, len(html))
    assert max(len(m) for m in re.findall("x+", html)) <= page.MAX_ENTRY


def test_axis_labels_have_the_year_when_the_range_crosses_one():
    import calendar

    t0, t1 = calendar.timegm((2025, 12, 1, 0, 0, 0)), calendar.timegm((2026, 1, 20, 0, 0, 0))
    pts = [{"at": "x", "t": t0 + 86400, "value": 1.0, "run": "a"}, {"at": "y", "t": t1 - 86400, "value": 2.0, "run": "b"}]
    labels = re.findall(r'font-size="11">([^<]*)</text>', svg.series("s", "d", pts, [], [], t0, t1))
    assert "2025-12-01" in labels and "2026-01-20" in labels, labels
    bars = svg.stacked_bars("r", "d", ["2025-12-31", "2026-01-01"], [("done", "done", [1, 2])])
    assert "2025-12-31" in bars and "2026-01-01" in bars
    late = [{**p, "t": t1 - 86400 * (2 + i)} for i, p in enumerate(pts)]
    one_year = svg.series("s", "d", late, [], [], t0 + 86400 * 40, t1 - 86400)  # 2026-01-10 .. 2026-01-19
    assert re.findall(r'font-size="11">(\d\d-\d\d)</text>', one_year) and "2026-01" not in one_year
    assert ">12-31<" in svg.stacked_bars("r", "d", ["2025-12-30", "2025-12-31"], [("done", "done", [1, 2])])


def test_the_queue_says_why_once_and_the_dollars_say_where_they_come_from():
    d = reportdata.full()
    d["queue"][1]["why"] = "deferred until 2026-12-08 00:00 UTC (a rate limit)"
    html = page.render(d)
    queue = re.search(r'<table data-table="queue">.*?</table>', html).group(0)
    assert queue.count("deferred until 2026-12-08 00:00 UTC (a rate limit)") == 1
    spend = re.search(r'<section id="spend">.*?</section>', html).group(0)
    assert "budget ledger" in spend and "every host sharing this state directory" in spend
    assert "this host's runs" in spend
