"""`agentd report --json` (report/data.py's ``gather``): the numbers behind every plot, from real wakes
under a faked clock (command tasks over six days, a recurring one with a QC gate that fails once and a
change the wake flagged) and rows put straight in the store (spend, providers, an approval); an empty
state directory; and 100,000 runs, whose report stays bounded."""

from __future__ import annotations

import calendar
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentd.config import config
from agentd.report import data
from agentd.store.store import Store
from conftest import AGENTD, run_cli

DAY = 86400
D0 = calendar.timegm((2026, 11, 20, 10, 0, 0))  # the first wake's day
NOW = D0 + 6 * DAY + 2 * 3600  # 2026-11-26T12:00:00Z
VALUES = [100, 101, 100, 99, 100, 80]  # bench's tflops, one a day: the last fails ">= 90" and is a step down


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def at(t: float, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """The real CLI, its clock faked to ``t`` (libfaketime)."""
    env = dict(os.environ, TZ="UTC")
    r = subprocess.run(["faketime", "-f", "@" + time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)), *AGENTD, *args],
                       capture_output=True, text=True, env=env, timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    if check:
        assert r.returncode == 0, r.stderr
    return r


def store_path(home: Path) -> Path:
    return home / ".local" / "state" / "agentd" / "agentd.sqlite3"


@pytest.fixture
def state(home, worklog) -> Path:
    at(D0, "init")
    worklog.write_text(worklog.read_text() +
                       "RULE: never touch /data {id: no-data}\n"
                       "- [ ] measure the tflops {id: bench, run: 'cat v.txt', every: 1d, expect: {tflops: '>= 90'}}\n"
                       "- [ ] a flaky one {id: flaky, run: 'false'}\n")
    for i, v in enumerate(VALUES):
        (worklog.parent / "v.txt").write_text(f"METRIC tflops={v} TFLOP/s\n")
        at(D0 + i * DAY, "wake", "--now", "--task", "bench", check=False)
    at(D0 + 5 * DAY + 60, "wake", "--now", "--task", "flaky", check=False)
    s = Store(store_path(home))
    for run, day, provider, cost, tin, tout in (("r-a", 1, "anthropic", 0.5, 1000, 200),
                                                ("r-b", 3, "openai", 0.25, 300, 50)):
        s.start_run(run_id=run, task_id="write", kind="task", title="write <b>it</b>", status="done",
                    started_at=iso(D0 + day * DAY + 600), duration_s=60.0, input_tokens=tin, output_tokens=tout,
                    cost_usd=cost, provider=provider, host="testhost")
        s.ledger_add(time.strftime("%Y-%m-%d", time.gmtime(D0 + day * DAY)), run, tin + tout, cost)
    s.start_run(run_id="r-ask", task_id="deploy", kind="task", title="deploy", status="waiting",
                started_at=iso(D0 + 5 * DAY + 120), host="testhost")
    s.add_approval(id="ap-00112233aabbccdd", run_id="r-ask", task_id="deploy", call_id="c1", kind="write",
                   what="/srv/www", why="to publish", asked_at=iso(D0 + 5 * DAY + 130),
                   expires_at=iso(D0 + 12 * DAY))
    s.start_run(run_id="r-old", task_id="bench", kind="command", title="old", status="done",
                started_at=iso(D0 - 30 * DAY), cost_usd=9.0, host="testhost")  # before the range
    s.start_run(run_id="r-elsewhere", task_id="bench", kind="command", title="x", status="failed",
                started_at=iso(D0 + DAY), host="otherhost")  # another host's
    s.close()
    return worklog


def report(*args: str) -> dict:
    r = at(NOW, "report", "--json", *args)
    return json.loads(r.stdout)


