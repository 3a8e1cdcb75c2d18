"""`agentd report --fleet` (issue 23, part 5): the report's JSON gains the `fleet` key `agentd fleet status --json`
gives, and the page a section "The fleet" with a row per host and the fleet budget.  Real git, three hosts with
HOMEs of their own on one bare repository, real `agentd` subprocesses; the page read with html.parser."""

from __future__ import annotations

import json
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fleet"))
from hosts import git, start_fleet  # noqa: E402  (tests/fleet's hosts, as its tests use them)

EVIL = "<script>alert(1)</script>"


class Rows(HTMLParser):
    """The text of each row of the table ``data-table="fleet"``, cell by cell, and every tag seen."""

    def __init__(self):
        super().__init__()
        self.rows, self.tags, self._in, self._cell = [], [], False, None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        a = dict(attrs)
        if tag == "table":
            self._in = a.get("data-table") == "fleet"
        elif self._in and tag == "tr":
            self.rows.append([])
        elif self._in and tag == "td":
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "table":
            self._in = False
        elif self._in and tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture
def three(tmp_path):
    return start_fleet(tmp_path)


def test_report_fleet_shows_every_host_as_fleet_status_does(three, tmp_path):
    remote, (alpha, beta, gamma) = three
    alpha.append(f"- [ ] first {{run: echo a1, id: a1}}\n- [ ] {EVIL} {{run: echo a2, id: a2}}\n")
    beta.append("- [ ] b's task {run: echo b1, id: b1}\n")
    assert "a1: done" in alpha.ok("wake", "--now")
    assert "b1: done" in beta.ok("wake", "--now")
    lap = tmp_path / "laptop"  # a file in hosts/ no host may have: its name comes back in a warning
    git("clone", "-q", str(remote), str(lap))
    (lap / "hosts").mkdir(exist_ok=True)
    (lap / "hosts" / "<script>x<.json").write_text("{}")
    git("add", "hosts", cwd=lap)
    git("commit", "-qm", "from the laptop", cwd=lap)
    git("push", "-q", "origin", "main", cwd=lap)
    gamma.ok("sync")

    assert json.loads(gamma.ok("report", "--json"))["fleet"] is None  # only with --fleet
    st = json.loads(gamma.ok("fleet", "status", "--json"))
    rep = json.loads(gamma.ok("report", "--fleet", "--json"))["fleet"]
    assert [h["host"] for h in rep["hosts"]] == [h["host"] for h in st["hosts"]] == ["gamma", "alpha", "beta"]
    for mine, theirs in zip(rep["hosts"], st["hosts"]):
        for k in ("this", "last_run", "queue_top", "spend", "wake", "running", "stale", "synced_at"):
            assert mine.get(k) == theirs.get(k), (k, mine, theirs)
    assert rep["budget"] == st["budget"] and rep["warnings"] == st["warnings"] and rep["remote"] == st["remote"]
    by = {h["host"]: h for h in rep["hosts"]}
    assert by["alpha"]["queue_top"]["title"].startswith(EVIL) and by["beta"]["last_run"]["task"] == "b1"

    out = tmp_path / "report.html"
    assert gamma.ok("report", "--fleet", "-o", str(out)).strip() == str(out)
    html = out.read_text()
    p = Rows()
    p.feed(html)
    body = [r for r in p.rows if r]
    assert [r[0].split()[0] for r in body] == ["gamma", "alpha", "beta"], body
    alpha_row = " | ".join(body[1])
    assert "a1" in alpha_row and "done" in alpha_row and EVIL in alpha_row  # shown as text, not as a tag
    assert "script" not in p.tags and "<script" not in html.lower()
    assert "&lt;script&gt;x&lt;.json" in html  # the warning's file name, escaped
    assert 'id="fleet"' in html and "fleet budget: none set" in html
    assert html.index('id="fleet"') < html.index('id="attention"')  # right after the host's header

    plain = gamma.ok("report", "-o", str(tmp_path / "plain.html"))
    assert 'id="fleet"' not in Path(plain.strip()).read_text()


def test_report_fleet_outside_a_fleet_clone_is_a_usage_error(tmp_path):
    from hosts import Host

    lone = Host(tmp_path, "lone")
    lone.ok("init")
    p = lone.run("report", "--fleet", "--json")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "is no fleet clone" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert p.stdout == ""
