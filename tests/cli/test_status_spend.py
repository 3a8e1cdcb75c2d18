"""`agentd status` says today's spend against the daily budget: the budget's ledger for the dollars (what
`usd_per_day` is checked against), this host's runs started today for the tokens in and out; in text and
in --json, and the same figure the report's spend plot gives for today."""

from __future__ import annotations

import json
import time
from pathlib import Path

from agentd.store.store import Store
from conftest import run_cli


def store_path(home: Path) -> Path:
    return home / ".local" / "state" / "agentd" / "agentd.sqlite3"


def day(t: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(t))


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def ok(*args) -> str:
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    return r.stdout


def test_status_says_todays_spend_against_the_daily_budget(home, worklog):
    ok("init")
    worklog.write_text(worklog.read_text() + "- [ ] say hi {id: hi, run: 'echo hi'}\n")
    ok("wake", "--now")  # a real run: a command task, no cost
    now = time.time()
    s = Store(store_path(home))
    s.start_run(run_id="r-agent", task_id="write", kind="task", title="write it", status="done",
                started_at=iso(now), input_tokens=12345, output_tokens=2345, cost_usd=1.23, provider="anthropic",
                host="testhost")
    s.ledger_add(day(now), "r-agent", 12345 + 2345, 1.0)
    s.ledger_add(day(now), "r-agent", 0, 0.23)
    s.ledger_add(day(now - 86400), "r-old", 999, 7.0)  # yesterday's: not today's
    s.start_run(run_id="r-other", task_id="x", kind="task", status="done", started_at=iso(now),
                input_tokens=5, output_tokens=5, cost_usd=0.5, host="otherhost")  # another host's tokens
    s.close()
    (home / ".config" / "agentd" / "config.yaml").write_text(
        (home / ".config" / "agentd" / "config.yaml").read_text().replace("usd_per_day: 10.0", "usd_per_day: 5.0"))
    info = json.loads(ok("status", "--json"))
    spend = info["spend_today"]
    assert spend["day"] == day(now)
    assert abs(spend["usd"] - 1.23) < 1e-9
    assert spend["usd_per_day"] == 5.0
    assert (spend["input_tokens"], spend["output_tokens"]) == (12345, 2345)
    text = ok("status")
    assert "spend:     today $1.23 of $5.00 (usd_per_day), UTC day; 12,345 tokens in, 2,345 out" in text
    report = json.loads(ok("report", "--json", "--since", "2d"))
    today = report["spend_per_day"][-1]
    assert today["day"] == spend["day"] and abs(today["usd"] - spend["usd"]) < 1e-9
    assert (today["input_tokens"], today["output_tokens"]) == (12345, 2345)


def test_with_no_store_status_says_nothing_is_spent_yet(home):
    info = json.loads(ok("status", "--json"))
    assert info["spend_today"]["usd"] == 0 and info["spend_today"]["input_tokens"] == 0
    assert "spend:     today $0.00 of $10.00 (usd_per_day), UTC day; 0 tokens in, 0 out" in ok("status")