def test_the_report_counts_runs_spend_and_success_per_day_from_real_wakes(state):
    d = report("--since", "7d")
    assert (d["report"], d["host"], d["generated_at"], d["since"]) == (1, "testhost", iso(NOW), iso(NOW - 7 * DAY))
    assert d["days"] == [time.strftime("%Y-%m-%d", time.gmtime(NOW - (7 - i) * DAY)) for i in range(8)]
    per_day = {r["day"]: r for r in d["runs_per_day"]}
    assert [r["day"] for r in d["runs_per_day"]] == d["days"]
    day = [time.strftime("%Y-%m-%d", time.gmtime(D0 + i * DAY)) for i in range(6)]
    assert [(per_day[x]["done"], per_day[x]["failed"], per_day[x]["other"]) for x in day] == [
        (1, 0, 0), (2, 0, 0), (1, 0, 0), (2, 0, 0), (1, 0, 0), (0, 2, 1)]
    assert d["success"] == {"done": 7, "ended": 9, "rate": 7 / 9}
    spend = {s["day"]: s for s in d["spend_per_day"]}
    assert [s["day"] for s in d["spend_per_day"]] == d["days"]
    assert (spend[day[1]]["usd"], spend[day[1]]["input_tokens"], spend[day[1]]["output_tokens"]) == (0.5, 1000, 200)
    assert (spend[day[3]]["usd"], spend[day[3]]["input_tokens"]) == (0.25, 300)
    assert sum(s["usd"] for s in d["spend_per_day"]) == 0.75
    assert d["totals"] == {"runs": 10, "usd": 0.75, "input_tokens": 1300, "output_tokens": 250}
    assert d["budget_usd_per_day"] == 10.0
    assert d["by_provider"] == [{"provider": "anthropic", "usd": 0.5, "input_tokens": 1000, "output_tokens": 200},
                                {"provider": "openai", "usd": 0.25, "input_tokens": 300, "output_tokens": 50}]
    # a shorter span: only the last two days' runs
    assert report("--since", "36h")["totals"]["runs"] == 3  # bench, flaky and r-ask, the day before


def test_the_metric_series_has_its_gate_its_failed_point_and_the_change_the_wake_flagged(state):
    d = report()
    (s,) = d["metrics"]  # the run's own figures (run.duration_s ...) are not drawn: no gate names them
    assert (s["name"], s["task"], s["unit"]) == ("tflops", "bench", "TFLOP/s")
    assert [p["value"] for p in s["points"]] == VALUES
    assert [p["failed"] for p in s["points"]] == [False] * 5 + [True]
    assert [p["at"][:10] for p in s["points"]] == [iso(D0 + i * DAY)[:10] for i in range(6)]
    assert s["gates"] == [{"text": ">= 90", "op": ">=", "value": 90.0}]
    (c,) = s["changes"]
    assert c["run"] == s["points"][-1]["run"] and c["at"] == s["points"][-1]["at"]
    assert c["text"].startswith("tflops 80 is 20.0% below the median 100")


def test_reliability_attention_queue_and_last_runs(state):
    d = report()
    bench = d["reliability"][0]  # the recurring task first
    assert (bench["task"], bench["every"], bench["runs"], bench["done"]) == ("bench", "1d", 6, 5)
    assert bench["pass_k"] == {"k": 3, "value": 0.5}  # C(5,3) / C(6,3)
    assert bench["median_s"] is not None and bench["median_s"] >= 0
    flaky = next(r for r in d["reliability"] if r["task"] == "flaky")
    assert (flaky["every"], flaky["runs"], flaky["done"], flaky["pass_k"]["value"]) == (None, 1, 0, None)
    write = next(r for r in d["reliability"] if r["task"] == "write")
    assert (write["title"], write["median_s"]) == ("write <b>it</b>", 60.0)  # as written: the page escapes it
    assert d["attention"]["approvals"] == [{"id": "ap-00112233aabbccdd", "task": "deploy",
                                            "what": "write access to /srv/www", "asked_at": iso(D0 + 5 * DAY + 130),
                                            "expires_at": iso(D0 + 12 * DAY)}]
    assert d["attention"]["rules"] == [{"id": "no-data", "text": "never touch /data", "critical": False}]
    assert {"bench", "flaky"} <= {q["id"] for q in d["queue"]}
    flaky_q = next(q for q in d["queue"] if q["id"] == "flaky")
    assert flaky_q["why"] and flaky_q["kind"] == "command"
    last = d["last_runs"]
    assert len(last) == 10 and last[0]["run"] == "r-ask"  # newest first, as recorded
    assert "r-old" not in {r["run"] for r in last} and "r-elsewhere" not in {r["run"] for r in last}
    bench_runs = [r for r in last if r["task"] == "bench"]
    assert len(bench_runs) == 6 and all(r["cost_usd"] is None for r in bench_runs)  # a run with no cost
    assert "status=failed" in bench_runs[0]["entry"] and "change: tflops 80" in bench_runs[0]["entry"]
    assert next(r for r in last if r["run"] == "r-a")["cost_usd"] == 0.5


