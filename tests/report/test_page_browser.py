"""The report's page in a real browser (headless Chromium, Debian's ``chromium``): it loads nothing from the
network and logs nothing, every plot has drawn marks, a screenshot is not blank, the numbers on the page
are the data's, and a hostile title shows as text.  Each check is shown able to fail on a page made to
fail it (the protection off: no escaping, no Content-Security-Policy; a blank page)."""

from __future__ import annotations

import json

import reportdata as fixture
import pytest
from browser import Dom, blank, get, marks, needs_chromium, open_page, pixels, same, screenshot

from agentd.report import page, svg

pytestmark = needs_chromium

HOSTILE = ('<script>console.error("planted")</script><img src="http://203.0.113.5/x.png">'
           '<script src="http://example.com/a.js"></script>\x1b[31mred\x1b]0;owned\x07')


def protection_off(monkeypatch, csp: bool = False) -> None:
    """PROTECTION OFF, ON PURPOSE: texts go into the page as they are; ``csp``: keep the policy."""
    monkeypatch.setattr(svg, "esc", lambda text, limit=0: "" if text is None else str(text))
    if not csp:
        monkeypatch.setattr(page, "CSP", "")


def write(tmp_path, data: dict, name: str = "report.html"):
    p = tmp_path / name
    p.write_text(page.render(data), encoding="utf-8")
    return p


@pytest.mark.parametrize("protected", [True, pytest.param(False, marks=pytest.mark.xfail(
    strict=True, reason="PROTECTION OFF: the title's <img>, <script src> and console.error get through"))])
def test_the_page_makes_no_request_and_logs_no_console_message(tmp_path, monkeypatch, protected):
    if not protected:
        protection_off(monkeypatch)
    opened = open_page(write(tmp_path, fixture.full(HOSTILE)))
    assert opened.requests == []
    assert opened.console == []


def test_with_escaping_off_the_content_security_policy_alone_still_stops_the_requests(tmp_path, monkeypatch):
    protection_off(monkeypatch, csp=True)
    opened = open_page(write(tmp_path, fixture.full(HOSTILE)))
    assert opened.requests == []
    assert any("Content Security Policy" in m for m in opened.console), opened.console  # and the check sees it


def test_every_plot_has_drawn_marks_a_title_and_a_description(tmp_path):
    dom = Dom(open_page(write(tmp_path, fixture.full())).dom).root
    plots = dom.all("svg")
    assert len(plots) == 5  # runs, spend, tokens, two metric series
    for p in plots:
        assert marks(p), p.all("title")[0].text()
        assert p.children[0].tag == "title" and p.all("desc")[0].text().strip()
    tflops = plots[3]
    assert len(tflops.all("circle")) == 21 and len(tflops.all("circle", **{"class": "mark point failed"})) == 1
    assert len(tflops.all("line", **{"class": "gate"})) == 1 and len(tflops.all("path", **{"class": "mark change"})) == 1
    assert len(plots[1].all("line", **{"class": "budget"})) == 1


@pytest.mark.parametrize("html,is_blank", [(None, False), ("<!doctype html><title>x</title><body></body>", True)])
def test_a_screenshot_of_the_page_is_not_blank_and_one_of_an_empty_page_is(tmp_path, html, is_blank):
    src = write(tmp_path, fixture.full())
    if html is not None:  # the check's twin: a blank page is found blank
        src.write_text(html)
    assert blank(pixels(screenshot(src, tmp_path / "shot.png"))) is is_blank


def test_the_numbers_on_the_page_equal_the_data(tmp_path):
    data = fixture.full()
    dom = Dom(open_page(write(tmp_path, data)).dom).root
    for name in ("runs_per_day", "spend_per_day", "by_provider", "reliability", "queue"):
        same(dom, name, data[name])
    same(dom, "last_runs", data["last_runs"], skip=("started_at",))
    same(dom, "approvals", data["attention"]["approvals"], skip=("asked_at", "expires_at"))
    same(dom, "blocked", data["attention"]["blocked"])
    same(dom, "rules", data["attention"]["rules"])
    for i, m in enumerate(data["metrics"]):
        same(dom, f"metric-{i}", m["points"])
    keys = {n.attrs["data-key"]: json.loads(n.attrs["data-v"]) for n in dom.all(data_key=True) if "data-v" in n.attrs}
    for k in ("totals.runs", "totals.usd", "totals.input_tokens", "totals.output_tokens", "success.done",
              "success.ended", "success.rate", "budget_usd_per_day"):
        assert keys[k] == get(data, k), k
    # what the plots draw is the data too
    plots = dom.all("svg")
    bars = {(n.attrs["data-day"], n.attrs["data-key"]): json.loads(n.attrs["data-v"]) for n in marks(plots[0])}
    assert bars == {(r["day"], k): r[k] for r in data["runs_per_day"] for k in ("done", "failed", "blocked", "other")
                    if r[k]}
    spend = {n.attrs["data-day"]: json.loads(n.attrs["data-v"]) for n in marks(plots[1])}
    assert spend == {r["day"]: r["usd"] for r in data["spend_per_day"] if r["usd"]}
    points = [json.loads(n.attrs["data-v"]) for n in plots[3].all("circle")]
    assert points == [p["value"] for p in data["metrics"][0]["points"]]


@pytest.mark.parametrize("protected", [True, pytest.param(False, marks=pytest.mark.xfail(
    strict=True, reason="PROTECTION OFF: the title's <script> becomes a script element, its escape a raw ESC"))])
def test_a_title_holding_a_script_tag_and_a_terminal_escape_shows_as_text(tmp_path, monkeypatch, protected):
    title = "<script>alert(1)</script>\x1b[31mred"
    if not protected:
        protection_off(monkeypatch, csp=True)  # (the policy kept: an alert() run would hang the browser)
    dom = Dom(open_page(write(tmp_path, fixture.full(title))).dom).root
    assert dom.all("script") == []
    cells = [td.text() for td in dom.all("td")]
    assert "<script>alert(1)</script>\\x1b[31mred" in cells
    assert not any("\x1b" in c for c in cells)


def test_a_host_with_no_runs_gets_a_page_that_says_so(tmp_path):
    opened = open_page(write(tmp_path, fixture.empty()))
    dom = Dom(opened.dom).root
    (note,) = dom.all(data_key="no-runs")
    assert "No runs yet" in note.text()
    body = dom.all("body")[0].text()
    for said in ("Nothing waits on a person", "No runs in this range.", "No spend recorded", "No metric recorded",
                 "The queue is empty"):
        assert said in body
    assert opened.requests == [] and opened.console == []
