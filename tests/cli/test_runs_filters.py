"""`agentd runs --status STATUS --since SPAN`: only the runs with that status, started in the last SPAN;
combined with each other, with --task and -n, in text and --json; an unknown status or a bad span is a
usage error that names the flag (and lists the statuses)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from agentd.store.store import Store
from conftest import run_cli


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def ok(*args) -> str:
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    return r.stdout


def state(home: Path, worklog: Path) -> None:
    """Two real wakes (a done and a failed command task), and older runs put straight in the store."""
    ok("init")
    worklog.write_text(worklog.read_text() + "- [ ] fine {id: fine, run: 'true', value: 9}\n"
                       "- [ ] broken {id: broken, run: 'false', value: 1}\n")
    ok("wake", "--now")
    run_cli("wake", "--now")  # (exits 1: its task failed)
    s = Store(home / ".local" / "state" / "agentd" / "agentd.sqlite3")
    for i in range(5):
        s.start_run(run_id=f"old-{i}", task_id="fine", kind="command", title="fine", status="done",
                    started_at=iso(time.time() - (10.5 + 3 * i) * 86400), host="testhost")
    s.start_run(run_id="old-failed", task_id="broken", kind="command", title="broken", status="failed",
                started_at=iso(time.time() - 20 * 86400), host="testhost")
    s.close()


def ids(*args) -> list[str]:
    return [r["run_id"] for r in json.loads(ok("runs", "--json", *args))]


def test_status_and_since_filter_the_runs_and_combine_with_task_and_limit(home, worklog):
    state(home, worklog)
    assert len(ids()) == 8
    failed = ids("--status", "failed")
    assert len(failed) == 2 and "old-failed" in failed
    assert {r["status"] for r in json.loads(ok("runs", "--json", "--status", "failed"))} == {"failed"}
    recent = ids("--since", "2d")
    assert len(recent) == 2 and not any(r.startswith("old-") for r in recent)
    assert ids("--status", "failed", "--since", "2d") == [r for r in failed if r != "old-failed"]
    # (newest first by when they were recorded: the old rows were put in after the wakes)
    assert ids("--status", "done", "--task", "fine", "--since", "2w") == [
        "old-1", "old-0", ids("--status", "done", "--since", "1d")[0]]
    assert ids("--status", "done", "--task", "fine", "-n", "2") == ids("--status", "done", "--task", "fine")[:2]
    assert ids("--status", "blocked") == []
    text = ok("runs", "--status", "failed", "--since", "2d").splitlines()
    assert len(text) == 2 and " broken " in text[1] and " failed " in text[1]
    assert ok("runs", "--status", "blocked").strip() == "no runs match (--status blocked)"


def test_an_unknown_status_or_a_bad_span_is_a_usage_error_naming_the_flag(home, worklog):
    state(home, worklog)
    r = run_cli("runs", "--status", "succeeded")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--status 'succeeded'" in r.stderr and "done, failed, blocked" in r.stderr and "running" in r.stderr
    for bad in ("7", "7y", "-3d", "0d", "soon"):
        r = run_cli("runs", f"--since={bad}")
        assert r.returncode == 2 and "Traceback" not in r.stderr, (bad, r.stderr)
        assert f"--since {bad!r}" in r.stderr and "30d, 2w, 12h" in r.stderr, r.stderr


def test_a_span_past_a_hundred_years_is_a_usage_error_in_runs_and_report(home):
    """`--since 999999999d` made a 22 GB report, `99999999999999999999d` a traceback (time.gmtime)."""
    for cmd in (("runs",), ("report", "--json")):
        for bad in ("36600d", "999999999d", "99999999999999999999d", "9" * 400 + "d", "6000w"):
            r = run_cli(*cmd, f"--since={bad}")
            assert r.returncode == 2 and "Traceback" not in r.stderr, (cmd, bad, r.stderr)
            assert f"--since {bad!r}" in r.stderr and "100 years" in r.stderr, r.stderr
            assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_spans_take_decimals_in_every_unit_and_units_in_either_case():
    from agentd.cli.since import since_seconds

    assert since_seconds("1.5w") == 1.5 * 7 * 86400
    assert since_seconds("1.5d") == 1.5 * 86400
    assert since_seconds("2W") == since_seconds("2w") == 14 * 86400
    assert since_seconds("12H") == 12 * 3600 and since_seconds("90M") == since_seconds("90m") == 5400
    assert since_seconds("30S") == 30 and since_seconds("5min") == since_seconds("5MIN") == 300
    assert since_seconds("36500d") == 36500 * 86400  # a hundred years is the most


def test_a_stale_running_run_is_interrupted_in_runs_filters_and_the_report(home, worklog):
    """`runs` relabels a `running` row no wake holds as `interrupted`: --status filters on that, as the report shows it."""
    state(home, worklog)
    s = Store(home / ".local" / "state" / "agentd" / "agentd.sqlite3")
    s.start_run(run_id="cut-off", task_id="fine", kind="command", title="fine", status="running",
                started_at=iso(time.time() - 600), host="testhost")
    s.close()
    assert "cut-off" in ids("--status", "interrupted")
    assert "cut-off" not in ids("--status", "running")
    assert {r["status"] for r in json.loads(ok("runs", "--json", "--status", "interrupted"))} == {"interrupted"}
    assert ids("--status", "interrupted", "-n", "1") == ["cut-off"]
    last = {r["run"]: r["status"] for r in json.loads(ok("report", "--json", "--since", "1d"))["last_runs"]}
    assert last["cut-off"] == "interrupted"


def test_no_match_names_the_filters_rather_than_saying_no_runs_yet(home, worklog):
    state(home, worklog)
    assert ok("runs", "--task", "nosuch").strip() == "no runs match (--task nosuch)"
    assert ok("runs", "--task", "nosuch", "--status", "done", "--since", "2d").strip() == \
        "no runs match (--task nosuch --status done --since 2d)"
    assert ok("runs", "--json", "--task", "nosuch").strip() == "[]"