def test_an_empty_state_dir_gives_a_report_with_nothing_in_it(home):
    d = report("--since", "2d")
    assert d["days"] == [time.strftime("%Y-%m-%d", time.gmtime(NOW - (2 - i) * DAY)) for i in range(3)]
    assert d["runs_per_day"] == [{"day": x, "done": 0, "failed": 0, "blocked": 0, "other": 0} for x in d["days"]]
    assert d["spend_per_day"] == [{"day": x, "usd": 0.0, "input_tokens": 0, "output_tokens": 0} for x in d["days"]]
    for key in ("by_provider", "metrics", "reliability", "queue", "last_runs"):
        assert d[key] == [], key
    assert d["attention"] == {"approvals": [], "blocked": [], "rules": []}
    assert d["success"] == {"done": 0, "ended": 0, "rate": None}
    assert d["totals"] == {"runs": 0, "usd": 0.0, "input_tokens": 0, "output_tokens": 0}
    assert not store_path(home).exists()  # the report made no store


def test_a_metric_with_one_point_is_a_series_of_one_point(home, worklog):
    at(NOW - 3600, "init")
    worklog.write_text(worklog.read_text() + "- [ ] once {id: once, run: 'echo METRIC loss=0.125'}\n")
    at(NOW - 3600, "wake", "--now")
    (s,) = report()["metrics"]
    assert (s["name"], s["unit"], s["gates"], s["changes"]) == ("loss", None, [], [])
    assert [p["value"] for p in s["points"]] == [0.125]


