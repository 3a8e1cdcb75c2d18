"""End to end: three weeks of runs made by real wakes under a faked clock (libfaketime), `agentd report -o FILE`,
the page opened in headless Chromium: no request leaves it, nothing is logged, every plot has drawn marks,
a screenshot is not blank, the numbers on the page are `agentd report --json`'s, and a task title holding
a <script> shows as text."""

from __future__ import annotations

import calendar
import json
import os
import shutil
import subprocess
import time

import pytest
from browser import Dom, blank, marks, needs_chromium, open_page, pixels, same, screenshot

from conftest import AGENTD

DAY = 86400
D0 = calendar.timegm((2026, 11, 14, 9, 0, 0))
SLOTS = 6  # a wake for each task every fourth day: 2026-11-14 .. 2026-12-04
NOW = D0 + 22 * DAY
TITLE = "build <script>alert(1)</script> it"

pytestmark = [needs_chromium, pytest.mark.skipif(shutil.which("faketime") is None,
                                                 reason="needs libfaketime (apt-get install faketime)")]


def at(t: float, *args: str) -> subprocess.CompletedProcess:
    """The real CLI, its clock faked to ``t``."""
    r = subprocess.run(["faketime", "-f", "@" + time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)), *AGENTD, *args],
                       capture_output=True, text=True, env=dict(os.environ, TZ="UTC"), timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    return r


@pytest.fixture
def weeks(worklog):
    at(D0, "init")
    worklog.write_text(worklog.read_text() +
                       "- [ ] measure the tflops {id: bench, run: 'cat v.txt', every: 1d, expect: {tflops: '>= 90'}}\n"
                       f"- [ ] {TITLE} {{id: build, run: 'cat b.txt', every: 2d}}\n")
    for i in range(SLOTS):
        tflops = 70 if i == 5 else 100 + i % 3
        (worklog.parent / "v.txt").write_text(f"METRIC tflops={tflops} TFLOP/s\n")
        (worklog.parent / "b.txt").write_text(f"METRIC build_s={30 + i}\n" + ("" if i != 6 else "boom\n"))
        at(D0 + 4 * i * DAY, "wake", "--now", "--task", "bench")
        at(D0 + 4 * i * DAY + 600, "wake", "--now", "--task", "build")
    return worklog


def test_a_report_of_three_weeks_of_real_wakes_opens_offline_with_its_plots_and_its_numbers(weeks, tmp_path):
    out = tmp_path / "report.html"
    r = at(NOW, "report", "-o", str(out), "--since", "30d")
    assert r.returncode == 0 and r.stdout.strip() == str(out), r.stderr
    data = json.loads(at(NOW, "report", "--json", "--since", "30d").stdout)
    assert data["totals"]["runs"] == 2 * SLOTS and data["metrics"]  # (the wakes ran what this test meant)

    opened = open_page(out)
    assert opened.requests == [] and opened.console == []
    dom = Dom(opened.dom).root
    plots = dom.all("svg")
    assert len(plots) >= 3 and all(marks(p) for p in plots)  # runs per day, and each metric series
    assert dom.all("script") == [] and any(td.text() == TITLE for td in dom.all("td"))
    same(dom, "runs_per_day", data["runs_per_day"])
    same(dom, "reliability", data["reliability"])
    same(dom, "queue", data["queue"])
    same(dom, "last_runs", data["last_runs"], skip=("started_at",))
    for i, m in enumerate(data["metrics"]):
        same(dom, f"metric-{i}", m["points"])
    tflops = next(i for i, m in enumerate(data["metrics"]) if m["name"] == "tflops")
    assert any(p["failed"] for p in data["metrics"][tflops]["points"])
    assert dom.all("circle", **{"class": "mark point failed"})
    assert not blank(pixels(screenshot(out, tmp_path / "shot.png")))