def test_a_bad_span_or_output_is_one_line_naming_the_flag(home, tmp_path):
    for args, words in ((["--since=3x"], "--since '3x'"), (["--since=-2d"], "--since '-2d'"),
                        (["--json", "-o", str(tmp_path / "r.html")], "--json"),
                        (["-o", str(tmp_path / "no" / "such" / "r.html")], "does not exist"),
                        (["-o", str(tmp_path)], "is a directory")):
        r = run_cli("report", *args)
        assert r.returncode == 2 and "Traceback" not in r.stderr, (args, r.stderr)
        assert words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_100000_runs_give_a_bounded_report(home, monkeypatch):
    """Rows put straight in the store, as bench/report.py does: the dict's size does not grow with them."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from report_fill import fill

    cfg = config.load()
    fill(cfg.store_path, 100_000, NOW, host=cfg.host)
    s = Store.read_only(cfg.store_path)
    try:
        d = data.gather(cfg, s, 30 * DAY, NOW)
    finally:
        s.close()
    assert d["totals"]["runs"] == sum(r["done"] + r["failed"] + r["blocked"] + r["other"] for r in d["runs_per_day"])
    assert d["totals"]["runs"] > 40_000  # (the fill spreads 100,000 runs over 60 days)
    assert len(d["days"]) == 31 and len(d["runs_per_day"]) == 31
    assert len(d["last_runs"]) == data.LAST_RUNS == 50
    assert 0 < len(d["metrics"]) <= 20 and all(len(m["points"]) <= 500 for m in d["metrics"])
    assert len(d["reliability"]) <= 50
    assert len(json.dumps(d)) < 1_000_000


def test_a_span_past_400_days_is_cut_to_400_days_and_says_so(home):
    """`--since 999999999d` once built a 22 GB report: the range is at most data.MAX_DAYS days."""
    d = report("--since", "36500d")
    assert len(d["days"]) == len(d["runs_per_day"]) == len(d["spend_per_day"]) == data.MAX_DAYS == 400
    assert d["days"][-1] == iso(NOW)[:10] and d["since"] == d["days"][0] + "T00:00:00Z"
    assert d["since_asked"] == iso(NOW - 36500 * DAY)
    assert len(json.dumps(d)) < 100_000
    short = report("--since", "2d")
    assert short["since_asked"] is None and short["since"] == iso(NOW - 2 * DAY)


def test_a_point_is_failed_only_where_its_runs_qc_verdict_names_its_metric(tmp_path):
    """The pilot run failed only on token_limit_rate: its `yield` (no gate) and `tflops` (passed) are not."""
    from agentd.metrics.metric import Metric
    from agentd.report import series
    from agentd.store import metrics as sm

    s = Store(tmp_path / "s.sqlite3")
    at_ = iso(NOW - 3600)
    reasons = {"pilot": "QC: token_limit_rate 0.1 < 0.10: FAIL",
               "both": "QC: tflops 80 >= 90: FAIL; token_limit_rate 0.2 < 0.10: FAIL",
               "unread": "QC: expect: yield: 'soon' is not a condition (a condition that can't be read never passes)",
               "cut": "QC: tflops 80 >= 90: FAIL; token_limit_rate 0.2 < 0.1" + "0" * 600 + "..."}
    for run, reason in reasons.items():
        s.start_run(run_id=run, task_id="t", kind="command", title="t", status="failed", started_at=at_,
                    reason=reason, host="h")
        sm.add(s, run, "t", "h", [Metric("token_limit_rate", 0.1), Metric("yield", 3.0), Metric("tflops", 80.0)],
               at=at_)
    s.close()
    s = Store.read_only(tmp_path / "s.sqlite3")
    try:
        got = {m["name"]: {p["run"]: p["failed"] for p in m["points"]}
               for m in series.gather(s, "h", iso(NOW - DAY), iso(NOW), lambda tid: None)}
    finally:
        s.close()
    assert got["token_limit_rate"] == {"pilot": True, "both": True, "unread": False, "cut": True}
    assert got["tflops"] == {"pilot": False, "both": True, "unread": False, "cut": True}
    assert got["yield"] == {"pilot": False, "both": False, "unread": True, "cut": False}


@pytest.mark.parametrize("how", ["symlink", "directory", "missing"])
def test_a_worklog_that_cannot_be_read_is_said_not_hidden(home, worklog, tmp_path, how):
    """It once gave "The queue is empty" and "Nothing waits on a person"."""
    at(NOW - 3600, "init")
    real = tmp_path / "elsewhere.txt"
    real.write_text(worklog.read_text() + "- [ ] a task {id: a, run: 'true'}\n")
    worklog.unlink()
    if how == "symlink":
        worklog.symlink_to(real)
    elif how == "directory":
        worklog.mkdir()
    d = report()
    assert d["worklog_problem"] and str(worklog) in d["worklog_problem"], d["worklog_problem"]
    assert "\n" not in d["worklog_problem"] and d["queue"] == []
    r = at(NOW, "report", "-o", str(tmp_path / "r.html"))
    html = (tmp_path / "r.html").read_text()
    assert 'data-key="worklog_problem"' in html and "Nothing waits on a person" not in html
    assert "The queue is empty" not in html


def test_a_readable_worklog_has_no_problem(home, worklog):
    at(NOW - 3600, "init")
    assert report()["worklog_problem"] is None


def test_non_finite_numbers_in_a_tampered_store_are_null_in_valid_json(home, monkeypatch):
    """`report --json` once printed `Infinity` (not JSON)."""
    from agentd.metrics.metric import Metric
    from agentd.store import metrics as sm

    cfg = config.load()
    cfg.ensure_state_dir()
    s = Store(cfg.store_path)
    at_ = iso(NOW - 3600)
    s.start_run(run_id="r1", task_id="t", kind="command", title="t", status="done", started_at=at_, host="testhost")
    sm.add(s, "r1", "t", "testhost", [Metric("tflops", 1.0), Metric("loss", 2.0)], at=at_)
    s.db.execute("UPDATE metrics SET value = 9e999 WHERE name = 'tflops'")
    s.db.execute("UPDATE metrics SET value = -9e999 WHERE name = 'loss'")
    s.db.execute("UPDATE runs SET duration_s = 9e999, cost_usd = 9e999 WHERE run_id = 'r1'")
    s.ledger_add(iso(NOW)[:10], "r1", 10, 1.0)
    s.db.execute("UPDATE ledger SET cost_usd = 9e999")
    s.close()
    r = at(NOW, "report", "--json")

    def no(c):
        raise AssertionError(f"{c} in the JSON")

    d = json.loads(r.stdout, parse_constant=no)
    assert {m["name"]: [p["value"] for p in m["points"]] for m in d["metrics"]} == {"tflops": [None], "loss": [None]}
    assert d["last_runs"][0]["duration_s"] is None and d["last_runs"][0]["cost_usd"] is None
    assert d["spend_per_day"][-1]["usd"] is None and d["totals"]["usd"] is None
